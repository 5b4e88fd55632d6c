"""Tests for the rule-based narrative reader against the hand-labelled sentence set.

The set (tests/data/narrative_sentences.jsonl) holds the reader's own 253 sentences, the 505 sentences of
blind round 1 (ids b1a-/b1b-, written by writers who never saw the reader; folded in after the untuned
measurement, labels kept as written except where a row's "note" says why), and the examples of issue 7.
Scoring convention: the reader reports every cholangiocarcinoma mention also as carcinoma (same sentence,
same assertion); labels name the specific concept only, so such a carcinoma is not compared.
"""

from __future__ import annotations

import json
import random

import pytest

from cds_service.core.findings import Assertion, Concept, Laterality, TextFinding
from cds_service.core.narrative import extract_findings, split_sentences
from tests.paths import TEST_DATA

DATA = TEST_DATA / "narrative_sentences.jsonl"
ROWS = [json.loads(line) for line in DATA.read_text(encoding="utf-8").splitlines() if line.strip()]

# Known limitations, kept in the set on purpose so the figures stay honest.
KNOWN_MISSES: dict[str, str] = {
    # blind round 1 rows the reader still reads differently (none affirms a finding the label does not,
    # except where said); kept in the set so the figures stay honest
    "b1a-s034": "a stricture named only in 'suspicious for a malignant stricture' is also read as an uncertain stricture",
    "b1a-s044": "'malignant-appearing stricture, consistent with Klatskin tumor' also yields an uncertain CCA mention",
    "b1a-s058": "'likely obstructive sialadenitis' of an enlarged gland adds an uncertain mention beside the affirmed one",
    "b1a-s105": "'cortex' without a kidney word in a lone sentence; 'could reflect' after a finding is not a hedge on it",
    "b1a-s120": "'its wall is not thickened': the pronoun's aorta is not resolved (coreference)",
    "b1a-s124": "'may represent retroperitoneal fibrosis' adds an uncertain periaortic mention",
    "b1a-s135": "'no interval progression' without 'rapid' is not a rapid-progression mention",
    "b1a-s137": "AFFIRMS a focal mass the label omits ('pancreatic head lesion'); a focal mass scores nothing",
    "b1b-s005": "'the body and tail' without the word pancreas in a lone sentence (coreference)",
    "b1b-s028": "'no stricture of the CHD' after an intrapancreatic CBD stricture adds a negated distal mention",
    "b1b-s032": "typo 'strcture': the hedged distal stricture is read from 'cut-off' as affirmed (distal scores nothing)",
    "b1b-s050": "'a malignant biliary stricture cannot be excluded' also yields an uncertain stricture",
    "b1b-s084": "'could represent dacryoadenitis' adds an uncertain lacrimal mention beside the affirmed one",
    "b1b-s112": "'focal renal cortical lesion' is not a low-density wording",
    "b1b-s123": "'raising the question of Erdheim-Chester' on perirenal soft tissue: the label omits it",
    "b1b-s153": "'growth ... more rapid than expected' is not a rapid-progression wording",
    "b1b-s181": "'without a dense infiltrate' after 'lymphocytes and plasma cells': the negation is not reached",
    "b1b-s200": "AFFIRMS an immunostain the label hedges: 'possibly' after the subject is not read as a hedge",
    "b1b-s219": "'an inflammatory myofibroblastic tumour would be favoured' after 'if': read as uncertain, not hypothetical",
}

Triple = tuple[str, str, str | None]


def _convention(triples: set[Triple]) -> set[Triple]:
    """Drop a carcinoma that restates a cholangiocarcinoma mention (see the module docstring)."""
    cca = {a for c, a, _ in triples if c == "cholangiocarcinoma"}
    return {t for t in triples if not (t[0] == "carcinoma" and t[1] in cca)}


def _triples(findings: list[TextFinding]) -> set[Triple]:
    return _convention(
        {(f.concept.value, f.assertion.value, f.laterality.value if f.laterality else None) for f in findings}
    )


def _expected(row: dict[str, object]) -> set[Triple]:
    fs = row["findings"]
    assert isinstance(fs, list)
    return _convention({(f["concept"], f["assertion"], f["laterality"]) for f in fs})


