"""Cold-path speed of the narrative reader (``cds_service.core.narrative``) over the equivalence corpus.

Per sentence: ``_sentence_findings`` (uncached) on every distinct sentence of the corpus.
Per report: ``extract_findings`` on every fixture report text and synthetic text, the sentence cache
cleared before each call (so only repeats inside one text hit it).

    python benchmarks/narrative_speed.py                 # current implementation
    python benchmarks/narrative_speed.py --baseline /tmp/narrative_old.py   # compare, interleaved
    python benchmarks/narrative_speed.py --profile       # cProfile of the per-sentence pass

The baseline is a copy of an older ``narrative.py`` kept outside the repository; both are timed in
the same run, alternating rounds, so background load hits both alike.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import importlib.util
import pstats
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT)]

from cds_service.core import narrative  # noqa: E402
from tests.core.test_narrative_equivalence import build_corpus  # noqa: E402


def _load(path: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location("narrative_baseline", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


def _times(fn: Callable[[str], object], items: list[str], before: Callable[[], object] | None) -> list[float]:
    out = []
    clock = time.perf_counter
    for item in items:
        if before is not None:
            before()
        t0 = clock()
        with contextlib.suppress(Exception):  # a few corpus texts crash the reader (pinned by the test)
            fn(item)
        out.append(clock() - t0)
    return out


def _stats(samples: list[list[float]]) -> tuple[float, float, float]:
    """Per item, the best of the rounds (removes scheduler noise); then mean, p95 and total in ms."""
    best = [min(col) * 1e3 for col in zip(*samples, strict=True)]
    p95 = statistics.quantiles(best, n=20)[-1]
    return statistics.fmean(best), p95, sum(best)


def _loadavg() -> str:
    try:
        return Path("/proc/loadavg").read_text().strip()
    except OSError:
        return "n/a"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--baseline", help="path to an older narrative.py to time in the same run")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--profile", action="store_true", help="cProfile the per-sentence pass and exit")
    args = parser.parse_args()

    corpus = build_corpus()
    sentences = sorted({s for text in corpus for s in narrative.split_sentences(text)})
    reports = [t for t in corpus if len(narrative.split_sentences(t)) > 1]

    if args.profile:
        profiler = cProfile.Profile()
        profiler.enable()
        for _ in range(3):
            for s in sentences:
                with contextlib.suppress(Exception):
                    narrative._sentence_findings(s)
        profiler.disable()
        pstats.Stats(profiler).sort_stats("tottime").print_stats(25)
        return

    modules = {"current": narrative}
    if args.baseline:
        modules = {"baseline": _load(args.baseline), "current": narrative}
    per_sentence: dict[str, list[list[float]]] = {name: [] for name in modules}
    per_report: dict[str, list[list[float]]] = {name: [] for name in modules}
    print(f"loadavg before: {_loadavg()}")
    print(f"{len(sentences)} distinct sentences, {len(reports)} multi-sentence texts, {args.rounds} rounds")
    for _ in range(args.rounds):
        for name, mod in modules.items():
            per_sentence[name].append(_times(mod._sentence_findings, sentences, None))
            per_report[name].append(_times(mod.extract_findings, reports, mod.clear_cache))
    print(f"loadavg after:  {_loadavg()}")
    for label, table in (("per sentence", per_sentence), ("per report", per_report)):
        for name in modules:
            mean, p95, total = _stats(table[name])
            print(f"{label:13} {name:9} mean {mean:.4f} ms  p95 {p95:.4f} ms  total {total:8.1f} ms")
        if args.baseline:
            base, cur = _stats(table["baseline"]), _stats(table["current"])
            print(f"{label:13} speed-up  mean x{base[0] / cur[0]:.2f}  p95 x{base[1] / cur[1]:.2f}")


if __name__ == "__main__":
    main()
