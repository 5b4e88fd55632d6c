"""The CCA presumption and tissue-proven malignancy, from report wording a pathologist actually uses."""

import pytest
from fhir.resources.R4B.diagnosticreport import DiagnosticReport

from cds_service.core.evidence import ConditionFact, ConditionKind, PatientEvidence
from cds_service.core.presumption import presumption
from cds_service.core.reports import extract_reports
from tests.builders import report

CCA = ConditionFact(ConditionKind.CHOLANGIOCARCINOMA, "Condition/cca", True, "provisional", None, "code")


def evidence(*raw_reports, conditions=(CCA,)):
    reports = extract_reports([DiagnosticReport.model_validate(r) for r in raw_reports])
    return PatientEvidence(reports=reports, conditions=list(conditions))


@pytest.mark.parametrize(
    ("pathology", "proven"),
    [
        ("Moderately differentiated adenocarcinoma, consistent with cholangiocarcinoma.", True),
        ("Positive for malignant cells (adenocarcinoma).", True),
        ("Negative for malignancy.", False),
        ("Atypical cells, suspicious for adenocarcinoma.", False),
        (
            "Findings most consistent with IgG4-related sclerosing cholangitis; cholangiocarcinoma is less likely.",
            False,
        ),
        ("Carcinoma cannot be entirely excluded on this limited sample.", False),
        ("Cholangiocarcinoma is not favored.", False),
        ("The storiform fibrosis and obliterative phlebitis argue against cholangiocarcinoma.", False),
        ("History of colon adenocarcinoma, resected 2015. Bile duct biopsy: chronic inflammation.", False),
    ],
)
def test_tissue_proof_needs_an_affirmed_carcinoma(pathology, proven):
    found = presumption(evidence(report(pathology, kind="pathology", study="Bile duct brushing cytology")), [])
    assert bool(found.tissue_proven) is proven
    assert found.present is not proven


@pytest.mark.parametrize(
    ("imaging", "presumed"),
    [
        ("Hilar mass, suspicious for cholangiocarcinoma (Klatskin tumor).", True),
        ("Malignant-appearing hilar biliary stricture.", True),
        ("Hilar stricture; cholangiocarcinoma is unlikely.", False),
        ("Smooth benign-appearing distal CBD stricture.", False),
    ],
)
def test_imaging_raises_the_presumption_when_it_asserts_or_suspects_cca(imaging, presumed):
    assert presumption(evidence(report(imaging), conditions=()), []).present is presumed


def test_a_refuted_or_resolved_cca_condition_does_not_presume():
    resolved = ConditionFact(
        ConditionKind.CHOLANGIOCARCINOMA, "Condition/c", False, "confirmed", None, "code"
    )
    assert not presumption(evidence(conditions=(resolved,)), []).present
