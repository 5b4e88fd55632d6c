"""The narrative reader's output is pinned to a golden snapshot over a large, deterministic corpus.

The corpus is every hand-labelled sentence, every fixture report text and ~2,000 synthetic texts spliced
from them with a seeded RNG (odd whitespace, bullets, headers, case changes, cue and side words). Any
optimisation must reproduce the golden file exactly. Regenerate it ONLY for an intended behaviour change,
and say so in the commit:

    python -m tests.core.test_narrative_equivalence --write

History: recorded before the performance rework; re-recorded on 2026-12-01 (issue 7) for the intended
changes of the revised CLINICAL_SPEC section 4 (sections, scope per finding, qualifiers, wording in any
order, immunostain numbers across sentences). The snapshot now includes each finding's section.
"""

from __future__ import annotations

import gzip
import json
import random
import re
import sys
from typing import Any

import pytest

from cds_service.core import narrative
from cds_service.core.findings import TextFinding
from cds_service.core.narrative import lexicon
from cds_service.core.narrative.mentions import hint_text
from cds_service.core.reports import report_text
from cds_service.core.resources import read_resource
from cds_service.fixtures.catalog import bundle_resources, list_fixtures
from tests.paths import REPO as ROOT

SENTENCES = ROOT / "tests" / "data" / "narrative_sentences.jsonl"
GOLDEN = ROOT / "tests" / "data" / "narrative_golden.json.gz"
FIXTURES = ROOT / "fhir_fixtures"
SEED = 20240611
N_SYNTHETIC = 2000

_HEADERS = ("IMPRESSION:", "FINDINGS:", "CONCLUSION:", "DIAGNOSIS:", "Impression:", "COMMENT:", "A.", "")
_BULLETS = ("- ", "• ", "* ", "– ", "1. ", "2) ", "(3) ", "10. ", "")
_GLUE = (" ", "  ", "\n", "\r\n", "\n\n", "\t", " \n ", "; ", ", ", " and ", " but ", ". ", "? ", "!\n")
# Cue, side and hedge words spliced in to move mentions in and out of cue scopes.
_EXTRA = (
    "no", "not", "without", "possibly", "likely", "unlikely", "versus", "vs.", "?", "left", "right",
    "bilateral", "both", "prior", "previously", "unchanged", "history of", "rule out", "if", "resolved",
    "no change in", "cannot be excluded", "is not seen", "however", "which", "with", "consistent with",
    "e.g.", "approx.", "3.2 cm", "the kidneys", "the parotid glands", "aorta", "pancreas", "CBD", ">50",
    "IgG4/IgG ratio of 0.45", "45 IgG4-positive plasma cells per HPF", "in 2019", "2 years ago",
)  # fmt: skip


