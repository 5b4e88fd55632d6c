"""Cards: wording, JSON rules, suggestions, the extension, and safety rules."""

from __future__ import annotations

import itertools
import re
from datetime import date
from decimal import Decimal

import pytest

from cds_service.core.assessment import Assessment, read_orders
from cds_service.core.criteria import evaluate
from cds_service.core.domains import Domain
from cds_service.core.evidence import (
    ConditionFact,
    ConditionKind,
    LabResult,
    PatientEvidence,
    ReportFacts,
    ReportKind,
    UlnSource,
)
from cds_service.core.findings import Assertion, Concept, Laterality, TextFinding
from cds_service.core.presumption import Indicator, Presumption, choose_indicator
from cds_service.fixtures.catalog import load_fixture
from cds_service.hooks.cards import EXTENSION_KEY, SHORT_PHRASE, render_cards, short_phrase, summary_line
from cds_service.hooks.discovery import find_service
from cds_service.hooks.handler import handle_hook
from cds_service.settings import Settings


def igg4(value, high="1.35", source=UlnSource.REFERENCE_HIGH):
    return LabResult(
        "2469-5",
        "Observation/igg4",
        date(2026, 9, 1),
        "g/L",
        Decimal(value),
        None,
        Decimal(high),
        source,
        original=f"{value} g/L",
    )


def ct(*findings):
    return ReportFacts("DiagnosticReport/ct", ReportKind.IMAGING, date(2026, 10, 1), tuple(findings), True)


def finding(concept, phrase="text", laterality=None):
    return TextFinding(concept, Assertion.AFFIRMED, phrase, laterality)


AS = ConditionFact(ConditionKind.ANKYLOSING_SPONDYLITIS, "Condition/as", True, "confirmed", None, "code")


def render(evidence: PatientEvidence):
    result = evaluate(evidence, presumed_cca=True)
    assessment = Assessment(
        choose_indicator(result, evidence), Presumption(("Condition/cca",), ()), [], evidence, result
    )
    return render_cards(assessment, "p1"), result


def published_case():
    ev = PatientEvidence(
        reports=[
            ct(
                finding(Concept.BILIARY_PROXIMAL),
                finding(Concept.PANCREAS_DIFFUSE_ENLARGEMENT),
                finding(Concept.RENAL_CORTEX_LOW_DENSITY, laterality=Laterality.BILATERAL),
            )
        ],
        conditions=[AS],
    )
    ev.labs["2469-5"] = [igg4("2.430", "0.864")]
    return ev


def _walk(value, path=""):
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _walk(v, f"{path}.{k}")
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _walk(v, f"{path}[{i}]")
    yield path, value


def test_published_case_card():
    [card], _ = render(published_case())
    assert card["indicator"] == "warning"
    assert (
        card["summary"]
        == "Consider IgG4-related disease before presuming cholangiocarcinoma: ACR/EULAR 35 points (≥ 20)"
    )
    assert len(card["summary"]) < 140
    ext = card["extension"][EXTENSION_KEY]
    assert set(ext) == {
        "criteria",
        "classification",
        "total",
        "threshold",
        "maximumPossible",
        "entryCriterion",
        "domains",
        "exclusions",
    }
    assert set(ext["domains"]) == {d.value for d in Domain}
    for d in ext["domains"].values():
        assert set(d) == {"points", "assessed", "item", "evidence"}
    assert ext["criteria"] == "2019 ACR/EULAR" and ext["threshold"] == 20 and ext["total"] == 35
    assert "Ankylosing spondylitis" in card["detail"]
    assert "not a diagnosis" in card["detail"] and "malignancy must still be excluded" in card["detail"]


def test_no_null_and_no_empty_values_anywhere():
    for ev in (published_case(), PatientEvidence(conditions=[AS])):
        cards, _ = render(ev)
        for path, value in _walk(cards):
            assert value is not None, path
            if "evidence" not in path and "exclusions" not in path:  # the extension's own lists may be empty
                assert value not in ("", [], {}), path


def test_igg4_not_measured_suggests_igg4_and_complement():
    [card], _ = render(PatientEvidence(conditions=[AS]))
    assert card["indicator"] == "info"
    assert card["selectionBehavior"] == "any"
    codes = [a["resource"]["code"]["coding"][0]["code"] for s in card["suggestions"] for a in s["actions"]]
    assert codes == ["2469-5", "4485-9", "4498-2"]
    for suggestion in card["suggestions"]:
        assert re.fullmatch(r"[0-9a-f-]{36}", suggestion["uuid"])
        for action in suggestion["actions"]:
            assert action["type"] == "create"
            assert action["resource"]["resourceType"] == "ServiceRequest"
            assert action["resource"]["status"] == "draft"
            assert action["resource"]["subject"] == {"reference": "Patient/p1"}


