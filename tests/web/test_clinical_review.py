"""The 18 kinds of wrong card found by the clinical review (issue 7), each through the HTTP API.

Every test posts a CDS Hooks request to the real app and asserts the card CLINICAL_SPEC (revised
2026-12-01) demands: its indicator, or no card, the points of a domain, the exclusions.
"""

from __future__ import annotations

from typing import Any

import pytest

from cds_service.hooks.discovery import SERVICES
from tests.builders import (
    CPT,
    ICD10,
    SNOMED,
    condition,
    hook_request,
    medication_request,
    observation,
    report,
    service_request,
)

V2_0074 = "http://terminology.hl7.org/CodeSystem/v2-0074"
SERVICE_FOR_HOOK = {s.hook: s.id for s in SERVICES}

CCA = condition("312104005", verification="provisional")
IGG4_HIGH = observation("2469-5", 2.43, high=0.864, when="2026-09-01")  # 2.81 x ULN: 6 points
PANCREAS_AND_DUCTS = (
    "Long stricture of the common hepatic duct and proximal common bile duct with periductal thickening. "
    "Diffuse enlargement of the pancreas."
)  # 19 points


def resection() -> dict[str, Any]:
    """A draft hepatectomy with no reason: it acts on a presumption, it raises none."""
    return service_request("47130")


def pathology(
    text: str, *, study: str = "Surgical pathology report", when: str = "2026-10-20"
) -> dict[str, Any]:
    """A pathology report by its US Core category, the text as a presentedForm."""
    return report(kind="pathology", text=text, study=study, when=when)


def cards(client, *, hook: str = "order-sign", **parts: Any) -> list[dict[str, Any]]:
    """POST a hook request built from ``parts`` and return its cards."""
    parts.setdefault("orders", [resection()])
    if hook == "patient-view":
        parts.pop("orders")
    response = client.post(f"/cds-services/{SERVICE_FOR_HOOK[hook]}", json=hook_request(hook, **parts))
    assert response.status_code == 200, response.text
    return response.json()["cards"]


def the_card(client, **parts: Any) -> dict[str, Any]:
    """The one card of a hook call (fails when there is none)."""
    [card] = cards(client, **parts)
    return card


def classification(card: dict[str, Any]) -> dict[str, Any]:
    """The machine-readable classification of a card (CLINICAL_SPEC section 6)."""
    return card["extension"]["igg4rd-cds.classification"]


def points(card: dict[str, Any], domain: str) -> int:
    """The points of one domain on the card."""
    return int(classification(card)["domains"][domain]["points"])


def exclusions(card: dict[str, Any]) -> dict[str, str]:
    """Exclusion id -> status on the card."""
    return {e["id"]: e["status"] for e in classification(card)["exclusions"]}


def scored(client, *report_texts: str, **parts: Any) -> dict[str, Any]:
    """The card for a presumed CCA (Condition + hepatectomy) with the given imaging texts."""
    parts.setdefault("conditions", [CCA])
    parts.setdefault("observations", [IGG4_HIGH])
    reports = parts.pop("reports", []) + [report(text) for text in report_texts]
    return the_card(client, reports=reports, **parts)


# ------------------------------------------------------------------ 1. what is not tissue proof


BENIGN_BILE_DUCT = "Bile duct, hilar stricture, biopsy: benign biliary epithelium with chronic inflammation."


