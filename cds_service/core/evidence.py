"""Typed records the clinical core extracts from FHIR resources, and the evidence they give.

Extraction modules (labs, conditions, reports, medications, orders) turn the projected resources of
:mod:`cds_service.core.resources` into these records;
the criteria engine and the card decision read only these, so they can be tested with plain tables.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from enum import StrEnum

from cds_service.core.findings import Concept, TextFinding
from cds_service.core.resources import ReadCounts
from cds_service.core.tissue import Site


class UlnSource(StrEnum):
    """Where a lab's upper limit of normal came from; the card discloses a default."""

    REFERENCE_HIGH = "referenceRange.high"
    REFERENCE_TEXT = "referenceRange.text"
    DEFAULT = "default"


class Polarity(StrEnum):
    """A qualitative lab reading (serology)."""

    POSITIVE = "positive"
    NEGATIVE = "negative"


@dataclass(frozen=True, slots=True)
class LabResult:
    """One usable Observation, its value converted to the code's canonical unit.

    ``value``, ``low`` and ``high`` are in ``unit``; any of them may be missing.
    """

    code: str
    reference: str
    effective: date | None
    unit: str
    value: Decimal | None = None
    low: Decimal | None = None
    high: Decimal | None = None
    uln_source: UlnSource | None = None
    polarity: Polarity | None = None
    original: str = ""
    """The value as the lab reported it, e.g. "2.43 g/L" (rendered escaped)."""
    flagged_low: bool = False
    """C3/C4 only: the lab interpreted the value as low (L, LL); it counts when no low limit is given."""

    @property
    def above_high(self) -> bool:
        """True when the value exceeds its upper reference limit."""
        return self.value is not None and self.high is not None and self.value > self.high

    @property
    def below_low(self) -> bool:
        """True when the value is below its lower reference limit, or flagged low where none is given."""
        if self.value is None:
            return False
        return self.value < self.low if self.low is not None else self.flagged_low

    @property
    def low_known(self) -> bool:
        """True when whether the value is low can be told: a low limit, or a low flag, is given."""
        return self.value is not None and (self.low is not None or self.flagged_low)

    @property
    def positive(self) -> bool:
        """True for a positive serology: interpreted positive, or above the reference high."""
        return self.polarity is Polarity.POSITIVE or (self.polarity is None and self.above_high)


class ConditionKind(StrEnum):
    """The diagnoses the core looks for."""

    ANKYLOSING_SPONDYLITIS = "ankylosing-spondylitis"
    CHOLANGIOCARCINOMA = "cholangiocarcinoma"
    IGG4_RD = "igg4-related-disease"
    ULCERATIVE_COLITIS = "ulcerative-colitis"
    CROHNS_DISEASE = "crohns-disease"
    CASTLEMAN = "castleman"
    BILIARY_STRICTURE = "biliary-stricture"
    """A biliary stricture (K83.1 or SNOMED 235921003): a draft order's reason that acts on the presumption."""


@dataclass(frozen=True, slots=True)
class ConditionFact:
    """A Condition of a kind the core uses, with the statuses that decide how it counts."""

    kind: ConditionKind
    reference: str
    active: bool
    """False when clinicalStatus is inactive, remission or resolved (history still counts)."""
    verification: str | None
    onset: date | None
    matched_by: str
    """"code" or "text"."""


class ReportKind(StrEnum):
    """Imaging or pathology, from the DiagnosticReport's category and code."""

    IMAGING = "imaging"
    PATHOLOGY = "pathology"


@dataclass(frozen=True, slots=True)
class ReportFacts:
    """A DiagnosticReport and the findings read from its conclusion, codes and text."""

    reference: str
    kind: ReportKind
    effective: date | None
    findings: tuple[TextFinding, ...]
    contrast: bool | None = None
    """True/False when the study states contrast or non-contrast; None when unknown."""
    specimen: frozenset[Site] = frozenset()
    """Pathology: the specimen's sites from the title/code text and the specimen lines."""
    attributed_primary: bool = False
    """Pathology: a diagnosis sentence attributes the tumour to a pancreatobiliary primary."""
    in_window: bool = True
    """False when the report is dated before the lookback window: then it gives no points and no exclusion
    (tissue proof of a bile-duct carcinoma still counts). An undated report cannot be shown to be older."""


