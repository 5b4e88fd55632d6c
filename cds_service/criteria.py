"""The 2019 ACR/EULAR IgG4-RD classification criteria: entry, exclusions, eight domains, classification.

Pure functions over :class:`~cds_service.evidence.PatientEvidence`; CLINICAL_SPEC sections 2 and 3.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from enum import StrEnum
from typing import Final

from cds_service import codes
from cds_service.evidence import ConditionKind, LabResult, PatientEvidence, ReportFacts, ReportKind
from cds_service.findings import Concept, TextFinding

THRESHOLD: Final = 20
CRITERIA_NAME: Final = "2019 ACR/EULAR"


class Domain(StrEnum):
    """The eight weighted inclusion domains."""

    HISTOPATHOLOGY = "histopathology"
    IMMUNOSTAINING = "immunostaining"
    SERUM_IGG4 = "serum-igg4"
    GLANDS = "glands"
    CHEST = "chest"
    PANCREAS_BILIARY = "pancreas-biliary"
    KIDNEY = "kidney"
    RETROPERITONEUM = "retroperitoneum"


DOMAIN_MAXIMUM: Final[dict[Domain, int]] = {
    Domain.HISTOPATHOLOGY: 13,
    Domain.IMMUNOSTAINING: 16,
    Domain.SERUM_IGG4: 11,
    Domain.GLANDS: 14,
    Domain.CHEST: 10,
    Domain.PANCREAS_BILIARY: 19,
    Domain.KIDNEY: 10,
    Domain.RETROPERITONEUM: 8,
}

DOMAIN_LABELS: Final[dict[Domain, str]] = {
    Domain.HISTOPATHOLOGY: "Histopathology",
    Domain.IMMUNOSTAINING: "Immunostaining",
    Domain.SERUM_IGG4: "Serum IgG4",
    Domain.GLANDS: "Lacrimal/salivary glands",
    Domain.CHEST: "Chest",
    Domain.PANCREAS_BILIARY: "Pancreas and biliary tree",
    Domain.KIDNEY: "Kidney",
    Domain.RETROPERITONEUM: "Retroperitoneum",
}

# Concepts whose mention (any assertion) shows that imaging looked at a domain.
DOMAIN_CONCEPTS: Final[dict[Domain, frozenset[Concept]]] = {
    Domain.GLANDS: frozenset(
        {Concept.LACRIMAL_GLAND, Concept.PAROTID_GLAND, Concept.SUBMANDIBULAR_GLAND, Concept.SUBLINGUAL_GLAND}
    ),
    Domain.CHEST: frozenset({Concept.PERIBRONCHOVASCULAR_THICKENING, Concept.PARAVERTEBRAL_BAND}),
    Domain.PANCREAS_BILIARY: frozenset(
        {
            Concept.PANCREAS_DIFFUSE_ENLARGEMENT,
            Concept.PANCREAS_CAPSULE_RIM,
            Concept.PANCREAS_FOCAL_MASS,
            Concept.BILIARY_PROXIMAL,
            Concept.BILIARY_DISTAL,
        }
    ),
    Domain.KIDNEY: frozenset({Concept.RENAL_PELVIS_THICKENING, Concept.RENAL_CORTEX_LOW_DENSITY}),
    Domain.RETROPERITONEUM: frozenset(
        {Concept.ABDOMINAL_AORTIC_WALL_THICKENING, Concept.PERIAORTIC_SOFT_TISSUE}
    ),
}

# Affirmed findings that show involvement of a typical organ (entry criterion).
ENTRY_CONCEPTS: Final = frozenset(
    set().union(*DOMAIN_CONCEPTS.values())
    | {Concept.THORACIC_AORTA, Concept.LYMPHOPLASMACYTIC_INFILTRATE, Concept.CHOLANGIOCARCINOMA}
)
# Organs beyond the pancreas and bile ducts (the IBD exclusion applies only without them).
OTHER_ORGAN_CONCEPTS: Final = frozenset(
    DOMAIN_CONCEPTS[Domain.GLANDS]
    | DOMAIN_CONCEPTS[Domain.CHEST]
    | DOMAIN_CONCEPTS[Domain.KIDNEY]
    | DOMAIN_CONCEPTS[Domain.RETROPERITONEUM]
)


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
class Evidence:
    """One piece of evidence: the resource it comes from, its date and what it shows.

    ``text`` is either our own wording (lab values) or a report phrase (record text: render escaped).
    """

    reference: str
    date: str | None
    text: str
    is_record_text: bool = False


@dataclass(frozen=True, slots=True)
class DomainScore:
    """A domain's points (its highest item only), whether it was assessed, and the evidence."""

    domain: Domain
    points: int
    assessed: bool
    item: str
    evidence: tuple[Evidence, ...] = ()


