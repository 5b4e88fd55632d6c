"""Tissue proof and specimen sites (CLINICAL_SPEC section 5, revised): tables of pathology wording."""

import pytest

from cds_service.core.findings import Assertion, Concept, TextFinding
from cds_service.core.tissue import (
    Site,
    attributes_pancreatobiliary_primary,
    carcinoma_site_is_pancreatobiliary,
    in_diagnosis,
    other_organ_sites,
    proves_carcinoma,
    sites_in,
    specimen_sites,
)

BILE_DUCT = frozenset({Site.BILE_DUCT})
NONE: frozenset[Site] = frozenset()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Bile duct, hilar stricture, ERCP brushing", {Site.BILE_DUCT}),
        ("Common hepatic duct biopsy", {Site.BILE_DUCT}),
        ("Pancreas, head, Whipple resection", {Site.PANCREAS}),
        ("Ampulla of Vater, biopsy", {Site.AMPULLA}),
        ("Gallbladder, cholecystectomy", {Site.GALLBLADDER}),
        ("Liver, segment IV, core biopsy", {Site.LIVER}),
        ("Skin, left cheek, shave biopsy", {Site.SKIN}),
        ("Colon, sigmoid, polypectomy", {Site.COLORECTUM}),
        ("Colon, hepatic flexure, biopsy", {Site.COLORECTUM}),
        ("Portal lymph node, excision", {Site.LYMPH_NODE}),
        ("Submandibular gland, left, excision", {Site.SALIVARY_GLAND}),
        ("Minor salivary gland (lip) biopsy", {Site.SALIVARY_GLAND}),
        ("Kidney, left, needle core biopsy", {Site.KIDNEY}),
        ("Surgical pathology report", set()),
    ],
)
def test_sites_in(text, expected):
    assert sites_in(text) == expected


def test_specimen_sites_come_from_the_title_and_specimen_lines_only():
    text = (
        "CLINICAL HISTORY: hilar stricture, colon cancer in 2015\n"
        "SPECIMEN: A. Submandibular gland, left, excision\n"
        "B. Right lacrimal gland, biopsy\n"
        "DIAGNOSIS: sclerosing sialadenitis with storiform fibrosis."
    )
    assert specimen_sites(["Surgical pathology"], text) == {Site.SALIVARY_GLAND, Site.LACRIMAL_GLAND}
    assert specimen_sites(["Bile duct brushing cytology"], "Adenocarcinoma.") == {Site.BILE_DUCT}
    history = "Clinical history: skin biopsy 2014: basal cell carcinoma\nSpecimen: CBD brushing"
    assert specimen_sites([], history) == {Site.BILE_DUCT}


@pytest.mark.parametrize(
    ("phrase", "specimen", "proven"),
    [
        (
            "Bile duct, hilar stricture, biopsy: adenocarcinoma consistent with cholangiocarcinoma.",
            NONE,
            True,
        ),
        ("Adenocarcinoma, moderately differentiated.", BILE_DUCT, True),
        ("Adenocarcinoma, moderately differentiated.", frozenset({Site.PANCREAS, Site.LYMPH_NODE}), True),
        ("Positive for malignant cells, consistent with adenocarcinoma.", NONE, False),  # site unknown
        ("Skin, left cheek: basal cell carcinoma, nodular type.", NONE, False),
        ("Basal cell carcinoma.", frozenset({Site.SKIN}), False),
        ("Invasive adenocarcinoma of the colon.", NONE, False),
        ("Liver, biopsy: metastatic adenocarcinoma, consistent with colorectal primary.", NONE, False),
        ("Liver, biopsy: metastatic adenocarcinoma.", NONE, False),  # metastasis without attribution
        (
            "Metastatic adenocarcinoma consistent with pancreatobiliary primary.",
            frozenset({Site.LYMPH_NODE}),
            True,
        ),
        ("Portal lymph node: metastatic adenocarcinoma.", NONE, False),
        ("Portal lymph node: metastatic cholangiocarcinoma.", NONE, True),
        ("Adenocarcinoma.", frozenset({Site.BILE_DUCT, Site.COLORECTUM}), False),  # ambiguous specimen
    ],
)
def test_carcinoma_site(phrase, specimen, proven):
    assert carcinoma_site_is_pancreatobiliary(phrase, specimen) is proven


