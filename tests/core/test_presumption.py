"""The CCA presumption and tissue-proven malignancy, from report wording a pathologist actually uses."""

from datetime import date

import pytest
from fhir.resources.R4B.diagnosticreport import DiagnosticReport

from cds_service.core.evidence import ConditionFact, ConditionKind, PatientEvidence, ReportFacts, ReportKind
from cds_service.core.findings import Assertion, Concept, TextFinding
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
    found = presumption(
        evidence(report(pathology, kind="pathology", study="Bile duct brushing cytology")), []
    )
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


@pytest.mark.parametrize(
    ("raw", "presumed", "proven"),
    [
        # an ERCP brushing procedure note filed under radiology raises the presumption, never proves
        (
            report(
                "Hilar stricture, brushings obtained. Findings consistent with Klatskin tumour.",
                study="ERCP with brushing",
                category=("http://terminology.hl7.org/CodeSystem/v2-0074", "RAD"),
            ),
            True,
            False,
        ),
        # an interventional radiology biopsy procedure note is not a tissue diagnosis
        (
            report(
                "Ultrasound-guided core biopsy of the hilar mass. Adenocarcinoma suspected, cholangiocarcinoma.",
                study="IR liver biopsy",
            ),
            True,
            False,
        ),
        # a skin basal cell carcinoma does not prove a bile-duct carcinoma, whatever its date
        (
            report(
                "Skin, left cheek, shave biopsy: basal cell carcinoma.",
                kind="pathology",
                study="Surgical pathology",
                when="2014-05-02",
            ),
            False,
            False,
        ),
        (
            report(
                "Invasive adenocarcinoma of the sigmoid colon.", kind="pathology", study="Colon resection"
            ),
            False,
            False,
        ),
        # tissue proof of a bile-duct carcinoma counts whatever its date
        (
            report(
                "Common bile duct, biopsy: adenocarcinoma.",
                kind="pathology",
                study="Surgical pathology",
                when="2015-01-01",
            ),
            False,
            True,
        ),
    ],
)
def test_which_reports_raise_and_which_prove(raw, presumed, proven):
    ev = PatientEvidence(
        reports=extract_reports([DiagnosticReport.model_validate(raw)], since=date(2023, 11, 25)),
        conditions=[CCA],
    )
    found = presumption(ev, [])
    assert (found.grounds != (CCA.reference,)) is presumed
    assert bool(found.tissue_proven) is proven


def test_an_uncertain_cca_mention_in_a_procedure_report_raises_the_presumption():
    suspected = ReportFacts(
        "DiagnosticReport/ercp",
        ReportKind.IMAGING,
        None,
        (
            TextFinding(
                Concept.CHOLANGIOCARCINOMA, Assertion.UNCERTAIN, "stricture suspicious for malignancy"
            ),
        ),
    )
    hypothetical = ReportFacts(
        "DiagnosticReport/mr",
        ReportKind.IMAGING,
        None,
        (TextFinding(Concept.CHOLANGIOCARCINOMA, Assertion.HYPOTHETICAL, "to exclude cholangiocarcinoma"),),
    )
    assert presumption(PatientEvidence(reports=[suspected]), []).present
    assert not presumption(PatientEvidence(reports=[hypothetical]), []).present
