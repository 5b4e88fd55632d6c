"""The document model: a report's sections, their sentences, and the clauses of a sentence.

Everything here runs in time linear in the text length: no pattern can backtrack over more than a
bounded window, and no step re-scans text it has already passed.

Sections (CLINICAL_SPEC section 4): text under history, indication, reason for exam, clinical question,
comparison and technique headings is dropped (never a finding). A heading naming an organ ("Pancreas:",
"KIDNEYS:") makes the organ the ``subject`` of the sentences that follow until the next heading or blank
line.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Iterator
from dataclasses import dataclass

from cds_service.core.narrative.lexicon import ORGAN_HEADINGS, SKIP_HEADINGS

__all__ = ["Sentence", "clause_bounds", "read_sections", "split_sentences"]

MAX_CHUNK = 1000
"""A "sentence" longer than this is cut at a space: it bounds the per-sentence pairing work."""

_ABBREVIATIONS = frozenset(
    {
        "approx", "e.g", "i.e", "eg", "ie", "vs", "dr", "mr", "mrs", "ms", "fig", "no", "nos", "cf",
        "etc", "al", "st", "ca", "resp", "incl", "max", "min", "est", "pt", "hx", "dx", "sx", "s/p",
        "mt", "sr", "jr", "prof", "dept", "vol", "ref",
    }
)  # fmt: skip
_LIST_MARKER_RE = re.compile(r"^\s*(?:\(?\d{1,2}[.)]|[-•*–])\s+")
_HEADER_RE = re.compile(r"^\s*[A-Z][A-Z0-9 /&()-]{1,40}:\s*")
# A sentence end: the first of a run of terminal marks (the look-behind stops a scan starting inside the
# run), the whole run taken at once (possessive: no backtracking), an optional closing mark, whitespace.
_BOUNDARY_RE = re.compile(r"(?<![.!?])[.!?]++[\"')\]]?\s+")
_WORD_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789/.")
_PREV_WORD_REACH = 32
# "Heading: text" at the start of a line; a heading is a few words.
_HEADING_LINE = re.compile(r"^\s*(?P<h>[A-Za-z][A-Za-z0-9 /&()',-]{0,48}?)\s*:(?!\d)\s*(?P<rest>.*)$")
# An upper-case or well-known heading after the end of a sentence on the same line starts a new line.
_INLINE_HEADING = re.compile(r"(?<=[.!?])[ \t]++(?=[A-Z][A-Za-z /&()-]{2,40}:\s)")
_GENERIC_HEADINGS = re.compile(
    r"(?:findings?|impressions?|conclusions?|diagnos[ie]s|final\s+diagnos[ie]s|microscop\w*(?:\s+description)?"
    r"|gross(?:\s+description)?|comments?|results?|opinion|summary|report|addendum|specimens?|interpretation"
    r"|immuno\w*|ihc|special\s+stains?|cytology|note|recommendations?|procedure|description|body|abdomen"
    r"|pelvis|chest|thorax|lungs?|liver|gallbladder|adrenals?|bowel|lymph\s+nodes?|bones?|vessels|other"
    r"|head\s+and\s+neck|neck|orbits?|salivary\s+glands?|mediastinum|retroperitoneum|upper\s+abdomen)",
    re.IGNORECASE,
)
_CLAUSE_BREAK = re.compile(r"[;:]|\b(?:but|however|whereas|although|though|except)\b", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Sentence:
    """One sentence of a report, with the section it was read in and the organ heading over it."""

    text: str
    section: str | None = None
    subject: str | None = None


@dataclass(frozen=True, slots=True)
class _Heading:
    name: str
    skip: bool
    subject: str | None


def _classify(heading: str, rest: str = "x") -> _Heading | None:
    name = " ".join(heading.split()).strip(" ,")
    if not name or len(name.split()) > 8:
        return None
    if "," in name and not rest.strip():
        # a pathology site line, "Submandibular gland, left, excision:": the site is the subject
        first = name.split(",")[0].strip()
        if any(pattern.search(first) for pattern, _subject in ORGAN_HEADINGS):
            return _Heading(name.lower(), False, name)
        return None
    if len(name.split()) > 5:
        return None
    if SKIP_HEADINGS.fullmatch(name):
        return _Heading(name.lower(), True, None)
    for pattern, subject in ORGAN_HEADINGS:
        if pattern.fullmatch(name):
            return _Heading(name.lower(), False, subject)
    if _GENERIC_HEADINGS.fullmatch(name) or (name.isupper() and "," not in name):
        return _Heading(name.lower(), False, None)
    return None


def read_sections(text: str) -> Iterator[tuple[str | None, str | None, str]]:
    """Yield (section name, organ subject, text) blocks; blocks under history-like headings are dropped."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = _INLINE_HEADING.sub("\n", text)
    name: str | None = None
    subject: str | None = None
    skipping = False
    block: list[str] = []
    for raw in text.split("\n"):
        m = _HEADING_LINE.match(raw) if ":" in raw[:60] else None
        heading = _classify(m.group("h"), m.group("rest")) if m else None
        if heading is not None and m is not None:
            if block and not skipping:
                yield name, subject, "\n".join(block)
            block = []
            name, subject, skipping = heading.name, heading.subject, heading.skip
            rest = m.group("rest")
            if rest.strip():
                block.append(rest)
            continue
        if not raw.strip():
            if not any(line.strip() for line in block) and (skipping or subject is not None):
                continue  # "CLINICAL HISTORY:" on its own line, then a blank line, then its text
            if block and not skipping:
                yield name, subject, "\n".join(block)
            block = []
            if skipping or subject is not None:
                # a blank line ends a history paragraph or an organ's text
                skipping, subject, name = False, None, (None if skipping else name)
            block.append("")
            continue
        block.append(raw)
    if block and not skipping:
        yield name, subject, "\n".join(block)