@pytest.mark.parametrize(
    "not_proof",
    [
        pytest.param(
            pathology(f"CLINICAL HISTORY: Klatskin tumour.\nDIAGNOSIS:\n{BENIGN_BILE_DUCT}"),
            id="history-line",
        ),
        pytest.param(
            pathology(
                "DIAGNOSIS: Bile duct, biopsy: IgG4-related sclerosing cholangitis, a mimicker of "
                "cholangiocarcinoma."
            ),
            id="mimicker-comparison",
        ),
        pytest.param(
            report(
                "ERCP: hilar stricture, brushings obtained. Findings consistent with Klatskin tumour.",
                study="ERCP with biliary brushing",
                category=(V2_0074, "RAD"),
            ),
            id="ercp-brushing-procedure-report",
        ),
        pytest.param(
            report(
                "Ultrasound-guided 18G core biopsy of the hilar mass, three passes. Known adenocarcinoma.",
                study="IR biopsy liver percutaneous",
                category=(V2_0074, "RAD"),
            ),
            id="interventional-radiology-biopsy-note",
        ),
        pytest.param(
            pathology(
                "Skin, left cheek, shave biopsy: basal cell carcinoma, nodular type.", when="2014-03-11"
            ),
            id="skin-basal-cell-carcinoma-2014",
        ),
        pytest.param(
            pathology("Colon, sigmoid, resection: invasive adenocarcinoma, pT3 N0."),
            id="colon-cancer",
        ),
    ],
)
def test_1_only_a_pathology_diagnosis_of_pancreatobiliary_carcinoma_ends_the_presumption(client, not_proof):
    card = the_card(client, conditions=[CCA], reports=[not_proof])
    assert card["indicator"] in {"info", "warning"}


def test_1_an_ercp_note_consistent_with_klatskin_tumour_raises_the_presumption(client):
    ercp = report(
        "Hilar stricture; findings consistent with Klatskin tumour.",
        study="ERCP with biliary brushing",
        category=(V2_0074, "RAD"),
    )
    assert the_card(client, reports=[ercp])["indicator"] == "info"  # IgG4 not measured


@pytest.mark.parametrize(
    ("proof", "study"),
    [
        (
            "Bile duct, hilar stricture, biopsy: adenocarcinoma consistent with cholangiocarcinoma.",
            "Pathology",
        ),
        ("Adenocarcinoma, moderately differentiated.", "Common bile duct brushing cytology"),
        (
            "Portal lymph node: metastatic adenocarcinoma consistent with pancreatobiliary primary.",
            "Lymph node",
        ),
    ],
)
def test_1_tissue_proof_of_pancreatobiliary_carcinoma_ends_it_whatever_its_date(client, proof, study):
    old = pathology(proof, study=study, when="2019-06-01")  # before the lookback window
    assert cards(client, conditions=[CCA], observations=[IGG4_HIGH], reports=[old]) == []


# ------------------------------------------------------------------ 2. order reasons


def test_2_an_order_reason_reference_to_a_biliary_stricture_condition_acts(client):
    stricture = condition("K83.1", ICD10, text="Biliary stricture")
    ercp = service_request("43260", CPT) | {
        "reasonReference": [{"reference": f"Condition/{stricture['id']}"}]
    }
    suspicious = report("Hilar biliary stricture, suspicious for cholangiocarcinoma.")
    card = the_card(client, orders=[ercp], conditions=[stricture], reports=[suspicious])
    assert card["indicator"] == "info"
    assert (
        cards(client, orders=[service_request("43260", CPT)], conditions=[stricture], reports=[suspicious])
        == []
    )


def test_2_the_snomed_biliary_stricture_condition_counts_like_k83_1(client):
    stricture = condition("235921003", SNOMED)
    order = service_request("78226", CPT) | {
        "reasonReference": [{"reference": f"Condition/{stricture['id']}"}]
    }
    assert the_card(client, orders=[order], conditions=[stricture, CCA])["indicator"] == "info"


@pytest.mark.parametrize(
    ("drug", "shown"),
    [
        (medication_request(text="ivosidenib 250 MG Oral Tablet"), True),
        (medication_request(text="pemigatinib 13.5 MG Oral Tablet"), True),
        (medication_request(text="futibatinib 4 MG Oral Tablet"), True),
        (medication_request("1919503"), True),  # durvalumab
        (
            medication_request("12574") | {"reasonCode": [{"coding": [{"system": ICD10, "code": "C34.90"}]}]},
            False,
        ),
    ],
)
def test_2_systemic_therapy_acts_unless_its_reason_names_another_cancer(client, drug, shown):
    assert bool(cards(client, orders=[drug], conditions=[CCA])) is shown


