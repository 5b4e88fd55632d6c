"""No-prefetch hook latency against a local FHIR server, next to the latency of each FHIR query it makes.

The CDS Hooks "live data" path: the request has no ``prefetch``, so the service runs the six queries of
``cds_service.queries.QUERIES`` against ``fhirServer`` itself, concurrently. This pass starts, on free
loopback ports in one throwaway directory:

* sekmet-fhir, the FHIR test server (``bash .ci/install-fhir-server.sh`` installs it into ``.venv-fhir``),
  started by ``scripts/live_demo.py``'s own start/stop code, loaded with every fixture Bundle;
* the service (``uvicorn cds_service.app:app``, one worker, development mode so the loopback FHIR server is
  allowed, log level WARNING, throwaway SQLite store), as in ``hook_latency.py``.

It checks that the published case without prefetch (``fhirServer`` = the local base) still gets one
``warning`` card scoring 35, then alternates, ``--rounds`` times: the hook in a closed loop at each
``--fetch-concurrency`` level, then ``--fetch-reps`` sequential runs of the six queries on their own
(``requests``, one session, following ``next`` links as the service does, JSON parsed), each run followed by
the six at once from a thread pool (as the service's fetcher runs them). It prints the hook's p50/p90/p99 and
the service's CPU per call, each query's p50/p90, the slowest query's p50, the sum of the query p50s, the
concurrent batch's p50, and the ratio hook p50 / slowest query p50: the service runs the queries
concurrently, so ≤ 1.5 is the aim.
Everything it started is stopped in ``finally``.

Usage (same options as ``hook_latency.py``, which runs this pass at its end unless ``--no-fetch``)::

    python benchmarks/fetch_latency.py             # hook at concurrency 1 and 4, 6 s each; 30 query runs
    python benchmarks/fetch_latency.py --quick     # concurrency 1, 2 s; 6 query runs
"""

from __future__ import annotations

import argparse
import copy
import json
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urljoin

import hook_latency as hl
import requests
from requests.adapters import HTTPAdapter

sys.path.insert(0, str(hl.ROOT / "scripts"))

import live_demo

from cds_service.fixture_loader import load_bundles
from cds_service.fixtures import list_fixtures
from cds_service.queries import QUERIES

FHIR_JSON = "application/fhir+json"
MAX_PAGES = 10


def timed_query(session: requests.Session, base: str, query: str) -> tuple[float, int]:
    """Run one query as the service does (GET, follow ``next`` links, parse JSON): seconds and entries."""
    url = f"{base}/{query}"
    entries = 0
    started = time.perf_counter()
    for _ in range(MAX_PAGES):
        response = session.get(url, headers={"Accept": FHIR_JSON}, timeout=30, allow_redirects=False)
        if response.status_code != 200:
            raise SystemExit(f"FHIR query {query} answered {response.status_code}: {response.text[:500]}")
        page = response.json()
        entries += len(page.get("entry") or []) if page.get("resourceType") == "Bundle" else 1
        nxt = [link["url"] for link in page.get("link") or [] if link.get("relation") == "next"]
        if not nxt:
            break
        url = urljoin(url, nxt[0])
    return time.perf_counter() - started, entries


def timed_batch(pool: ThreadPoolExecutor, session: requests.Session, base: str, queries: list[str]) -> float:
    """Seconds for all ``queries`` run at once on ``pool``, as the service's fetcher does."""
    started = time.perf_counter()
    list(pool.map(lambda query: timed_query(session, base, query), queries))
    return time.perf_counter() - started


def no_prefetch_body(fixture: Path, fhir_base: str) -> bytes:
    """The fixture request without ``prefetch``, pointed at the local FHIR server."""
    request = json.loads(fixture.read_bytes())
    request = copy.deepcopy(request)
    request.pop("prefetch", None)
    request["fhirServer"] = fhir_base
    return json.dumps(request, indent=2).encode()


