"""Assertion of each mention (ConText-style), with the scope rules of CLINICAL_SPEC section 4.

A cue (``cues.toml``) governs mentions before (post cues), after (pre cues) or both, within a token
window, and its scope ends at a terminator ("but", ";", a clause end, a comma that opens a new finding:
"no hydronephrosis, bilateral cortical low-density areas"). A negation or hedge covers the finding it
governs, not the next one: when another finding stands between the cue and a mention without a
coordinator ("no focal mass within the diffusely enlarged pancreas", "suspected cholangiocarcinoma
causing a stricture"), the mention is out of the cue's scope. Pseudo-cues ("no change", "not present on
the prior CT") mask the cues they overlap. Precedence: negated > hypothetical > uncertain > historical;
a present-state cue ("unchanged", "persistent") overrides historical.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from cds_service.core.findings import Assertion, Concept
from cds_service.core.narrative import lexicon as lx
from cds_service.core.narrative.mentions import Mention, hint_text, may_match

__all__ = ["Cue", "assert_mention", "find_cues"]

NEG, UNC, HYP, HIST, PSEUDO, PRESENT = "neg", "unc", "hyp", "hist", "pseudo", "present"
PRE, POST, BOTH = "pre", "post", "both"
_TOKEN_RE = re.compile(r"\S+")
_COORDINATOR = re.compile(r",|/|\(|\)|\b(?:or|and|nor|and/or)\b", re.IGNORECASE)
_NEGATING_PSEUDO = re.compile(r"(?:no|without)\b", re.IGNORECASE)
_MALIGNANCY = frozenset({Concept.CARCINOMA, Concept.CHOLANGIOCARCINOMA})
_PRECEDENCE = ((NEG, Assertion.NEGATED), (HYP, Assertion.HYPOTHETICAL), (UNC, Assertion.UNCERTAIN))
_TERMS: dict[str, tuple[re.Pattern[str], ...]] = {
    NEG: (lx.TERMINATORS["all"], lx.TERMINATORS["neg"]),
    UNC: (lx.TERMINATORS["all"], lx.TERMINATORS["hedge"]),
    HYP: (lx.TERMINATORS["all"], lx.TERMINATORS["hedge"]),
    HIST: (lx.TERMINATORS["all"],),
    PRESENT: (lx.TERMINATORS["present"],),
}


@dataclass(frozen=True, slots=True)
class Cue:
    """One cue found in a sentence."""

    start: int
    end: int
    rule: lx.CueRule


def find_cues(sentence: str) -> tuple[list[Cue], list[Cue]]:
    """The sentence's (cues, pseudo-cues); where cues overlap the longest wins."""
    low = hint_text(sentence)
    found = [
        Cue(m.start(), m.end(), rule)
        for rule in lx.CUE_RULES
        if may_match(low, rule.hints)
        for m in rule.pattern.finditer(sentence)
        if m.end() > m.start()
        and (
            rule.needs_before is None or rule.needs_before.search(sentence, max(0, m.start() - 60), m.start())
        )
    ]
    found.sort(key=lambda c: (-(c.end - c.start), c.start))
    kept: list[Cue] = []
    for cue in found:
        if all(cue.end <= k.start or cue.start >= k.end for k in kept):
            kept.append(cue)
    return [c for c in kept if c.rule.kind != PSEUDO], [c for c in kept if c.rule.kind == PSEUDO]


def _blocked_by_other(sentence: str, lo: int, hi: int, mention: Mention, others: list[Mention]) -> bool:
    """True when another finding between a pre-cue and this mention takes the cue for itself."""
    for other in others:
        h0, h1 = other.head
        if other.head == mention.head or other.concept is mention.concept:
            continue
        if other.concept in _MALIGNANCY and mention.concept in _MALIGNANCY:
            continue  # "adenocarcinoma (cholangiocarcinoma)": one finding named twice
        if lo <= h0 and h1 <= hi and not _COORDINATOR.search(sentence, h1, hi):
            return True
    return False


def _in_scope(sentence: str, cue: Cue, mention: Mention, others: list[Mention]) -> bool:
    rule = cue.rule
    if mention.concept in rule.exempt:
        return False
    if cue.start >= mention.start and cue.end <= mention.end:
        # "pancreas is not enlarged", "pancreas, possibly enlarged": the cue sits inside the mention
        return rule.kind in (NEG, UNC)
    if rule.direction in (PRE, BOTH) and cue.end <= mention.start:
        gap_lo, gap_hi = cue.end, mention.start
        if rule.kind in (NEG, UNC, HYP) and _blocked_by_other(
            sentence, gap_lo, mention.head[0], mention, others
        ):
            return False
    elif rule.direction in (POST, BOTH) and cue.start >= mention.end:
        gap_lo, gap_hi = mention.end, cue.start
    else:
        return False
    gap = sentence[gap_lo:gap_hi]
    window = rule.window
    if rule.kind == UNC and rule.direction == BOTH and cue.start >= mention.end:
        window = 1  # "X versus Y": only the term right before "versus"
    if len(_TOKEN_RE.findall(gap)) > window:
        return False
    return not any(t.search(gap) for t in _TERMS.get(rule.kind, _TERMS[UNC]))


def assert_mention(
    sentence: str, mention: Mention, found: tuple[list[Cue], list[Cue]], others: list[Mention]
) -> Assertion:
    """The assertion of one mention given the sentence's (cues, pseudo-cues) and its other mentions."""
    cues, pseudos = found
    if mention.forced is Assertion.NEGATED:
        return Assertion.NEGATED
    for p in pseudos:
        # "no interval progression": the pseudo-cue names the finding itself, so it is a plain negation
        if p.start < mention.end and mention.start < p.end and _NEGATING_PSEUDO.match(sentence, p.start):
            return Assertion.NEGATED
    if mention.forced is not None:
        negated = any(c.rule.kind == NEG and _in_scope(sentence, c, mention, others) for c in cues)
        return Assertion.NEGATED if negated else mention.forced
    scoped = [c for c in cues if _in_scope(sentence, c, mention, others)]
    hits = {c.rule.kind for c in scoped}
    if HIST in hits and all(c.rule.yields_to_history for c in scoped if c.rule.kind == NEG):
        hits.discard(NEG)  # "previously described X has resolved"
    for kind, assertion in _PRECEDENCE:
        if kind in hits:
            return assertion
    if HIST in hits and PRESENT not in hits:
        return Assertion.HISTORICAL
    return Assertion.AFFIRMED