def _sentences() -> list[str]:
    rows = [json.loads(line) for line in SENTENCES.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [str(r["text"]) for r in rows]


def _fixture_texts() -> list[str]:
    """What the service reads from each fixture report, plus the conclusion on its own."""
    texts: list[str] = []
    for fixture in list_fixtures(FIXTURES):
        for raw in bundle_resources(fixture.bundle):
            if raw.get("resourceType") != "DiagnosticReport":
                continue
            report = read_resource("DiagnosticReport", raw)
            texts.append(report_text(report))
            if report.conclusion:
                texts.append(str(report.conclusion))
    return texts


def _variant(rng: random.Random, text: str) -> str:
    roll = rng.random()
    if roll < 0.12:
        return text.lower()
    if roll < 0.20:
        return text.upper()
    if roll < 0.28:
        return text.capitalize()
    if roll < 0.36:  # letters that case-insensitive regexes fold onto ASCII ones, and other non-ASCII
        odd = rng.choice(
            (
                ("s", "\u017f"),
                ("k", "\u212a"),
                ("i", "\u0131"),
                ("I", "\u0130"),
                (" ", " \u2265"),
                ("-", "\u2013"),
                ("e", "\u00e9"),
                (" ", "\u00a0"),
            )
        )
        return text.replace(*odd)
    return text


def _fragment(rng: random.Random, text: str) -> str:
    words = text.split()
    if len(words) < 3:
        return text
    a = rng.randrange(len(words))
    b = rng.randrange(a, len(words)) + 1
    return " ".join(words[a:b])


def _synthetic(rng: random.Random, pool: list[str], fixture_sentences: list[str]) -> str:
    parts: list[str] = []
    if rng.random() < 0.3:
        parts.append(rng.choice(_HEADERS) + rng.choice(("\n", " ", "  ")))
    for _ in range(rng.randint(1, 6)):
        roll = rng.random()
        src = rng.choice(pool if rng.random() < 0.75 else fixture_sentences)
        if roll < 0.45:
            piece = src
        elif roll < 0.70:  # splice: the head of one sentence on the tail of another
            other = rng.choice(pool)
            wa, wb = src.split(), other.split()
            piece = " ".join(wa[: rng.randint(0, len(wa))] + wb[rng.randint(0, len(wb)) :])
        elif roll < 0.85:
            piece = _fragment(rng, src)
        else:  # insert cue / side words at random word positions
            words = src.split()
            for _ in range(rng.randint(1, 3)):
                words.insert(rng.randint(0, len(words)), rng.choice(_EXTRA))
            piece = " ".join(words)
        if rng.random() < 0.2:
            piece = rng.choice(_BULLETS) + piece
        parts.append(_variant(rng, piece))
        parts.append(rng.choice(_GLUE))
    text = "".join(parts)
    if rng.random() < 0.1:  # soft-wrap at a fixed width
        width = rng.randint(30, 80)
        text = "\n".join(text[i : i + width] for i in range(0, len(text), width))
    return text


def build_corpus() -> list[str]:
    """Every labelled sentence, every fixture report text, then the seeded synthetic texts."""
    sentences = _sentences()
    fixture_texts = _fixture_texts()
    fixture_sentences = [s for t in fixture_texts for s in narrative.split_sentences(t)]
    rng = random.Random(SEED)
    synthetic = [_synthetic(rng, sentences, fixture_sentences) for _ in range(N_SYNTHETIC)]
    return sentences + fixture_texts + synthetic


def _as_dict(f: TextFinding) -> dict[str, Any]:
    return {
        "concept": f.concept.value,
        "assertion": f.assertion.value,
        "phrase": f.phrase,
        "laterality": f.laterality.value if f.laterality else None,
        "ratio_percent": f.ratio_percent,
        "cells_per_hpf": f.cells_per_hpf,
        "detail": f.detail,
        "section": f.section,
    }


def snapshot(text: str) -> dict[str, Any]:
    """Sentences and findings of one text, read with an empty sentence cache."""
    sentences = narrative.split_sentences(text)
    findings: list[dict[str, Any]] = []
    narrative.clear_cache()
    try:
        findings.extend(_as_dict(f) for f in narrative.extract_findings(text))
    except Exception as exc:  # pinned too: a crash must stay the same crash until fixed on purpose
        findings.append({"error": type(exc).__name__})
    return {"sentences": sentences, "findings": findings}


def _load_golden() -> dict[str, Any]:
    with gzip.open(GOLDEN, "rt", encoding="utf-8") as handle:
        data: dict[str, Any] = json.load(handle)
    return data


def write_golden() -> None:
    corpus = build_corpus()
    data = {"seed": SEED, "n": len(corpus), "snapshots": [snapshot(t) for t in corpus]}
    raw = json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    GOLDEN.write_bytes(gzip.compress(raw, compresslevel=9, mtime=0))
    print(f"wrote {GOLDEN} ({GOLDEN.stat().st_size} bytes, {len(corpus)} texts)")


@pytest.fixture(scope="module")
def corpus_and_golden() -> tuple[list[str], dict[str, Any]]:
    return build_corpus(), _load_golden()


def test_corpus_matches_golden_size(corpus_and_golden):
    corpus, golden = corpus_and_golden
    assert golden["seed"] == SEED
    assert len(corpus) == golden["n"] == len(golden["snapshots"])
    assert sum(bool(s["findings"]) for s in golden["snapshots"]) > len(corpus) // 2


def test_uncached_output_equals_golden(corpus_and_golden):
    corpus, golden = corpus_and_golden
    mismatches = [i for i, text in enumerate(corpus) if snapshot(text) != golden["snapshots"][i]]
    assert not mismatches, f"{len(mismatches)} texts differ, first at index {mismatches[:5]}"


def test_extract_findings_equals_golden(corpus_and_golden):
    corpus, golden = corpus_and_golden
    narrative.clear_cache()
    for i, text in enumerate(corpus):
        expected = golden["snapshots"][i]["findings"]
        errors = [f["error"] for f in expected if "error" in f]
        if errors:
            with pytest.raises(Exception) as info:
                narrative.extract_findings(text)
            assert type(info.value).__name__ == errors[0], f"text {i} differs"
            continue
        got = [_as_dict(f) for f in narrative.extract_findings(text)]
        assert got == expected, f"text {i} differs"


def _hinted_patterns() -> list[tuple[str, re.Pattern[str], tuple[str, ...]]]:
    out = []
    for name, fam in lexicon.FAMILIES.items():
        out += [
            (f"family {name} loc", fam.loc, fam.loc_hints),
            (f"family {name} abn", fam.abn, fam.abn_hints),
        ]
    out += [(f"standalone {t.pattern.pattern[:30]}", t.pattern, t.hints) for t in lexicon.STANDALONE]
    out += [(f"cue {c.pattern.pattern[:30]}", c.pattern, c.hints) for c in lexicon.CUE_RULES]
    out += [
        ("aorta abn", lexicon.AORTA["abn"], lexicon.AORTA_HINTS),
        ("cca", lexicon.CCA, lexicon.CCA_HINTS),
        ("cca suspicious", lexicon.CCA_SUSPICIOUS, lexicon.CCA_SUSPICIOUS_HINTS),
        ("rim", lexicon.RIM, lexicon.RIM_HINTS),
    ]
    return out


def test_every_match_contains_a_hint(corpus_and_golden):
    """The hints that let the reader skip a pattern are necessary: every match spells one of them."""
    corpus, _ = corpus_and_golden
    sentences = {s for text in corpus for s in narrative.split_sentences(text)}
    patterns = _hinted_patterns()
    for name, _pattern, hints in patterns:
        assert hints, name
        assert all(h == h.lower() and not any(c.isspace() for c in h) for h in hints), name
    for sentence in sentences:
        for name, pattern, hints in patterns:
            for m in pattern.finditer(sentence):
                if hint_text(sentence) is not None:
                    assert any(h in m.group(0).lower() for h in hints), (name, m.group(0))


def test_hint_shortcut_is_off_for_letters_that_fold_to_ascii():
    # "ſ" (long s) matches "s" case-insensitively but str.lower() keeps it: the shortcut must not apply
    assert hint_text("\u017ftoriform fibrosis") is None
    assert [f.concept.value for f in narrative._sentence_findings("\u017ftoriform fibrosis.")] == [
        "storiform-fibrosis"
    ]
    assert hint_text("Storiform \u2265 fibrosis") == "storiform \u2265 fibrosis"


if __name__ == "__main__":
    if sys.argv[1:] == ["--write"]:
        write_golden()
    else:
        print(__doc__)
