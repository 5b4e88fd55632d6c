"""Tables for the exclusion criteria: labs, Conditions and report text, present or unresolved."""

from dataclasses import replace

import pytest

from cds_service.core.criteria import Classification, evaluate
from cds_service.core.evidence import ConditionFact, ConditionKind, Polarity, ReportFacts, ReportKind
from cds_service.core.findings import Concept
from cds_service.core.tissue import Site
from tests.core.test_criteria import BI, N, evidence, f, imaging, lab, pathology


def _ids(result):
    return {e.id: e.status.value for e in result.exclusions}


@pytest.mark.parametrize(
    ("ev", "exclusion", "status"),
    [
        (evidence(labs=[lab("711-2", 3.5, unit="10*9/L")]), "eosinophilia", "present"),
        (evidence(labs=[lab("711-2", 3.0, unit="10*9/L")]), "eosinophilia", None),  # > 3.0 only
        (
            evidence(labs=[lab("713-8", 40, unit="%"), lab("6690-2", 9.0, unit="10*9/L")]),
            "eosinophilia",
            "present",
        ),
        (
            evidence(labs=[lab("713-8", 30, unit="%"), lab("6690-2", 9.0, unit="10*9/L")]),
            "eosinophilia",
            None,
        ),
        (
            evidence(
                labs=[lab("6690-2", 2.0, low=4.0, unit="10*9/L"), lab("777-3", 90, low=150, unit="10*9/L")]
            ),
            "cytopenias",
            "unresolved",
        ),
        (
            evidence(
                labs=[lab("6690-2", 2.0, low=4.0, unit="10*9/L"), lab("777-3", 200, low=150, unit="10*9/L")]
            ),
            "cytopenias",
            None,
        ),
        (evidence(labs=[lab("46267-1", 40, high=20, unit="U/mL")]), "anca", "present"),
        (evidence(labs=[lab("46266-3", polarity=Polarity.NEGATIVE)]), "anca", None),
        (evidence(labs=[lab("33569-5", polarity=Polarity.POSITIVE)]), "ssa-ssb", "present"),
        (evidence(labs=[lab("5130-0", polarity=Polarity.POSITIVE)]), "dsdna-rnp-sm", "present"),
        (evidence(labs=[lab("5117-7", polarity=Polarity.POSITIVE)]), "cryoglobulinemia", "present"),
        (evidence(imaging(f(Concept.RAPID_PROGRESSION))), "rapid-progression", "present"),
        (evidence(imaging(f(Concept.ERDHEIM_CHESTER))), "erdheim-chester", "present"),
        (evidence(imaging(f(Concept.SPLENOMEGALY))), "splenomegaly", "present"),
        (evidence(imaging(f(Concept.SPLENOMEGALY, N))), "splenomegaly", None),
        (evidence(pathology(f(Concept.ATYPIA))), "suspicious-pathology", "unresolved"),
        (
            evidence(pathology(f(Concept.PATHOLOGY_OTHER, detail="granulomatous"))),
            "pathology-other",
            "present",
        ),
        (evidence(imaging(f(Concept.PATHOLOGY_OTHER))), "pathology-other", None),  # pathology text only
        (
            evidence(
                conditions=[
                    ConditionFact(ConditionKind.CASTLEMAN, "Condition/c", True, "confirmed", None, "code")
                ]
            ),
            "castleman",
            "present",
        ),
    ],
)
def test_exclusions(ev, exclusion, status):
    assert _ids(evaluate(ev, presumed_cca=False)).get(exclusion) == status


UC = ConditionFact(ConditionKind.ULCERATIVE_COLITIS, "Condition/uc", True, "confirmed", None, "code")


