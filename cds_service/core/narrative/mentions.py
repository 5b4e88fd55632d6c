"""Concept mentions in one sentence: a finding's parts matched within a clause, in any order, with bounded gaps.

An organ family pairs an abnormality word with a location word of the same clause at most ``window``
tokens apart, on either side ("stricture of the common hepatic duct", "the pancreas is diffusely
enlarged"). Standalone terms name their concept alone ("storiform", "splenomegaly"). Qualifiers that
section 2 of CLINICAL_SPEC requires are the lexicon's ``veto`` / ``need`` patterns, tested on the clause.
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass, field

from cds_service.core.findings import Assertion, Concept
from cds_service.core.narrative import lexicon as lx
from cds_service.core.narrative.document import clause_bounds, clause_of

__all__ = ["Mention", "find_mentions", "hint_text", "may_match"]

_TOKEN_GAP_BOUNDARY = re.compile(r"[;:!]|\.(?!\d)|\b(?:but|however|although|whereas|while)\b", re.IGNORECASE)
_FOLDS_TO_ASCII = ("\u0130", "\u0131", "\u017f", "\u212a")
_REGEX_FOLDS = str.maketrans({"İ": "i", "ı": "i", "ſ": "s", "\u212a": "k"})
_DIFFUSE = lx.compile_pattern(r"\bdiffuse(?:ly)?\b|\bglobal(?:ly)?\b|\bentire\b|\bwhole\b")
_DISTAL_WORD = lx.compile_pattern(r"\b(?:distal|intra-?pancreatic)\b")
_FOCAL = lx.compile_pattern(r"\b(?:focal(?:ly)?|segmental)\b")
_KIDNEYS_AFTER = lx.compile_pattern(r"\s+(?:\w+\s+){0,2}?(?:of|in)\s+(?:the\s+|both\s+)?kidneys\b")
_GLAND_CONCEPT = {
    "lacrimal": Concept.LACRIMAL_GLAND,
    "parotid": Concept.PAROTID_GLAND,
    "submandibular": Concept.SUBMANDIBULAR_GLAND,
    "sublingual": Concept.SUBLINGUAL_GLAND,
}


def hint_text(sentence: str) -> str | None:
    """The lower-cased sentence for hint tests, or None when hints cannot be trusted for it."""
    if not sentence.isascii() and any(ch in sentence for ch in _FOLDS_TO_ASCII):
        return None
    return sentence.lower()


def may_match(low: str | None, hints: lx.Hints) -> bool:
    """False only when a pattern with these hints cannot match the sentence ``low`` was made from."""
    if low is None:
        return True
    for hint in hints:  # noqa: SIM110 - hot loop: any() + genexpr is ~2x slower
        if hint in low:
            return True
    return False


@dataclass(slots=True)
class Mention:
    """One concept mention: its span, its head word (the abnormality) and what laterality needs."""

    concept: Concept
    start: int
    end: int
    head: tuple[int, int]
    loc: tuple[int, int] | None = None
    loc_plural: bool = False
    paired: bool = False
    detail: str | None = None
    forced: Assertion | None = None
    extra: list[Concept] = field(default_factory=list)
    qualified: bool = True
    """False when the term lacks a qualifier section 2 requires: it is kept only if negated."""


_ORGAN_COLON = re.compile(r"^\s*(?:[\w-]+\s*){0,2}:(?!\d)")
_ASIDE = re.compile(r",\s*(?:however|though|also|too|in\s+addition)\s*,", re.IGNORECASE)


def _gap_ok(sentence: str, a: int, b: int, window: int, blocker: re.Pattern[str] | None) -> bool:
    gap = _ASIDE.sub(" ", sentence[a:b])  # "the lacrimal glands, however, are enlarged"
    gap = _ORGAN_COLON.sub(" ", gap)  # "left submandibular gland: chronic sialadenitis"
    if len(gap) > window * 14 or len(gap.split()) > window or _TOKEN_GAP_BOUNDARY.search(gap):
        return False
    return not (blocker and blocker.search(gap))


def _adjacent(sentence: str, abn: re.Match[str], loc: re.Match[str]) -> bool:
    lo, hi = (loc.end(), abn.start()) if loc.start() < abn.start() else (abn.end(), loc.start())
    return hi <= lo or len(sentence[lo:hi].split()) <= 1


def _resolve(
    fam: str, loc: re.Match[str], abn: re.Match[str], ctx: str, clause: str
) -> tuple[Concept, str | None] | None:
    lk, ak = loc.lastgroup or "", abn.lastgroup or ""
    f = lx.FAMILIES[fam]
    if fam == "pancreas":
        if ak == "mass":
            return Concept.PANCREAS_FOCAL_MASS, None
        if _DIFFUSE.search(ctx):
            return Concept.PANCREAS_DIFFUSE_ENLARGEMENT, None
        if _FOCAL.search(ctx) or lk == "seg":
            return Concept.PANCREAS_FOCAL_MASS, None
        return Concept.PANCREAS_DIFFUSE_ENLARGEMENT, None
    if fam == "biliary":
        if lk == "weak" and (ak != "strict" or f.extra["weak_veto"].search(clause)):
            return None  # "hilar" alone is the lung hilum unless it qualifies a biliary stricture
        if lk == "dist":
            return Concept.BILIARY_DISTAL, None
        if lk == "unq" and (_dist_in(clause) or _DISTAL_WORD.search(ctx)):
            return Concept.BILIARY_DISTAL, None
        return Concept.BILIARY_PROXIMAL, ("level-unstated" if lk == "unq" else None)
    if fam == "glands":
        return _GLAND_CONCEPT[loc.group(0).translate(_REGEX_FOLDS).lower()], None
    if fam == "kidney":
        if lk == "pelvis":
            return (Concept.RENAL_PELVIS_THICKENING, None) if ak == "thick" else None
        return (Concept.RENAL_CORTEX_LOW_DENSITY, None) if ak == "low" else None
    if fam == "chest":
        if lk == "pvb":
            return None if f.extra["pvb_veto"].search(clause) else (Concept.PARAVERTEBRAL_BAND, None)
        if ak != "thick" or not (f.extra["pbv_needs"].search(clause) and f.extra["pbv_also"].search(clause)):
            return None  # septal lines alone (oedema) are not the item
        return Concept.PERIBRONCHOVASCULAR_THICKENING, None
    return None


def _dist_in(clause: str) -> bool:
    return any(m.lastgroup == "dist" for m in lx.FAMILIES["biliary"].loc.finditer(clause))


def _family_mentions(sentence: str, name: str, low: str | None, bounds: list[int]) -> list[Mention]:
    fam = lx.FAMILIES[name]
    if not (may_match(low, fam.loc_hints) and may_match(low, fam.abn_hints)):
        return []
    if fam.needs is not None and not fam.needs.search(sentence):
        return []
    locs = list(fam.loc.finditer(sentence))
    abns = list(fam.abn.finditer(sentence))
    if not locs or not abns:
        return []
    family_paired = name in ("glands", "kidney")
    abn_starts = [m.start() for m in abns]
    loc_starts = [m.start() for m in locs]
    out: list[Mention] = []
    for abn in abns:
        idx = bisect.bisect_left(loc_starts, abn.start())
        chosen: dict[tuple[str, str, int], re.Match[str]] = {}
        for side, rng in ((-1, range(idx - 1, -1, -1)), (1, range(idx, len(locs)))):
            for li in rng:
                loc = locs[li]
                if side < 0 and loc.end() > abn.start():
                    lo, hi = abn.start(), abn.start()
                else:
                    lo, hi = (loc.end(), abn.start()) if side < 0 else (abn.end(), loc.start())
                if hi - lo > fam.window * 14:
                    break
                if hi > lo and not _gap_ok(sentence, lo, hi, fam.window, fam.blocker):
                    break
                between = any(
                    abns[k].lastgroup == abn.lastgroup
                    for k in range(bisect.bisect_right(abn_starts, lo), bisect.bisect_left(abn_starts, hi))
                )
                if between and not abn.start() >= lo:
                    break  # another abnormality word of the same kind between them owns this location
                key = (loc.lastgroup or "", loc.group(0).lower() if name == "glands" else "", side)
                chosen.setdefault(key, loc)
        adjacent = {k[2] for k, loc in chosen.items() if _adjacent(sentence, abn, loc)}
        if len(adjacent) == 1:
            chosen = {k: v for k, v in chosen.items() if k[2] in adjacent}
        for loc in chosen.values():
            start, end = min(abn.start(), loc.start()), max(abn.end(), loc.end())
            clause = clause_of(bounds, sentence, start, end)
            if fam.veto is not None and fam.veto.search(clause):
                continue
            ctx = sentence[max(0, start - 25) : end]
            resolved = _resolve(name, loc, abn, ctx, clause)
            if resolved is None:
                continue
            concept, detail = resolved
            paired = family_paired and concept is not Concept.RENAL_PELVIS_THICKENING
            plural = False
            if paired:
                plural = bool(
                    fam.extra["plural"].match(sentence[loc.end() :])
                    if name == "glands"
                    else loc.group(0).lower().endswith("kidneys")
                )
                if not plural and loc.group(0).lower() in (
                    "renal",
                    "cortex",
                    "cortical",
                    "renal cortex",
                    "renal cortical",
                ):
                    plural = bool(_KIDNEYS_AFTER.match(sentence, loc.end()))
            out.append(
                Mention(
                    concept,
                    start,
                    end,
                    (abn.start(), abn.end()),
                    (loc.start(), loc.end()),
                    plural,
                    paired,
                    detail,
                )
            )
    return out


def _aorta_mentions(sentence: str, low: str | None, bounds: list[int]) -> list[Mention]:
    if not may_match(low, lx.AORTA_HINTS):
        return []
    abns = list(lx.AORTA["abn"].finditer(sentence))
    if not abns:
        return []
    locs = list(lx.AORTA["loc"].finditer(sentence))
    out: list[Mention] = []
    for abn in abns:
        thoracic = abdominal = any_loc = False
        start, end = abn.start(), abn.end()
        for loc in locs:
            lo, hi = (loc.end(), abn.start()) if loc.start() < abn.start() else (abn.end(), loc.start())
            if hi > lo and not _gap_ok(sentence, lo, hi, 8, None):
                continue
            any_loc = True
            thoracic |= bool(lx.AORTA["thoracic"].search(loc.group(0)))
            abdominal |= bool(lx.AORTA["abdominal"].search(loc.group(0)))
            start, end = min(start, loc.start()), max(end, loc.end())
        kind = abn.lastgroup or ""
        if kind == "wall" and not any_loc and "aort" not in abn.group(0).lower():
            continue  # wall thickening of something that is not the aorta
        if kind == "peri":
            if not any_loc and not lx.AORTA["self_located"].match(abn.group(0)):
                continue  # soft tissue around another vessel (hepatic artery, portal vein, duct)
            if lx.AORTA["peri_veto"].search(clause_of(bounds, sentence, start, end)) and not abdominal:
                continue  # around the superior mesenteric artery, not the infrarenal aorta
        head = (abn.start(), abn.end())
        if thoracic:
            out.append(Mention(Concept.THORACIC_AORTA, start, end, head))
        if abdominal or not thoracic:
            concept = (
                Concept.ABDOMINAL_AORTIC_WALL_THICKENING if kind == "wall" else Concept.PERIAORTIC_SOFT_TISSUE
            )
            out.append(Mention(concept, start, end, head))
    return out


def _standalone(sentence: str, low: str | None, bounds: list[int]) -> list[Mention]:
    out: list[Mention] = []
    for term in lx.STANDALONE:
        if not may_match(low, term.hints):
            continue
        for m in term.pattern.finditer(sentence):
            if m.end() == m.start():
                continue
            clause = clause_of(bounds, sentence, m.start(), m.end())
            qualified = not (
                (term.need is not None and not term.need.search(clause))
                or (term.veto is not None and term.veto.search(clause))
            )
            span = (m.start(), m.end())
            out.append(Mention(term.concept, m.start(), m.end(), span, span if term.paired else None,
                               False, term.paired, term.detail, qualified=qualified))  # fmt: skip
    return out


def _cca_mentions(sentence: str, low: str | None, bounds: list[int]) -> list[Mention]:
    out: list[Mention] = []
    if may_match(low, lx.CCA_HINTS):
        for m in lx.CCA.finditer(sentence):
            hedged = Assertion.UNCERTAIN if (m.group("hedge") or "").lower().endswith("appearing") else None
            if lx.MIMIC_BEFORE.search(sentence, max(0, m.start() - 40), m.start()):
                hedged = Assertion.NEGATED  # "a mimicker of cholangiocarcinoma": a comparison
            span = (m.start(), m.end())
            out.append(Mention(Concept.CHOLANGIOCARCINOMA, m.start(), m.end(), span, forced=hedged,
                               extra=[Concept.CARCINOMA]))  # fmt: skip
    if may_match(low, lx.CCA_SUSPICIOUS_HINTS):
        for m in lx.CCA_SUSPICIOUS.finditer(sentence):
            if any(o.start <= m.start() < o.end or m.start() <= o.start < m.end() for o in out):
                continue
            if lx.BILIARY_CONTEXT.search(sentence):
                span = (m.start(), m.end())
                out.append(
                    Mention(Concept.CHOLANGIOCARCINOMA, m.start(), m.end(), span, forced=Assertion.UNCERTAIN)
                )
    return out


def find_mentions(sentence: str) -> list[Mention]:
    """Every concept mention in one sentence (assertion not yet decided)."""
    low = hint_text(sentence)
    bounds = clause_bounds(sentence)
    out: list[Mention] = []
    for name in lx.FAMILIES:
        out.extend(_family_mentions(sentence, name, low, bounds))
    out.extend(_aorta_mentions(sentence, low, bounds))
    out.extend(_standalone(sentence, low, bounds))
    out.extend(_cca_mentions(sentence, low, bounds))
    if may_match(low, lx.RIM_HINTS) and lx.RIM_NEEDS.search(sentence):
        out.extend(Mention(Concept.PANCREAS_CAPSULE_RIM, m.start(), m.end(), (m.start(), m.end()))
                   for m in lx.RIM.finditer(sentence))  # fmt: skip
    return out
