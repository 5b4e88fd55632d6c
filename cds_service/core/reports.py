"""Imaging and pathology findings from DiagnosticReports: conclusion, conclusionCode and text presentedForm."""

from __future__ import annotations

import base64
import binascii
import html
import logging
import re
from datetime import date
from typing import Any, Final

from cds_service.core import codes
from cds_service.core.conditions import concept_kinds
from cds_service.core.dates import to_date
from cds_service.core.evidence import ConditionKind, ReportFacts, ReportKind
from cds_service.core.findings import Assertion, Concept, TextFinding
from cds_service.core.narrative import extract_findings
from cds_service.core.tissue import attributes_pancreatobiliary_primary, specimen_sites

logger = logging.getLogger(__name__)

MAX_TEXT_CHARS: Final = 200_000
"""Report text beyond this is not read: it bounds the work one request can cause."""

USABLE_STATUSES: Final = frozenset({"final", "amended", "corrected", "appended", "preliminary", "partial"})

PATHOLOGY_CATEGORIES: Final = frozenset(
    {
        (codes.LOINC, "LP7839-6"),  # US Core DiagnosticReport category "Pathology"
        (codes.V2_0074, "PAT"),  # HL7 v2 table 0074 diagnostic service sections
        (codes.V2_0074, "SP"),
        (codes.V2_0074, "CP"),
        (codes.V2_0074, "CY"),
    }
)
"""Categories that make a DiagnosticReport a pathology or cytology report (the only reports that prove)."""
PATHOLOGY_CODES: Final = frozenset(
    {"60567-5", "60568-3", "11526-1", "11529-5", "22637-3", "33717-0", "66117-3", "66121-5"}
)
"""LOINC report codes of the classes PATH and CYTO (pathology and cytology study/report documents)."""
_CONTRAST = re.compile(
    r"\b(with (?:and without )?(?:iv |intravenous |oral and iv )?contrast|contrast[- ]enhanced|post[- ]?contrast"
    r"|(?:arterial|portal venous|venous|delayed|pancreatic) phase)",
    re.I,
)
_NO_CONTRAST = re.compile(r"\b(without (?:iv |intravenous )?contrast|non[- ]?contrast|unenhanced)", re.I)
_TAGS = re.compile(r"<[^>]+>")


def report_kind(report: Any) -> ReportKind:
    """Pathology when the category or the LOINC report code says so, imaging (or procedure) otherwise.

    Words in the title ("biopsy", "brushing") never make a report pathology: an ERCP brushing procedure
    note or an interventional radiology biopsy note is not a tissue diagnosis (CLINICAL_SPEC section 5).
    """
    pairs = {(c.system, c.code) for cat in report.category or [] for c in cat.coding or []}
    if pairs & PATHOLOGY_CATEGORIES:
        return ReportKind.PATHOLOGY
    code = report.code
    code_pairs = {(c.system, c.code) for c in (code.coding or [])} if code is not None else set()
    if any(system == codes.LOINC and value in PATHOLOGY_CODES for system, value in code_pairs):
        return ReportKind.PATHOLOGY
    return ReportKind.IMAGING


def report_labels(report: Any) -> list[str]:
    """The report's title: its code's text and displays."""
    code = report.code
    if code is None:
        return []
    return [t for t in [code.text] + [c.display for c in code.coding or []] if t]


def report_text(report: Any) -> str:
    """The report's readable text: conclusion, coded conclusions' labels and text/plain or HTML forms."""
    parts: list[str] = []
    if report.conclusion:
        parts.append(str(report.conclusion))
    for concept in report.conclusionCode or []:
        parts.extend(t for t in [concept.text] + [c.display for c in concept.coding or []] if t)
    for attachment in report.presentedForm or []:
        text = _attachment_text(attachment)
        if text:
            parts.append(text)
    return "\n".join(parts)[:MAX_TEXT_CHARS]


def _attachment_text(attachment: Any) -> str | None:
    content_type = (attachment.contentType or "text/plain").split(";")[0].strip().lower()
    if content_type not in {"text/plain", "text/html", "text/markdown"} or attachment.data is None:
        return None
    data = attachment.data
    try:
        raw = data if isinstance(data, bytes) else base64.b64decode(str(data), validate=False)
    except (binascii.Error, ValueError):
        return None
    text = raw[: MAX_TEXT_CHARS * 4].decode("utf-8", errors="replace")
    if content_type == "text/html":
        text = html.unescape(_TAGS.sub(" ", text))
    return text


def _coded_findings(report: Any, kind: ReportKind) -> list[TextFinding]:
    """Findings from conclusionCode codes (a coded cholangiocarcinoma), before any text is read."""
    findings: list[TextFinding] = []
    for concept in report.conclusionCode or []:
        kinds, matched_by = concept_kinds(concept)
        if matched_by == "code" and ConditionKind.CHOLANGIOCARCINOMA in kinds:
            label = "coded conclusion: cholangiocarcinoma"
            findings.append(TextFinding(Concept.CHOLANGIOCARCINOMA, Assertion.AFFIRMED, label))
            if kind is ReportKind.PATHOLOGY:
                findings.append(TextFinding(Concept.CARCINOMA, Assertion.AFFIRMED, label))
    return findings


def _read_text(text: str) -> list[TextFinding]:
    try:
        return extract_findings(text)
    except Exception as exc:  # a reader bug must cost one report's findings, never the call
        logger.error("report text could not be read", extra={"error_type": type(exc).__name__})
        return []


def extract_reports(reports: list[Any], since: date | None = None) -> list[ReportFacts]:
    """Facts from every usable DiagnosticReport (entered-in-error, cancelled and registered are skipped).

    ``since``: the first day of the lookback window; a report dated before it is kept (tissue proof of a
    bile-duct carcinoma counts whatever its date) but marked out of the window.
    """
    facts: list[ReportFacts] = []
    for report in reports:
        if report.status not in USABLE_STATUSES:
            continue
        kind = report_kind(report)
        text = report_text(report)
        contrast: bool | None = None
        if _CONTRAST.search(text):
            contrast = True
        elif _NO_CONTRAST.search(text):
            contrast = False
        findings = _coded_findings(report, kind) + _read_text(text)
        effective = to_date(report.effectiveDateTime)
        if effective is None and report.effectivePeriod is not None:
            effective = to_date(report.effectivePeriod.start)
        effective = effective or to_date(report.issued)
        reference = f"DiagnosticReport/{report.id}" if report.id else "DiagnosticReport"
        pathology = kind is ReportKind.PATHOLOGY
        specimen = specimen_sites(report_labels(report), text) if pathology else frozenset()
        attributed = pathology and attributes_pancreatobiliary_primary(text)
        in_window = since is None or effective is None or effective >= since
        facts.append(
            ReportFacts(
                reference, kind, effective, tuple(findings), contrast, specimen, attributed, in_window
            )
        )
    return facts