# ------------------------------------------------------------------ 3. suspicion of malignancy presumes


@pytest.mark.parametrize(
    "suspicion",
    [
        pytest.param("Hilar biliary stricture suspicious for malignancy."),
        pytest.param("Stricture of the common hepatic duct, concerning for neoplasm."),
        "Hilar mass, suspicious for cholangiocarcinoma.",
    ],
)
def test_3_a_report_suspecting_a_malignant_stricture_raises_the_presumption(client, suspicion):
    ercp = report(suspicion, study="ERCP", category=(V2_0074, "RAD"))
    assert the_card(client, reports=[ercp])["indicator"] == "info"


# ------------------------------------------------------------------ 4. pathology-other needs its qualifiers


@pytest.mark.parametrize(
    "wording",
    [
        pytest.param("ALK negative."),
        pytest.param("Focal neutrophilic infiltrate."),
        pytest.param("Focal necrosis."),
        pytest.param("A single granuloma is seen."),
    ],
)
def test_4_focal_or_negative_features_are_not_pathology_other(client, wording):
    biopsy = pathology(f"Bile duct, biopsy: chronic inflammation with fibrosis. {wording}")
    card = scored(client, PANCREAS_AND_DUCTS, reports=[biopsy])
    assert "pathology-other" not in exclusions(card)
    assert card["indicator"] == "warning"


# ------------------------------------------------------------------ 5. negative serology in words


@pytest.mark.parametrize(
    "words",
    ["None detected", "Not present", "No antibody detected"],
)
def test_5_negative_serology_in_words_is_negative(client, words):
    ssa = observation("33569-5", value_string=words, unit="", when="2026-09-01")
    card = scored(client, PANCREAS_AND_DUCTS, observations=[IGG4_HIGH, ssa])
    assert "ssa-ssb" not in exclusions(card)
    assert card["indicator"] == "warning"


# ------------------------------------------------------------------ 6. rapid progression is radiological


@pytest.mark.parametrize("wording", [pytest.param("Rapidly progressive painless jaundice.")])
def test_6_a_rapid_clinical_course_is_not_rapid_radiological_progression(client, wording):
    card = scored(client, f"{wording} {PANCREAS_AND_DUCTS}")
    assert "rapid-progression" not in exclusions(card)


# ------------------------------------------------------------------ 7. IBD: another organ by biopsy


def test_7_an_igg4_rd_salivary_gland_biopsy_is_another_organ_for_the_ibd_exclusion(client):
    uc = condition("64766004")
    gland = pathology(
        "SPECIMEN: Submandibular gland, left, excision.\n"
        "DIAGNOSIS: Chronic sclerosing sialadenitis with a dense lymphoplasmacytic infiltrate and "
        "storiform fibrosis.",
        study="Submandibular gland excision",
    )
    card = scored(client, PANCREAS_AND_DUCTS, conditions=[CCA, uc], reports=[gland])
    assert "ibd-pancreatobiliary-only" not in exclusions(card)
    assert card["indicator"] == "warning"
    bile_duct = pathology(
        "DIAGNOSIS: Bile duct, biopsy: dense lymphoplasmacytic infiltrate with storiform fibrosis.",
        study="Bile duct biopsy",
    )
    card = scored(client, PANCREAS_AND_DUCTS, conditions=[CCA, uc], reports=[bile_duct])
    assert exclusions(card).get("ibd-pancreatobiliary-only") == "present"


# ------------------------------------------------------------------ 8. negation scope


@pytest.mark.parametrize(
    ("text", "domain", "expected"),
    [
        pytest.param("No focal mass within the diffusely enlarged pancreas.", "pancreas-biliary", 8),
        pytest.param(
            "New bilateral renal cortical low-density areas, not present on the prior CT.",
            "kidney",
            10,
        ),
        pytest.param("Kidneys: no hydronephrosis, bilateral cortical low-density areas.", "kidney", 10),
    ],
)
def test_8_a_negation_covers_only_the_finding_it_governs(client, text, domain, expected):
    assert points(scored(client, text), domain) == expected


