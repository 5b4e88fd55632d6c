"""The report reader runs in time linear in the text length, on hostile text up to 1 MB.

Each input is read at 256 KB, 512 KB and 1 MB; doubling the input must no more than about double the time
(ratio <= 2.6 plus a few milliseconds of timer noise; the best of a few runs, so a busy machine does not
fail the test). Before issue 7, 'no. ' x 250,000 took 259 s and '.' x 16,000 took 3.2 s (quadratic
sentence splitting).
"""

from __future__ import annotations

import itertools
import random
import time

import pytest

from cds_service.core import narrative

_WORDS = (
    "no", "not", "pancreas", "enlarged", "diffusely", "stricture", "CBD", "CHD", "hilar", "kidney", "renal",
    "cortical", "low-density", "bilateral", "left", "right", "IgG4", "IgG4/IgG", "ratio", ">", "40%", "10/hpf",
    "per", "HPF", "suspicious", "for", "malignancy", "aorta", "wall", "thickening", "soft", "tissue", "parotid",
    "glands", "Pancreas:", "HISTORY:", "1.", "e.g.", "no.", "vs.", "?", ";", ",", "but", "(", ")", "\n",
)  # fmt: skip


def _words(size: int) -> str:
    rng = random.Random(7)
    out: list[str] = []
    n = 0
    while n < size:
        w = rng.choice(_WORDS)
        out.append(w)
        n += len(w) + 1
    return " ".join(out)[:size]


def _repeat(unit: str) -> object:
    return lambda size: (unit * (size // len(unit) + 1))[:size]


HOSTILE = {
    "abbreviation-dots": _repeat("no. "),
    "dots": _repeat("."),
    "marks": _repeat("?!"),
    "list-markers": _repeat("1. "),
    "one-word": _repeat("a"),
    "stain-anchors": _repeat("IgG4/IgG ratio of > "),
    "organ-headings": _repeat("Pancreas:\n"),
    "sides": _repeat("right left bilateral kidney hypodense "),
    "cues": _repeat("no not without possibly "),
    "report-words": _words,
}
SIZES = (256 * 1024, 512 * 1024, 1024 * 1024)


def _best_time(text: str, runs: int = 3) -> float:
    best = float("inf")
    for _ in range(runs):
        narrative.clear_cache()
        start = time.perf_counter()
        narrative.extract_findings(text)
        best = min(best, time.perf_counter() - start)
    narrative.clear_cache()
    return best


def _about_linear(times: list[float]) -> bool:
    return all(large <= 2.6 * small + 0.02 for small, large in itertools.pairwise(times))


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_doubling_the_input_about_doubles_the_time(name):
    make = HOSTILE[name]
    texts = [make(size) for size in SIZES]  # type: ignore[operator]
    attempts: list[list[float]] = []
    for _ in range(3):  # 2 cores shared with other work: a burst of load can stretch one measurement
        attempts.append([_best_time(text) for text in texts])
        if _about_linear(attempts[-1]):
            break
    assert _about_linear(attempts[-1]), f"{name}: seconds at 256 KB, 512 KB, 1 MB: {attempts}"
    assert attempts[-1][-1] < 30, f"{name}: 1 MB took {attempts[-1][-1]:.1f} s"