class MedicationKind(StrEnum):
    """Medication classes that matter for the card."""

    GLUCOCORTICOID = "glucocorticoid"
    IMMUNOMODULATOR = "immunomodulator"


@dataclass(frozen=True, slots=True)
class MedicationFact:
    """A medication of a class the card mentions."""

    kind: MedicationKind
    reference: str
    name: str
    """Our own label for the ingredient (never record text)."""
    active: bool


class OrderAction(StrEnum):
    """Why a draft order acts on a presumed cholangiocarcinoma (CLINICAL_SPEC section 5)."""

    RESECTION = "resection"
    SYSTEMIC_THERAPY = "systemic-therapy"
    REFERRAL = "referral"
    REASON = "reason"


@dataclass(frozen=True, slots=True)
class DraftOrderFacts:
    """A draft order: whether it acts on the presumed CCA and whether its reason names CCA."""

    reference: str
    actions: frozenset[OrderAction]
    reason_is_cca: bool
    """True only when the reason names cholangiocarcinoma (a stricture reason acts, but presumes nothing)."""
    label: str
    """Our own label for what was matched, e.g. "CPT 47130" (never record text)."""
    reason_references: frozenset[str] = frozenset()
    """The order's ``reasonReference`` targets, resolved against the patient's conditions by
    :func:`cds_service.core.orders.resolve_reasons` once they are read."""


@dataclass
class PatientEvidence:
    """Everything the core read for one patient, plus what could not be read."""

    labs: dict[str, list[LabResult]] = field(default_factory=dict)
    conditions: list[ConditionFact] = field(default_factory=list)
    reports: list[ReportFacts] = field(default_factory=list)
    medications: list[MedicationFact] = field(default_factory=list)
    unavailable: set[str] = field(default_factory=set)
    """Prefetch keys whose data could not be had (the EHR's OperationOutcome, a failed fetch)."""
    unit_errors: int = 0
    undated_labs: int = 0
    """Lab results with no date: they cannot be placed in the lookback window and are not used."""
    read: ReadCounts = field(default_factory=ReadCounts)
    """What reading the resources repaired or skipped (for the log line and the card's caveats)."""

    def lab(self, *codes: str) -> list[LabResult]:
        """Results for any of ``codes``, newest first."""
        results = [r for c in codes for r in self.labs.get(c, [])]
        return sorted(results, key=lambda r: r.effective or date.min, reverse=True)

    @property
    def recent_reports(self) -> list[ReportFacts]:
        """Reports within the lookback window: the only ones that give points or exclusions."""
        return [r for r in self.reports if r.in_window]

    def has_condition(self, kind: ConditionKind) -> bool:
        """True when a Condition of ``kind`` is recorded (history included)."""
        return any(c.kind is kind for c in self.conditions)


# Evidence: what the criteria cite for a point or an exclusion.


@dataclass(frozen=True, slots=True)
class Evidence:
    """One piece of evidence: the resource it comes from, its date and what it shows.

    ``text`` is either our own wording (lab values) or a report phrase (record text: render escaped).
    """

    reference: str
    date: str | None
    text: str
    is_record_text: bool = False


def format_decimal(value: Decimal) -> str:
    """A decimal without exponent or trailing zeros, for evidence text ("2.43", "0.864")."""
    return f"{value.normalize():f}"


def iso_date(when: object) -> str | None:
    """A date as ISO text for evidence, or None."""
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
        Evidence(report.reference, iso_date(report.effective), finding.phrase, is_record_text=True)
        for report, finding in findings_of(reports, frozenset({concept}), kind)
        if finding.affirmed and (where is None or where(report, finding))
    ]
