"""The 2019 ACR/EULAR IgG4-RD classification criteria: entry, exclusions, eight domains, classification.

Pure functions over :class:`~cds_service.core.evidence.PatientEvidence`; CLINICAL_SPEC sections 2 and 3.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum
from typing import Final

from cds_service.core import codes
from cds_service.core.domains import DOMAIN_CONCEPTS, DOMAIN_MAXIMUM, ENTRY_CONCEPTS, Domain
from cds_service.core.evidence import (
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
from cds_service.core.exclusions import ExclusionResult, ExclusionStatus, assess_exclusions
from cds_service.core.findings import Concept, TextFinding

THRESHOLD: Final = 20
CRITERIA_NAME: Final = "2019 ACR/EULAR"


class Classification(StrEnum):
    """The four classification values (CLINICAL_SPEC section 3)."""

    MEETS = "meets"
    EXCLUDED = "excluded"
    INDETERMINATE = "indeterminate"
    DOES_NOT_MEET = "does-not-meet"


class Entry(StrEnum):
    """Whether the entry criterion is met."""

    MET = "met"
    NOT_MET = "not-met"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class DomainScore:
    """A domain's points (its highest item only), whether it was assessed, and the evidence."""

    domain: Domain
    points: int
    assessed: bool
    item: str
    evidence: tuple[Evidence, ...] = ()


@dataclass(frozen=True, slots=True)
class IgG4Summary:
    """The serum IgG4 result that counts: the highest relative to its own ULN in the window."""

    result: LabResult
    ratio: Decimal

    @property
    def uln_is_default(self) -> bool:
        """True when the lab gave no upper limit and the configured default was used."""
        return self.result.uln_source is not None and self.result.uln_source.value == "default"


@dataclass
class CriteriaResult:
    """Everything the criteria say about one patient, every domain computed even when excluded."""

    entry: Entry
    domains: dict[Domain, DomainScore]
    exclusions: list[ExclusionResult]
    igg4: IgG4Summary | None
    classification: Classification = field(init=False)
    total: int = field(init=False)
    maximum_possible: int = field(init=False)

    def __post_init__(self) -> None:
        self.total = sum(d.points for d in self.domains.values())
        self.maximum_possible = self.total + sum(
            DOMAIN_MAXIMUM[d.domain] - d.points for d in self.domains.values() if not d.assessed
        )
        self.classification = _classify(self)

    @property
    def present_exclusions(self) -> list[ExclusionResult]:
        """Exclusions that block classification."""
        return [e for e in self.exclusions if e.status is ExclusionStatus.PRESENT]

    @property
    def unassessed(self) -> list[Domain]:
        """Domains with no data."""
        return [d.domain for d in self.domains.values() if not d.assessed]


def _classify(result: CriteriaResult) -> Classification:
    if result.present_exclusions:
        return Classification.EXCLUDED
    if result.entry is Entry.MET and result.total >= THRESHOLD:
        return Classification.MEETS
    if result.entry is Entry.NOT_MET:
        return Classification.DOES_NOT_MEET
    if result.entry is Entry.UNKNOWN or result.maximum_possible >= THRESHOLD:
        return Classification.INDETERMINATE
    return Classification.DOES_NOT_MEET


def _bilateral(_report: ReportFacts, finding: TextFinding) -> bool:
    return finding.bilateral


def _bilateral_not_unenhanced(report: ReportFacts, finding: TextFinding) -> bool:
    # Renal cortical low density is read on contrast-enhanced CT; an explicitly unenhanced study does not count.
    return finding.bilateral and report.contrast is not False


# ---------------------------------------------------------------------------------------------------------
# Domains


def igg4_summary(evidence: PatientEvidence) -> IgG4Summary | None:
    """The IgG4 result with the highest value relative to its own ULN (ties: the newest)."""
    best: IgG4Summary | None = None
    for result in evidence.lab(codes.IGG4):
        if result.value is None or result.high is None or result.high <= 0:
            continue
        ratio = result.value / result.high
        if best is None or ratio > best.ratio:
            best = IgG4Summary(result, ratio)
    return best


def serum_igg4_points(value: Decimal, uln: Decimal) -> int:
    """Points for a serum IgG4 value against its ULN: exactly 2× and 5× ULN score 6."""
    if value > 5 * uln:
        return 11
    if value >= 2 * uln:
        return 6
    if value > uln:
        return 4
    return 0


def _serum_igg4(summary: IgG4Summary | None) -> DomainScore:
    if summary is None:
        return DomainScore(Domain.SERUM_IGG4, 0, False, "not measured")
    result = summary.result
    points = serum_igg4_points(result.value or Decimal(0), result.high or Decimal(1))
    item = {11: "> 5 × ULN", 6: "2–5 × ULN", 4: "> ULN and < 2 × ULN", 0: "≤ ULN"}[points]
    uln_note = " (default ULN)" if summary.uln_is_default else ""
    text = (
        f"IgG4 {format_decimal(result.value or Decimal(0))} g/L, ULN {format_decimal(result.high or Decimal(0))} g/L{uln_note}: "
        f"{summary.ratio:.2f} × ULN"
    )
    return DomainScore(
        Domain.SERUM_IGG4, points, True, item, (Evidence(result.reference, iso_date(result.effective), text),)
    )