def test_labelled_set_shape():
    assert len(ROWS) >= 800
    ids = [r["id"] for r in ROWS]
    assert len(ids) == len(set(ids))
    concepts = {c.value for c in Concept}
    assertions = {a.value for a in Assertion}
    for r in ROWS:
        assert r["source"] in ("imaging", "pathology")
        for f in r["findings"]:
            assert f["concept"] in concepts
            assert f["assertion"] in assertions
            assert f["laterality"] in (None, "left", "right", "bilateral")
    negated = sum(any(f["assertion"] == "negated" for f in r["findings"]) for r in ROWS)
    hedged = sum(any(f["assertion"] not in ("affirmed", "negated") for f in r["findings"]) for r in ROWS)
    assert negated >= 50
    assert hedged >= 30
    assert any(not r["findings"] for r in ROWS)


@pytest.mark.parametrize(
    "row",
    [
        pytest.param(r, id=r["id"], marks=pytest.mark.xfail(reason=KNOWN_MISSES[r["id"]], strict=True))
        if r["id"] in KNOWN_MISSES
        else pytest.param(r, id=r["id"])
        for r in ROWS
    ],
)
def test_sentence(row):
    assert _triples(extract_findings(row["text"])) == _expected(row)


def test_affirmed_precision_and_recall():
    tp = fp = fn = 0
    for r in ROWS:
        expected = {t for t in _expected(r) if t[1] == "affirmed"}
        got = {t for t in _triples(extract_findings(r["text"])) if t[1] == "affirmed"}
        tp += len(expected & got)
        fp += len(got - expected)
        fn += len(expected - got)
    assert tp / (tp + fp) >= 0.98
    assert tp / (tp + fn) >= 0.98


# --- targeted tests ---------------------------------------------------------------------------------


def _one(text: str, concept: Concept) -> TextFinding:
    hits = [f for f in extract_findings(text) if f.concept is concept]
    assert len(hits) == 1, hits
    return hits[0]


@pytest.mark.parametrize(
    ("text", "ratio", "cells"),
    [
        ("IgG4-positive plasma cells 80 per HPF with an IgG4/IgG ratio of approximately 60%.", 60.0, 80.0),
        ("IgG4/IgG ratio 60%.", 60.0, None),
        ("Increased IgG4-positive plasma cells (>50 per high-power field); IgG4:IgG ratio >40%.", 41.0, 51.0),
        ("Immunohistochemistry: IgG4+ plasma cells 35/HPF, IgG4+/IgG+ ratio 45%.", 45.0, 35.0),
        ("IgG4 immunostain shows up to 80 IgG4-positive plasma cells per HPF.", None, 80.0),
        ("Only rare IgG4-positive plasma cells are present (fewer than 5 per HPF).", None, 4.0),
        ("IgG4 immunostain: 30-45 IgG4+ cells/hpf; IgG4:IgG ratio of 0.7.", 70.0, 45.0),
        ("IgG4 stain highlights abundant positive plasma cells.", None, None),
    ],
)
def test_immunostain_numbers(text, ratio, cells):
    f = _one(text, Concept.IGG4_IMMUNOSTAIN)
    assert f.affirmed
    assert f.ratio_percent == ratio
    assert f.cells_per_hpf == cells


def test_igg4_related_is_not_an_immunostain():
    assert not extract_findings(
        "Findings favour IgG4-related sclerosing cholangitis; check serum IgG4 level."
    )


def test_pathology_other_detail():
    found = {
        f.detail
        for f in extract_findings("Negative for granulomas, necrosis or vasculitis. ALK is positive.")
    }
    assert found == {"granulomatous", "necrosis", "necrotizing-vasculitis", "imt"}


def test_cholangiocarcinoma_also_yields_carcinoma():
    concepts = {(f.concept, f.assertion) for f in extract_findings("Klatskin tumor is suspected.")}
    assert concepts == {
        (Concept.CHOLANGIOCARCINOMA, Assertion.UNCERTAIN),
        (Concept.CARCINOMA, Assertion.UNCERTAIN),
    }


