"""ACR/EULAR exclusion criteria assessed from labs, Conditions and report text (CLINICAL_SPEC section 2)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from enum import StrEnum
from typing import Final

from cds_service.core import codes
from cds_service.core.domains import OTHER_ORGAN_CONCEPTS
from cds_service.core.evidence import (
    ConditionKind,
    Evidence,
    LabResult,
    PatientEvidence,
    ReportFacts,
    ReportKind,
    affirmed,
    findings_of,
    format_decimal,
    iso_date,
)
from cds_service.core.findings import Concept
from cds_service.core.tissue import other_organ_sites


class ExclusionStatus(StrEnum):
    """``present`` blocks classification; ``unresolved`` is for the clinician to settle."""

    PRESENT = "present"
    UNRESOLVED = "unresolved"


NOT_ASSESSED_EXCLUSIONS: Final = (
    "fever",
    "no-steroid-response",
    "other-autoantibody",
    "hashimoto-thyroid-only",
)
"""Exclusions the service never assesses automatically; the card lists them for the clinician."""


@dataclass(frozen=True, slots=True)
class ExclusionResult:
    """An exclusion found ``present`` or ``unresolved``."""

    id: str
    status: ExclusionStatus
    label: str
    evidence: tuple[Evidence, ...] = ()


EXCLUSION_LABELS: Final[dict[str, str]] = {
    "cytopenias": "Leukopenia and thrombocytopenia without explanation",
    "eosinophilia": "Peripheral eosinophilia > 3.0 × 10⁹/L",
    "anca": "Positive ANCA against PR3 or MPO",
    "ssa-ssb": "Positive SSA/Ro or SSB/La",
    "dsdna-rnp-sm": "Positive dsDNA, RNP or Sm",
    "cryoglobulinemia": "Cryoglobulinemia",
    "suspicious-radiology": "Radiology suspicious for malignancy not sufficiently investigated",
    "rapid-progression": "Rapid radiological progression",
    "erdheim-chester": "Long-bone findings consistent with Erdheim–Chester disease",
    "splenomegaly": "Splenomegaly",
    "suspicious-pathology": "Infiltrate suggesting malignancy (atypia) not sufficiently evaluated",
    "pathology-other": "Pathology favouring another diagnosis",
    "castleman": "Known multicentric Castleman disease",
    "ibd-pancreatobiliary-only": "Crohn's disease or ulcerative colitis with pancreatobiliary-only disease",
}

EOSINOPHILIA_LIMIT: Final = Decimal(3)  # 10^9/L


def _lab_evidence(results: list[LabResult], label: str) -> tuple[Evidence, ...]:
    return tuple(
        Evidence(r.reference, iso_date(r.effective), f"{label}: {r.original or 'reported'}") for r in results
    )


def _eosinophilia(evidence: PatientEvidence) -> list[Evidence]:
    found = [
        Evidence(
            r.reference, iso_date(r.effective), f"eosinophils {format_decimal(r.value or Decimal(0))} × 10⁹/L"
        )
        for r in evidence.lab(*codes.EOS_ABSOLUTE)
        if r.value is not None and r.value > EOSINOPHILIA_LIMIT
    ]
    # A percentage counts only with a WBC drawn the same day.
    wbc_by_date: dict[date, LabResult] = {
        r.effective: r for r in evidence.lab(codes.WBC) if r.value is not None and r.effective is not None
    }
    for pct in evidence.lab(codes.EOS_PERCENT):
        wbc = wbc_by_date.get(pct.effective) if pct.effective is not None else None
        if pct.value is None or wbc is None or wbc.value is None:
            continue
        absolute = pct.value / 100 * wbc.value
        if absolute > EOSINOPHILIA_LIMIT:
            text = f"eosinophils {format_decimal(pct.value)}% of WBC {format_decimal(wbc.value)} × 10⁹/L = {absolute:.2f} × 10⁹/L"
            found.append(Evidence(pct.reference, iso_date(pct.effective), text))
    return found


IGG4_RD_TISSUE_CONCEPTS: Final = frozenset(
    {
        Concept.LYMPHOPLASMACYTIC_INFILTRATE,
        Concept.STORIFORM_FIBROSIS,
        Concept.OBLITERATIVE_PHLEBITIS,
        Concept.IGG4_IMMUNOSTAIN,
    }
)
"""Pathology findings that make a biopsy an IgG4-RD biopsy of its organ."""


def other_organ_evidence(reports: Iterable[ReportFacts]) -> list[ReportFacts]:
    """Reports showing an organ involved beyond the pancreas and bile ducts, wherever the proof comes from.

    Imaging with an affirmed finding in the glands, chest, kidney or retroperitoneum domains; or a pathology
    report of a typical IgG4-RD organ other than the pancreas and bile ducts (a salivary gland, a kidney ...)
    with an affirmed IgG4-RD histology or immunostaining finding. Biopsies of the pancreas, bile ducts or
    liver and serum tests are not other organs (CLINICAL_SPEC section 2, ibd-pancreatobiliary-only).
    """
    found: list[ReportFacts] = []
    for report in reports:
        if report.kind is ReportKind.IMAGING:
            concepts = OTHER_ORGAN_CONCEPTS
        elif other_organ_sites(report.specimen):
            concepts = IGG4_RD_TISSUE_CONCEPTS
        else:
            continue
        if any(f.affirmed for _r, f in findings_of([report], concepts)):
            found.append(report)
    return found


def assess_exclusions(
    evidence: PatientEvidence, presumed_cca: bool, tissue_explains: bool
) -> list[ExclusionResult]:
    """Exclusions found present or unresolved.

    ``tissue_explains``: tissue shows IgG4-RD histology or immunostaining, so the suspicious lesion has been
    investigated. A biopsy without such findings (non-diagnostic, benign) leaves it unresolved: a negative
    biopsy does not exclude cholangiocarcinoma.
    """
    reports = evidence.recent_reports  # reports older than the lookback give no exclusion
    pathology = [r for r in reports if r.kind is ReportKind.PATHOLOGY]
    out: list[ExclusionResult] = []

    def add(exclusion_id: str, status: ExclusionStatus, ev: Iterable[Evidence]) -> None:
        out.append(ExclusionResult(exclusion_id, status, EXCLUSION_LABELS[exclusion_id], tuple(ev)))

    wbc, platelets = evidence.lab(codes.WBC), evidence.lab(codes.PLATELETS)
    if wbc and platelets and wbc[0].below_low and platelets[0].below_low:
        add("cytopenias", ExclusionStatus.UNRESOLVED, _lab_evidence([wbc[0], platelets[0]], "low"))
    if eos := _eosinophilia(evidence):
        add("eosinophilia", ExclusionStatus.PRESENT, eos)
    serology = (
        ("anca", (codes.ANCA_MPO, codes.ANCA_PR3), "ANCA"),
        ("ssa-ssb", tuple(codes.SSA | codes.SSB), "SSA/SSB"),
        ("dsdna-rnp-sm", tuple(codes.DSDNA | codes.RNP | codes.SM), "dsDNA/RNP/Sm"),
        ("cryoglobulinemia", (codes.CRYOGLOBULIN,), "cryoglobulins"),
    )
    for exclusion_id, loinc, label in serology:
        if positives := [r for r in evidence.lab(*loinc) if r.positive]:
            add(exclusion_id, ExclusionStatus.PRESENT, _lab_evidence(positives, f"{label} positive"))
    if presumed_cca and not tissue_explains:
        add("suspicious-radiology", ExclusionStatus.UNRESOLVED, [])
    for exclusion_id, concept in (
        ("rapid-progression", Concept.RAPID_PROGRESSION),
        ("erdheim-chester", Concept.ERDHEIM_CHESTER),
        ("splenomegaly", Concept.SPLENOMEGALY),
    ):
        if ev := affirmed(reports, concept):
            add(exclusion_id, ExclusionStatus.PRESENT, ev)
    if ev := affirmed(pathology, Concept.ATYPIA):
        add("suspicious-pathology", ExclusionStatus.UNRESOLVED, ev)
    if ev := affirmed(pathology, Concept.PATHOLOGY_OTHER):
        add("pathology-other", ExclusionStatus.PRESENT, ev)
    castleman = [c for c in evidence.conditions if c.kind is ConditionKind.CASTLEMAN]
    if castleman:
        add(
            "castleman",
            ExclusionStatus.PRESENT,
            [Evidence(c.reference, iso_date(c.onset), "multicentric Castleman disease") for c in castleman],
        )
    ibd = [
        c
        for c in evidence.conditions
        if c.kind in {ConditionKind.ULCERATIVE_COLITIS, ConditionKind.CROHNS_DISEASE}
    ]
    if ibd and not other_organ_evidence(reports):
        ibd_names = {
            ConditionKind.ULCERATIVE_COLITIS: "ulcerative colitis",
            ConditionKind.CROHNS_DISEASE: "Crohn's disease",
        }
        add(
            "ibd-pancreatobiliary-only",
            ExclusionStatus.PRESENT,
            [Evidence(c.reference, iso_date(c.onset), ibd_names[c.kind]) for c in ibd],
        )
    return out
