"""Rule-based reader of imaging and pathology narrative: text -> ``TextFinding`` list.

Pure Python, no I/O, no logging of text; linear in the text length. The pipeline per report:

1. ``document``: sections (history, indication, comparison, technique dropped; an organ heading is the
   subject of what follows), sentences (newline/list/header aware, abbreviation safe), clauses.
2. ``mentions``: concept mentions from the lexicons (``data/lexicon.toml``): a finding's parts within a
   clause in any order with bounded gaps, standalone terms, and the qualifiers section 2 requires.
3. ``assertion``: ConText-style cues (``data/cues.toml``) with scope per finding.
4. ``laterality`` and ``stains`` (immunostain numbers, merged across neighbouring sentences).

Assertion decisions (judgement calls, documented): "likely", "probable", "suggestive of", "favoured",
"presumed", "concerning for" -> uncertain; "consistent with", "compatible with", "in keeping with",
"known" -> affirmed; "unlikely", "resolved", "no longer seen", "free of", "a mimicker of" -> negated;
"rule out", "evaluate for", "if", "recommend" -> hypothetical; "no change in", "not present on the prior
CT" are pseudo-negations. Plural paired organs without a side are bilateral. A CBD stricture with no
stated level is proximal (``detail="level-unstated"``) unless the clause places it in the pancreatic head.
Every cholangiocarcinoma mention named as such also yields ``CARCINOMA``; "stricture suspicious for
malignancy" near a bile duct is an uncertain cholangiocarcinoma mention. An immunostain that was not
performed or is pending is no finding; rare or occasional IgG4-positive cells without numbers are negated.
"""

from __future__ import annotations

import dataclasses
import re
from functools import lru_cache
from typing import Final

from cds_service.core.findings import Assertion, Concept, Laterality, TextFinding
from cds_service.core.narrative.assertion import assert_mention, find_cues
from cds_service.core.narrative.document import Sentence, read_document, split_sentences
from cds_service.core.narrative.laterality import laterality
from cds_service.core.narrative.lexicon import FAMILIES, VERSION
from cds_service.core.narrative.mentions import find_mentions
from cds_service.core.narrative.stains import stain_numbers, stain_status

__all__ = ["LEXICON_VERSION", "SENTENCE_CACHE_SIZE", "clear_cache", "extract_findings", "split_sentences"]

LEXICON_VERSION: Final = VERSION
SENTENCE_CACHE_SIZE: Final = 8192
_STAIN_REACH = 2  # neighbouring sentences searched for the other immunostain number


def _sentence_findings(sentence: str) -> list[TextFinding]:
    mentions = find_mentions(sentence)
    if not mentions:
        return []
    cues = find_cues(sentence)
    ratio, cells = (None, None)
    stain_note: str | None = None
    if any(m.concept is Concept.IGG4_IMMUNOSTAIN for m in mentions):
        ratio, cells = stain_numbers(sentence)
        stain_note = stain_status(sentence)
    seen: dict[tuple[Concept, Assertion, Laterality | None, str | None], TextFinding] = {}
    for mention in sorted(mentions, key=lambda m: m.start):
        assertion = assert_mention(sentence, mention, cues, mentions)
        if not mention.qualified and assertion is not Assertion.NEGATED:
            continue  # "focal necrosis", "scant infiltrate": not the item; "no necrosis" still says no
        lat = laterality(sentence, mention)
        if assertion is Assertion.NEGATED and mention.loc_plural and lat is Laterality.BILATERAL:
            lat = None  # "the parotid glands are not enlarged": no side is claimed
        for concept in (mention.concept, *mention.extra):
            detail = mention.detail if concept is mention.concept else None
            is_stain = concept is Concept.IGG4_IMMUNOSTAIN
            if is_stain and ratio is None and cells is None and stain_note is not None:
                continue  # "not performed", "pending", "rare IgG4-positive cells" without numbers: not assessed
            key = (concept, assertion, lat, detail)
            if key in seen:
                continue
            seen[key] = TextFinding(
                concept=concept,
                assertion=assertion,
                phrase=sentence,
                laterality=lat,
                ratio_percent=ratio if is_stain else None,
                cells_per_hpf=cells if is_stain else None,
                detail=detail,
            )
    return list(seen.values())


