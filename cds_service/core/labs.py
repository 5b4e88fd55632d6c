"""Laboratory evidence from LOINC-coded Observations (CLINICAL_SPEC section 4, "Labs")."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Any, Final

from cds_service.core import codes
from cds_service.core.dates import in_window, to_date
from cds_service.core.evidence import LabResult, Polarity, UlnSource
from cds_service.core.units import CELL_COUNT, MASS_CONCENTRATION, UnitError, convert

logger = logging.getLogger(__name__)

USABLE_STATUSES: Final = frozenset({"final", "amended", "corrected", "preliminary"})

# Canonical unit per code; codes not listed keep the unit they were reported in.
CANONICAL_UNITS: Final[dict[str, str]] = {
    codes.IGG4: MASS_CONCENTRATION,
    codes.IGG_TOTAL: MASS_CONCENTRATION,
    codes.IGG1: MASS_CONCENTRATION,
    codes.C3: MASS_CONCENTRATION,
    codes.C4: MASS_CONCENTRATION,
    codes.WBC: CELL_COUNT,
    codes.PLATELETS: CELL_COUNT,
    **dict.fromkeys(codes.EOS_ABSOLUTE, CELL_COUNT),
}

_POSITIVE_INTERPRETATIONS: Final = frozenset({"POS", "DET", "A", "AA", "H", "HH", "HU", "R"})
_NEGATIVE_INTERPRETATIONS: Final = frozenset({"NEG", "ND", "N", "L", "LL"})
_LOW_INTERPRETATIONS: Final = frozenset({"L", "LL"})
_COMPLEMENT: Final = frozenset({codes.C3, codes.C4})
# SNOMED CT qualifier values for qualitative results.
_POSITIVE_SNOMED: Final = frozenset({"10828004", "260373001", "52101004"})
_NEGATIVE_SNOMED: Final = frozenset({"260385009", "260415000", "2667000"})

# Every text reader below is linear in the length of its (capped) input: numbers start only where no digit
# precedes them and have bounded length, gaps are bounded, nothing nests.
MAX_VALUE_TEXT: Final = 64
"""A valueString longer than this is not read as a number."""
MAX_RANGE_TEXT: Final = 512
"""Only the first characters of a referenceRange.text are read."""
MAX_WORDS_TEXT: Final = 512
"""Only the first characters of a qualitative result's text are read for its polarity."""

_NUMBER = r"(?<![\d.,])(\d{1,15}(?:[.,]\d{1,15})?)(?![\d])"
_UNIT = r"(?:\s{0,3}([A-Za-zµ/%*^{}][A-Za-zµ/%*^{}0-9.]{0,23}|10\s?[*^]\s?\d{1,2}/[A-Za-zµ]{1,3}))?"
_RANGE_TEXT = re.compile(_NUMBER + r"\s{0,3}(?:-|–|—|to)\s{0,3}" + _NUMBER + _UNIT)
_UPPER_TEXT = re.compile(r"(?:<=|≤|<|up to|below)\s{0,3}" + _NUMBER + _UNIT, re.IGNORECASE)
_VALUE_TEXT = re.compile(r"(<=|>=|<|>|≤|≥)?\s{0,3}" + _NUMBER + _UNIT)

_NEGATIVE_WORDS = re.compile(
    r"\b(?:negative|neg|non-?reactive|absent|undetected|nil|(?:not|none)\s{1,3}(?:detected|present|found|seen)"
    r"|no\s{1,3}(?:[a-z0-9-]{1,30}\s{1,3}){0,3}(?:detected|present|found|seen))\b",
    re.IGNORECASE,
)
_POSITIVE_WORDS = re.compile(r"\b(?:positive|detected|reactive|present)\b", re.IGNORECASE)


@dataclass(frozen=True)
class LabReading:
    """What :func:`extract_labs` read: usable results by LOINC code, and what it could not use."""

    results: dict[str, list[LabResult]]
    unit_errors: int = 0
    """Results dropped for a unit that cannot be converted."""
    undated: int = 0
    """Results with no date: they cannot be placed in the lookback window, so they are not used."""


def loinc_codes(resource: Any) -> set[str]:
    """The LOINC codes of an Observation's ``code``."""
    concept = getattr(resource, "code", None)
    return {
        c.code
        for c in (getattr(concept, "coding", None) or [])
        if c.system == codes.LOINC and c.code is not None
    }


