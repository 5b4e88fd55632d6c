"""One patient of the export through the clinical core: what the card would have said, and when.

The index date is when the presumption of cholangiocarcinoma began — the earliest recorded date of its
grounds (a CCA Condition's ``recordedDate``, else its onset; the first imaging report that raised it; an
order whose reason is CCA) — or ``--as-of`` for everyone. The card at the index date is the one
patient-view would have shown then, from the data recorded by then. The order hooks' question: was an
order that acts on the presumption (resection, systemic therapy, referral, a CCA or stricture reason)
placed on or after the index date, and which card would order-sign have shown on the day of the first?
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import date
from typing import Any, Final

from cds_service.audit.ndjson import parse_line
from cds_service.core.assessment import (
    Assessment,
    CoreConfig,
    DraftOrders,
    assess,
    read_evidence,
    read_orders,
)
from cds_service.core.codes import IGG4
from cds_service.core.dates import to_date
from cds_service.core.evidence import ConditionKind, DraftOrderFacts, OrderAction, PatientEvidence
from cds_service.core.exclusions import ExclusionStatus
from cds_service.core.orders import resolve_reasons
from cds_service.core.presumption import Indicator, presumption

PREFETCH_KEYS: Final = {
    "Condition": "conditions",
    "Observation": "observations",
    "DiagnosticReport": "reports",
    "MedicationRequest": "medicationRequests",
    "MedicationStatement": "medicationStatements",
}
ORDER_TYPES: Final = ("ServiceRequest", "MedicationRequest")
NOT_PLACED: Final = frozenset({"entered-in-error", "draft"})
_DATE_ELEMENTS: Final = {
    "Observation": ("effectiveDateTime", "effectiveInstant", "effectivePeriod.start", "issued"),
    "DiagnosticReport": ("effectiveDateTime", "effectivePeriod.start", "issued"),
    "Condition": ("recordedDate", "onsetDateTime", "onsetPeriod.start"),
    "MedicationRequest": ("authoredOn",),
    "ServiceRequest": ("authoredOn",),
    "MedicationStatement": ("effectiveDateTime", "effectivePeriod.start", "dateAsserted"),
}


@dataclass(frozen=True)
class AuditOptions:
    """How every patient is evaluated: the core's parameters and an optional common date."""

    config: CoreConfig
    as_of: date | None = None
    today: date | None = None
    """The date of the audit run, for finding grounds in the whole record (the system date by default)."""


@dataclass
class PatientRow:
    """One patient's line of patients.csv: codes, dates and counts, never names or free text."""

    patient: str
    index_date: date | None
    index_source: str
    """condition, report, order, as-of or none."""
    presumed: bool
    tissue_proven: bool
    indicator: str
    total: int | None
    maximum_possible: int | None
    classification: str | None
    igg4_measured: bool
    igg4_ratio: float | None
    exclusions_present: str
    exclusions_unresolved: str
    ankylosing_spondylitis: bool
    order_after_index: bool
    order_date: date | None
    order_actions: str
    order_indicator: str
    order_total: int | None
    order_classification: str | None
    order_igg4_measured: bool | None
    """Serum IgG4 measured by the day of the first acting order (None without such an order)."""
    days_to_resection: int | None
    days_to_chemotherapy: int | None
    resources: int
    skipped_resources: int
    fixture: str = ""

    def as_dict(self) -> dict[str, Any]:
        """The row as a dict of plain values (dates stay ``date``)."""
        return asdict(self)


def _element(resource: Mapping[str, Any], dotted: str) -> Any:
    value: Any = resource
    for part in dotted.split("."):
        if not isinstance(value, Mapping):
            return None
        value = value.get(part)
    return value


def resource_date(resource: Mapping[str, Any]) -> date | None:
    """When a resource was recorded or took effect, from the first of its date elements that has one."""
    for element in _DATE_ELEMENTS.get(str(resource.get("resourceType")), ()):
        found = to_date(_element(resource, element))
        if found is not None:
            return found
    return None


