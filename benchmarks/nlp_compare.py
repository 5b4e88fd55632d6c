"""Compare the rule-based assertion logic of ``cds_service.core.narrative`` with medspaCy's ConText.

Both approaches use the *same* concept spans (narrative's matcher) and the same laterality logic, so
the comparison isolates how negation / uncertainty / hypothetical / historical status is decided.

Run (medspaCy lives in a separate venv so the project venv stays clean):

    /work/main/.venv-nlp/bin/python benchmarks/nlp_compare.py
    .venv/bin/python benchmarks/nlp_compare.py          # rule set only; medspaCy is skipped

Prints, per approach: precision / recall / F1 of affirmed findings, assertion accuracy on findings
whose concept was found, and mean / p95 latency per multi-sentence report (ratio vs the rule set).
"""

from __future__ import annotations

import json
import random
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cds_service.core import narrative  # noqa: E402
from cds_service.core.findings import Assertion, Concept  # noqa: E402
from cds_service.core.narrative.laterality import laterality  # noqa: E402
from cds_service.core.narrative.mentions import Mention, find_mentions  # noqa: E402

DATA = ROOT / "tests" / "data" / "narrative_sentences.jsonl"
Triple = tuple[str, str, str | None]
Extractor = Callable[[str], set[Triple]]
N_REPORTS = 40
SENTENCES_PER_REPORT = 8
REPEATS = 5


def rules_extract(text: str) -> set[Triple]:
    # Cold reading: the per-sentence cache would otherwise serve the repeats.
    narrative.clear_cache()
    return {
        (f.concept.value, f.assertion.value, f.laterality.value if f.laterality else None)
        for f in narrative.extract_findings(text)
    }


def build_medspacy() -> Extractor | None:
    try:
        import medspacy
        from spacy.language import Language
        from spacy.tokens import Doc, Span
    except ImportError as exc:
        print(f"medspaCy: SKIPPED (not importable here: {exc}); run with /work/main/.venv-nlp/bin/python")
        return None

    @Language.component("narrative_spans")
    def narrative_spans(doc: Doc) -> Doc:
        spans: list[Span] = []
        for sent in doc.sents:
            for m in find_mentions(sent.text):
                span = doc.char_span(
                    sent.start_char + m.start,
                    sent.start_char + m.end,
                    label=m.concept.value,
                    alignment_mode="expand",
                )
                if span is not None:
                    spans.append(span)
        doc.spans["medspacy_spans"] = spans
        return doc

    try:  # PyRuSH logs every token (record text!) at DEBUG through loguru: silence it
        from loguru import logger

        logger.remove()
    except ImportError:
        pass

    nlp = medspacy.load(medspacy_enable=["medspacy_pyrush"])
    nlp.add_pipe("narrative_spans")
    nlp.add_pipe("medspacy_context", config={"input_span_type": "group", "span_group_name": "medspacy_spans"})

    def extract(text: str) -> set[Triple]:
        doc = nlp(text)
        out: set[Triple] = set()
        for span in doc.spans["medspacy_spans"]:
            if span._.is_negated:
                assertion = Assertion.NEGATED
            elif span._.is_hypothetical:
                assertion = Assertion.HYPOTHETICAL
            elif span._.is_uncertain:
                assertion = Assertion.UNCERTAIN
            elif span._.is_historical:
                assertion = Assertion.HISTORICAL
            else:
                assertion = Assertion.AFFIRMED
            # laterality and CCA->carcinoma from narrative, so only the assertion logic differs
            sent = span.sent
            lo, hi = span.start_char - sent.start_char, span.end_char - sent.start_char
            local = Mention(Concept(span.label_), lo, hi, (lo, hi))
            for m in find_mentions(sent.text):
                if m.concept.value == span.label_ and m.start >= local.start and m.end <= local.end:
                    local = m
                    break
            lat = laterality(sent.text, local)
            for concept in (local.concept, *local.extra):
                out.add((concept.value, assertion.value, lat.value if lat else None))
        return out

    return extract


def score(rows: list[dict[str, object]], extract: Extractor) -> dict[str, float]:
    tp = fp = fn = 0
    found = correct = 0
    for r in rows:
        fs = r["findings"]
        assert isinstance(fs, list)
        gold = {(f["concept"], f["assertion"], f["laterality"]) for f in fs}
        text = r["text"]
        assert isinstance(text, str)
        got = extract(text)
        ga = {t for t in gold if t[1] == "affirmed"}
        pa = {t for t in got if t[1] == "affirmed"}
        tp += len(ga & pa)
        fp += len(pa - ga)
        fn += len(ga - pa)
        for g in gold:
            same = [t for t in got if t[0] == g[0]]
            if same:
                found += 1
                correct += any(t[1] == g[1] for t in same)
    p = tp / (tp + fp) if tp + fp else 0.0
    rec = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * p * rec / (p + rec) if p + rec else 0.0
    return {"precision": p, "recall": rec, "f1": f1, "assertion_acc": correct / found if found else 0.0}


def latency(reports: list[str], extract: Extractor) -> tuple[float, float]:
    extract(reports[0])  # warm-up
    times: list[float] = []
    for _ in range(REPEATS):
        for rep in reports:
            t0 = time.perf_counter()
            extract(rep)
            times.append((time.perf_counter() - t0) * 1000)
    times.sort()
    return statistics.fmean(times), times[int(0.95 * (len(times) - 1))]


def main() -> None:
    rows = [json.loads(line) for line in DATA.read_text(encoding="utf-8").splitlines() if line.strip()]
    rng = random.Random(20240501)
    texts = [str(r["text"]) for r in rows]
    reports = [" ".join(rng.sample(texts, SENTENCES_PER_REPORT)) for _ in range(N_REPORTS)]
    print(f"labelled sentences: {len(rows)}; reports: {N_REPORTS} x {SENTENCES_PER_REPORT} sentences")

    approaches: list[tuple[str, Extractor]] = [("rules (narrative.py)", rules_extract)]
    med = build_medspacy()
    if med is not None:
        approaches.append(("medspaCy ConText", med))

    base_mean: float | None = None
    header = f"{'approach':24} {'P':>6} {'R':>6} {'F1':>6} {'assert':>7} {'mean ms':>8} {'p95 ms':>8} {'x rules':>8}"
    print(header)
    for name, extract in approaches:
        s = score(rows, extract)
        mean, p95 = latency(reports, extract)
        base_mean = base_mean or mean
        print(
            f"{name:24} {s['precision']:6.3f} {s['recall']:6.3f} {s['f1']:6.3f} {s['assertion_acc']:7.3f} "
            f"{mean:8.3f} {p95:8.3f} {mean / base_mean:8.1f}"
        )


if __name__ == "__main__":
    main()