@lru_cache(maxsize=SENTENCE_CACHE_SIZE)
def _cached_sentence_findings(sentence: str) -> tuple[TextFinding, ...]:
    # Templated sentences recur, and the same report comes back on every hook of a visit: reading a
    # sentence once pays off. Bounded, process memory only, TextFinding is immutable.
    return tuple(_sentence_findings(sentence))


def clear_cache() -> None:
    """Forget every cached sentence (their text is record text held in process memory)."""
    _cached_sentence_findings.cache_clear()


_SUBJECT_WORDS: Final = {
    "kidneys": ("kidney", "renal"),
    "biliary": ("bile", "biliary", "cbd", "chd", "hepatic duct", "ihd"),
    "common hepatic duct": ("hepatic duct", "chd"),
    "common bile duct": ("bile duct", "cbd"),
    "intrahepatic ducts": ("intrahepatic", "ihd"),
    "hilar bile ducts": ("hilar", "hilum"),
}


def _names_subject(subject: str, text: str) -> bool:
    """True when the sentence names its section's organ itself (then it needs no prefix)."""
    low = text.lower()
    words = _SUBJECT_WORDS.get(subject, (subject.split(maxsplit=1)[0][:5],))
    return any(re.search(r"\b" + re.escape(w), low) for w in words)


_BILIARY: Final = (Concept.BILIARY_PROXIMAL, Concept.BILIARY_DISTAL)


def _states_duct_change(text: str) -> bool:
    """True when the text itself names a stricture/narrowing or wall thickening (not only a mass)."""
    return any(m.lastgroup in ("strict", "thick") for m in FAMILIES["biliary"].abn.finditer(text))


def _read(sentence: Sentence) -> list[TextFinding]:
    text = sentence.text
    from_heading = bool(sentence.subject) and not _names_subject(sentence.subject or "", text)
    if from_heading:
        text = f"{sentence.subject} {text}"
    found = _cached_sentence_findings(text)
    if from_heading and not _states_duct_change(sentence.text):
        # Under a "Biliary:" heading, "the mass is T2 intermediate" describes a lesion, not duct involvement.
        found = tuple(f for f in found if f.concept not in _BILIARY)
    return [dataclasses.replace(f, phrase=sentence.text, section=sentence.section) for f in found]


def _merge_stains(sentences: list[Sentence], per: list[list[TextFinding]]) -> None:
    """Fill an immunostain's missing number from the neighbouring sentences of the same report."""
    numbers: dict[int, tuple[float | None, float | None]] = {}
    for i, found in enumerate(per):
        for j, f in enumerate(found):
            if f.concept is not Concept.IGG4_IMMUNOSTAIN or not f.affirmed:
                continue
            if f.ratio_percent is not None and f.cells_per_hpf is not None:
                continue
            ratio, cells = f.ratio_percent, f.cells_per_hpf
            for k in sorted(
                range(max(0, i - _STAIN_REACH), min(len(per), i + _STAIN_REACH + 1)), key=lambda k: abs(k - i)
            ):
                if k == i:
                    continue
                if k not in numbers:
                    numbers[k] = stain_numbers(sentences[k].text)
                r, c = numbers[k]
                ratio = ratio if ratio is not None else r
                cells = cells if cells is not None else c
            found[j] = dataclasses.replace(f, ratio_percent=ratio, cells_per_hpf=cells)


def extract_findings(text: str) -> list[TextFinding]:
    """Read imaging or pathology narrative and return one ``TextFinding`` per concept mention.

    Each finding carries the concept, its assertion (affirmed, negated, uncertain, hypothetical,
    historical), the sentence it came from as ``phrase``, the report ``section`` it was read in, laterality
    for paired organs (glands, kidneys), IgG4 immunostain numbers (merged from neighbouring sentences) and a
    ``detail`` label where relevant. Text under history, indication, comparison or technique headings
    yields nothing. Duplicate mentions of the same concept with the same assertion, side and detail in one
    sentence are reported once. Never raises on any ``str`` input; non-``str`` input returns an empty list.
    """
    if not isinstance(text, str) or not text.strip():
        return []
    sentences = read_document(text)
    per = [_read(s) for s in sentences]
    _merge_stains(sentences, per)
    return [f for found in per for f in found]
