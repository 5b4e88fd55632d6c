"""Tolerant reading of FHIR R4 resources, element by element (CLINICAL_SPEC section 4).

Each resource is projected to the few elements the clinical core reads, into small frozen dataclasses that
keep FHIR's element names (``code.coding[].system``, ``valueQuantity.value``...). Every element is checked
on its own: an element that breaks R4 costs that element only, never the resource and never the call.
Common EHR deviations are repaired on the way and counted:

- a single object where R4 has an array (the CDS Hooks sandbox's draft ``MedicationRequest.category`` and
  ``reasonCode``), or an array of one where R4 has a single object;
- a number sent as a string (``"value": "2.43"``), a code sent as a number;
- a missing element R4 requires but the decision does not use (``MedicationRequest.intent``, ``subject``):
  counted as missing, never a reason to drop the resource.

Nothing else of a resource is validated or even looked at, which is also what keeps reading fast: the cost
is a few dictionary look-ups per element the core uses, whatever the size of the resource. Counts are kept
per resource type and kind of event (:class:`ReadCounts`), never with content, for the hook's log line.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Any, Final, TypeVar

from cds_service.core.dates import to_date

MAX_SHORT_CHARS: Final = 256
"""An id, system, code, unit or status longer than this is not one: the element is skipped."""
MAX_LABEL_CHARS: Final = 4096
"""A ``text`` or ``display`` label is cut to this many characters (counted as repaired)."""
MAX_NUMBER_CHARS: Final = 40
_NUMBER_TEXT = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d{1,3})?")
_MAX_EXPONENT: Final = 30
"""Decimals beyond 10^±30 are not lab values (and would print as thousands of digits)."""


@dataclass
class ReadCounts:
    """What reading repaired, found missing or skipped, by event and resource type (counts only).

    Events: ``repaired`` (an element fixed to R4's shape), ``missing`` (a required element the decision
    does not use is absent), ``skipped_elements`` (an element that could not be read is ignored) and
    ``skipped_resources`` (an entry of the asked type that could not be read at all).
    """

    counts: dict[str, dict[str, int]] = field(default_factory=dict)

    def add(self, event: str, resource_type: str, n: int = 1) -> None:
        """Count ``n`` more ``event`` for ``resource_type``."""
        by_type = self.counts.setdefault(event, {})
        by_type[resource_type] = by_type.get(resource_type, 0) + n

    def merge(self, other: ReadCounts) -> ReadCounts:
        """Add ``other``'s counts to these; returns self."""
        for event, by_type in other.counts.items():
            for resource_type, n in by_type.items():
                self.add(event, resource_type, n)
        return self

    def total(self, event: str) -> int:
        """All counts of ``event``, every resource type."""
        return sum(self.counts.get(event, {}).values())

    @property
    def unreadable(self) -> int:
        """Skipped resources and skipped elements: data the decision could not use."""
        return self.total("skipped_resources") + self.total("skipped_elements")

    def as_log(self) -> dict[str, dict[str, int]]:
        """The counts for the log line, sorted for stable output."""
        return {event: dict(sorted(by_type.items())) for event, by_type in sorted(self.counts.items())}