def test_sentence_splitting_abbreviations_lists_and_headers():
    text = (
        "FINDINGS:\nThe pancreas measures approx. 3.2 cm, e.g. in the body. No stricture vs. narrowing.\n"
        "IMPRESSION:\n1. Diffuse pancreatic enlargement.\n2. No biliary stricture.\n"
        "3. Bilateral renal cortical\nhypoenhancing lesions."
    )
    sentences = split_sentences(text)
    assert sentences == [
        "The pancreas measures approx. 3.2 cm, e.g. in the body.",
        "No stricture vs. narrowing.",
        "Diffuse pancreatic enlargement.",
        "No biliary stricture.",
        "Bilateral renal cortical hypoenhancing lesions.",
    ]
    got = {(f.concept, f.assertion, f.laterality) for f in extract_findings(text)}
    assert (Concept.PANCREAS_DIFFUSE_ENLARGEMENT, Assertion.AFFIRMED, None) in got
    assert (Concept.BILIARY_PROXIMAL, Assertion.NEGATED, None) in got
    assert (Concept.RENAL_CORTEX_LOW_DENSITY, Assertion.AFFIRMED, Laterality.BILATERAL) in got


def test_inline_numbered_impression():
    text = "IMPRESSION: 1. Sausage-shaped pancreas. 2. No splenomegaly."
    got = {(f.concept, f.assertion) for f in extract_findings(text)}
    assert got == {
        (Concept.PANCREAS_DIFFUSE_ENLARGEMENT, Assertion.AFFIRMED),
        (Concept.SPLENOMEGALY, Assertion.NEGATED),
    }


@pytest.mark.parametrize(
    ("text", "concept", "assertion"),
    [
        ("No stricture of the common hepatic duct but the pancreas is diffusely enlarged.",
         Concept.PANCREAS_DIFFUSE_ENLARGEMENT, Assertion.AFFIRMED),
        ("No ductal dilatation; splenomegaly is present.", Concept.SPLENOMEGALY, Assertion.AFFIRMED),
        ("No mass, although there is loss of lobulation.", Concept.PANCREAS_DIFFUSE_ENLARGEMENT, Assertion.AFFIRMED),
        ("Negative for malignancy, with dense lymphoplasmacytic infiltrate.",
         Concept.LYMPHOPLASMACYTIC_INFILTRATE, Assertion.AFFIRMED),
        ("Possible pancreatic head mass, however splenomegaly is definite.", Concept.SPLENOMEGALY, Assertion.AFFIRMED),
        ("No change in the periaortic soft tissue.", Concept.PERIAORTIC_SOFT_TISSUE, Assertion.AFFIRMED),
        ("The hilar stricture was excluded.", Concept.BILIARY_PROXIMAL, Assertion.NEGATED),
        ("Splenomegaly is not seen.", Concept.SPLENOMEGALY, Assertion.NEGATED),
    ],
)  # fmt: skip
def test_scope_terminators_and_post_cues(text, concept, assertion):
    assert _one(text, concept).assertion is assertion


def test_thoracic_aorta_never_retroperitoneum():
    got = {f.concept for f in extract_findings("Periaortitis of the descending thoracic aorta.")}
    assert got == {Concept.THORACIC_AORTA}


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        "\n\n\n",
        ".",
        "....;;;:::",
        "\x00\x01\x02 \ufffd",
        "a" * 50_000,
        "no " * 10_000,
        "1. 2. 3. 4.",
    ],
)
def test_garbage_never_raises(text):
    assert isinstance(extract_findings(text), list)


def test_non_str_input_is_empty():
    assert extract_findings(None) == []  # type: ignore[arg-type]


def test_huge_report_finishes():
    rng = random.Random(7)
    texts = [r["text"] for r in ROWS]
    big = " ".join(rng.choice(texts) for _ in range(2500))[:200_000]
    assert len(big) >= 150_000
    findings = extract_findings(big)
    assert findings
    # one giant run-on "sentence" with no punctuation is chunked, not quadratic
    run_on = " ".join(rng.choice(["pancreas", "enlarged", "no", "stricture", "hilar", "kidneys", "hypodense"])
                      for _ in range(30_000))  # fmt: skip
    assert isinstance(extract_findings(run_on), list)


def test_a_lesion_under_a_biliary_heading_is_not_duct_involvement_without_a_duct_change():
    text = (
        "FINDINGS:\nBiliary: There is a hilar mass encasing the CBD with abrupt narrowing of the duct. "
        "The mass is T2 intermediate and shows delayed enhancement.\n"
    )
    phrases = {f.phrase for f in extract_findings(text) if f.concept is Concept.BILIARY_PROXIMAL}
    assert phrases == {"There is a hilar mass encasing the CBD with abrupt narrowing of the duct."}
