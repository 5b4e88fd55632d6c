"""Laboratory evidence from LOINC-coded Observations (CLINICAL_SPEC section 4, "Labs")."""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
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
# SNOMED CT qualifier values for qualitative results.
_POSITIVE_SNOMED: Final = frozenset({"10828004", "260373001", "52101004"})
_NEGATIVE_SNOMED: Final = frozenset({"260385009", "260415000", "2667000"})
_POSITIVE_WORDS = re.compile(r"\b(positive|detected|reactive|present)\b", re.IGNORECASE)
_NEGATIVE_WORDS = re.compile(r"\b(negative|not detected|non-?reactive|absent|undetected)\b", re.IGNORECASE)

_NUMBER = r"(\d+(?:[.,]\d+)?)"
_UNIT = r"\s*([A-Za-zµ/%*^{}0-9.]+)?"
_RANGE_TEXT = re.compile(_NUMBER + r"\s*(?:-|–|—|to)\s*" + _NUMBER + _UNIT)
_UPPER_TEXT = re.compile(r"(?:<=|≤|<|up to|below)\s*" + _NUMBER + _UNIT, re.IGNORECASE)


def loinc_codes(resource: Any) -> set[str]:
    """The LOINC codes of an Observation's ``code``."""
    concept = getattr(resource, "code", None)
    return {
        c.code
        for c in (getattr(concept, "coding", None) or [])
        if c.system == codes.LOINC and c.code is not None
    }


def wanted_observation(raw: Mapping[str, Any]) -> bool:
    """Cheap pre-filter on raw JSON: an Observation carrying a LOINC code the core reads."""
    concept = raw.get("code")
    codings = concept.get("coding") if isinstance(concept, Mapping) else None
    if not isinstance(codings, list):
        return False
    return any(
        isinstance(c, Mapping)
        and c.get("system") == codes.LOINC
        and isinstance(c.get("code"), str)
        and c["code"] in codes.ALL_LABS
        for c in codings
    )


def extract_labs(
    observations: list[Any], window_start: date, default_igg4_uln: Decimal
) -> tuple[dict[str, list[LabResult]], int]:
    """Usable lab results by LOINC code, newest first, and the number dropped for an unknown unit.

    Keeps final/amended/corrected/preliminary results inside the lookback window.
    """
    results: dict[str, list[LabResult]] = {}
    unit_errors = 0
    for obs in observations:
        if obs.status not in USABLE_STATUSES:
            continue
        effective = _effective(obs)
        if not in_window(effective, window_start):
            continue
        for code in loinc_codes(obs) & codes.ALL_LABS:
            try:
                result = _lab_result(obs, code, effective, default_igg4_uln)
            except UnitError as exc:
                unit_errors += 1
                logger.info("lab unit not convertible", extra={"loinc": code, "unit": exc.unit})
                continue
            if result is not None:
                results.setdefault(code, []).append(result)
    for values in results.values():
        values.sort(key=lambda r: r.effective or date.min, reverse=True)
    return results, unit_errors


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
    quantity = obs.valueQuantity
    if quantity is None or quantity.value is None:
        if polarity is None:
            return None
        return LabResult(code, reference, effective, unit="", polarity=polarity, original=polarity.value)

    reported_unit = str(quantity.code or quantity.unit or "")
    unit = CANONICAL_UNITS.get(code, reported_unit)
    value = _in_unit(Decimal(str(quantity.value)), reported_unit, unit)
    low, high, source = _reference_limits(obs, reported_unit, unit)
    if high is None and code == codes.IGG4:
        high, source = default_uln, UlnSource.DEFAULT
    original = f"{quantity.value} {quantity.unit or quantity.code or ''}".strip()
    return LabResult(code, reference, effective, unit, value, low, high, source, polarity, original)


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

    A text without a unit is taken in the result's reported unit.
    """
    match = _RANGE_TEXT.search(text)
    if match:
        low_text, high_text, text_unit = match.groups()
    else:
        match = _UPPER_TEXT.search(text)
        if not match:
            return None, None
        low_text, (high_text, text_unit) = None, match.groups()
    source_unit = text_unit or reported_unit
    try:
        low = _in_unit(_decimal(low_text), source_unit, unit) if low_text else None
        high = _in_unit(_decimal(high_text), source_unit, unit)
    except (UnitError, InvalidOperation):
        return None, None
    return low, high


def _decimal(text: str) -> Decimal:
    return Decimal(text.replace(",", "."))


def _polarity(obs: Any) -> Polarity | None:
    for interpretation in obs.interpretation or []:
        for coding in interpretation.coding or []:
            if coding.code in _POSITIVE_INTERPRETATIONS:
                return Polarity.POSITIVE
            if coding.code in _NEGATIVE_INTERPRETATIONS:
                return Polarity.NEGATIVE
    concept = obs.valueCodeableConcept
    if concept is not None:
        for coding in concept.coding or []:
            if coding.code in _POSITIVE_SNOMED:
                return Polarity.POSITIVE
            if coding.code in _NEGATIVE_SNOMED:
                return Polarity.NEGATIVE
        return _polarity_from_text(concept.text or "")
    if obs.valueString:
        return _polarity_from_text(obs.valueString)
    return None


def _polarity_from_text(text: str) -> Polarity | None:
    # Negative words first: "not detected" contains "detected".
    if _NEGATIVE_WORDS.search(text):
        return Polarity.NEGATIVE
    if _POSITIVE_WORDS.search(text):
        return Polarity.POSITIVE
    return None