def immunostaining_points(ratio: float | None, cells: float | None) -> int:
    """Points for IgG4 immunostaining from the IgG4+/IgG+ ratio (%) and IgG4+ cells/hpf (None: unknown)."""
    if ratio is not None and ratio >= 71 and cells is not None and cells >= 51:
        return 16
    if cells is not None and cells >= 10 and ratio is not None and ratio >= 41:
        return 14 if ratio <= 70 or cells <= 50 else 16
    if ratio is not None and ratio >= 41:
        return 7  # with 0-9 cells/hpf or an indeterminate count
    if cells is None or cells >= 10:
        return 7  # ratio 0-40% or indeterminate, with >= 10 cells/hpf or an indeterminate count
    return 0


def _pathology_domains(reports: list[ReportFacts]) -> tuple[DomainScore, DomainScore]:
    pathology = [r for r in reports if r.kind is ReportKind.PATHOLOGY]
    infiltrate = affirmed(pathology, Concept.LYMPHOPLASMACYTIC_INFILTRATE)
    phlebitis = affirmed(pathology, Concept.OBLITERATIVE_PHLEBITIS)
    storiform = affirmed(pathology, Concept.STORIFORM_FIBROSIS)
    if infiltrate and storiform:
        histo = DomainScore(
            Domain.HISTOPATHOLOGY,
            13,
            True,
            "dense lymphocytic infiltrate with storiform fibrosis",
            tuple(infiltrate + storiform),
        )
    elif infiltrate and phlebitis:
        histo = DomainScore(
            Domain.HISTOPATHOLOGY,
            6,
            True,
            "dense lymphocytic infiltrate with obliterative phlebitis",
            tuple(infiltrate + phlebitis),
        )
    elif infiltrate:
        histo = DomainScore(Domain.HISTOPATHOLOGY, 4, True, "dense lymphocytic infiltrate", tuple(infiltrate))
    else:
        histo = DomainScore(
            Domain.HISTOPATHOLOGY, 0, bool(pathology), "no scoring histology" if pathology else "no tissue"
        )

    stains = findings_of(pathology, frozenset({Concept.IGG4_IMMUNOSTAIN}))
    best = DomainScore(
        Domain.IMMUNOSTAINING,
        0,
        bool(stains),
        "IgG4 immunostaining below the thresholds" if stains else "not performed",
    )
    for report, finding in stains:
        if not finding.affirmed:
            continue
        points = immunostaining_points(finding.ratio_percent, finding.cells_per_hpf)
        if points > best.points:
            ratio = "indeterminate" if finding.ratio_percent is None else f"{finding.ratio_percent:g}%"
            cells = "indeterminate" if finding.cells_per_hpf is None else f"{finding.cells_per_hpf:g}/hpf"
            item = f"IgG4+/IgG+ ratio {ratio}, IgG4+ cells {cells}"
            ev = Evidence(report.reference, iso_date(report.effective), finding.phrase, is_record_text=True)
            best = DomainScore(Domain.IMMUNOSTAINING, points, True, item, (ev,))
    return histo, best


_GLAND_NAMES: Final[dict[Concept, str]] = {
    Concept.LACRIMAL_GLAND: "lacrimal",
    Concept.PAROTID_GLAND: "parotid",
    Concept.SUBMANDIBULAR_GLAND: "submandibular",
    Concept.SUBLINGUAL_GLAND: "sublingual",
}


def _glands(reports: list[ReportFacts]) -> DomainScore:
    imaging = [r for r in reports if r.kind is ReportKind.IMAGING]
    assessed = bool(findings_of(imaging, DOMAIN_CONCEPTS[Domain.GLANDS]))
    sets = {c: ev for c in _GLAND_NAMES if (ev := affirmed(imaging, c, where=_bilateral))}
    if not sets:
        return DomainScore(
            Domain.GLANDS, 0, assessed, "no bilateral gland involvement" if assessed else "not imaged"
        )
    names = ", ".join(_GLAND_NAMES[c] for c in sets)
    evidence = tuple(ev for evs in sets.values() for ev in evs)
    if len(sets) >= 2:
        return DomainScore(Domain.GLANDS, 14, True, f"two or more gland sets ({names})", evidence)
    return DomainScore(Domain.GLANDS, 6, True, f"one gland set ({names})", evidence)


def _ranked(
    domain: Domain, reports: list[ReportFacts], items: list[tuple[int, str, list[Evidence]]]
) -> DomainScore:
    """The highest-weighted item with evidence; assessed when imaging mentioned the domain at all."""
    assessed = bool(findings_of(reports, DOMAIN_CONCEPTS[domain], ReportKind.IMAGING))
    for points, item, evidence in sorted(items, key=lambda i: -i[0]):
        if evidence:
            return DomainScore(domain, points, True, item, tuple(evidence))
    return DomainScore(domain, 0, assessed, "no scoring finding" if assessed else "not imaged")


