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


class ExclusionId(StrEnum):
    """The ACR/EULAR exclusion criteria, by the id the card's extension reports."""

    CYTOPENIAS = "cytopenias"
    EOSINOPHILIA = "eosinophilia"
    ANCA = "anca"
    SSA_SSB = "ssa-ssb"
    DSDNA_RNP_SM = "dsdna-rnp-sm"
    CRYOGLOBULINEMIA = "cryoglobulinemia"
    SUSPICIOUS_RADIOLOGY = "suspicious-radiology"
    RAPID_PROGRESSION = "rapid-progression"
    ERDHEIM_CHESTER = "erdheim-chester"
    SPLENOMEGALY = "splenomegaly"
    SUSPICIOUS_PATHOLOGY = "suspicious-pathology"
    PATHOLOGY_OTHER = "pathology-other"
    CASTLEMAN = "castleman"
    IBD_PANCREATOBILIARY_ONLY = "ibd-pancreatobiliary-only"
    FEVER = "fever"
    NO_STEROID_RESPONSE = "no-steroid-response"
    OTHER_AUTOANTIBODY = "other-autoantibody"
    HASHIMOTO_THYROID_ONLY = "hashimoto-thyroid-only"


class ExclusionStatus(StrEnum):
    """``present`` blocks classification; ``unresolved`` is for the clinician to settle."""

    PRESENT = "present"
    UNRESOLVED = "unresolved"


NOT_ASSESSED_EXCLUSIONS: Final = (
    ExclusionId.FEVER,
    ExclusionId.NO_STEROID_RESPONSE,
    ExclusionId.OTHER_AUTOANTIBODY,
    ExclusionId.HASHIMOTO_THYROID_ONLY,
)
"""Exclusions the service never assesses automatically; the card lists them for the clinician."""


@dataclass(frozen=True, slots=True)
class ExclusionResult:
    """An exclusion found ``present`` or ``unresolved``."""

    id: ExclusionId
    status: ExclusionStatus
    label: str
    evidence: tuple[Evidence, ...] = ()


EXCLUSION_LABELS: Final[dict[ExclusionId, str]] = {
    ExclusionId.CYTOPENIAS: "Leukopenia and thrombocytopenia without explanation",
    ExclusionId.EOSINOPHILIA: "Peripheral eosinophilia > 3.0 × 10⁹/L",
    ExclusionId.ANCA: "Positive ANCA against PR3 or MPO",
    ExclusionId.SSA_SSB: "Positive SSA/Ro or SSB/La",
    ExclusionId.DSDNA_RNP_SM: "Positive dsDNA, RNP or Sm",
    ExclusionId.CRYOGLOBULINEMIA: "Cryoglobulinemia",
    ExclusionId.SUSPICIOUS_RADIOLOGY: "Radiology suspicious for malignancy not sufficiently investigated",
    ExclusionId.RAPID_PROGRESSION: "Rapid radiological progression",
    ExclusionId.ERDHEIM_CHESTER: "Long-bone findings consistent with Erdheim–Chester disease",
    ExclusionId.SPLENOMEGALY: "Splenomegaly",
    ExclusionId.SUSPICIOUS_PATHOLOGY: "Infiltrate suggesting malignancy (atypia) not sufficiently evaluated",
    ExclusionId.PATHOLOGY_OTHER: "Pathology favouring another diagnosis",
    ExclusionId.CASTLEMAN: "Known multicentric Castleman disease",
    ExclusionId.IBD_PANCREATOBILIARY_ONLY: "Crohn's disease or ulcerative colitis with pancreatobiliary-only disease",
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

    def add(exclusion_id: ExclusionId, status: ExclusionStatus, ev: Iterable[Evidence]) -> None:
        out.append(ExclusionResult(exclusion_id, status, EXCLUSION_LABELS[exclusion_id], tuple(ev)))

    wbc, platelets = evidence.lab(codes.WBC), evidence.lab(codes.PLATELETS)
    if wbc and platelets and wbc[0].below_low and platelets[0].below_low:
        add(ExclusionId.CYTOPENIAS, ExclusionStatus.UNRESOLVED, _lab_evidence([wbc[0], platelets[0]], "low"))
    if eos := _eosinophilia(evidence):
        add(ExclusionId.EOSINOPHILIA, ExclusionStatus.PRESENT, eos)
    serology = (
        (ExclusionId.ANCA, (codes.ANCA_MPO, codes.ANCA_PR3), "ANCA"),
        (ExclusionId.SSA_SSB, tuple(codes.SSA | codes.SSB), "SSA/SSB"),
        (ExclusionId.DSDNA_RNP_SM, tuple(codes.DSDNA | codes.RNP | codes.SM), "dsDNA/RNP/Sm"),
        (ExclusionId.CRYOGLOBULINEMIA, (codes.CRYOGLOBULIN,), "cryoglobulins"),
    )
    for exclusion_id, loinc, label in serology:
        if positives := [r for r in evidence.lab(*loinc) if r.positive]:
            add(exclusion_id, ExclusionStatus.PRESENT, _lab_evidence(positives, f"{label} positive"))
    if presumed_cca and not tissue_explains:
        add(ExclusionId.SUSPICIOUS_RADIOLOGY, ExclusionStatus.UNRESOLVED, [])
    for exclusion_id, concept in (
        (ExclusionId.RAPID_PROGRESSION, Concept.RAPID_PROGRESSION),
        (ExclusionId.ERDHEIM_CHESTER, Concept.ERDHEIM_CHESTER),
        (ExclusionId.SPLENOMEGALY, Concept.SPLENOMEGALY),
    ):
        if ev := affirmed(reports, concept):
            add(exclusion_id, ExclusionStatus.PRESENT, ev)
    if ev := affirmed(pathology, Concept.ATYPIA):
        add(ExclusionId.SUSPICIOUS_PATHOLOGY, ExclusionStatus.UNRESOLVED, ev)
    if ev := affirmed(pathology, Concept.PATHOLOGY_OTHER):
        add(ExclusionId.PATHOLOGY_OTHER, ExclusionStatus.PRESENT, ev)
    castleman = [c for c in evidence.conditions if c.kind is ConditionKind.CASTLEMAN]
    if castleman:
        add(
            ExclusionId.CASTLEMAN,
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
            ExclusionId.IBD_PANCREATOBILIARY_ONLY,
            ExclusionStatus.PRESENT,
            [Evidence(c.reference, iso_date(c.onset), ibd_names[c.kind]) for c in ibd],
        )
    return out
