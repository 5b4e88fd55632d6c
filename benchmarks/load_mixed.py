"""Mixed load: valid and invalid hook calls, feedback and discovery, against the real service.

Starts ``uvicorn cds_service.web.app:app`` in a subprocess on a free loopback port (dev mode, a throwaway
SQLite feedback store in a temporary directory, log level warning, no access log), warms it up, then
runs ``--concurrency`` closed-loop clients (threads, one keep-alive ``httpx.Client`` each) for
``--duration`` seconds. Each client draws, with fixed weights and a seeded RNG, one of:

- valid: a fixture request (full prefetch) to the service for its hook; discovery; valid feedback;
- invalid: malformed or truncated JSON, a non-object body, the wrong hook for the service, an unknown
  service, a request missing a required field, a mutated fixture body (random keys dropped or values
  replaced), invalid feedback, and (rarely) a body over the 5 MiB limit.

It records every status code and latency, samples the server's RSS (psutil, else ``/proc``) after
warm-up, about ten times during the run and at the end, and prints requests by status and kind, the
count of 5xx (must be 0), p50/p90/p99 latency overall and for valid requests, throughput, RSS
start/end/max and growth, and any traceback the server wrote to stderr. Exit code 1 on any 5xx,
traceback, unexpected status or transport error.

    python benchmarks/load_mixed.py                # 60 s, 32 clients
    python benchmarks/load_mixed.py --quick        # 10 s
    python benchmarks/load_mixed.py --duration 30 --concurrency 8

The uvicorn start/wait/stop code is ``_servers.py``'s. Traffic goes to 127.0.0.1 only; every loop is bounded by the deadline and the server is stopped in
``finally``.
"""

from __future__ import annotations

import argparse
import copy
import json
import random
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from _servers import Server, percentile, service_env

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from cds_service.fixtures.catalog import list_fixtures  # noqa: E402
from cds_service.hooks.discovery import SERVICE_FOR_HOOK, SERVICES  # noqa: E402

REQUEST_TIMEOUT_S = 30.0
MAX_BODY_BYTES = 5 * 1024 * 1024
FEEDBACK_EXAMPLES = ROOT.parent / "shared" / "reference" / "cds-hooks" / "examples" / "spec-2.0.1"
SERVICE_IDS = [s.id for s in SERVICES]
JSON_HEADERS = {"Content-Type": "application/json"}


@dataclass(frozen=True)
class Call:
    """One prepared request: what to send and which statuses are acceptable."""

    kind: str
    valid: bool
    method: str
    path: str
    body: bytes | None
    expected: frozenset[int]


@dataclass
class Result:
    kind: str
    valid: bool
    status: int | str
    latency_s: float
    expected: bool


@dataclass
class Worker:
    results: list[Result] = field(default_factory=list)


# ------------------------------------------------------------------ the request mix


def _dumps(body: object) -> bytes:
    return json.dumps(body, separators=(",", ":")).encode()


def _mutate(rng: random.Random, body: dict, count: int) -> dict:
    """Drop a random key or replace a random value with another JSON type, ``count`` times."""
    body = copy.deepcopy(body)
    replacements: list[object] = [
        None,
        0,
        -1e308,
        "",
        "<script>x</script>",
        [],
        {},
        {"resourceType": "Bundle"},
    ]
    for _ in range(count):
        slots: list[tuple[object, object]] = []
        stack: list[object] = [body]
        while stack:
            node = stack.pop()
            items = (
                node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
            )
            for key, value in items:
                slots.append((node, key))
                stack.append(value)
        if not slots:
            break
        parent, key = rng.choice(slots)
        if isinstance(parent, dict) and rng.random() < 0.5:
            del parent[key]
        else:
            parent[key] = copy.deepcopy(rng.choice(replacements))  # type: ignore[index]
    return body