@dataclass(frozen=True, slots=True)
class ExclusionResult:
    """An exclusion found ``present`` or ``unresolved``."""

    id: str
    status: ExclusionStatus
    label: str
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


# ---------------------------------------------------------------------------------------------------------
# Helpers over findings


def _date(when: object) -> str | None:
    return str(when) if when is not None else None


def findings_of(
    reports: Iterable[ReportFacts], concepts: frozenset[Concept], kind: ReportKind | None = None
) -> list[tuple[ReportFacts, TextFinding]]:
    """Every (report, finding) pair whose concept is in ``concepts``, any assertion."""
    return [
        (report, finding)
        for report in reports
        if kind is None or report.kind is kind
        for finding in report.findings
        if finding.concept in concepts
    ]


def affirmed(
    reports: Iterable[ReportFacts],
    concept: Concept,
    kind: ReportKind | None = None,
    where: Callable[[ReportFacts, TextFinding], bool] | None = None,
) -> list[Evidence]:
    """Evidence for affirmed mentions of ``concept`` (optionally only in ``kind`` reports, and ``where``)."""
    return [
        Evidence(report.reference, _date(report.effective), finding.phrase, is_record_text=True)
        for report, finding in findings_of(reports, frozenset({concept}), kind)
        if finding.affirmed and (where is None or where(report, finding))
    ]


def _bilateral(_report: ReportFacts, finding: TextFinding) -> bool:
    return finding.bilateral


def _bilateral_not_unenhanced(report: ReportFacts, finding: TextFinding) -> bool:
    # Renal cortical low density is read on contrast-enhanced CT; an explicitly unenhanced study does not count.
    return finding.bilateral and report.contrast is not False


# ---------------------------------------------------------------------------------------------------------
# Domains


