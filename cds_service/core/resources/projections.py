"""The projections: one per resource type the core reads (:data:`PROJECTIONS`), and the entry points
that find resources in a prefetch value and project them (:func:`read_resource`, :func:`read_resources`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any, Final

from cds_service.core.resources.projected import (
    Condition,
    DiagnosticReport,
    Medication,
    MedicationRequest,
    MedicationStatement,
    Observation,
    ServiceRequest,
)
from cds_service.core.resources.reader import ReadCounts, _Reader


def _observation(r: _Reader, raw: Mapping[str, Any]) -> Observation:
    r.require(raw, "status", "code")
    return Observation(
        id=r.short(raw.get("id")),
        status=r.short(raw.get("status")),
        code=r.concept(raw.get("code")),
        effectiveDateTime=r.when(raw.get("effectiveDateTime")),
        effectivePeriod=r.period(raw.get("effectivePeriod")),
        effectiveInstant=r.when(raw.get("effectiveInstant")),
        issued=r.when(raw.get("issued")),
        valueQuantity=r.quantity(raw.get("valueQuantity")),
        valueString=r.label(raw.get("valueString")),
        valueCodeableConcept=r.concept(raw.get("valueCodeableConcept")),
        interpretation=r.concepts(raw.get("interpretation")),
        referenceRange=r.many(raw.get("referenceRange"), r.reference_range),
    )


def _condition(r: _Reader, raw: Mapping[str, Any]) -> Condition:
    r.require(raw, "subject")
    return Condition(
        id=r.short(raw.get("id")),
        code=r.concept(raw.get("code")),
        clinicalStatus=r.concept(raw.get("clinicalStatus")),
        verificationStatus=r.concept(raw.get("verificationStatus")),
        onsetDateTime=r.when(raw.get("onsetDateTime")),
        recordedDate=r.when(raw.get("recordedDate")),
    )


def _diagnostic_report(r: _Reader, raw: Mapping[str, Any]) -> DiagnosticReport:
    r.require(raw, "status", "code")
    return DiagnosticReport(
        id=r.short(raw.get("id")),
        status=r.short(raw.get("status")),
        category=r.concepts(raw.get("category")),
        code=r.concept(raw.get("code")),
        effectiveDateTime=r.when(raw.get("effectiveDateTime")),
        effectivePeriod=r.period(raw.get("effectivePeriod")),
        issued=r.when(raw.get("issued")),
        conclusion=r.text(raw.get("conclusion")),
        conclusionCode=r.concepts(raw.get("conclusionCode")),
        presentedForm=r.many(raw.get("presentedForm"), r.attachment),
    )


def _contained_medications(r: _Reader, value: Any) -> tuple[Medication, ...]:
    def read(item: Any) -> Medication | None:
        raw = r.obj(item)
        if raw is None or raw.get("resourceType") != "Medication":
            return None
        return Medication(id=r.short(raw.get("id")), code=r.concept(raw.get("code")))

    return r.many(value, read)


def _medication_request(r: _Reader, raw: Mapping[str, Any]) -> MedicationRequest:
    r.require(raw, "status", "intent", "subject")
    if raw.get("medicationCodeableConcept") is None and raw.get("medicationReference") is None:
        r.counts.add("missing", r.resource_type)
    return MedicationRequest(
        id=r.short(raw.get("id")),
        status=r.short(raw.get("status")),
        intent=r.short(raw.get("intent")),
        medicationCodeableConcept=r.concept(raw.get("medicationCodeableConcept")),
        medicationReference=r.reference(raw.get("medicationReference")),
        contained=_contained_medications(r, raw.get("contained")),
        category=r.concepts(raw.get("category")),
        reasonCode=r.concepts(raw.get("reasonCode")),
        reasonReference=r.many(raw.get("reasonReference"), r.reference),
    )


def _medication_statement(r: _Reader, raw: Mapping[str, Any]) -> MedicationStatement:
    r.require(raw, "status", "subject")
    return MedicationStatement(
        id=r.short(raw.get("id")),
        status=r.short(raw.get("status")),
        medicationCodeableConcept=r.concept(raw.get("medicationCodeableConcept")),
        medicationReference=r.reference(raw.get("medicationReference")),
        contained=_contained_medications(r, raw.get("contained")),
    )


def _service_request(r: _Reader, raw: Mapping[str, Any]) -> ServiceRequest:
    r.require(raw, "status", "intent", "subject")
    return ServiceRequest(
        id=r.short(raw.get("id")),
        status=r.short(raw.get("status")),
        intent=r.short(raw.get("intent")),
        code=r.concept(raw.get("code")),
        category=r.concepts(raw.get("category")),
        performerType=r.concept(raw.get("performerType")),
        reasonCode=r.concepts(raw.get("reasonCode")),
        reasonReference=r.many(raw.get("reasonReference"), r.reference),
    )


PROJECTIONS: Final[dict[str, Callable[[_Reader, Mapping[str, Any]], Any]]] = {
    "Condition": _condition,
    "DiagnosticReport": _diagnostic_report,
    "MedicationRequest": _medication_request,
    "MedicationStatement": _medication_statement,
    "Observation": _observation,
    "ServiceRequest": _service_request,
}
"""The resource types the core reads, each with its projection."""

RawFilter = Callable[[Mapping[str, Any]], bool]


def iter_raw_resources(data: Any) -> Iterator[Mapping[str, Any]]:
    """Yield the JSON resources inside a prefetch value: a Bundle's entries, or a bare resource.

    Anything that is not a JSON object with a ``resourceType`` is ignored, so garbage never raises. A
    Bundle whose ``entry`` is a single object is read as an entry of one.
    """
    if not isinstance(data, Mapping):
        return
    if data.get("resourceType") == "Bundle":
        entries = data.get("entry")
        if isinstance(entries, Mapping):
            entries = [entries]
        if not isinstance(entries, list):
            return
        for entry in entries:
            resource = entry.get("resource") if isinstance(entry, Mapping) else None
            if isinstance(resource, Mapping) and isinstance(resource.get("resourceType"), str):
                yield resource
    elif isinstance(data.get("resourceType"), str):
        yield data


def read_resource(resource_type: str, raw: Mapping[str, Any], counts: ReadCounts | None = None) -> Any:
    """Project one JSON resource of ``resource_type`` to the elements the core reads.

    Never raises for bad element values: they are repaired or skipped and counted in ``counts``.
    """
    return PROJECTIONS[resource_type](_Reader(resource_type, counts or ReadCounts()), raw)


def read_resources(
    data: Any,
    resource_type: str,
    counts: ReadCounts,
    keep: RawFilter | None = None,
) -> list[Any]:
    """Project the resources of ``resource_type`` in ``data`` that pass ``keep`` (a cheap raw-JSON filter).

    A resource is skipped whole (and counted) only when it cannot be read at all.
    """
    project = PROJECTIONS[resource_type]
    reader = _Reader(resource_type, counts)
    projected: list[Any] = []
    for raw in iter_raw_resources(data):
        if raw.get("resourceType") != resource_type or (keep is not None and not keep(raw)):
            continue
        try:
            projected.append(project(reader, raw))
        except (TypeError, ValueError, AttributeError, RecursionError):  # defence in depth: never the call
            counts.add("skipped_resources", resource_type)
    return projected
