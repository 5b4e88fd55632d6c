"""What each phase of one hook call costs, in process on one thread: the published case, warm and cold.

Phases, in the order a call runs them: body parsing (``orjson.loads``), hook request checks
(``parse_hook_request``), prefetch sorting (``gather_data``), reading the draft orders and the patient's
data (``read_orders`` + ``read_evidence``; the narrative reader's share, ``extract_findings``, is also shown
alone), criteria (``assess``), card rendering (``render_cards``), JSON encoding of the response
(``orjson.dumps``), the ``hook call`` log line (the app's formatter, written to ``/dev/null``) and card
recording (``Store.record_card_batches`` on a throwaway SQLite file: one response per transaction, and per
response in a transaction of 50 as the recorder thread batches them). Then the whole ``handle_hook``.

*Warm* repeats the fixture (the caches answer); *cold* clears the core's caches before each call. Each
phase's median and p99 over ``--calls`` calls (µs). ``--profile warm|cold`` prints a cProfile of
``handle_hook`` instead.

    python benchmarks/hook_phases.py [--calls 300] [--profile cold]
"""

from __future__ import annotations

import argparse
import cProfile
import logging
import os
import pstats
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from cds_service.core import assessment, narrative, reports  # noqa: E402
from cds_service.core import resources as fhir_parse  # noqa: E402
from cds_service.feedback.store import CardBatch, Store, shown_cards  # noqa: E402
from cds_service.hooks.cards import render_cards  # noqa: E402
from cds_service.hooks.discovery import find_service  # noqa: E402
from cds_service.hooks.handler import core_config, gather_data, handle_hook  # noqa: E402
from cds_service.hooks.request import parse_hook_request  # noqa: E402
from cds_service.logs import configure_logging  # noqa: E402
from cds_service.settings import Settings  # noqa: E402

FIXTURE = ROOT / "fhir_fixtures" / "01-published-case" / "request.json"
SERVICE_ID = "igg4rd-order-sign"
SERVICE = find_service(SERVICE_ID)
TODAY = date(2026, 11, 25)


def clear_caches() -> None:
    """Empty the core's caches (whatever of them this checkout has)."""
    for module in (fhir_parse, narrative):
        clear = getattr(module, "clear_cache", None)
        if callable(clear):
            clear()


@contextmanager
def timed_narrative(acc: list[float]) -> Any:
    """Add the time spent in the narrative reader during the block to ``acc``."""
    original = reports.extract_findings

    def wrapper(text: str) -> Any:
        t0 = time.perf_counter()
        try:
            return original(text)
        finally:
            acc.append(time.perf_counter() - t0)

    reports.extract_findings = wrapper
    try:
        yield
    finally:
        reports.extract_findings = original


def one_call(raw: bytes, settings: Settings, store: Store, log: logging.Logger) -> dict[str, float]:
    """Run the phases of one call; their durations in seconds."""
    out: dict[str, float] = {}
    clock = time.perf_counter
    narrative_s: list[float] = []
    t = clock()
    body = orjson.loads(raw)
    out["body parsing"] = clock() - t
    t = clock()
    request = parse_hook_request(body, "order-sign")
    out["hook request checks"] = clock() - t
    t = clock()
    data, unavailable, _ = gather_data(request, settings, None, time.monotonic() + 10)
    out["prefetch sorting"] = clock() - t
    t = clock()
    with timed_narrative(narrative_s):
        orders = assessment.read_orders(request.draft_orders)
        evidence = assessment.read_evidence(data, unavailable, core_config(settings), TODAY)
    out["reading (all)"] = clock() - t
    out["  of which narrative"] = sum(narrative_s)
    t = clock()
    result = assessment.assess(request.hook, orders, evidence)
    out["criteria"] = clock() - t
    t = clock()
    cards = render_cards(result, request.patient_id)
    out["card rendering"] = clock() - t
    t = clock()
    orjson.dumps({"cards": cards})
    out["JSON encoding"] = clock() - t
    t = clock()
    extra = {"service": SERVICE_ID, "hook_instance": request.hook_instance, "status": 200, "cards": 1}
    extra |= {"indicators": ["warning"], "timings_ms": {"parse": 0.1, "fetch": 0.1, "evaluate": 1.0}}
    log.info("hook call", extra={**extra, "total_ms": 1.0, "fetched": [], "skipped_resources": 0})
    out["logging"] = clock() - t
    shown = shown_cards(cards, result)
    batch = CardBatch(SERVICE_ID, "order-sign", request.hook_instance, f"Patient/{request.patient_id}", shown)
    t = clock()
    store.record_card_batches([batch])
    out["card recording (1 per commit)"] = clock() - t
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--profile", choices=("warm", "cold"), help="cProfile handle_hook instead")
    args = parser.parse_args()
    raw = FIXTURE.read_bytes()
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(database_url=f"sqlite:///{tmp}/f.sqlite3", dev_mode=True)
        store = Store.from_settings(settings)
        configure_logging("INFO")
        sink = open(os.devnull, "w")  # noqa: SIM115 - closed below
        for handler in logging.getLogger().handlers:
            if isinstance(handler, logging.StreamHandler):
                handler.setStream(sink)
        log = logging.getLogger("cds_service.calls")
        body = orjson.loads(raw)
        if args.profile:
            profiler = cProfile.Profile()
            for _ in range(args.calls):
                if args.profile == "cold":
                    clear_caches()
                profiler.enable()
                handle_hook(SERVICE, body, settings, today=TODAY)
                profiler.disable()
            pstats.Stats(profiler).sort_stats("tottime").print_stats(30)
            return
        for variant in ("warm", "cold"):
            samples: dict[str, list[float]] = defaultdict(list)
            for _ in range(args.calls):
                if variant == "cold":
                    clear_caches()
                for phase, seconds in one_call(raw, settings, store, log).items():
                    samples[phase].append(seconds)
                if variant == "cold":
                    clear_caches()
                t = time.perf_counter()
                handle_hook(SERVICE, body, settings, today=TODAY)
                samples["handle_hook (whole)"].append(time.perf_counter() - t)
            outcome = handle_hook(SERVICE, body, settings, today=TODAY)
            cards = shown_cards(outcome.cards, outcome.assessment)
            batches = [CardBatch(SERVICE_ID, "order-sign", f"h{i}", "Patient/x", cards) for i in range(50)]
            per50 = _time(lambda: store.record_card_batches(batches), 20)  # noqa: B023
            samples["card recording (50 per commit), per response"] = [s / 50 for s in per50]
            print(f"\n{variant} ({args.calls} calls), µs: median, p99")
            for phase, values in samples.items():
                ordered = sorted(values)
                p99 = ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]
                print(f"  {phase:46} {statistics.median(values) * 1e6:9.1f} {p99 * 1e6:9.1f}")
        sink.close()
        store.close()


def _time(fn: Callable[[], object], n: int) -> list[float]:
    out = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out


if __name__ == "__main__":
    main()
