import pytest
import simple_icd_10_cm as icd

from cds_service.core.conditions import _ICD10_EXACT, code_kind, extract_conditions, text_kind
from cds_service.core.evidence import ConditionKind as K
from cds_service.core.resources import read_resource
from tests.builders import ICD10, SNOMED, condition


@pytest.mark.parametrize(
    ("system", "code", "kind"),
    [
        (SNOMED, "9631008", K.ANKYLOSING_SPONDYLITIS),
        (ICD10, "M45.9", K.ANKYLOSING_SPONDYLITIS),
        (ICD10, "M45.0", K.ANKYLOSING_SPONDYLITIS),
        (ICD10, "M45.A8", K.ANKYLOSING_SPONDYLITIS),
        (ICD10, "M08.1", K.ANKYLOSING_SPONDYLITIS),
        (SNOMED, "312104005", K.CHOLANGIOCARCINOMA),
        (ICD10, "C22.1", K.CHOLANGIOCARCINOMA),
        (ICD10, "C24.0", K.CHOLANGIOCARCINOMA),
        (ICD10, "C24.9", K.CHOLANGIOCARCINOMA),
        (ICD10, "D89.84", K.IGG4_RD),
        (SNOMED, "64766004", K.ULCERATIVE_COLITIS),
        (ICD10, "K51.90", K.ULCERATIVE_COLITIS),
        (SNOMED, "34000006", K.CROHNS_DISEASE),
        (ICD10, "K50.012", K.CROHNS_DISEASE),
        (ICD10, "D47.Z2", K.CASTLEMAN),
        (ICD10, "C22.0", None),  # hepatocellular carcinoma is not CCA
        (ICD10, "M46.1", None),
        (SNOMED, "C22.1", None),  # an ICD code under the wrong system
    ],
)
def test_code_table(system, code, kind):
    assert code_kind(system, code) is kind


@pytest.mark.parametrize("code", sorted(_ICD10_EXACT))
def test_every_exact_icd10_code_exists_in_the_tabular(code):
    assert icd.is_valid_item(code)


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("Hilar cholangiocarcinoma (presumed)", K.CHOLANGIOCARCINOMA),
        ("Klatskin tumour", K.CHOLANGIOCARCINOMA),
        ("Bile duct cancer", K.CHOLANGIOCARCINOMA),
        ("Ankylosing spondylitis", K.ANKYLOSING_SPONDYLITIS),
        ("Ulcerative pancolitis", K.ULCERATIVE_COLITIS),
        ("Crohn's disease of ileum", K.CROHNS_DISEASE),
        ("IgG4-related disease", K.IGG4_RD),
        ("Hepatocellular carcinoma", None),
        ("Spondylosis", None),
    ],
)
def test_text_table(text, kind):
    assert text_kind(text) is kind


def _facts(*raws):
    return extract_conditions([read_resource("Condition", r) for r in raws])


def test_codes_win_over_text():
    # A known code decides even when the text says something else.
    facts = _facts(condition("9631008", text="cholangiocarcinoma?"))
    assert [(f.kind, f.matched_by) for f in facts] == [(K.ANKYLOSING_SPONDYLITIS, "code")]


def test_text_used_when_no_known_code():
    facts = _facts(condition("999999", SNOMED, text="Klatskin tumor"))
    assert [(f.kind, f.matched_by) for f in facts] == [(K.CHOLANGIOCARCINOMA, "text")]


@pytest.mark.parametrize(
    ("verification", "kept"),
    [("refuted", False), ("entered-in-error", False), ("provisional", True), (None, True)],
)
def test_verification_status(verification, kept):
    assert bool(_facts(condition("312104005", verification=verification))) is kept


def test_resolved_history_still_counts_but_is_inactive():
    [fact] = _facts(condition("9631008", clinical="resolved"))
    assert fact.kind is K.ANKYLOSING_SPONDYLITIS and not fact.active