class _Reader:
    """Element readers for one resource: each counts its repairs and skips against the resource type."""

    __slots__ = ("counts", "resource_type")

    def __init__(self, resource_type: str, counts: ReadCounts) -> None:
        self.resource_type = resource_type
        self.counts = counts

    def repaired(self) -> None:
        self.counts.add("repaired", self.resource_type)

    def skipped(self) -> None:
        self.counts.add("skipped_elements", self.resource_type)

    def require(self, raw: Mapping[str, Any], *names: str) -> None:
        """Count required elements that are absent (they are not read, so nothing else happens)."""
        for name in names:
            if raw.get(name) is None:
                self.counts.add("missing", self.resource_type)

    # Primitive elements.

    def short(self, value: Any) -> str | None:
        """An id, code, system, uri, unit or status: a short string (a number is repaired to text)."""
        if value is None:
            return None
        if isinstance(value, str):
            if len(value) <= MAX_SHORT_CHARS:
                return value
        elif isinstance(value, int | float) and not isinstance(value, bool):
            self.repaired()
            return str(value)
        self.skipped()
        return None

    def label(self, value: Any) -> str | None:
        """A human-readable label (``text``, ``display``), cut to :data:`MAX_LABEL_CHARS`."""
        if value is None:
            return None
        if isinstance(value, str):
            if len(value) > MAX_LABEL_CHARS:
                self.repaired()
                return value[:MAX_LABEL_CHARS]
            return value
        self.skipped()
        return None

    def text(self, value: Any) -> str | None:
        """A long text (report conclusion, attachment data): the reader that uses it caps its length."""
        if value is None or isinstance(value, str):
            return value
        self.skipped()
        return None

    def decimal(self, value: Any) -> Decimal | None:
        """A FHIR decimal: a JSON number, or a number sent as a string (repaired)."""
        if value is None:
            return None
        number: Decimal | None = None
        if isinstance(value, int | float) and not isinstance(value, bool):
            number = _to_decimal(str(value))
        elif isinstance(value, str):
            number = _to_decimal(value.strip())
            if number is not None:
                self.repaired()
        if number is None:
            self.skipped()
        return number

    def when(self, value: Any) -> date | None:
        """A FHIR date, dateTime or instant, as a calendar date."""
        if value is None:
            return None
        if type(value) is str and len(value) >= 10 and value[4] == "-" and value[7] == "-":  # the usual case
            try:
                return date.fromisoformat(value[:10])
            except ValueError:
                pass
        found = to_date(value) if isinstance(value, str) else None
        if found is None:
            self.skipped()
        return found

    # Structure.

    def obj(self, value: Any) -> Mapping[str, Any] | None:
        """A single complex element; an array of one object where R4 has one is repaired."""
        if value is None:
            return None
        if isinstance(value, Mapping):
            return value
        if isinstance(value, list) and len(value) == 1 and isinstance(value[0], Mapping):
            self.repaired()
            return value[0]
        self.skipped()
        return None

    def many(self, value: Any, read: Callable[[Any], _T | None]) -> tuple[_T, ...]:
        """A repeating element; a single object where R4 has an array is repaired."""
        if value is None:
            return ()
        if not isinstance(value, list):
            self.repaired()
            value = [value]
        items = (read(item) for item in value)
        return tuple(item for item in items if item is not None)

    # Datatypes.

    def coding(self, value: Any) -> Coding | None:
        """A Coding: system, code, display."""
        if type(value) is dict:  # the usual case, checked inline: codings are most of what is read
            system, code, display = value.get("system"), value.get("code"), value.get("display")
            if (
                (system is None or (type(system) is str and len(system) <= MAX_SHORT_CHARS))
                and (code is None or (type(code) is str and len(code) <= MAX_SHORT_CHARS))
                and (display is None or (type(display) is str and len(display) <= MAX_LABEL_CHARS))
            ):
                return Coding(system, code, display)
        raw = self.obj(value)
        if raw is None:
            return None
        return Coding(
            self.short(raw.get("system")), self.short(raw.get("code")), self.label(raw.get("display"))
        )

    def concept(self, value: Any) -> CodeableConcept | None:
        """A CodeableConcept: its codings and text."""
        raw = self.obj(value)
        if raw is None:
            return None
        return CodeableConcept(self.many(raw.get("coding"), self.coding), self.label(raw.get("text")))

    def concepts(self, value: Any) -> tuple[CodeableConcept, ...]:
        """A repeating CodeableConcept element."""
        return self.many(value, self.concept)

    def quantity(self, value: Any) -> Quantity | None:
        """A Quantity: value, comparator, unit, system and code."""
        raw = self.obj(value)
        if raw is None:
            return None
        return Quantity(
            self.decimal(raw.get("value")),
            self.short(raw.get("comparator")),
            self.short(raw.get("unit")),
            self.short(raw.get("system")),
            self.short(raw.get("code")),
        )

    def reference(self, value: Any) -> Reference | None:
        """A Reference: its literal ``reference`` only."""
        raw = self.obj(value)
        if raw is None:
            return None
        return Reference(self.short(raw.get("reference")))

    def period(self, value: Any) -> Period | None:
        """A Period: its start."""
        raw = self.obj(value)
        if raw is None:
            return None
        return Period(self.when(raw.get("start")), self.when(raw.get("end")))

    def reference_range(self, value: Any) -> ReferenceRange | None:
        """An Observation.referenceRange: low, high, text."""
        raw = self.obj(value)
        if raw is None:
            return None
        return ReferenceRange(
            self.quantity(raw.get("low")), self.quantity(raw.get("high")), self.label(raw.get("text"))
        )

    def attachment(self, value: Any) -> Attachment | None:
        """An Attachment: content type and inline data (base64)."""
        raw = self.obj(value)
        if raw is None:
            return None
        return Attachment(self.short(raw.get("contentType")), self.text(raw.get("data")))


_T = TypeVar("_T")


def _to_decimal(text: str) -> Decimal | None:
    if len(text) > MAX_NUMBER_CHARS or not _NUMBER_TEXT.fullmatch(text):
        return None
    try:
        number = Decimal(text)
    except InvalidOperation:
        return None
    if not number.is_finite() or (number and abs(number.adjusted()) > _MAX_EXPONENT):
        return None
    return number


# The projections. Element names are FHIR's, so a reader reads ``obs.valueQuantity.value`` either way.


@dataclass(frozen=True, slots=True)
class Coding:
    """FHIR Coding (the elements the core reads)."""

    system: str | None = None
    code: str | None = None
    display: str | None = None


@dataclass(frozen=True, slots=True)
class CodeableConcept:
    """FHIR CodeableConcept."""

    coding: tuple[Coding, ...] = ()
    text: str | None = None


