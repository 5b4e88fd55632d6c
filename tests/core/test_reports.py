import base64
from datetime import date

import pytest
from fhir.resources.R4B.diagnosticreport import DiagnosticReport

from cds_service.core import reports as reports_module
from cds_service.core.evidence import ReportKind
from cds_service.core.findings import Assertion, Concept
from cds_service.core.reports import extract_reports, report_kind, report_text
from cds_service.core.tissue import Site
from tests.builders import LOINC, report


def model(raw):
    return DiagnosticReport.model_validate(raw)


@pytest.mark.parametrize(
    ("category", "code_text", "kind"),
    [
        ((LOINC, "LP29684-5"), "CT abdomen", ReportKind.IMAGING),
        ((LOINC, "LP7839-6"), "Surgical pathology", ReportKind.PATHOLOGY),
        (("http://terminology.hl7.org/CodeSystem/v2-0074", "SP"), "Specimen", ReportKind.PATHOLOGY),
        (("http://terminology.hl7.org/CodeSystem/v2-0074", "CP"), "Cytology", ReportKind.PATHOLOGY),
        (("http://terminology.hl7.org/CodeSystem/v2-0074", "CY"), "Bile cytology", ReportKind.PATHOLOGY),
        (("http://terminology.hl7.org/CodeSystem/v2-0074", "PAT"), "Pathology", ReportKind.PATHOLOGY),
        # by its category, not by words in its title (CLINICAL_SPEC section 5, revised)
        (("http://example.org/local", "X"), "Bile duct brushing cytology", ReportKind.IMAGING),
        (("http://terminology.hl7.org/CodeSystem/v2-0074", "RAD"), "ERCP with brushing", ReportKind.IMAGING),
        (("http://terminology.hl7.org/CodeSystem/v2-0074", "RAD"), "IR liver biopsy", ReportKind.IMAGING),
        (("http://example.org/local", "X"), "MRCP", ReportKind.IMAGING),
    ],
)
def test_report_kind(category, code_text, kind):
    raw = report("text", study=code_text)
    raw["category"] = [{"coding": [{"system": category[0], "code": category[1]}]}]
    assert report_kind(model(raw)) is kind


def test_text_comes_from_conclusion_codes_and_presented_forms():
    raw = report("Conclusion sentence.", text="Plain form sentence.")
    raw["conclusionCode"] = [{"text": "Coded conclusion label"}]
    raw["presentedForm"].append(
        {"contentType": "text/html", "data": base64.b64encode(b"<p>Html &amp; form</p>").decode()}
    )
    raw["presentedForm"].append(
        {"contentType": "application/pdf", "data": base64.b64encode(b"%PDF").decode()}
    )
    text = report_text(model(raw))
    for part in ("Conclusion sentence.", "Coded conclusion label", "Plain form sentence.", "Html & form"):
        assert part in text
    assert "%PDF" not in text


@pytest.mark.parametrize(
    ("text", "contrast"),
    [
        ("CT abdomen with IV contrast. Normal.", True),
        ("CT abdomen with and without contrast.", True),
        ("Portal venous phase images.", True),
        ("Non-contrast CT abdomen.", False),
        ("CT abdomen. Normal.", None),
    ],
)
def test_contrast(text, contrast):
    [facts] = extract_reports([model(report(text))])
    assert facts.contrast is contrast


@pytest.mark.parametrize(
    ("status", "kept"),
    [("final", True), ("preliminary", True), ("entered-in-error", False), ("registered", False)],
)
def test_status_filter(status, kept):
    assert (
        bool(extract_reports([model(report("Diffuse enlargement of the pancreas.", status=status))])) is kept
    )


def test_coded_cholangiocarcinoma_in_pathology_is_tissue_proof():
    raw = report(kind="pathology")
    raw["conclusionCode"] = [{"coding": [{"system": "http://snomed.info/sct", "code": "312104005"}]}]
    [facts] = extract_reports([model(raw)])
    assert {(f.concept, f.assertion) for f in facts.findings} >= {
        (Concept.CHOLANGIOCARCINOMA, Assertion.AFFIRMED),
        (Concept.CARCINOMA, Assertion.AFFIRMED),
    }


def test_a_pathology_loinc_report_code_makes_a_pathology_report():
    raw = report("text", study="Report")
    raw["category"] = []
    raw["code"] = {"coding": [{"system": LOINC, "code": "11529-5"}]}
    assert report_kind(model(raw)) is ReportKind.PATHOLOGY


def test_reports_before_the_window_are_kept_but_marked_out_of_it():
    old, recent, undated = report("a", when="2020-01-01"), report("b", when="2026-01-01"), report("c")
    del undated["effectiveDateTime"]
    facts = extract_reports([model(r) for r in (old, recent, undated)], since=date(2023, 11, 25))
    assert [f.in_window for f in facts] == [False, True, True]


def test_pathology_reports_carry_their_specimen_sites():
    text = "SPECIMEN: A. Submandibular gland, left, excision\nDIAGNOSIS: sclerosing sialadenitis."
    [facts] = extract_reports([model(report(kind="pathology", study="Surgical pathology", text=text))])
    assert Site.SALIVARY_GLAND in facts.specimen
    [imaging] = extract_reports([model(report("Submandibular glands enlarged."))])
    assert imaging.specimen == frozenset()


def test_a_reader_failure_costs_one_report_not_the_call(monkeypatch):
    def broken(_text):
        raise KeyError("bug")

    monkeypatch.setattr(reports_module, "extract_findings", broken)
    [facts] = extract_reports([model(report("Diffuse enlargement of the pancreas."))])
    assert facts.findings == ()
