"""UCUM unit conversion for the labs the service compares, built on pint.

pint does not accept UCUM's power-of-ten factors (``10*9/L``) or annotations (``{cells}/uL``), so a unit
string is split into an exact decimal factor and a pint unit expression before pint converts it.
"""

from __future__ import annotations

import math
import re
from decimal import Decimal
from functools import cache, lru_cache
from typing import Any, Final

import pint


class UnitError(ValueError):
    """A unit is unknown, or of a dimension that cannot be converted to the one asked for."""

    def __init__(self, unit: str, target: str) -> None:
        super().__init__(f"cannot convert unit {unit!r} to {target!r}")
        self.unit = unit
        self.target = target


MASS_CONCENTRATION: Final = "g/L"
CELL_COUNT: Final = "10*9/L"

MAX_UNIT_CHARS: Final = 64
"""A unit longer than this is not a unit: refused before any pattern reads it."""
_POWER = re.compile(r"^\s*10\s*[*^]\s*(\d{1,2})\s*")
_ANNOTATION = re.compile(r"\{[^{}]{0,64}\}")  # bounded, and cannot restart inside itself: linear
# What a unit expression may contain once UCUM's factors and annotations are gone: letters, digits and the
# operators pint understands. Anything else is refused before pint's parser sees it.
_UNIT_SYNTAX = re.compile(r"(?!.*//)(?:1/)?[A-Za-z%][A-Za-z0-9%/*. -]{0,39}")
_EXPONENT = re.compile(r"(?<=[A-Za-z])(-?\d+)")  # UCUM "mm3", "uL-1" -> pint "mm**3", "uL**-1"
# Common non-UCUM spellings seen in lab feeds, mapped to UCUM.
_ALIASES: Final[dict[str, str]] = {
    "k/ul": "10*3/uL",
    "k/µl": "10*3/uL",
    "x10^9/l": "10*9/L",
    "x10e9/l": "10*9/L",
    "x 10^9/l": "10*9/L",
    "10^9/l": "10*9/L",
    "x10^3/ul": "10*3/uL",
    "x10e3/ul": "10*3/uL",
    "10^3/ul": "10*3/uL",
    "cells/ul": "/uL",
    "cells/mm3": "/mm3",
    "/mm3": "/mm3",
    "g/l": "g/L",
    "mg/dl": "mg/dL",
    "mg/l": "mg/L",
}


@cache
def _registry() -> pint.UnitRegistry[Any]:
    # Built once, lazily: creating a registry costs a few hundred milliseconds.
    return pint.UnitRegistry(cache_folder=None)


def _split(unit: str) -> tuple[Decimal, str]:
    """Split a UCUM unit into an exact factor and a pint-parsable expression."""
    text = _ALIASES.get(unit.strip().lower(), unit.strip())
    text = _ANNOTATION.sub("", text).replace("µ", "u")
    factor = Decimal(1)
    match = _POWER.match(text)
    if match:
        factor = Decimal(10) ** int(match.group(1))
        text = text[match.end() :]
    text = _EXPONENT.sub(r"**\1", text)
    if text.startswith("/"):
        text = "1" + text
    return factor, text or "dimensionless"


@lru_cache(maxsize=1024)
def conversion_factor(unit: str, target: str) -> Decimal:
    """The exact factor that turns a value in ``unit`` into ``target`` (both UCUM).

    Raises :class:`UnitError` when either unit is unknown, longer than :data:`MAX_UNIT_CHARS`, or their
    dimensions differ. Bounded cache: units come from the records, so a caller could send many.
    """
    if len(unit) > MAX_UNIT_CHARS or len(target) > MAX_UNIT_CHARS:
        raise UnitError(unit[:MAX_UNIT_CHARS], target[:MAX_UNIT_CHARS])
    source_factor, source_expr = _split(unit)
    target_factor, target_expr = _split(target)
    if not (_UNIT_SYNTAX.fullmatch(source_expr) and _UNIT_SYNTAX.fullmatch(target_expr)):
        raise UnitError(unit, target)
    registry = _registry()
    try:
        magnitude = registry.Quantity(1, source_expr).to(target_expr).magnitude
    except Exception as exc:  # pint's parser raises many unrelated types on garbage ("/", "(", "1/0")
        raise UnitError(unit, target) from exc
    if not math.isfinite(float(magnitude)) or not magnitude:  # zero, infinite or NaN: not a conversion
        raise UnitError(unit, target)
    # Concentration and count units differ by powers of ten: round away binary noise to keep it exact.
    scale = Decimal(f"{float(magnitude):.12g}")
    return source_factor * scale / target_factor


def convert(value: Decimal, unit: str, target: str) -> Decimal:
    """Convert ``value`` from ``unit`` to ``target``; raises :class:`UnitError` if impossible."""
    return value * conversion_factor(unit, target)