def build_catalogue(seed: int) -> list[tuple[Call, float]]:
    """Every request of the mix with its weight (weights sum to about 100)."""
    rng = random.Random(seed)
    fixtures = list_fixtures()
    calls: list[tuple[Call, float]] = []
    ok = frozenset({200})
    bad = frozenset({400})

    def hook(fixture_request: dict, service: str | None = None) -> str:
        return f"/cds-services/{service or SERVICE_FOR_HOOK[fixture_request['hook']]}"

    per_fixture = 50.0 / len(fixtures)
    for fixture in fixtures:
        req = fixture.request
        calls.append((Call("valid-hook", True, "POST", hook(req), _dumps(req), ok), per_fixture))
    calls.append((Call("discovery", True, "GET", "/cds-services", None, ok), 3.0))

    first = fixtures[0].request
    raw = _dumps(first)
    calls.append((Call("malformed-json", False, "POST", hook(first), raw[: len(raw) // 2], bad), 2.0))
    calls.append((Call("malformed-json", False, "POST", hook(first), b"{hook: order-sign}", bad), 1.0))
    calls.append((Call("not-an-object", False, "POST", hook(first), b"[1, 2, 3]", bad), 1.0))
    calls.append((Call("empty-body", False, "POST", hook(first), b"", bad), 1.0))
    for fixture in fixtures[:5]:
        req = fixture.request
        other = next(s for s in SERVICE_IDS if s != SERVICE_FOR_HOOK[req["hook"]])
        calls.append((Call("wrong-hook", False, "POST", hook(req, other), _dumps(req), bad), 1.0))
    calls.append(
        (Call("unknown-service", False, "POST", "/cds-services/no-such-service", raw, frozenset({404})), 2.0)
    )
    for missing in ("hook", "hookInstance", "context"):
        body = {k: v for k, v in first.items() if k != missing}
        calls.append((Call("missing-field", False, "POST", hook(first), _dumps(body), bad), 1.0))
    body = copy.deepcopy(first)
    del body["context"]["patientId"]
    # CDS Hooks requires context.patientId, but the service answers without it (200): both accepted here.
    calls.append((Call("no-patientId", False, "POST", hook(first), _dumps(body), frozenset({200, 400})), 1.0))
    mutated_statuses = frozenset({200, 400, 412})
    for i in range(60):
        fixture = fixtures[i % len(fixtures)]
        body = _mutate(rng, fixture.request, rng.randint(1, 4))
        calls.append(
            (Call("mutated", False, "POST", hook(fixture.request), _dumps(body), mutated_statuses), 0.2)
        )
    big = _dumps({**first, "padding": "x" * (MAX_BODY_BYTES + 1)})
    calls.append((Call("over-limit", False, "POST", hook(first), big, frozenset({413})), 0.1))

    examples = sorted(FEEDBACK_EXAMPLES.glob("feedback-*.json"))
    for index, path in enumerate(examples * 10):
        body = json.loads(path.read_text())
        for item in body["feedback"]:
            item["card"] = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        service = SERVICE_IDS[index % len(SERVICE_IDS)]
        call = Call("feedback", True, "POST", f"/cds-services/{service}/feedback", _dumps(body), ok)
        calls.append((call, 6.0 / (len(examples) * 10)))
    invalid_feedback = [{"feedback": [{"card": "x", "outcome": "maybe"}]}, {"feedback": "no"}, {}, []]
    for body in invalid_feedback:
        call = Call(
            "bad-feedback", False, "POST", f"/cds-services/{SERVICE_IDS[0]}/feedback", _dumps(body), bad
        )
        calls.append((call, 0.5))
    return calls


# ------------------------------------------------------------------ the server


def make_server(workdir: Path) -> Server:
    """The service (``_servers.Server``): dev mode, throwaway SQLite store, log level WARNING, ready at discovery."""
    return Server(
        "server",
        "cds_service.web.app:app",
        workdir,
        service_env(workdir, "WARNING"),
        ready_path="/cds-services",
        stderr_name="server.stderr",
    )


# ------------------------------------------------------------------ the load


def send(client: httpx.Client, base_url: str, call: Call) -> Result:
    started = time.perf_counter()
    try:
        if call.method == "GET":
            response = client.get(base_url + call.path)
        else:
            response = client.post(base_url + call.path, content=call.body, headers=JSON_HEADERS)
        status: int | str = response.status_code
    except httpx.HTTPError as exc:
        status = type(exc).__name__
    elapsed = time.perf_counter() - started
    return Result(call.kind, call.valid, status, elapsed, status in call.expected)


def warm_up(base_url: str, catalogue: list[tuple[Call, float]]) -> None:
    """Each distinct request once (the over-limit body excepted), the valid hook calls twice."""
    with httpx.Client(timeout=REQUEST_TIMEOUT_S) as client:
        for call, _ in catalogue:
            if call.kind == "over-limit":
                continue
            for _ in range(2 if call.kind == "valid-hook" else 1):
                send(client, base_url, call)


def run_load(
    server: Server, catalogue: list[tuple[Call, float]], concurrency: int, duration_s: float, seed: int
) -> tuple[list[Result], float, list[tuple[float, int]]]:
    calls = [c for c, _ in catalogue]
    weights = [w for _, w in catalogue]
    workers = [Worker() for _ in range(concurrency)]
    gate = threading.Barrier(concurrency + 1)
    stop_at = [0.0]

    def work(index: int, out: Worker) -> None:
        rng = random.Random(seed * 1000 + index)
        limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
        with httpx.Client(timeout=REQUEST_TIMEOUT_S, limits=limits) as client:
            gate.wait()
            while time.monotonic() < stop_at[0]:
                out.results.append(send(client, server.base_url, rng.choices(calls, weights)[0]))

    threads = [threading.Thread(target=work, args=(i, w), daemon=True) for i, w in enumerate(workers)]
    for thread in threads:
        thread.start()
    rss: list[tuple[float, int]] = [(0.0, server.rss_bytes())]
    started = time.monotonic()
    stop_at[0] = started + duration_s
    gate.wait()
    interval = max(duration_s / 10, 0.5)
    while time.monotonic() < stop_at[0]:
        time.sleep(min(interval, max(stop_at[0] - time.monotonic(), 0.0)))
        rss.append((time.monotonic() - started, server.rss_bytes()))
    for thread in threads:
        thread.join(timeout=REQUEST_TIMEOUT_S + 5)
    wall = time.monotonic() - started
    rss.append((wall, server.rss_bytes()))
    return [r for w in workers for r in w.results], wall, rss


# ------------------------------------------------------------------ the report


def latency_line(name: str, results: Sequence[Result]) -> str:
    ms = [r.latency_s * 1000 for r in results]
    return (
        f"  {name:<12} n={len(ms):>6}  p50 {percentile(ms, 50):7.1f}  p90 {percentile(ms, 90):7.1f}  "
        f"p99 {percentile(ms, 99):7.1f}  max {max(ms, default=float('nan')):7.1f} ms"
    )


def report(results: list[Result], wall: float, rss: list[tuple[float, int]], server: Server, args) -> int:
    mib = 1024 * 1024
    by_status = Counter(str(r.status) for r in results)
    by_kind: dict[str, Counter[str]] = {}
    for r in results:
        by_kind.setdefault(r.kind, Counter())[str(r.status)] += 1
    server_errors = sum(n for s, n in by_status.items() if s.isdigit() and int(s) >= 500)
    transport_errors = sum(n for s, n in by_status.items() if not s.isdigit())
    unexpected = [r for r in results if not r.expected]
    log = server.stderr_text()
    tracebacks = log.count("Traceback")
    print(
        f"\nmixed load: {args.concurrency} clients, {args.duration:.0f} s, seed {args.seed}, {server.base_url}"
    )
    print(f"requests: {len(results)} in {wall:.1f} s = {len(results) / wall:.1f} req/s")
    print("by status: " + ", ".join(f"{s}: {n}" for s, n in sorted(by_status.items())))
    print("by kind:")
    for kind, counts in sorted(by_kind.items()):
        print(f"  {kind:<16} " + ", ".join(f"{s}: {n}" for s, n in sorted(counts.items())))
    print(
        f"5xx: {server_errors}   transport errors: {transport_errors}   unexpected status: {len(unexpected)}"
    )
    for r in unexpected[:10]:
        print(f"  unexpected: {r.kind} -> {r.status}")
    print("latency:")
    print(latency_line("all", results))
    print(latency_line("valid", [r for r in results if r.valid]))
    print(latency_line("valid-hook", [r for r in results if r.kind == "valid-hook"]))
    print(latency_line("feedback", [r for r in results if r.kind == "feedback"]))
    print(latency_line("discovery", [r for r in results if r.kind == "discovery"]))
    print(latency_line("invalid", [r for r in results if not r.valid]))
    values = [b for _, b in rss]
    print(
        f"RSS: start {values[0] / mib:.1f} MiB, end {values[-1] / mib:.1f} MiB, max {max(values) / mib:.1f} MiB, "
        f"growth {(values[-1] - values[0]) / mib:+.1f} MiB"
    )
    print("RSS samples: " + ", ".join(f"{t:.0f}s {b / mib:.1f}" for t, b in rss))
    print(f"server tracebacks in stderr: {tracebacks}")
    if tracebacks:
        print(log[log.index("Traceback") :][:3000])
    failed = server_errors or tracebacks or transport_errors or unexpected
    print("RESULT: " + ("FAIL" if failed else "OK"))
    return 1 if failed else 0


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of load (default 60)")
    parser.add_argument("--concurrency", type=int, default=32, help="concurrent clients (default 32)")
    parser.add_argument("--quick", action="store_true", help="10 s instead of --duration")
    parser.add_argument("--seed", type=int, default=20261125, help="seed of the request mix")
    args = parser.parse_args(argv)
    if args.quick:
        args.duration = 10.0
    if args.duration <= 0 or args.concurrency <= 0:
        parser.error("--duration and --concurrency must be positive")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    catalogue = build_catalogue(args.seed)
    with tempfile.TemporaryDirectory(prefix="igg4-load-") as tmp:
        server = make_server(Path(tmp))
        try:
            server.start()
            server.wait_ready()
            warm_up(server.base_url, catalogue)
            results, wall, rss = run_load(server, catalogue, args.concurrency, args.duration, args.seed)
            return report(results, wall, rss, server, args)
        finally:
            server.stop()


if __name__ == "__main__":
    raise SystemExit(main())
