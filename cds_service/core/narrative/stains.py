"""IgG4 immunostain numbers: the IgG4+/IgG+ proportion and IgG4+ cells per high-power field, in any phrasing.

"IgG4/IgG ratio 0.45", "IgG4:IgG > 40%", "45% of IgG-positive plasma cells express IgG4", "IgG4-positive
cells make up 45% of IgG-positive cells", "> 10 IgG4+ cells/hpf", "per HPF: 60". A range gives its
upper value; a bound gives the nearest integer inside it (">50" -> 51, "<10" -> 9).
"""

from __future__ import annotations

import re

__all__ = ["bound", "stain_numbers", "stain_status"]

_I = re.IGNORECASE
_CMP = (
    r"(?P<cmp>>=?|≥|<=?|≤|up\s+to|fewer\s+than|less\s+than|more\s+than|greater\s+than|over|at\s+least"
    r"|approximately|approx\.?|about|around|~|in\s+excess\s+of|exceeding|exceeds|above|below|under)?"
)
_NUM = r"(?P<n>\d+(?:\.\d+)?)(?:\s*(?:-|–|to)\s*(?P<n2>\d+(?:\.\d+)?))?"
_FIELD = r"(?:/|per)\s*(?:\d+\s*)?(?:hpfs?|high[- ]power(?:\s+fields?)?|HPF)\b"
_CELLS = (
    re.compile(
        rf"{_CMP}\s*{_NUM}\s*(?:IgG4\s*(?:[-+]\s*)?)?(?:(?:positive|pos|\+)\s*)?(?:plasma\s+)?(?:cells?\s*)?{_FIELD}",
        _I,
    ),
    re.compile(
        rf"{_FIELD}\s*(?:of|:|=|was|is|were|,|count(?:ed)?)?\s*(?:of\s+|was\s+|is\s+)?{_CMP}\s*{_NUM}(?!\s*%)",
        _I,
    ),
    re.compile(
        rf"\b(?:count|number)\s+of\s+{_CMP}\s*{_NUM}\s+(?:IgG4\S*\s+)?(?:plasma\s+)?cells?\s+{_FIELD}", _I
    ),
)
# a proportion after an "IgG4 ... IgG" or "ratio" anchor
_RATIO_AFTER = re.compile(
    r"(?:\bIgG4\s*\+?\s*(?:-?\s*positive\s+)?(?:plasma\s+)?(?:cells?\s*)?(?:[/:]|to|\s+versus\s+)\s*(?:total\s+)?IgG\b"
    r"\s*\+?\s*(?:-?\s*positive\s+)?(?:plasma\s+)?(?:cells?)?|\bratio\b)"
    rf"[^.;%\d]{{0,30}}?{_CMP}\s*{_NUM}\s*(?P<pct>%|percent)?",
    _I,
)
# "45% of IgG-positive plasma cells express IgG4", "45% IgG4/IgG", "45% of the IgG4 ratio"
_RATIO_BEFORE = (
    re.compile(
        rf"{_CMP}\s*{_NUM}\s*(?:%|percent)\)?\s+of\s+(?:the\s+)?(?:total\s+)?IgG\b[^.;]{{0,50}}?\bIgG4\b", _I
    ),
    re.compile(rf"{_CMP}\s*{_NUM}\s*(?:%|percent)\s*(?:of\s+)?(?:IgG4|ratio)", _I),
    # "IgG4-positive cells make up 45% of IgG-positive cells"
    re.compile(
        rf"\bIgG4\b[^.;%]{{0,50}}?{_CMP}\s*{_NUM}\s*(?:%|percent)\)?\s+of\s+(?:the\s+)?(?:total\s+)?IgG\b", _I
    ),
)
_NOT_DONE = re.compile(
    r"\b(?:not\s+(?:performed|done|available|assessed|evaluable|interpretable)|pending|to\s+follow"
    r"|will\s+be\s+(?:reported|issued|performed|done)|requested|(?:obtained|sent|submitted|taken)\s+for|deferred|insufficient|non-?diagnostic|in\s+progress|awaited)\b",
    _I,
)
_DIGIT = re.compile(r"\d")
_WORD_VALUES = {
    "five": "5", "ten": "10", "fifteen": "15", "twenty": "20", "thirty": "30", "forty": "40", "fifty": "50",
    "sixty": "60", "seventy": "70", "eighty": "80", "ninety": "90", "hundred": "100", "half": "50%",
}  # fmt: skip
_NUMBER_WORDS = re.compile(r"\b(?:" + "|".join(_WORD_VALUES) + r")\b(?!\s*\()", _I)
_FEW = re.compile(
    r"\b(?:rare|occasional|few|scattered|scant|sparse|isolated|very\s+few|only\s+a\s+few)\b", _I
)


def bound(value: float, cmp: str | None) -> float:
    """Read a bound as the nearest integer value inside it: ">50" -> 51, "<10" -> 9, "≥41" -> 41."""
    cmp = " ".join((cmp or "").lower().split())
    if cmp in (">", "more than", "greater than", "over", "in excess of", "exceeding", "exceeds", "above"):
        return value + 1
    if cmp in ("<", "fewer than", "less than", "below", "under"):
        return max(value - 1, 0.0)
    return value


def _value(m: re.Match[str]) -> float:
    return bound(float(m.group("n2") or m.group("n")), m.group("cmp"))


def stain_numbers(sentence: str) -> tuple[float | None, float | None]:
    """(ratio_percent, cells_per_hpf) stated in one sentence, each None when absent."""
    if _NUMBER_WORDS.search(sentence):
        sentence = _NUMBER_WORDS.sub(lambda m: _WORD_VALUES[m.group(0).lower()], sentence)
    if _DIGIT.search(sentence) is None:
        return None, None
    cells: float | None = None
    for pattern in _CELLS:
        m = pattern.search(sentence)
        if m:
            cells = _value(m)
            break
    ratio: float | None = None
    for pattern in _RATIO_BEFORE:
        b = pattern.search(sentence)
        if b:
            ratio = _value(b)
            break
    if ratio is None:
        r = _RATIO_AFTER.search(sentence)
        if r:
            raw = float(r.group("n2") or r.group("n"))
            if not r.group("pct") and raw <= 1:
                raw *= 100  # "ratio of 0.6"
            if raw <= 100 and not (
                not r.group("pct") and raw > 1 and re.match(r"\s*(?:/|per)\s*h", sentence[r.end() :], _I)
            ):
                ratio = bound(raw, r.group("cmp"))
    if ratio is not None and ratio > 100:
        ratio = None
    return ratio, cells


def stain_status(sentence: str) -> str | None:
    """ "not-done" when the stain is not performed or pending, "few" for rare IgG4+ cells, else None."""
    if _NOT_DONE.search(sentence):
        return "not-done"
    if _FEW.search(sentence):
        return "few"
    return None