def _fmt(value: Decimal) -> str:
    return f"{value.normalize():f}"


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
        f"IgG4 {_fmt(result.value or Decimal(0))} g/L, ULN {_fmt(result.high or Decimal(0))} g/L{uln_note}: "
        f"{summary.ratio:.2f} × ULN"
    )
    return DomainScore(
        Domain.SERUM_IGG4, points, True, item, (Evidence(result.reference, _date(result.effective), text),)
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
            ev = Evidence(report.reference, _date(report.effective), finding.phrase, is_record_text=True)
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


def _pancreas_biliary(reports: list[ReportFacts]) -> DomainScore:
    imaging = [r for r in reports if r.kind is ReportKind.IMAGING]
    diffuse = affirmed(imaging, Concept.PANCREAS_DIFFUSE_ENLARGEMENT)
    rim = affirmed(imaging, Concept.PANCREAS_CAPSULE_RIM) if diffuse else []
    biliary = affirmed(imaging, Concept.BILIARY_PROXIMAL) if diffuse else []
    return _ranked(
        Domain.PANCREAS_BILIARY,
        reports,
        [
            (19, "pancreas and biliary tree involvement", diffuse + rim + biliary if biliary else []),
            (11, "diffuse pancreas enlargement with capsule-like rim", diffuse + rim if rim else []),
            (8, "diffuse pancreas enlargement", diffuse),
        ],
    )


def _kidney(evidence: PatientEvidence, reports: list[ReportFacts]) -> DomainScore:
    imaging = [r for r in reports if r.kind is ReportKind.IMAGING]
    complement = evidence.lab(codes.C3, codes.C4)
    low = [
        Evidence(
            r.reference,
            _date(r.effective),
            f"{'C3' if r.code == codes.C3 else 'C4'} {_fmt(r.value or Decimal(0))} g/L below {_fmt(r.low or Decimal(0))} g/L",
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
    measured = any(r.value is not None and r.low is not None for r in complement)
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
        Evidence(r.reference, _date(r.effective), f"{label}: {r.original or 'reported'}") for r in results
    )


def _eosinophilia(evidence: PatientEvidence) -> list[Evidence]:
    found = [
        Evidence(r.reference, _date(r.effective), f"eosinophils {_fmt(r.value or Decimal(0))} × 10⁹/L")
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
            text = f"eosinophils {_fmt(pct.value)}% of WBC {_fmt(wbc.value)} × 10⁹/L = {absolute:.2f} × 10⁹/L"
            found.append(Evidence(pct.reference, _date(pct.effective), text))
    return found


def _exclusions(
    evidence: PatientEvidence, presumed_cca: bool, tissue_explains: bool
) -> list[ExclusionResult]:
    """Exclusions found present or unresolved.

    ``tissue_explains``: tissue shows IgG4-RD histology or immunostaining, so the suspicious lesion has been
    investigated. A biopsy without such findings (non-diagnostic, benign) leaves it unresolved: a negative
    biopsy does not exclude cholangiocarcinoma.
    """
    reports = evidence.reports
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
            [Evidence(c.reference, _date(c.onset), "multicentric Castleman disease") for c in castleman],
        )
    ibd = [
        c
        for c in evidence.conditions
        if c.kind in {ConditionKind.ULCERATIVE_COLITIS, ConditionKind.CROHNS_DISEASE}
    ]
    other_organs = [
        f for _r, f in findings_of(reports, OTHER_ORGAN_CONCEPTS, ReportKind.IMAGING) if f.affirmed
    ]
    if ibd and not other_organs:
        ibd_names = {
            ConditionKind.ULCERATIVE_COLITIS: "ulcerative colitis",
            ConditionKind.CROHNS_DISEASE: "Crohn's disease",
        }
        add(
            "ibd-pancreatobiliary-only",
            ExclusionStatus.PRESENT,
            [Evidence(c.reference, _date(c.onset), ibd_names[c.kind]) for c in ibd],
        )
    return out


# ---------------------------------------------------------------------------------------------------------
# Entry and the whole evaluation


def _entry(evidence: PatientEvidence, presumed_cca: bool) -> Entry:
    involved = any(f.affirmed for _r, f in findings_of(evidence.reports, ENTRY_CONCEPTS))
    if involved or presumed_cca:
        return Entry.MET
    return Entry.NOT_MET if evidence.reports else Entry.UNKNOWN


def evaluate(evidence: PatientEvidence, presumed_cca: bool) -> CriteriaResult:
    """Score the criteria for one patient. ``presumed_cca`` is a bile duct lesion managed as CCA."""
    summary = igg4_summary(evidence)
    histo, stain = _pathology_domains(evidence.reports)
    scores = [
        histo,
        stain,
        _serum_igg4(summary),
        _glands(evidence.reports),
        _chest(evidence.reports),
        _pancreas_biliary(evidence.reports),
        _kidney(evidence, evidence.reports),
        _retroperitoneum(evidence.reports),
    ]
    return CriteriaResult(
        entry=_entry(evidence, presumed_cca),
        domains={s.domain: s for s in scores},
        exclusions=_exclusions(evidence, presumed_cca, tissue_explains=histo.points > 0 or stain.points > 0),
        igg4=summary,
    )
