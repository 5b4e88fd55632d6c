"""The per-element reader: the limits on element values, :class:`ReadCounts` and ``_Reader``.

``_Reader`` checks each element on its own, repairs the common EHR deviations and counts its repairs and
skips against the resource type (see the package docstring, CLINICAL_SPEC section 4).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Any, Final, TypeVar

from cds_service.core.dates import to_date
from cds_service.core.resources.projected import (
    Attachment,
    CodeableConcept,
    Coding,
    Period,
    Quantity,
    Reference,
    ReferenceRange,
)

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
