"""Side of a paired organ (glands, kidneys) from the words around a mention.

"bilateral", "both", "right and left" are bilateral; so are the two sides named separately in one
sentence about the same finding ("in the right kidney and in the left kidney"); a plural organ with no
side ("the parotid glands", "the kidneys") is bilateral.
"""

from __future__ import annotations

from cds_service.core.findings import Laterality
from cds_service.core.narrative import lexicon as lx
from cds_service.core.narrative.mentions import Mention

__all__ = ["laterality"]

_JOINED = lx.compile_pattern(r"\b(?:and|as\s+well\s+as)\b|&")
_SPARED = lx.compile_pattern(r"\b(?:normal|unremarkable|no|not|without|spared|preserved|otherwise)\b")
_SIDES = {"b": Laterality.BILATERAL, "l": Laterality.LEFT, "r": Laterality.RIGHT}


def laterality(sentence: str, mention: Mention) -> Laterality | None:
    """The side the sentence gives the mention, or None when it gives none (or the organ is not paired)."""
    if not mention.paired or mention.loc is None:
        return None
    lo, hi = mention.loc
    best: tuple[int, Laterality] | None = None
    sides: dict[Laterality, int] = {}
    for m in lx.LATERALITY.finditer(sentence):
        if m.end() <= lo:
            gap, dist = sentence[m.end() : lo], lo - m.end()
        elif m.start() >= hi:
            gap, dist = sentence[hi : m.start()], m.start() - hi
        else:
            gap, dist = "", 0
        if dist > lx.LAT_REACH_CHARS or lx.LAT_BARRIER.search(gap):
            continue
        side = _SIDES[m.lastgroup or "b"]
        sides.setdefault(side, m.start())
        if dist <= lx.LAT_MAX_CHARS and (best is None or dist < best[0]):
            best = (dist, side)
    if best is not None and best[1] is Laterality.BILATERAL:
        return best[1]
    if Laterality.LEFT in sides and Laterality.RIGHT in sides:
        a, b = sorted((sides[Laterality.LEFT], sides[Laterality.RIGHT]))
        between = sentence[a:b]
        if _JOINED.search(between) and not _SPARED.search(between):
            return Laterality.BILATERAL
    if best is not None:
        return best[1]
    return Laterality.BILATERAL if mention.loc_plural else None