def run(args: argparse.Namespace) -> int:
    """The no-prefetch pass: start, load, check, measure, print, stop; 0 on success."""
    print(
        f"\nno-prefetch pass: hook {args.fetch_duration:g} s per concurrency level {args.fetch_levels} and "
        f"{args.fetch_reps} sequential runs of the {len(QUERIES)} queries, in {args.rounds} alternating rounds"
    )
    workdir = Path(tempfile.mkdtemp(prefix="igg4-bench-fetch-"))
    started: list[live_demo.Started] = []
    service: hl.Server | None = None
    hooks = {level: hl.Sample() for level in args.fetch_levels}
    times: dict[str, list[float]] = {q.key: [] for q in QUERIES}
    batches: list[float] = []
    entries: dict[str, int] = {}
    try:
        began = time.perf_counter()
        try:
            fhir = live_demo.start_fhir(workdir / "fhir", started)
        except live_demo.DemoError as exc:
            print(f"no-prefetch pass failed: {exc}", file=sys.stderr)
            return 2
        service = hl.Server("service", "cds_service.app:app", workdir, hl.service_env(workdir, "WARNING"))
        service.start()
        service.wait_ready()
        report = load_bundles(fhir.url, [(f.name, f.bundle) for f in list_fixtures()])
        if not report.ok:
            print(f"loading the fixtures failed:\n{report.table()}", file=sys.stderr)
            return 2
        print(
            f"sekmet-fhir and service up, {len(report.entries)} fixture resources loaded, "
            f"in {time.perf_counter() - began:.1f} s"
        )
        body = no_prefetch_body(args.fixture, fhir.url)
        url = service.base_url + hl.HOOK_PATH
        hl.check_service(url, body, "published case without prefetch")
        patient_id = json.loads(body)["context"]["patientId"]
        queries = {q.key: q.render(patient_id) for q in QUERIES}
        with requests.Session() as session, ThreadPoolExecutor(len(queries)) as pool:
            session.trust_env = False  # as the service's fetcher, with as many pooled connections
            adapter = HTTPAdapter(pool_connections=len(queries), pool_maxsize=2 * len(queries))
            session.mount("http://", adapter)
            for query in queries.values():  # warm-up: connection, server-side first-call costs
                timed_query(session, fhir.url, query)
            segment_s = args.fetch_duration / args.rounds
            for _ in range(args.rounds):
                for level in args.fetch_levels:
                    if args.warmup > 0:
                        hl.run_load(url, body, level, args.warmup)
                    cpu_before = service.cpu_seconds()
                    segment = hl.run_load(url, body, level, segment_s)
                    segment.server_cpu_s = service.cpu_seconds() - cpu_before
                    hooks[level].extend(segment)
                for _ in range(max(1, args.fetch_reps // args.rounds)):
                    for key, query in queries.items():
                        elapsed, entries[key] = timed_query(session, fhir.url, query)
                        times[key].append(elapsed)
                    batches.append(timed_batch(pool, session, fhir.url, list(queries.values())))
    finally:
        if service is not None:
            service.stop()
        for process in reversed(started):
            live_demo.stop(process)
        shutil.rmtree(workdir, ignore_errors=True)

    print(
        f"{'hook, no prefetch':<22} {'requests':>9} {'errors':>7} {'req/s':>8} {'p50 ms':>8} {'p90 ms':>8} "
        f"{'p99 ms':>8} {'cpu ms/req':>10}"
    )
    stats = {level: hl.summarize(sample) for level, sample in hooks.items()}
    for level, s in stats.items():
        print(
            f"{f'concurrency {level}':<22} {s['requests']:>9.0f} {s['errors']:>7.0f} {s['throughput']:>8.1f} "
            f"{s['p50']:>8.2f} {s['p90']:>8.2f} {s['p99']:>8.2f} {s['cpu_ms']:>10.2f}"
        )
    p50s: dict[str, float] = {}
    print(f"{'query (sequential)':<22} {'runs':>9} {'entries':>7} {'':>8} {'p50 ms':>8} {'p90 ms':>8}")
    for key, values in times.items():
        ordered = sorted(values)
        p50s[key] = hl.percentile(ordered, 50) * 1000
        print(
            f"{key:<22} {len(ordered):>9} {entries.get(key, 0):>7} {'':>8} {p50s[key]:>8.2f} "
            f"{hl.percentile(ordered, 90) * 1000:>8.2f}"
        )
    slowest = max(p50s, key=p50s.__getitem__)
    print(
        f"slowest query: {slowest} p50 {p50s[slowest]:.2f} ms; sum of the query p50s "
        f"{sum(p50s.values()):.2f} ms"
    )
    batch_p50 = hl.percentile(sorted(batches), 50) * 1000
    print(
        f"all {len(p50s)} queries at once from the client (thread pool, {len(batches)} runs): p50 {batch_p50:.2f} ms"
        f" = x{batch_p50 / p50s[slowest]:.2f} the slowest query, x{batch_p50 / sum(p50s.values()):.2f} the sum"
    )
    for level, s in stats.items():
        ratio = s["p50"] / p50s[slowest]
        aim = "met" if ratio <= 1.5 else "NOT met"
        print(
            f"concurrency {level}: hook p50 / slowest query p50 = x{ratio:.2f} (aim <= 1.5: {aim}); "
            f"hook p50 / sum of query p50s = x{s['p50'] / sum(p50s.values()):.2f}"
        )
    return 0 if all(s["errors"] == 0 for s in stats.values()) else 1


def main(argv: Sequence[str] | None = None) -> int:
    """Run only the no-prefetch pass, with ``hook_latency.py``'s options."""
    return run(hl.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