def test_ibd_exclusion_only_with_pancreatobiliary_only_disease():
    pancreatobiliary = imaging(f(Concept.PANCREAS_DIFFUSE_ENLARGEMENT), f(Concept.BILIARY_PROXIMAL))
    only = evaluate(
        evidence(
            pancreatobiliary,
            pathology(f(Concept.LYMPHOPLASMACYTIC_INFILTRATE)),
            labs=[lab("4485-9", 0.5, low=0.9)],
            conditions=[UC],
        ),
        True,
    )
    assert _ids(only).get("ibd-pancreatobiliary-only") == "present"
    assert only.classification is Classification.EXCLUDED
    assert only.total == 19 + 4 + 6  # domains still computed when excluded
    with_kidney = evaluate(
        evidence(
            pancreatobiliary, imaging(f(Concept.RENAL_CORTEX_LOW_DENSITY, laterality=BI)), conditions=[UC]
        ),
        True,
    )
    assert "ibd-pancreatobiliary-only" not in _ids(with_kidney)


def test_suspicious_radiology_unresolved_until_tissue():
    assert _ids(evaluate(evidence(), presumed_cca=True)).get("suspicious-radiology") == "unresolved"
    # A biopsy without IgG4-RD findings does not settle it; one with them does.
    assert (
        _ids(evaluate(evidence(pathology()), presumed_cca=True)).get("suspicious-radiology") == "unresolved"
    )
    explained = evidence(pathology(f(Concept.LYMPHOPLASMACYTIC_INFILTRATE), f(Concept.STORIFORM_FIBROSIS)))
    assert "suspicious-radiology" not in _ids(evaluate(explained, presumed_cca=True))
    assert "suspicious-radiology" not in _ids(evaluate(evidence(), presumed_cca=False))


def _path(*findings, specimen):
    return ReportFacts(
        "DiagnosticReport/bx", ReportKind.PATHOLOGY, None, tuple(findings), None, frozenset(specimen)
    )


@pytest.mark.parametrize(
    ("biopsy", "excluded"),
    [
        (_path(f(Concept.STORIFORM_FIBROSIS), specimen={Site.SALIVARY_GLAND}), False),
        (
            _path(f(Concept.IGG4_IMMUNOSTAIN, ratio_percent=50, cells_per_hpf=60), specimen={Site.KIDNEY}),
            False,
        ),
        (_path(f(Concept.LYMPHOPLASMACYTIC_INFILTRATE), specimen={Site.LACRIMAL_GLAND}), False),
        (_path(f(Concept.LYMPHOPLASMACYTIC_INFILTRATE), specimen={Site.BILE_DUCT}), True),
        (_path(f(Concept.LYMPHOPLASMACYTIC_INFILTRATE), specimen={Site.PANCREAS, Site.LIVER}), True),
        (_path(f(Concept.LYMPHOPLASMACYTIC_INFILTRATE), specimen={Site.COLORECTUM}), True),  # UC histology
        (_path(f(Concept.STORIFORM_FIBROSIS, N), specimen={Site.SALIVARY_GLAND}), True),  # negated
        (_path(specimen={Site.SALIVARY_GLAND}), True),  # a normal gland biopsy
    ],
)
def test_ibd_exclusion_looks_at_organs_wherever_the_proof_comes_from(biopsy, excluded):
    pancreatobiliary = imaging(f(Concept.PANCREAS_DIFFUSE_ENLARGEMENT), f(Concept.BILIARY_PROXIMAL))
    result = evaluate(evidence(pancreatobiliary, biopsy, conditions=[UC]), True)
    assert ("ibd-pancreatobiliary-only" in _ids(result)) is excluded


def test_reports_out_of_the_lookback_give_no_exclusion_and_no_points():
    old = replace(imaging(f(Concept.SPLENOMEGALY), f(Concept.PANCREAS_DIFFUSE_ENLARGEMENT)), in_window=False)
    result = evaluate(evidence(old), True)
    assert "splenomegaly" not in _ids(result)
    assert result.total == 0
    recent = evaluate(evidence(replace(old, in_window=True)), True)
    assert "splenomegaly" in _ids(recent)
    assert recent.total == 8