def known_by(resources: Iterable[Mapping[str, Any]], day: date) -> list[Mapping[str, Any]]:
    """The resources dated on or before ``day``; undated ones are kept (they cannot be placed in time)."""
    kept = []
    for resource in resources:
        when = resource_date(resource)
        if when is None or when <= day:
            kept.append(resource)
    return kept


def _bundle(resources: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    return {"resourceType": "Bundle", "type": "searchset", "entry": [{"resource": r} for r in resources]}


def prefetch_shape(resources: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """The patient's resources as the hook's prefetch keys (one searchset Bundle per key)."""
    by_key: dict[str, list[Mapping[str, Any]]] = {key: [] for key in PREFETCH_KEYS.values()}
    for resource in resources:
        key = PREFETCH_KEYS.get(str(resource.get("resourceType")))
        if key is not None:
            by_key[key].append(resource)
    return {key: _bundle(items) for key, items in by_key.items()}


def evidence_at(resources: Sequence[Mapping[str, Any]], day: date, config: CoreConfig) -> PatientEvidence:
    """The evidence the hook would have read on ``day``: what was recorded by then, with ``day`` as today."""
    return read_evidence(prefetch_shape(known_by(resources, day)), set(), config, day)


def _placed_orders(resources: Sequence[Mapping[str, Any]]) -> DraftOrders:
    orders = [
        r
        for r in resources
        if r.get("resourceType") in ORDER_TYPES
        and r.get("status") not in NOT_PLACED
        and r.get("intent") not in ("proposal", "plan")
    ]
    return read_orders(_bundle(orders))


def _grounds_dates(
    resources: Sequence[Mapping[str, Any]], evidence: PatientEvidence, orders: DraftOrders
) -> list[tuple[date, str]]:
    """Dated grounds of the presumption anywhere in the record: (date, condition | report | order)."""
    by_ref = {f"{r.get('resourceType')}/{r.get('id')}": r for r in resources}
    facts = _resolved(orders, evidence)
    found = presumption(evidence, facts)
    sources = {
        "Condition": "condition",
        "DiagnosticReport": "report",
        "ServiceRequest": "order",
        "MedicationRequest": "order",
    }
    dated = []
    for ref in found.grounds:
        raw = by_ref.get(ref)
        when = resource_date(raw) if raw is not None else None
        if raw is not None and when is not None:
            dated.append((when, sources.get(str(raw.get("resourceType")), "other")))
    return sorted(dated)


def _resolved(orders: DraftOrders, evidence: PatientEvidence) -> list[DraftOrderFacts]:
    """The orders' facts with reasonReference resolved against the patient's conditions (as assess does)."""
    cca = frozenset(c.reference for c in evidence.conditions if c.kind is ConditionKind.CHOLANGIOCARCINOMA)
    stricture = frozenset(
        c.reference for c in evidence.conditions if c.kind is ConditionKind.BILIARY_STRICTURE
    )
    return [resolve_reasons(f, cca, stricture) for f in orders.facts]


def _igg4_measured(evidence: PatientEvidence) -> bool:
    return any(lab.value is not None for lab in evidence.labs.get(IGG4, []))


def _card_fields(assessment: Assessment) -> tuple[str, int | None, int | None, str | None]:
    result = assessment.criteria
    if result is None:
        return assessment.indicator.value, None, None, None
    return assessment.indicator.value, result.total, result.maximum_possible, result.classification.value


def evaluate_patient(
    patient_id: str, resources: Sequence[Mapping[str, Any]], options: AuditOptions
) -> PatientRow:
    """The audit row of one patient (``patient`` is the FHIR id; the runner pseudonymises it)."""
    today = options.today or date.today()
    orders = _placed_orders(resources)
    if options.as_of is not None:
        index: date | None = options.as_of
        source = "as-of"
    else:
        whole = read_evidence(prefetch_shape(resources), set(), options.config, today)
        grounds = _grounds_dates(resources, whole, orders)
        index, source = grounds[0] if grounds else (None, "none")
    row = PatientRow(
        patient=patient_id,
        index_date=index,
        index_source=source,
        presumed=False,
        tissue_proven=False,
        indicator=Indicator.NONE.value,
        total=None,
        maximum_possible=None,
        classification=None,
        igg4_measured=False,
        igg4_ratio=None,
        exclusions_present="",
        exclusions_unresolved="",
        ankylosing_spondylitis=False,
        order_after_index=False,
        order_date=None,
        order_actions="",
        order_indicator=Indicator.NONE.value,
        order_total=None,
        order_classification=None,
        order_igg4_measured=None,
        days_to_resection=None,
        days_to_chemotherapy=None,
        resources=len(resources),
        skipped_resources=0,
    )
    if index is None:
        return row
    evidence = evidence_at(resources, index, options.config)
    card = assess("patient-view", DraftOrders([], []), evidence)
    row.presumed = card.presumption.present
    row.tissue_proven = bool(card.presumption.tissue_proven)
    row.indicator, row.total, row.maximum_possible, row.classification = _card_fields(card)
    row.igg4_measured = _igg4_measured(evidence)
    row.ankylosing_spondylitis = evidence.has_condition(ConditionKind.ANKYLOSING_SPONDYLITIS)
    row.skipped_resources = evidence.read.total("skipped_resources") + orders.read.total("skipped_resources")
    result = card.criteria
    if result is not None:
        row.igg4_ratio = float(result.igg4.ratio) if result.igg4 is not None else None
        row.exclusions_present = ";".join(
            e.id for e in result.exclusions if e.status is ExclusionStatus.PRESENT
        )
        row.exclusions_unresolved = ";".join(
            e.id for e in result.exclusions if e.status is ExclusionStatus.UNRESOLVED
        )
    _order_question(row, resources, orders, evidence=evidence, index=index, config=options.config)
    return row


def _order_question(
    row: PatientRow,
    resources: Sequence[Mapping[str, Any]],
    orders: DraftOrders,
    *,
    evidence: PatientEvidence,
    index: date,
    config: CoreConfig,
) -> None:
    """Fill the order columns: the first acting order on or after the index date and its card that day."""
    acting: list[tuple[date, int]] = []
    resection: list[int] = []
    chemotherapy: list[int] = []
    dates = {
        f"{r.get('resourceType')}/{r.get('id')}": resource_date(r)
        for r in resources
        if r.get("resourceType") in ORDER_TYPES
    }
    for position, (resource, facts) in enumerate(
        zip(orders.resources, _resolved(orders, evidence), strict=True)
    ):
        when = dates.get(f"{resource.get_resource_type()}/{resource.id}")
        if when is None or when < index or not facts.actions:
            continue
        acting.append((when, position))
        if OrderAction.RESECTION in facts.actions:
            resection.append((when - index).days)
        if OrderAction.SYSTEMIC_THERAPY in facts.actions:
            chemotherapy.append((when - index).days)
    row.days_to_resection = min(resection, default=None)
    row.days_to_chemotherapy = min(chemotherapy, default=None)
    if not acting:
        return
    acting.sort()
    first_day = acting[0][0]
    chosen = [p for d, p in acting if d == first_day]
    day_orders = DraftOrders([orders.resources[p] for p in chosen], [orders.facts[p] for p in chosen])
    day_evidence = evidence_at(resources, first_day, config)
    card = assess("order-sign", day_orders, day_evidence)
    row.order_igg4_measured = _igg4_measured(day_evidence)
    row.order_after_index = True
    row.order_date = first_day
    row.order_actions = ";".join(sorted({a.value for o in card.orders for a in o.actions}))
    row.order_indicator, row.order_total, _, row.order_classification = _card_fields(card)


def evaluate_lines(patient_id: str, lines: Sequence[bytes], options: AuditOptions) -> PatientRow:
    """:func:`evaluate_patient` on the raw NDJSON lines of one patient (what the process pool is sent)."""
    resources = [r for r in (parse_line(line) for line in lines) if r is not None]
    return evaluate_patient(patient_id, resources, options)