def wanted_observation(raw: Mapping[str, Any]) -> bool:
    """Cheap pre-filter on raw JSON: an Observation carrying a LOINC code the core reads.

    Tolerant like the reader: a single ``coding`` object, or a code sent as a number, still counts.
    """
    concept = raw.get("code")
    if isinstance(concept, list) and len(concept) == 1:
        concept = concept[0]
    codings = concept.get("coding") if isinstance(concept, Mapping) else None
    if isinstance(codings, Mapping):
        codings = [codings]
    if not isinstance(codings, list):
        return False
    return any(
        isinstance(c, Mapping)
        and c.get("system") == codes.LOINC
        and isinstance(c.get("code"), str | int)
        and str(c["code"]) in codes.ALL_LABS
        for c in codings
    )


def extract_labs(observations: list[Any], window_start: date, default_igg4_uln: Decimal) -> LabReading:
    """Usable lab results by LOINC code, newest first, and what could not be used.

    Keeps final/amended/corrected/preliminary results dated inside the lookback window; a result with no
    date cannot be placed in the window and is counted as undated instead.
    """
    results: dict[str, list[LabResult]] = {}
    unit_errors = undated = 0
    for obs in observations:
        if obs.status not in USABLE_STATUSES:
            continue
        wanted = loinc_codes(obs) & codes.ALL_LABS
        if not wanted:
            continue
        effective = _effective(obs)
        if effective is None:
            undated += 1
            continue
        if not in_window(effective, window_start):
            continue
        for code in wanted:
            try:
                result = _lab_result(obs, code, effective, default_igg4_uln)
            except UnitError as exc:
                unit_errors += 1
                logger.info(
                    "lab unit not convertible", extra={"loinc": code, "unit": exc.unit[:MAX_VALUE_TEXT]}
                )
                continue
            if result is not None:
                results.setdefault(code, []).append(result)
    for values in results.values():
        values.sort(key=lambda r: r.effective or date.min, reverse=True)
    return LabReading(results, unit_errors, undated)


def _effective(obs: Any) -> date | None:
    when = to_date(obs.effectiveDateTime)
    if when is None and obs.effectivePeriod is not None:
        when = to_date(obs.effectivePeriod.start)
    if when is None:
        when = to_date(obs.effectiveInstant) or to_date(obs.issued)
    return when


def _lab_result(obs: Any, code: str, effective: date | None, default_uln: Decimal) -> LabResult | None:
    reference = f"Observation/{obs.id}" if obs.id else "Observation"
    polarity = _polarity(obs)
    quantity = _quantity(obs)
    if quantity is None:
        if polarity is None:
            return None
        return LabResult(code, reference, effective, unit="", polarity=polarity, original=polarity.value)
    number, reported_unit, original = quantity
    unit = CANONICAL_UNITS.get(code, reported_unit)
    value = _in_unit(number, reported_unit, unit)
    low, high, source = _reference_limits(obs, reported_unit, unit)
    if high is None and code == codes.IGG4:
        high, source = default_uln, UlnSource.DEFAULT
    flagged_low = code in _COMPLEMENT and _interpretation_codes(obs) & _LOW_INTERPRETATIONS != frozenset()
    return LabResult(
        code, reference, effective, unit, value, low, high, source, polarity, original, flagged_low
    )


def _quantity(obs: Any) -> tuple[Decimal, str, str] | None:
    """(value, reported unit, the value as reported) from valueQuantity, or a valueString holding a number."""
    quantity = obs.valueQuantity
    if quantity is not None and quantity.value is not None:
        reported_unit = str(quantity.code or quantity.unit or "")
        shown = f"{quantity.comparator or ''}{quantity.value} {quantity.unit or quantity.code or ''}".strip()
        return Decimal(str(quantity.value)), reported_unit, shown
    if obs.valueString:
        return parse_value_text(obs.valueString)
    return None


def parse_value_text(text: str) -> tuple[Decimal, str, str] | None:
    """A number with an optional comparator and unit ("2.43 g/L", "> 1.4 g/L"): (value, unit, text).

    Anything else (words, several numbers, text longer than :data:`MAX_VALUE_TEXT`) is not a number.
    """
    stripped = text.strip()
    if len(stripped) > MAX_VALUE_TEXT:
        return None
    match = _VALUE_TEXT.fullmatch(stripped)
    if match is None:
        return None
    _, number, unit = match.groups()
    try:
        return _decimal(number), unit or "", stripped
    except InvalidOperation:
        return None