@dataclass(frozen=True, slots=True)
class Quantity:
    """FHIR Quantity."""

    value: Decimal | None = None
    comparator: str | None = None
    unit: str | None = None
    system: str | None = None
    code: str | None = None


@dataclass(frozen=True, slots=True)
class Reference:
    """FHIR Reference (literal reference only)."""

    reference: str | None = None


@dataclass(frozen=True, slots=True)
class Period:
    """FHIR Period, as dates."""

    start: date | None = None
    end: date | None = None


@dataclass(frozen=True, slots=True)
class ReferenceRange:
    """Observation.referenceRange."""

    low: Quantity | None = None
    high: Quantity | None = None
    text: str | None = None


@dataclass(frozen=True, slots=True)
class Attachment:
    """FHIR Attachment (inline data only)."""

    contentType: str | None = None  # noqa: N815 - FHIR's element name
    data: str | None = None


class _Resource:
    """What every projection answers, like fhir.resources models do."""

    __slots__ = ()
    resource_type: str = ""

    def get_resource_type(self) -> str:
        """The FHIR resource type."""
        return self.resource_type


@dataclass(frozen=True, slots=True)
class Observation(_Resource):
    """The elements of an Observation that the lab reader uses."""

    id: str | None = None
    status: str | None = None
    code: CodeableConcept | None = None
    effectiveDateTime: date | None = None  # noqa: N815 - FHIR's element names from here on
    effectivePeriod: Period | None = None  # noqa: N815
    effectiveInstant: date | None = None  # noqa: N815
    issued: date | None = None
    valueQuantity: Quantity | None = None  # noqa: N815
    valueString: str | None = None  # noqa: N815
    valueCodeableConcept: CodeableConcept | None = None  # noqa: N815
    interpretation: tuple[CodeableConcept, ...] = ()
    referenceRange: tuple[ReferenceRange, ...] = ()  # noqa: N815
    resource_type = "Observation"


@dataclass(frozen=True, slots=True)
class Condition(_Resource):
    """The elements of a Condition that the diagnosis reader uses."""

    id: str | None = None
    code: CodeableConcept | None = None
    clinicalStatus: CodeableConcept | None = None  # noqa: N815
    verificationStatus: CodeableConcept | None = None  # noqa: N815
    onsetDateTime: date | None = None  # noqa: N815
    recordedDate: date | None = None  # noqa: N815
    resource_type = "Condition"


@dataclass(frozen=True, slots=True)
class DiagnosticReport(_Resource):
    """The elements of a DiagnosticReport that the report reader uses."""

    id: str | None = None
    status: str | None = None
    category: tuple[CodeableConcept, ...] = ()
    code: CodeableConcept | None = None
    effectiveDateTime: date | None = None  # noqa: N815
    effectivePeriod: Period | None = None  # noqa: N815
    issued: date | None = None
    conclusion: str | None = None
    conclusionCode: tuple[CodeableConcept, ...] = ()  # noqa: N815
    presentedForm: tuple[Attachment, ...] = ()  # noqa: N815
    resource_type = "DiagnosticReport"


@dataclass(frozen=True, slots=True)
class Medication(_Resource):
    """A contained Medication: its id and code."""

    id: str | None = None
    code: CodeableConcept | None = None
    resource_type = "Medication"


@dataclass(frozen=True, slots=True)
class MedicationRequest(_Resource):
    """The elements of a MedicationRequest (draft order or history) that the core uses."""

    id: str | None = None
    status: str | None = None
    intent: str | None = None
    medicationCodeableConcept: CodeableConcept | None = None  # noqa: N815
    medicationReference: Reference | None = None  # noqa: N815
    contained: tuple[Medication, ...] = ()
    category: tuple[CodeableConcept, ...] = ()
    reasonCode: tuple[CodeableConcept, ...] = ()  # noqa: N815
    reasonReference: tuple[Reference, ...] = ()  # noqa: N815
    resource_type = "MedicationRequest"


@dataclass(frozen=True, slots=True)
class MedicationStatement(_Resource):
    """The elements of a MedicationStatement that the medication reader uses."""

    id: str | None = None
    status: str | None = None
    medicationCodeableConcept: CodeableConcept | None = None  # noqa: N815
    medicationReference: Reference | None = None  # noqa: N815
    contained: tuple[Medication, ...] = ()
    resource_type = "MedicationStatement"


@dataclass(frozen=True, slots=True)
class ServiceRequest(_Resource):
    """The elements of a draft ServiceRequest that the order reader uses."""

    id: str | None = None
    status: str | None = None
    intent: str | None = None
    code: CodeableConcept | None = None
    category: tuple[CodeableConcept, ...] = ()
    performerType: CodeableConcept | None = None  # noqa: N815
    reasonCode: tuple[CodeableConcept, ...] = ()  # noqa: N815
    reasonReference: tuple[Reference, ...] = ()  # noqa: N815
    resource_type = "ServiceRequest"


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