def _chest(reports: list[ReportFacts]) -> DomainScore:
    imaging = [r for r in reports if r.kind is ReportKind.IMAGING]
    return _ranked(
        Domain.CHEST,
        reports,
        [
            (
                10,
                "paravertebral band-like soft tissue in the thorax",
                affirmed(imaging, Concept.PARAVERTEBRAL_BAND),
            ),
            (
                4,
                "peribronchovascular and septal thickening",
                affirmed(imaging, Concept.PERIBRONCHOVASCULAR_THICKENING),
            ),
        ],
    )


def _each_first(*parts: list[Evidence]) -> list[Evidence]:
    """Evidence for an item with several components: the first of each component leads, so a card that
    shows only the first few pieces still shows every component (pancreas and bile duct)."""
    firsts = [part[0] for part in parts if part]
    return firsts + [e for part in parts for e in part[1:]]


def _pancreas_biliary(reports: list[ReportFacts]) -> DomainScore:
    imaging = [r for r in reports if r.kind is ReportKind.IMAGING]
    diffuse = affirmed(imaging, Concept.PANCREAS_DIFFUSE_ENLARGEMENT)
    rim = affirmed(imaging, Concept.PANCREAS_CAPSULE_RIM) if diffuse else []
    biliary = affirmed(imaging, Concept.BILIARY_PROXIMAL) if diffuse else []
    return _ranked(
        Domain.PANCREAS_BILIARY,
        reports,
        [
            (
                19,
                "pancreas and biliary tree involvement",
                _each_first(diffuse, biliary, rim) if biliary else [],
            ),
            (
                11,
                "diffuse pancreas enlargement with capsule-like rim",
                _each_first(diffuse, rim) if rim else [],
            ),
            (8, "diffuse pancreas enlargement", diffuse),
        ],
    )


def _kidney(evidence: PatientEvidence, reports: list[ReportFacts]) -> DomainScore:
    imaging = [r for r in reports if r.kind is ReportKind.IMAGING]
    complement = evidence.lab(codes.C3, codes.C4)
    low = [
        Evidence(
            r.reference,
            iso_date(r.effective),
            f"{'C3' if r.code == codes.C3 else 'C4'} {format_decimal(r.value or Decimal(0))} g/L "
            + (f"below {format_decimal(r.low)} g/L" if r.low is not None else "flagged low by the lab"),
        )
        for r in complement
        if r.below_low
    ]
    score = _ranked(
        Domain.KIDNEY,
        reports,
        [
            (
                10,
                "bilateral renal cortex low-density areas",
                affirmed(imaging, Concept.RENAL_CORTEX_LOW_DENSITY, where=_bilateral_not_unenhanced),
            ),
            (8, "renal pelvis thickening/soft tissue", affirmed(imaging, Concept.RENAL_PELVIS_THICKENING)),
            (6, "hypocomplementemia", low),
        ],
    )
    measured = any(r.low_known for r in complement)
    if not score.assessed and measured:
        return DomainScore(Domain.KIDNEY, 0, True, "complement normal; kidneys not imaged")
    return score


def _retroperitoneum(reports: list[ReportFacts]) -> DomainScore:
    imaging = [r for r in reports if r.kind is ReportKind.IMAGING]
    return _ranked(
        Domain.RETROPERITONEUM,
        reports,
        [
            (
                8,
                "soft tissue around the infrarenal aorta or iliac arteries",
                affirmed(imaging, Concept.PERIAORTIC_SOFT_TISSUE),
            ),
            (
                4,
                "diffuse thickening of the abdominal aortic wall",
                affirmed(imaging, Concept.ABDOMINAL_AORTIC_WALL_THICKENING),
            ),
        ],
    )


# ---------------------------------------------------------------------------------------------------------
# Exclusions

# ---------------------------------------------------------------------------------------------------------
# Entry and the whole evaluation


def _entry(reports: list[ReportFacts], presumed_cca: bool) -> Entry:
    involved = any(f.affirmed for _r, f in findings_of(reports, ENTRY_CONCEPTS))
    if involved or presumed_cca:
        return Entry.MET
    return Entry.NOT_MET if reports else Entry.UNKNOWN


def evaluate(evidence: PatientEvidence, presumed_cca: bool) -> CriteriaResult:
    """Score the criteria for one patient. ``presumed_cca`` is a bile duct lesion managed as CCA."""
    summary = igg4_summary(evidence)
    reports = evidence.recent_reports  # reports older than the lookback give no points and no exclusion
    histo, stain = _pathology_domains(reports)
    scores = [
        histo,
        stain,
        _serum_igg4(summary),
        _glands(reports),
        _chest(reports),
        _pancreas_biliary(reports),
        _kidney(evidence, reports),
        _retroperitoneum(reports),
    ]
    return CriteriaResult(
        entry=_entry(reports, presumed_cca),
        domains={s.domain: s for s in scores},
        exclusions=assess_exclusions(
            evidence, presumed_cca, tissue_explains=histo.points > 0 or stain.points > 0
        ),
        igg4=summary,
    )