def _in_unit(value: Decimal, unit: str, target: str) -> Decimal:
    if unit == target:
        return value
    return convert(value, unit, target)


def _reference_limits(
    obs: Any, reported_unit: str, unit: str
) -> tuple[Decimal | None, Decimal | None, UlnSource | None]:
    for ref in obs.referenceRange or []:
        low = _limit(ref.low, reported_unit, unit)
        high = _limit(ref.high, reported_unit, unit)
        if high is not None:
            return low, high, UlnSource.REFERENCE_HIGH
        if ref.text:
            text_low, text_high = parse_range_text(ref.text, reported_unit, unit)
            if text_high is not None:
                return low if low is not None else text_low, text_high, UlnSource.REFERENCE_TEXT
        if low is not None:
            return low, None, None
    return None, None, None


def _limit(quantity: Any, reported_unit: str, unit: str) -> Decimal | None:
    if quantity is None or quantity.value is None:
        return None
    limit_unit = str(quantity.code or quantity.unit or reported_unit)
    return _in_unit(Decimal(str(quantity.value)), limit_unit, unit)


def parse_range_text(text: str, reported_unit: str, unit: str) -> tuple[Decimal | None, Decimal | None]:
    """Low and high limits from a reference range text ("4.8-105 mg/dL", "<2.01 g/L"), in ``unit``.

    A prefix is skipped ("Adults 18-60 y: 0.039-0.864 g/L"): the first range whose unit converts wins; a
    range written without a unit is taken in the result's reported unit, the last one if there are several.
    Only the first :data:`MAX_RANGE_TEXT` characters are read.
    """
    text = text[:MAX_RANGE_TEXT]
    found = _limits(_RANGE_TEXT.finditer(text), reported_unit, unit, has_low=True)
    if found is None:
        found = _limits(_UPPER_TEXT.finditer(text), reported_unit, unit, has_low=False)
    return found if found is not None else (None, None)


def _limits(
    matches: Iterator[re.Match[str]], reported_unit: str, unit: str, *, has_low: bool
) -> tuple[Decimal | None, Decimal | None] | None:
    unitless: tuple[Decimal | None, Decimal | None] | None = None
    for match in matches:
        groups: tuple[str | None, ...] = match.groups()
        low_text, high_text, text_unit = groups if has_low else (None, *groups)
        if high_text is None:
            continue
        try:
            low = _in_unit(_decimal(low_text), text_unit or reported_unit, unit) if low_text else None
            high = _in_unit(_decimal(high_text), text_unit or reported_unit, unit)
        except (UnitError, InvalidOperation):
            continue
        if text_unit:
            return low, high
        unitless = (low, high)
    return unitless


def _decimal(text: str) -> Decimal:
    return Decimal(text.replace(",", "."))


def _interpretation_codes(obs: Any) -> frozenset[str]:
    return frozenset(
        coding.code for concept in obs.interpretation or [] for coding in concept.coding or [] if coding.code
    )


def _texts(concept: Any) -> list[str]:
    return [t for t in [concept.text] + [c.display for c in concept.coding or []] if t]


def _polarity(obs: Any) -> Polarity | None:
    """Positive or negative, for a qualitative result. Negative words anywhere win: "None detected",
    "Not present", "No antibody detected" in the value or its interpretation never read as positive."""
    texts = [obs.valueString] if obs.valueString else []
    for concept in [*(obs.interpretation or []), obs.valueCodeableConcept]:
        if concept is not None:
            texts.extend(_texts(concept))
    if any(_NEGATIVE_WORDS.search(t[:MAX_WORDS_TEXT]) for t in texts):
        return Polarity.NEGATIVE
    interpretations = _interpretation_codes(obs)
    if interpretations & _POSITIVE_INTERPRETATIONS:
        return Polarity.POSITIVE
    if interpretations & _NEGATIVE_INTERPRETATIONS:
        return Polarity.NEGATIVE
    concept = obs.valueCodeableConcept
    if concept is not None:
        for coding in concept.coding or []:
            if coding.code in _POSITIVE_SNOMED:
                return Polarity.POSITIVE
            if coding.code in _NEGATIVE_SNOMED:
                return Polarity.NEGATIVE
    if any(_POSITIVE_WORDS.search(t[:MAX_WORDS_TEXT]) for t in texts):
        return Polarity.POSITIVE
    return None
