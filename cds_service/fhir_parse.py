"""Lenient, resource-by-resource parsing of FHIR R4 data with fhir.resources' R4B models.

A resource that fails validation is skipped and counted (by type, never by content), and parsing goes on.
Only the resources the caller asks for are validated: entries are filtered on raw JSON first, which keeps
large prefetch Bundles cheap.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from fhir.resources.R4B.condition import Condition
from fhir.resources.R4B.diagnosticreport import DiagnosticReport
from fhir.resources.R4B.medicationrequest import MedicationRequest
from fhir.resources.R4B.medicationstatement import MedicationStatement
from fhir.resources.R4B.observation import Observation
from fhir.resources.R4B.patient import Patient
from fhir.resources.R4B.servicerequest import ServiceRequest
from pydantic import ValidationError

from cds_service.errors import SkippedResources

logger = logging.getLogger(__name__)

MODELS: dict[str, Any] = {
    "Condition": Condition,
    "DiagnosticReport": DiagnosticReport,
    "MedicationRequest": MedicationRequest,
    "MedicationStatement": MedicationStatement,
    "Observation": Observation,
    "Patient": Patient,
    "ServiceRequest": ServiceRequest,
}

RawFilter = Callable[[Mapping[str, Any]], bool]


def iter_raw_resources(data: Any) -> Iterator[Mapping[str, Any]]:
    """Yield the JSON resources inside a prefetch value: a Bundle's entries, or a bare resource.

    Anything that is not a JSON object with a ``resourceType`` is ignored, so garbage never raises.
    """
    if not isinstance(data, Mapping):
        return
    if data.get("resourceType") == "Bundle":
        entries = data.get("entry")
        if not isinstance(entries, list):
            return
        for entry in entries:
            resource = entry.get("resource") if isinstance(entry, Mapping) else None
            if isinstance(resource, Mapping) and isinstance(resource.get("resourceType"), str):
                yield resource
    elif isinstance(data.get("resourceType"), str):
        yield data


def parse_resources(
    data: Any,
    resource_type: str,
    skipped: SkippedResources,
    keep: RawFilter | None = None,
) -> list[Any]:
    """Validate the resources of ``resource_type`` in ``data`` that pass ``keep``; skip invalid ones.

    Returns fhir.resources R4B model instances. Invalid resources are counted in ``skipped``.
    """
    model = MODELS[resource_type]
    parsed: list[Any] = []
    for raw in iter_raw_resources(data):
        if raw.get("resourceType") != resource_type or (keep is not None and not keep(raw)):
            continue
        try:
            parsed.append(model.model_validate(raw))
        except (ValidationError, ValueError, TypeError) as exc:
            skipped.add(resource_type)
            # Log the type and the failing field paths only: the error text can quote record values.
            fields = _error_fields(exc)
            logger.info("skipped invalid resource", extra={"resource_type": resource_type, "fields": fields})
    return parsed


def _error_fields(exc: Exception) -> list[str]:
    if isinstance(exc, ValidationError):
        return sorted({".".join(str(p) for p in err.get("loc", ())) for err in exc.errors()})[:10]
    return [type(exc).__name__]


def raw_codes(raw: Mapping[str, Any], path: str = "code") -> set[tuple[str, str]]:
    """The (system, code) pairs of a raw resource's CodeableConcept at ``path``, for cheap pre-filtering."""
    concept = raw.get(path)
    if not isinstance(concept, Mapping):
        return set()
    codings = concept.get("coding")
    if not isinstance(codings, list):
        return set()
    return {
        (str(c.get("system", "")), str(c.get("code", "")))
        for c in codings
        if isinstance(c, Mapping) and c.get("code") is not None
    }