def test_mildly_raised_igg4_suggests_igg1_for_the_ratio():
    ev = PatientEvidence(
        reports=[ct(finding(Concept.BILIARY_PROXIMAL), finding(Concept.RENAL_PELVIS_THICKENING))]
    )
    ev.labs["2469-5"] = [igg4("1.6")]
    [card], _ = render(ev)
    codes = [a["resource"]["code"]["coding"][0]["code"] for s in card["suggestions"] for a in s["actions"]]
    assert codes == ["2466-1"]
    assert "13%" in card["detail"]


def test_default_uln_is_disclosed():
    ev = PatientEvidence()
    ev.labs["2469-5"] = [igg4("2.9", "1.35", UlnSource.DEFAULT)]
    [card], _ = render(ev)
    assert "default ULN" in card["detail"]


@pytest.mark.parametrize(
    ("ratio_value", "excluded", "indicator"),
    [
        ("5.5", False, Indicator.WARNING),
        ("5.5", True, Indicator.INFO),
        ("5.4", False, Indicator.INFO),
        ("1.0", False, Indicator.NONE),
    ],
)
def test_igg4_above_four_times_uln_warns_unless_excluded(ratio_value, excluded, indicator):
    # ULN 1.35: 5.5 g/L is 4.07 x ULN, 5.4 is exactly 4 x (not above it).
    reports = [ct(finding(Concept.SPLENOMEGALY))] if excluded else []
    ev = PatientEvidence(reports=reports)
    ev.labs["2469-5"] = [igg4(ratio_value)]
    result = evaluate(ev, True)
    assert choose_indicator(result, ev) is indicator


def test_no_card_when_nothing_points_to_igg4_rd():
    ev = PatientEvidence()
    ev.labs["2469-5"] = [igg4("0.5")]
    cards, result = render(ev)
    assert result.total == 0 and cards == []


def test_wording_is_consider_never_a_diagnosis():
    [card], _ = render(published_case())
    assert card["summary"].startswith("Consider")
    assert "diagnos" not in card["summary"].lower()
    detail = card["detail"].lower()
    for discouraging in ("no need", "avoid surgery", "cancel", "instead of surgery", "rules out malignancy"):
        assert discouraging not in detail


def test_summary_stays_short_in_every_branch():
    for ev in (
        published_case(),
        PatientEvidence(),
        PatientEvidence(reports=[ct(finding(Concept.SPLENOMEGALY))]),
    ):
        assert len(summary_line(evaluate(ev, True))) < 140


def test_source_links_and_override_reasons():
    [card], _ = render(published_case())
    assert "ACR/EULAR" in card["source"]["label"] and card["source"]["url"].startswith("https://doi.org/")
    assert card["links"][0]["type"] == "absolute"
    assert all({"code", "system", "display"} <= set(r) for r in card["overrideReasons"])


def test_read_orders_survives_garbage():
    orders = read_orders(
        {"resourceType": "Bundle", "entry": [None, 1, {"resource": {"resourceType": "ServiceRequest"}}]}
    )
    # Read tolerantly: the empty ServiceRequest is kept, counted as missing status, intent and subject.
    assert orders.acting == [] and orders.read.total("missing") == 3


def test_the_pancreas_biliary_row_shows_both_components():
    many = [finding(Concept.PANCREAS_DIFFUSE_ENLARGEMENT, f"pancreas sentence {i}") for i in range(4)]
    ev = PatientEvidence(reports=[ct(*many, finding(Concept.BILIARY_PROXIMAL, "hilar stricture sentence"))])
    [card], _ = render(ev)
    row = next(line for line in card["detail"].splitlines() if "**Pancreas and biliary tree**" in line)
    assert row.startswith("| **19** |")
    assert "hilar stricture sentence" in row and "pancreas sentence 0" in row


def test_scored_domains_quote_the_short_phrase_and_drop_repeats():
    pancreas = "Pancreas: The pancreas is diffusely enlarged with loss of the normal lobular contour."
    again = "Diffuse pancreatic enlargement with peripancreatic stranding."
    duct = "Long stricture of the common hepatic duct with periductal thickening on the delayed phase."
    ev = PatientEvidence(
        reports=[
            ct(
                finding(Concept.PANCREAS_DIFFUSE_ENLARGEMENT, pancreas),
                finding(Concept.PANCREAS_DIFFUSE_ENLARGEMENT, again),
                finding(Concept.BILIARY_PROXIMAL, duct),
            )
        ]
    )
    [card], _ = render(ev)
    row = next(line for line in card["detail"].splitlines() if "**Pancreas and biliary tree**" in line)
    assert "2026-10-01 “The pancreas is diffusely enlarged”" in row  # heading and trailing clause dropped
    assert "“Long stricture of the common hepatic duct”" in row
    assert "peripancreatic" not in row  # a second sentence for a finding already quoted is left out
    assert "delayed phase" not in row


