"""The clinical core's entry point: from FHIR JSON to a decision, with no web framework involved.

Two steps so the web edge can answer order hooks without patient data when no order acts on a presumed
cholangiocarcinoma: :func:`read_orders` then, only when needed, :func:`read_evidence` and :func:`assess`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any, Final

from cds_service.core.conditions import extract_conditions
from cds_service.core.criteria import CriteriaResult, evaluate
from cds_service.core.dates import window_start
from cds_service.core.evidence import ConditionKind, DraftOrderFacts, PatientEvidence
from cds_service.core.labs import extract_labs, wanted_observation
from cds_service.core.medications import extract_medications
from cds_service.core.orders import classify_order, resolve_reasons
from cds_service.core.presumption import Indicator, Presumption, acting_orders, choose_indicator, presumption
from cds_service.core.reports import extract_reports
from cds_service.core.resources import RawFilter, ReadCounts, iter_raw_resources, read_resources

ORDER_HOOKS: Final = frozenset({"order-sign", "order-select"})
_CHUNK: Final = 32
"""Resources read between two looks at the clock when evaluation has a deadline."""


@dataclass(frozen=True)
class CoreConfig:
    """The clinical parameters of CLINICAL_SPEC section 4."""

    lookback_years: float = 3.0
    default_igg4_uln: Decimal = Decimal("1.35")


@dataclass
class DraftOrders:
    """The hook's draft orders, parsed, and which of them act on a presumed CCA."""

    resources: list[Any]
    facts: list[DraftOrderFacts]
    read: ReadCounts = field(default_factory=ReadCounts)

    @property
    def acting(self) -> list[DraftOrderFacts]:
        """Orders that act on a presumed CCA."""
        return acting_orders(self.facts)

    @property
    def may_act(self) -> bool:
        """True when an order acts on a presumed CCA, or may once its reasonReference is resolved."""
        return bool(self.acting) or any(r.reasonReference for r in self.resources)


def read_orders(draft_orders: Any, selections: Any = None) -> DraftOrders:
    """Read the draft ServiceRequests and MedicationRequests of ``context.draftOrders`` tolerantly.

    ``selections`` (order-select: "Type/id" of the orders just selected) limits the orders considered to
    those, so an order selected earlier does not raise the card again on every later selection. Without a
    usable list, every draft order counts.
    """
    read = ReadCounts()
    resources = read_resources(draft_orders, "ServiceRequest", read) + read_resources(
        draft_orders, "MedicationRequest", read
    )
    if isinstance(selections, list) and selections and all(isinstance(s, str) for s in selections):
        chosen = set(selections)
        resources = [r for r in resources if f"{r.get_resource_type()}/{r.id}" in chosen]
    return DraftOrders(resources, [classify_order(r) for r in resources], read)


def needs_patient_data(hook: str, orders: DraftOrders) -> bool:
    """Order hooks need patient data only when an order may act on a presumed CCA; patient-view always."""
    return hook not in ORDER_HOOKS or orders.may_act


def read_evidence(
    data: Mapping[str, Any],
    unavailable: set[str],
    config: CoreConfig,
    today: date,
    *,
    deadline: float | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> PatientEvidence:
    """Extract the evidence from prefetch-shaped data (key -> Bundle, resource or None).

    Keys follow :mod:`cds_service.hooks.queries`; ``unavailable`` names the keys whose data could not be had.
    With a ``deadline`` (a ``clock`` instant) resources are read in small batches until it passes; a key not
    read in full by then joins ``unavailable``, so the card reports incomplete data rather than failing.
    """
    evidence = PatientEvidence(unavailable=set(unavailable))
    reader = _TimedReader(evidence, deadline, clock)
    since = window_start(today, config.lookback_years)
    observations = reader.read(data, "observations", "Observation", keep=wanted_observation)
    labs = extract_labs(observations, since, config.default_igg4_uln)
    evidence.labs, evidence.unit_errors, evidence.undated_labs = labs.results, labs.unit_errors, labs.undated
    evidence.conditions = extract_conditions(reader.read(data, "conditions", "Condition"))
    reports = reader.read(data, "reports", "DiagnosticReport")
    for start in range(0, len(reports), _CHUNK):  # the report reader is the costly step: timed too
        if reader.late("reports"):
            break
        evidence.reports += extract_reports(reports[start : start + _CHUNK], since=since)
    medications = reader.read(data, "medicationRequests", "MedicationRequest")
    medications += reader.read(data, "medicationStatements", "MedicationStatement")
    evidence.medications = extract_medications(medications)
    return evidence


class _TimedReader:
    """Parses prefetch keys in batches while time is left; keys cut short are marked unavailable."""

    def __init__(self, evidence: PatientEvidence, deadline: float | None, clock: Callable[[], float]) -> None:
        self._evidence = evidence
        self._deadline = deadline
        self._clock = clock

    def late(self, key: str) -> bool:
        """True (and ``key`` marked unavailable) when the deadline has passed."""
        if self._deadline is None or self._clock() < self._deadline:
            return False
        self._evidence.unavailable.add(key)
        return True

    def read(
        self, data: Mapping[str, Any], key: str, resource_type: str, keep: RawFilter | None = None
    ) -> list[Any]:
        """The resources of ``resource_type`` under ``key``, as many as time allows."""
        value = data.get(key)
        counts = self._evidence.read
        if self._deadline is None:
            return read_resources(value, resource_type, counts, keep=keep)
        raw = list(iter_raw_resources(value))
        projected: list[Any] = []
        for start in range(0, len(raw), _CHUNK):
            if self.late(key):
                break
            batch = {
                "resourceType": "Bundle",
                "entry": [{"resource": r} for r in raw[start : start + _CHUNK]],
            }
            projected += read_resources(batch, resource_type, counts, keep=keep)
        return projected


@dataclass(frozen=True)
class Assessment:
    """The core's answer for one hook call."""

    indicator: Indicator
    presumption: Presumption
    orders: list[DraftOrderFacts]
    evidence: PatientEvidence
    criteria: CriteriaResult | None
    """None when no card is considered (no presumption, or no order acting on it)."""


def assess(hook: str, orders: DraftOrders, evidence: PatientEvidence) -> Assessment:
    """Decide the card for a hook call from the patient's evidence and the draft orders."""
    cca_refs = frozenset(
        c.reference for c in evidence.conditions if c.kind is ConditionKind.CHOLANGIOCARCINOMA
    )
    stricture_refs = frozenset(
        c.reference for c in evidence.conditions if c.kind is ConditionKind.BILIARY_STRICTURE
    )
    facts = [resolve_reasons(f, cca_refs, stricture_refs) for f in orders.facts]
    found = presumption(evidence, facts)
    acting = acting_orders(facts)
    if not found.present or (hook in ORDER_HOOKS and not acting):
        return Assessment(Indicator.NONE, found, acting, evidence, None)
    result = evaluate(evidence, presumed_cca=True)
    return Assessment(choose_indicator(result, evidence), found, acting, evidence, result)