# ------------------------------------------------------------------ 9. a hedge on the cause


@pytest.mark.parametrize(
    "stricture",
    [
        pytest.param("Suspected cholangiocarcinoma causing a stricture of the CHD."),
        pytest.param("Indeterminate hilar biliary stricture."),
    ],
)
def test_9_a_hedge_on_the_cause_leaves_the_stricture_affirmed(client, stricture):
    card = scored(client, f"{stricture} Diffuse enlargement of the pancreas.")
    assert points(card, "pancreas-biliary") == 19


# ------------------------------------------------------------------ 10. immunostain wording


@pytest.mark.parametrize(
    "stain",
    [
        pytest.param("IgG4/IgG >40% with >10 IgG4+ cells/hpf."),
        pytest.param("IgG4/IgG ratio is 50%. There are 30 IgG4-positive plasma cells per HPF."),
        pytest.param(
            "45% of IgG-positive plasma cells express IgG4. IgG4-positive plasma cells number 30 per HPF.",
        ),
    ],
)
def test_10_immunostaining_in_other_words_scores_14(client, stain):
    card = scored(client, PANCREAS_AND_DUCTS, reports=[pathology(f"Bile duct, biopsy: {stain}")])
    assert points(card, "immunostaining") == 14


# ------------------------------------------------------------------ 11. bilateral in other words


@pytest.mark.parametrize(
    ("text", "domain", "expected"),
    [
        pytest.param("Bilateral dacryoadenitis.", "glands", 6),
        pytest.param(
            "Low-density areas in the cortex in the right kidney and in the left kidney.",
            "kidney",
            10,
        ),
    ],
)
def test_11_bilateral_in_other_words(client, text, domain, expected):
    assert points(scored(client, text), domain) == expected


# ------------------------------------------------------------------ 12. the spec's own words


@pytest.mark.parametrize("text", [pytest.param("Diffuse thickening of the abdominal aortic wall.")])
def test_12_diffuse_thickening_of_the_abdominal_aortic_wall_scores_4(client, text):
    assert points(scored(client, text), "retroperitoneum") == 4


# ------------------------------------------------------------------ 13. a reference range with a prefix


def test_13_a_reference_range_text_with_a_prefix_gives_the_uln(client):
    igg4 = observation("2469-5", 2.43, range_text="Adults 18-60 y: 0.039-0.864 g/L", when="2026-09-01")
    card = scored(client, PANCREAS_AND_DUCTS, observations=[igg4])
    assert points(card, "serum-igg4") == 6  # 2.81 x ULN; the 1.35 g/L default would give 4
    assert (
        "0.864" in str(classification(card)["domains"]["serum-igg4"]["evidence"]) or "0.864" in card["detail"]
    )


# ------------------------------------------------------------------ 14. immunostaining without numbers


@pytest.mark.parametrize(
    "stain",
    [
        pytest.param("IgG4 immunostain not performed."),
        pytest.param("IgG4 immunostain pending."),
        pytest.param("Rare IgG4-positive plasma cells."),
    ],
)
def test_14_immunostaining_without_numbers_does_not_score(client, stain):
    card = scored(client, reports=[pathology(f"Bile duct, biopsy: chronic inflammation. {stain}")])
    assert points(card, "immunostaining") == 0


# ------------------------------------------------------------------ 15. the distal CBD in other words


@pytest.mark.parametrize(
    "distal",
    [
        pytest.param("Stricture of the intrapancreatic portion of the CBD."),
        pytest.param("The CBD is narrowed as it courses through the pancreatic head."),
        pytest.param("Stricture of the common bile duct at the level of the pancreatic head."),
    ],
)
def test_15_a_distal_cbd_stricture_is_not_biliary_involvement(client, distal):
    card = scored(client, f"{distal} Diffuse enlargement of the pancreas.")
    assert points(card, "pancreas-biliary") == 8