def test_short_phrase_keeps_what_the_reader_needs():
    kidney = (
        "Multiple wedge-shaped low-density areas in the renal cortex of both kidneys on the venous phase."
    )
    short = short_phrase(kidney, frozenset({Concept.RENAL_CORTEX_LOW_DENSITY}))
    assert short == "Multiple wedge-shaped low-density areas in the renal cortex of both kidneys"  # side kept
    both = "Diffusely enlarged sausage-shaped pancreas with loss of lobulation and a stricture of the hilum."
    concepts = frozenset({Concept.PANCREAS_DIFFUSE_ENLARGEMENT, Concept.BILIARY_PROXIMAL})
    assert "stricture of the hilum" in short_phrase(both, concepts)  # never cut off a scoring finding
    assert len(short_phrase("x " * 200, concepts)) <= SHORT_PHRASE  # unreadable text is cut


def test_unscored_domains_fit_one_line_and_missing_data_three_bullets():
    [card], _ = render(PatientEvidence(conditions=[AS]))  # nothing measured, nothing imaged
    lines = card["detail"].splitlines()
    no_points = [line for line in lines if line.startswith("**No points:**")]
    assert len(no_points) == 1 and "serum IgG4 (not measured)" in no_points[0]
    start = lines.index("**To resolve**")
    bullets = list(itertools.takewhile(lambda line: line.startswith("- "), lines[start + 1 :]))
    assert 1 <= len(bullets) <= 3
    assert "order serum IgG4" in bullets[0]


def test_record_text_in_the_short_phrase_stays_escaped():
    hostile = "Diffuse pancreatic enlargement <img src=x onerror=alert(1)> [x](javascript:alert(1)) | cell."
    [card], _ = render(PatientEvidence(reports=[ct(finding(Concept.PANCREAS_DIFFUSE_ENLARGEMENT, hostile))]))
    assert "<img" not in card["detail"] and "](javascript" not in card["detail"]
    row = next(line for line in card["detail"].splitlines() if "**Pancreas and biliary tree**" in line)
    assert len(re.findall(r"(?<!\\)\|", row)) == 3  # the record's | cannot open a cell


def test_published_case_detail_fits_one_screen_with_every_points_evidence():
    outcome = handle_hook(
        find_service("igg4rd-order-sign"),
        load_fixture("01-published-case").request,
        Settings(dev_mode=True, database_url="sqlite://"),
        today=date(2026, 11, 25),
    )
    [card] = outcome.cards
    detail = card["detail"]
    assert len(detail) <= 1400, len(detail)
    domains = card["extension"][EXTENSION_KEY]["domains"]
    assert {d: v["points"] for d, v in domains.items() if v["points"]} == {
        "serum-igg4": 6,
        "pancreas-biliary": 19,
        "kidney": 10,
    }
    for phrase in (
        "| **6** | **Serum IgG4**",
        "2026-11-04 IgG4 2.43 g/L, ULN 0.864 g/L: 2.81 × ULN",
        "| **19** | **Pancreas and biliary tree**",
        "2026-11-02 “Diffuse pancreatic soft-tissue thickening”",  # the pancreas
        "“Long stricture of the common hepatic and proximal common bile ducts”",  # and the bile duct
        "| **10** | **Kidney**: bilateral renal cortex low-density areas — 2026-11-02 “Bilateral renal",
        "| **35** | **Total**",
        "not a diagnosis",
        "malignancy must still be excluded",
    ):
        assert phrase in detail, phrase


def test_no_suggestion_without_a_patient():
    result = evaluate(PatientEvidence(conditions=[AS]), True)
    assessment = Assessment(
        choose_indicator(result, PatientEvidence(conditions=[AS])),
        Presumption(("Condition/cca",), ()),
        [],
        PatientEvidence(conditions=[AS]),
        result,
    )
    [card] = render_cards(assessment, None)
    assert "suggestions" not in card


def test_override_reason_display_comes_from_the_service_own_definitions():
    from cds_service.hooks.cards import OVERRIDE_SYSTEM, override_reason_display  # noqa: PLC0415

    assert override_reason_display(OVERRIDE_SYSTEM, "workup-ordered") == "IgG4 work-up already ordered"
    assert override_reason_display("https://other.example/reasons", "workup-ordered") is None
    assert override_reason_display(OVERRIDE_SYSTEM, "unknown-code") is None
    assert override_reason_display(None, None) is None
