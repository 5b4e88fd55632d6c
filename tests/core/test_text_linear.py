"""Every text reader of labs, units, conditions and orders is linear in its input's length (issue 10, hole 2).

Each reader gets hostile inputs (long runs that made backtracking patterns quadratic: '1' x 16,000 in a
reference-range text took 7.4 s) of growing size; doubling the size must no more than about double the
time (checked over two doublings, for noise). The public readers also cap their input, so they are checked well past their caps; the patterns
themselves are checked uncapped, since a cap alone would hide a quadratic pattern.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from decimal import Decimal

import pytest

from cds_service.core import labs, orders, units
from cds_service.core.conditions import text_kind
from cds_service.core.labs import parse_range_text, parse_value_text
from cds_service.core.resources import CodeableConcept, MedicationRequest, ServiceRequest

HOSTILE = {
    "digits": "1",
    "digit-dot": "1.",
    "digit-comma": "1,",
    "dashes": "1-",
    "spaces": "1 ",
    "less-than": "<",
    "braces": "{",
    "words": "no ",
    "letters": "a",
    "bile": "bile duct ",
    "g4": "igg4 ",
}


def _seconds(read: Callable[[str], object], text: str) -> float:
    # CPU time of this thread: wall time on a shared, oversubscribed machine mostly measures the others.
    started = time.thread_time()
    read(text)
    return time.thread_time() - started


def _assert_linear(read: Callable[[str], object], unit: str, size: int) -> None:
    """Four times the size takes no more than about four times as long (two doublings, about x2 each).

    Interleaved repeats, best of each, in CPU time: the machine is shared and noisy. A quadratic reader takes x16 (the
    reported range text: seconds at these sizes). Sizes stay under the CPU cache's step (past ~100 kB the
    cost per character of even a plain scan jumps once), and differences under a few milliseconds are
    noise, whatever their ratio.
    """
    small = unit * (size // len(unit))
    large = small * 4
    read(small)  # warm up (compiled patterns, caches)
    t_small = t_large = float("inf")
    for _ in range(5):
        t_small = min(t_small, _seconds(read, small))
        t_large = min(t_large, _seconds(read, large))
    assert t_large <= 8 * t_small + 0.005, f"{unit!r} x {size}: {t_small:.4f} s, x4 -> {t_large:.4f} s"


def _range_pattern(text: str) -> object:
    return [m.groups() for m in labs._RANGE_TEXT.finditer(text)]


def _upper_pattern(text: str) -> object:
    return [m.groups() for m in labs._UPPER_TEXT.finditer(text)]


def _words(text: str) -> object:
    return labs._NEGATIVE_WORDS.search(text), labs._POSITIVE_WORDS.search(text)


def _annotation(text: str) -> object:
    return units._ANNOTATION.sub("", text)


def _stricture(text: str) -> object:
    concept = (CodeableConcept((), text),)
    return orders.classify_order(ServiceRequest(reasonCode=concept)), orders.classify_order(
        MedicationRequest(medicationCodeableConcept=concept[0])
    )


PATTERNS: dict[str, Callable[[str], object]] = {
    "range text pattern": _range_pattern,
    "upper limit pattern": _upper_pattern,
    "polarity words": _words,
    "unit annotations": _annotation,
    "condition text": text_kind,
    "order texts": _stricture,
}


@pytest.mark.parametrize("hostile", sorted(HOSTILE))
@pytest.mark.parametrize("reader", sorted(PATTERNS))
def test_text_patterns_are_linear_uncapped(reader, hostile):
    _assert_linear(PATTERNS[reader], HOSTILE[hostile], 10_000)


def _conversion(text: str) -> object:
    try:
        return units.conversion_factor(text, "g/L")
    except units.UnitError:
        return None


PUBLIC: dict[str, Callable[[str], object]] = {
    "referenceRange.text": lambda text: parse_range_text(text, "g/L", "g/L"),
    "valueString": parse_value_text,
    "unit": _conversion,
}


@pytest.mark.parametrize("hostile", sorted(HOSTILE))
@pytest.mark.parametrize("reader", sorted(PUBLIC))
def test_public_text_readers_are_linear_and_capped(reader, hostile):
    _assert_linear(PUBLIC[reader], HOSTILE[hostile], 16_000)
    started = time.perf_counter()
    PUBLIC[reader](HOSTILE[hostile] * 1_000_000)
    assert time.perf_counter() - started < 0.5


def test_the_reported_hostile_range_text_is_fast_and_still_reads_a_range_after_it():
    started = time.perf_counter()
    assert parse_range_text("1" * 16_000, "g/L", "g/L") == (None, None)
    assert time.perf_counter() - started < 0.05
    assert parse_range_text("1" * 100 + " 0.039-0.864 g/L", "g/L", "g/L") == (
        Decimal("0.039"),
        Decimal("0.864"),
    )