def finding(phrase, *, concept=Concept.CARCINOMA, assertion=Assertion.AFFIRMED, section=None):
    return TextFinding(concept, assertion, phrase, section=section)


@pytest.mark.parametrize(
    ("found", "proven"),
    [
        (finding("Bile duct brushing: adenocarcinoma."), True),
        (finding("Bile duct brushing: adenocarcinoma.", section="final diagnosis"), True),
        (finding("Bile duct brushing: adenocarcinoma.", section="DIAGNOSIS"), True),
        (finding("Bile duct brushing: adenocarcinoma.", section="conclusion"), True),
        (finding("Bile duct brushing: adenocarcinoma.", section="microscopic"), False),
        (finding("Bile duct brushing: adenocarcinoma.", section="gross"), False),
        (finding("Bile duct brushing: adenocarcinoma.", assertion=Assertion.UNCERTAIN), False),
        (finding("Bile duct brushing: adenocarcinoma.", assertion=Assertion.NEGATED), False),
        (finding("Bile duct brushing: adenocarcinoma.", assertion=Assertion.HISTORICAL), False),
        (finding("coded conclusion: cholangiocarcinoma", concept=Concept.CHOLANGIOCARCINOMA), True),
        (finding("Bile duct brushing: positive for malignancy."), False),  # no carcinoma named
        (finding("Bile duct: IgG4-related sclerosing cholangitis, a mimicker of cholangiocarcinoma."), False),
        (finding("Bile duct: differential diagnosis includes adenocarcinoma versus reactive atypia."), False),
        (finding("Bile duct: sclerosing cholangitis rather than cholangiocarcinoma."), False),
        (finding("Bile duct: moderately differentiated adenocarcinoma."), True),
        (finding("Bile duct: storiform fibrosis.", concept=Concept.STORIFORM_FIBROSIS), False),
    ],
)
def test_proves_carcinoma(found, proven):
    assert proves_carcinoma(found, NONE) is proven


def test_in_diagnosis():
    assert in_diagnosis(finding("x"))
    assert not in_diagnosis(finding("x", section="comment"))


@pytest.mark.parametrize(
    ("specimen", "others"),
    [
        ({Site.SALIVARY_GLAND}, {Site.SALIVARY_GLAND}),
        ({Site.KIDNEY, Site.BILE_DUCT}, {Site.KIDNEY}),
        ({Site.PANCREAS}, set()),
        ({Site.LIVER, Site.BILE_DUCT}, set()),
        ({Site.COLORECTUM}, set()),  # a colon biopsy in IBD is not an IgG4-RD organ
    ],
)
def test_other_organ_sites(specimen, others):
    assert other_organ_sites(frozenset(specimen)) == others


@pytest.mark.parametrize(
    ("text", "attributed"),
    [
        (
            "CONCLUSION: Metastatic adenocarcinoma.\nThe immunoprofile is in keeping with a pancreatobiliary primary.",
            True,
        ),
        ("FINAL DIAGNOSIS:\n- Metastatic adenocarcinoma, consistent with a primary of biliary origin.", True),
        ("CONCLUSION: Metastatic adenocarcinoma. A pancreatobiliary primary cannot be excluded.", False),
        (
            "CONCLUSION: Metastatic adenocarcinoma. The profile is not consistent with a pancreatobiliary primary.",
            False,
        ),
        ("CONCLUSION: Metastatic adenocarcinoma. Features favour a pancreatic primary.", False),
        ("CONCLUSION: Metastatic adenocarcinoma, consistent with a colorectal primary.", False),
        (
            "CLINICAL HISTORY: ? pancreatobiliary primary, consistent with MRCP.\nDIAGNOSIS: Reactive node.",
            False,
        ),
    ],
)
def test_attribution_to_a_pancreatobiliary_primary_across_sentences(text, attributed):
    assert attributes_pancreatobiliary_primary(text) is attributed


def test_a_node_carcinoma_proves_only_when_the_report_attributes_it():
    node = frozenset({Site.LYMPH_NODE})
    finding = TextFinding(
        Concept.CARCINOMA, Assertion.AFFIRMED, "Metastatic adenocarcinoma.", section="conclusion"
    )
    assert not proves_carcinoma(finding, node)
    assert proves_carcinoma(finding, node, attributed=True)