# ------------------------------------------------------------------ 16. the lung hilum


@pytest.mark.parametrize("chest", [pytest.param("Right hilar bronchial narrowing.")])
def test_16_hilar_on_a_chest_study_is_the_lung_hilum(client, chest):
    card = scored(
        client,
        "Diffuse enlargement of the pancreas.",
        reports=[report(chest, study="CT chest with contrast")],
    )
    assert points(card, "pancreas-biliary") == 8


# ------------------------------------------------------------------ 17. the qualifiers section 2 requires


@pytest.mark.parametrize(
    ("text", "domain", "kind"),
    [
        pytest.param(
            "Physiological FDG uptake in the bilateral parotid and submandibular glands.",
            "glands",
            "imaging",
        ),
        ("Bilateral renal cortical cysts.", "kidney", "imaging"),
        pytest.param(
            "Lumbar paravertebral soft tissue from L3-L4 spondylodiscitis.",
            "chest",
            "imaging",
        ),
        pytest.param("Interlobular septal thickening.", "chest", "imaging"),
        ("Soft tissue encasing the superior mesenteric artery.", "retroperitoneum", "imaging"),
        pytest.param("Scant lymphoplasmacytic infiltrate.", "histopathology", "pathology"),
    ],
)
def test_17_qualifiers_are_required(client, text, domain, kind):
    if kind == "pathology":
        card = scored(client, reports=[pathology(f"Bile duct, biopsy: {text}")])
    else:
        card = scored(client, text)
    assert points(card, domain) == 0


# ------------------------------------------------------------------ 18. hepatosplenomegaly


@pytest.mark.parametrize("text", [pytest.param("Hepatosplenomegaly.")])
def test_18_hepatosplenomegaly_is_splenomegaly(client, text):
    card = scored(client, f"{PANCREAS_AND_DUCTS} {text}")
    assert exclusions(card).get("splenomegaly") == "present"
    assert card["indicator"] == "info"


# ------------------------------------------------------------------ also decided in the revised spec


def test_also_igg4_as_value_string_is_read(client):
    igg4 = observation("2469-5", value_string="2.43 g/L", high=0.864, when="2026-09-01")
    assert points(scored(client, PANCREAS_AND_DUCTS, observations=[igg4]), "serum-igg4") == 6


def test_also_an_undated_lab_is_not_used(client):
    igg4 = observation("2469-5", 2.43, high=0.864)
    del igg4["effectiveDateTime"]
    card = scored(client, PANCREAS_AND_DUCTS, observations=[igg4])
    assert classification(card)["domains"]["serum-igg4"]["assessed"] is False
    assert "1 lab result(s) without a date were ignored" in card["detail"]


def test_also_c3_flagged_low_without_a_range_is_hypocomplementemia(client):
    c3 = observation("4485-9", 0.5, interpretation="L", when="2026-09-01")
    assert points(scored(client, PANCREAS_AND_DUCTS, observations=[IGG4_HIGH, c3]), "kidney") == 6


def test_also_reports_older_than_the_lookback_are_not_used(client):
    old = report(PANCREAS_AND_DUCTS + " Splenomegaly.", when="2020-02-01")
    card = scored(client, reports=[old])
    assert points(card, "pancreas-biliary") == 0
    assert "splenomegaly" not in exclusions(card)
    recent = scored(client, reports=[report(PANCREAS_AND_DUCTS + " Splenomegaly.", when="2026-02-01")])
    assert points(recent, "pancreas-biliary") == 19
    assert exclusions(recent).get("splenomegaly") == "present"


def test_the_baseline_scenario_is_a_warning_of_25_points(client):
    """The scenario the items vary: presumed CCA, IgG4 2.81 x ULN (6), pancreas and ducts (19)."""
    card = scored(client, PANCREAS_AND_DUCTS)
    assert card["indicator"] == "warning"
    assert classification(card)["total"] == 25