def _segments(text: str) -> list[str]:
    """Join soft-wrapped lines; start a new segment at blank lines, list items and headers."""
    segments: list[str] = []
    current: list[str] = []
    for raw in text.split("\n"):
        line = raw.strip()
        if not line:
            if current:
                segments.append(" ".join(current))
                current = []
            continue
        starts_new = bool(_LIST_MARKER_RE.match(line) or _HEADER_RE.match(line))
        if current and (starts_new or current[-1].endswith((".", ":", ";", "!", "?"))):
            segments.append(" ".join(current))
            current = []
        current.append(line)
    if current:
        segments.append(" ".join(current))
    return segments


def _strip_markers(sentence: str) -> str:
    for _ in range(8):  # each pass removes a prefix; a handful covers "1. - IMPRESSION: ..."
        before = sentence
        sentence = _HEADER_RE.sub("", sentence, count=1)
        sentence = _LIST_MARKER_RE.sub("", sentence, count=1)
        if sentence == before:
            break
    return sentence.strip()


def _chunk(sentence: str) -> Iterator[str]:
    pos, n = 0, len(sentence)
    while n - pos > MAX_CHUNK:
        cut = sentence.rfind(" ", pos, pos + MAX_CHUNK)
        cut = cut if cut > pos + MAX_CHUNK // 2 else pos + MAX_CHUNK
        yield sentence[pos:cut]
        pos = cut
        while pos < n and sentence[pos] == " ":
            pos += 1
    if pos < n:
        yield sentence[pos:]


def _previous_word(segment: str, lo: int, end: int) -> str:
    """The word ending at ``end`` (letters, digits, "/" and "."), lower-cased, looking back at most to ``lo``."""
    while end > lo and segment[end - 1] in ".!?":
        end -= 1
    i = end
    while i > lo and segment[i - 1] in _WORD_CHARS:
        i -= 1
    return segment[i:end].lower().rstrip(".")


def _split_segment(segment: str) -> Iterator[str]:
    start = 0
    for m in _BOUNDARY_RE.finditer(segment):
        word = _previous_word(segment, max(start, m.start() - _PREV_WORD_REACH), m.start())
        if word in _ABBREVIATIONS or (len(word) == 1 and word.isalpha()):
            continue
        # "1. Finding" at the start of a sentence is a list marker, not a sentence of its own
        if (
            word.isdigit()
            and len(word) <= 2
            and m.start() - start <= 4
            and not segment[start : m.start()].strip(" 0123456789")
        ):
            continue
        yield segment[start : m.end()]
        start = m.end()
    yield segment[start:]


def split_sentences(text: str) -> list[str]:
    """Split report text into sentences (linear time).

    Handles soft-wrapped lines, blank-line paragraphs, numbered/bulleted lists, upper-case section
    headers ("IMPRESSION:"), abbreviations ("approx.", "e.g.", "vs.") and decimals ("3.2 cm").
    Headers and list markers are removed from the returned sentences.
    """
    out: list[str] = []
    for segment in _segments(text):
        for s in _split_segment(segment):
            cleaned = _strip_markers(s)
            if any(ch.isalnum() for ch in cleaned):
                out.extend(_chunk(cleaned))
    return out


def read_document(text: str) -> list[Sentence]:
    """The report's sentences in order, each with its section and organ subject (history-like text dropped)."""
    sentences: list[Sentence] = []
    for name, subject, block in read_sections(text):
        for s in split_sentences(block):
            sentences.append(Sentence(s, name, subject))
    return sentences


def clause_bounds(sentence: str) -> list[int]:
    """Start offsets of the clauses of a sentence (0 first); a clause ends at ";", ":", "but", "however"."""
    return [0, *(m.end() for m in _CLAUSE_BREAK.finditer(sentence))]


def clause_of(bounds: list[int], sentence: str, start: int, end: int) -> str:
    """The clause(s) of ``sentence`` covering [start, end)."""
    i = bisect.bisect_right(bounds, start) - 1
    j = bisect.bisect_right(bounds, max(start, end - 1))
    hi = bounds[j] if j < len(bounds) else len(sentence)
    return sentence[bounds[max(i, 0)] : hi]
