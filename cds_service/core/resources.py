"""Lenient, resource-by-resource parsing of FHIR R4 data with fhir.resources' R4B models.

A resource that fails validation is skipped and counted (by type, never by content), and parsing goes on.
Only the resources the caller asks for are validated: entries are filtered on raw JSON first, which keeps
large prefetch Bundles cheap.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Final

import orjson
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
    parsed: list[Any] = []
    for raw in iter_raw_resources(data):
        if raw.get("resourceType") != resource_type or (keep is not None and not keep(raw)):
            continue
        result = _cache.get_or_validate(resource_type, raw)
        if isinstance(result, _Invalid):
            skipped.add(resource_type)
            logger.info(
                "skipped invalid resource", extra={"resource_type": resource_type, "fields": result.fields}
            )
        else:
            parsed.append(result)
    return parsed


@dataclass(frozen=True, slots=True)
class _Invalid:
    """A resource that failed validation: only the failing field paths (never values) are kept."""

    fields: tuple[str, ...]


class _ValidationCache:
    """A bounded, thread-safe LRU of validated models keyed by the resource's canonical JSON.

    The same resources come back on every hook of a visit (order-select, order-sign, patient-view) and in
    every prefetch of the same patient; validating each once saves most of the parsing time. Entries live
    in process memory only. Models are shared between calls, so the core must never modify them.
    """

    def __init__(self, size: int) -> None:
        self._size = size
        self._entries: OrderedDict[bytes, Any] = OrderedDict()
        self._lock = threading.Lock()

    def get_or_validate(self, resource_type: str, raw: Mapping[str, Any]) -> Any:
        try:
            key = resource_type.encode() + b"\0" + orjson.dumps(raw, option=orjson.OPT_SORT_KEYS)
        except TypeError:  # not JSON-serialisable (never the case for parsed JSON): validate uncached
            return _validate(resource_type, raw)
        with self._lock:
            if key in self._entries:
                self._entries.move_to_end(key)
                return self._entries[key]
        result = _validate(resource_type, raw)
        with self._lock:
            self._entries[key] = result
            if len(self._entries) > self._size:
                self._entries.popitem(last=False)
        return result

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


VALIDATION_CACHE_SIZE: Final = 4096
_cache = _ValidationCache(VALIDATION_CACHE_SIZE)


def _validate(resource_type: str, raw: Mapping[str, Any]) -> Any:
    try:
        return MODELS[resource_type].model_validate(raw)
    except (ValidationError, ValueError, TypeError) as exc:
        # Keep the failing field paths only: the error text can quote record values.
        return _Invalid(tuple(_error_fields(exc)))


def clear_cache() -> None:
    """Forget every cached model (they hold record data in process memory)."""
    _cache.clear()


def _error_fields(exc: Exception) -> list[str]:
    if isinstance(exc, ValidationError):
        return sorted({".".join(str(p) for p in err.get("loc", ())) for err in exc.errors()})[:10]
    return [type(exc).__name__]
