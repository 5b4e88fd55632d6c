"""Hook-call latency of the real CDS service against a bare FastAPI endpoint, over loopback.

Starts two uvicorn servers as subprocesses on free loopback ports, one worker each, same flags:

* ``service``: the real app, ``cds_service.web.app:app``, in development mode (no authentication) with a
  throwaway SQLite feedback database and application log level WARNING (no per-call log line);
* ``bare``: ``benchmarks/bare_endpoint.py``, which only reads and ``orjson``-parses the body.

Both are sent the published case (``fhir_fixtures/01-published-case/request.json``, full prefetch) at
``/cds-services/igg4rd-order-sign`` by a thread pool of keep-alive ``httpx.Client`` s (one connection per
thread) for a fixed duration at a fixed concurrency, in two variants:

* ``warm``: the identical request again and again (the same patient's data on every hook of a visit), so the
  service's validated-resource and per-sentence findings caches answer nearly everything;
* ``cold``: every request a first-seen patient, from a pool of bodies generated before any timing: every
  resource id (and the references to it, and ``context.patientId``) and every sentence of each report's
  ``conclusion`` and text ``presentedForm`` carry a unique token, so neither cache can help. The bare
  endpoint is sent the same cold bodies in the same order.

The four targets are measured in alternating segments (bare/warm, service/warm, bare/cold, service/cold,
then again), each after a warm-up, so machine noise hits all. Then a short extra pass runs the service at log
level INFO and averages the ``timings_ms`` phases of its ``hook call`` lines, per variant. Last, unless
``--no-fetch``, ``fetch_latency.py`` measures the no-prefetch path against a local FHIR server. The uvicorn
start/wait/stop code is ``_servers.py``'s.

The evaluation date cannot be pinned through the environment (``create_app(today=...)`` only), so the
service uses today's date; the fixture's dates are 2026-10/11 and fall inside the 3-year lab lookback
until 2029-10, so the card stays the same until then. The run fails loudly unless the warm request, three cold
probes and the last cold body the service was sent each get one ``warning`` card scoring 35.

Usage::

    python benchmarks/hook_latency.py             # 10 s per target, concurrency 8; about 2 minutes in all
    python benchmarks/hook_latency.py --quick     # smoke run of everything: about 30 s
"""

from __future__ import annotations

import argparse
import base64
import copy
import json
import math
import os
import re
import secrets
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from _servers import Server, percentile, service_env

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the checkout's cds_service, whatever the working directory

from cds_service.core import narrative  # noqa: E402
from cds_service.core import resources as fhir_parse  # noqa: E402 - after the sys.path set-up
from cds_service.core.reports import report_text  # noqa: E402
from cds_service.hooks.cards import EXTENSION_KEY  # noqa: E402

FIXTURE = ROOT / "fhir_fixtures" / "01-published-case" / "request.json"
SERVICE_ID = "igg4rd-order-sign"
HOOK_PATH = f"/cds-services/{SERVICE_ID}"
REQUEST_TIMEOUT_S = 30.0
PHASES = ("parse", "fetch", "evaluate", "render")
EXPECTED_TOTAL = 35  # the published case's score (fhir_fixtures/01-published-case/expected.json)
# The end of a sentence: ., ! or ? after a letter or a closing parenthesis, before white space or the end.
# (Not after a digit: "1." starts a list item and "3.1" is a decimal.)
_SENTENCE_END = re.compile(r"(?<=[A-Za-z)])([.!?])(?=\s|$)")
_TEXT_TYPES = ("text/plain", "text/markdown")


@dataclass
class Sample:
    """Latencies (seconds) and statuses of one target, plus the wall time they were collected over."""

    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    wall_s: float = 0.0
    server_cpu_s: float = 0.0

    def extend(self, other: Sample) -> None:
        """Add another segment's results."""
        self.latencies += other.latencies
        self.errors += other.errors
        self.wall_s += other.wall_s
        self.server_cpu_s += other.server_cpu_s


def run_load(url: str, body: bytes | Callable[[], bytes], concurrency: int, duration_s: float) -> Sample:
    """POST ``body`` (or, if callable, what it returns per request) to ``url`` from ``concurrency`` threads.

    Each thread has its own keep-alive client.
    Each thread sends requests back to back until ``duration_s`` has passed (closed loop, so the
    concurrency is the number of requests in flight). A non-200 answer or a transport error is an error;
    only successful requests' latencies are kept.
    """
    headers = {"Content-Type": "application/json"}
    next_body: Callable[[], bytes] = body if callable(body) else (lambda: body)
    start_gate = threading.Barrier(concurrency + 1)
    results: list[Sample] = [Sample() for _ in range(concurrency)]
    end_at = [0.0]

    def worker(out: Sample) -> None:
        limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
        with httpx.Client(timeout=REQUEST_TIMEOUT_S, limits=limits) as client:
            start_gate.wait()
            while time.perf_counter() < end_at[0]:
                content = next_body()  # outside the timed span
                t0 = time.perf_counter()
                try:
                    status = client.post(url, content=content, headers=headers).status_code
                except httpx.HTTPError:
                    status = 0
                elapsed = time.perf_counter() - t0
                if status == 200:
                    out.latencies.append(elapsed)
                else:
                    out.errors += 1

    threads = [threading.Thread(target=worker, args=(r,), daemon=True) for r in results]
    for t in threads:
        t.start()
    began = time.perf_counter()
    end_at[0] = began + duration_s
    start_gate.wait()
    for t in threads:
        t.join(timeout=duration_s + REQUEST_TIMEOUT_S + 5)
    total = Sample(wall_s=time.perf_counter() - began)
    for r in results:
        total.extend(Sample(r.latencies, r.errors))
    return total


def summarize(sample: Sample) -> dict[str, float]:
    """Requests, errors, throughput (req/s) and p50/p90/p99 latency (ms)."""
    ordered = sorted(sample.latencies)
    return {
        "requests": len(ordered) + sample.errors,
        "errors": sample.errors,
        "throughput": len(ordered) / sample.wall_s if sample.wall_s else math.nan,
        "p50": percentile(ordered, 50) * 1000,
        "p90": percentile(ordered, 90) * 1000,
        "p99": percentile(ordered, 99) * 1000,
        "cpu_ms": sample.server_cpu_s / len(ordered) * 1000 if ordered else math.nan,
    }


def check_service(url: str, body: bytes, what: str = "published case") -> None:
    """Fail loudly unless the service answers with exactly one ``warning`` card scoring 35."""
    response = httpx.post(url, content=body, headers={"Content-Type": "application/json"}, timeout=30)
    if response.status_code != 200:
        raise SystemExit(f"service answered the {what} with {response.status_code}: {response.text[:2000]}")
    cards = response.json().get("cards")
    indicators = [c.get("indicator") for c in cards] if isinstance(cards, list) else cards
    if indicators != ["warning"]:
        raise SystemExit(f"{what}: expected one 'warning' card from the service, got {indicators!r}")
    total = (cards[0].get("extension") or {}).get(EXTENSION_KEY, {}).get("total")
    if total != EXPECTED_TOTAL:
        raise SystemExit(f"{what}: expected a card scoring {EXPECTED_TOTAL}, got total {total!r}")


def check_bare(url: str, body: bytes) -> None:
    """Fail loudly unless the bare endpoint answers ``{"cards": []}``."""
    response = httpx.post(url, content=body, headers={"Content-Type": "application/json"}, timeout=30)
    if response.status_code != 200 or response.json() != {"cards": []}:
        raise SystemExit(f"bare endpoint answered {response.status_code}: {response.text[:500]}")


def _mark_sentences(text: str, token: str) -> str:
    """``text`` with `` (ref <token>)`` before the end mark of every sentence."""
    return _SENTENCE_END.sub(lambda m: f" (ref {token}){m.group(1)}", text)


def _resources(node: object) -> list[dict[str, object]]:
    """Every JSON object with a ``resourceType`` and an ``id`` inside ``node`` (Bundles' entries included)."""
    found: list[dict[str, object]] = []
    if isinstance(node, dict):
        if isinstance(node.get("resourceType"), str) and isinstance(node.get("id"), str):
            found.append(node)
        for value in node.values():
            found += _resources(value)
    elif isinstance(node, list):
        for value in node:
            found += _resources(value)
    return found


def _relink(node: object, renamed: dict[str, str]) -> None:
    """Point every ``reference`` and ``fullUrl`` ending in a renamed ``Type/id`` at the new id."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("reference", "fullUrl") and isinstance(value, str):
                head, sep, tail = value.rpartition("/")
                head, sep2, rtype = head.rpartition("/") if sep else ("", "", "")
                old = f"{rtype}/{tail}"
                if old in renamed:
                    node[key] = f"{head}{sep2}{renamed[old]}"
            else:
                _relink(value, renamed)
    elif isinstance(node, list):
        for value in node:
            _relink(value, renamed)


def cold_request(template: dict[str, object], token: str, sentences: bool = True) -> dict[str, object]:
    """A first-seen patient: ``template`` with every resource id and every report sentence made unique.

    Every resource (prefetch, draft orders) gets ``-<token>`` appended to its id, references and
    ``fullUrl`` s follow, and so does ``context.patientId``; every sentence of each DiagnosticReport's
    ``conclusion`` and of its text ``presentedForm`` s (base64: decoded, marked, re-encoded) gets
    `` (ref <token>)`` before its end mark. Neither the validated-model cache (keyed by the resource's JSON)
    nor the per-sentence findings cache can then serve anything. ``sentences=False`` renames the resources
    only (the report text stays as it is).
    """
    request = copy.deepcopy(template)
    renamed: dict[str, str] = {}
    for resource in _resources(request):
        if resource["resourceType"] == "Bundle":
            continue
        old = f"{resource['resourceType']}/{resource['id']}"
        resource["id"] = f"{resource['id']}-{token}"
        renamed[old] = f"{resource['resourceType']}/{resource['id']}"
        if resource["resourceType"] != "DiagnosticReport" or not sentences:
            continue
        if isinstance(resource.get("conclusion"), str):
            resource["conclusion"] = _mark_sentences(str(resource["conclusion"]), token)
        forms = resource.get("presentedForm")
        for form in forms if isinstance(forms, list) else []:
            kind = str(form.get("contentType") or "text/plain").split(";")[0].strip().lower()
            if kind in _TEXT_TYPES and isinstance(form.get("data"), str):
                text = _mark_sentences(base64.b64decode(form["data"]).decode("utf-8"), token)
                form["data"] = base64.b64encode(text.encode("utf-8")).decode("ascii")
                form.pop("size", None)  # no longer true; the hash too
                form.pop("hash", None)
    _relink(request, renamed)
    context = request.get("context")
    if isinstance(context, dict) and f"Patient/{context.get('patientId')}" in renamed:
        context["patientId"] = renamed[f"Patient/{context['patientId']}"].split("/", 1)[1]
    return request


@dataclass
class ColdPool:
    """Pre-generated first-seen-patient bodies, and how many cache keys each one brings."""

    bodies: list[bytes]
    resources: int  # resources per body (each a validation-cache key)
    sentences: int  # distinct report sentences per body (each a sentence-cache key)

    def always_misses(self) -> bool:
        """Whether cycling the pool still misses both LRU caches.

        In an LRU of capacity C, keys requested in a cycle of K > C distinct keys are always evicted before
        they come back. Twice the capacity leaves a margin for the slightly shuffled order of concurrent
        clients.
        """
        # Resources are read element by element with no cache since issue 9: only sentences are cached.
        return len(self.bodies) * self.sentences >= 2 * narrative.SENTENCE_CACHE_SIZE


def make_cold_pool(template: dict[str, object], size: int) -> ColdPool:
    """``size`` cold bodies (indented JSON like the fixture), checked to share no resource id or sentence."""
    run = secrets.token_hex(3)
    bodies = [json.dumps(cold_request(template, f"{run}{i:05d}"), indent=2).encode() for i in range(size)]
    sample = json.loads(bodies[0])
    token = f"{run}{0:05d}"
    resources = [r for r in _resources(sample) if r["resourceType"] != "Bundle"]
    if any(not str(raw["id"]).endswith(token) for raw in resources):
        raise SystemExit("cold body: a resource kept its id")
    sentences: set[str] = set()
    for raw in resources:
        if raw["resourceType"] == "DiagnosticReport":
            model = fhir_parse.read_resource("DiagnosticReport", raw)
            for sentence in narrative.split_sentences(report_text(model)):
                if f"(ref {token})" not in sentence:
                    raise SystemExit(f"cold body: a report sentence is not unique: {sentence[:80]!r}")
                sentences.add(sentence)
    if not sentences:
        raise SystemExit("cold body: no report sentence found")
    return ColdPool(bodies, len(resources), len(sentences))


class BodySource:
    """Hands out request bodies to the load threads: one fixed body, or a pool in order (then cycling)."""

    def __init__(self, bodies: Sequence[bytes]) -> None:
        self._bodies = bodies
        self._lock = threading.Lock()
        self.handed_out = 0

    def __call__(self) -> bytes:
        with self._lock:
            index = self.handed_out
            self.handed_out += 1
        return self._bodies[index % len(self._bodies)]


def phase_means(log_text: str) -> tuple[int, dict[str, float]]:
    """Number of ``hook call`` log lines and the mean of each ``timings_ms`` phase (plus ``total_ms``)."""
    sums: dict[str, list[float]] = {}
    calls = 0
    for line in log_text.splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if not isinstance(record, dict) or not isinstance(record.get("timings_ms"), dict):
            continue
        calls += 1
        for phase, value in record["timings_ms"].items():
            sums.setdefault(phase, []).append(float(value))
        if isinstance(record.get("total_ms"), int | float):
            sums.setdefault("total_ms", []).append(float(record["total_ms"]))
    return calls, {phase: statistics.fmean(values) for phase, values in sums.items()}


def print_table(stats: dict[str, dict[str, float]]) -> None:
    """One line per target."""
    print(
        f"{'target':<13} {'requests':>9} {'errors':>7} {'req/s':>9} {'p50 ms':>9} {'p90 ms':>9} {'p99 ms':>9} {'cpu ms/req':>10}"
    )
    for name, s in stats.items():
        print(
            f"{name:<13} {s['requests']:>9.0f} {s['errors']:>7.0f} {s['throughput']:>9.1f} "
            f"{s['p50']:>9.2f} {s['p90']:>9.2f} {s['p99']:>9.2f} {s['cpu_ms']:>10.2f}"
        )


def loadavg() -> str:
    """The 1/5/15-minute load averages (Linux), for the record."""
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "n/a"


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--duration", type=float, default=10.0, help="measured seconds per target (10)")
    parser.add_argument("--concurrency", type=int, default=8, help="requests in flight (8)")
    parser.add_argument("--rounds", type=int, default=2, help="alternating segments per target (2)")
    parser.add_argument("--warmup", type=float, default=1.0, help="warm-up seconds before each segment (1)")
    parser.add_argument(
        "--phase-duration", type=float, default=3.0, help="INFO-log pass seconds per variant (3; 0: skip)"
    )
    parser.add_argument("--fixture", type=Path, default=FIXTURE, help="the hook request JSON to send")
    parser.add_argument(
        "--cold-pool", type=int, default=1500, help="pre-generated first-seen-patient bodies (1500)"
    )
    parser.add_argument(
        "--no-fetch", action="store_true", help="skip the no-prefetch pass against a local FHIR server"
    )
    parser.add_argument(
        "--fetch-duration",
        type=float,
        default=6.0,
        help="no-prefetch pass: measured hook seconds per concurrency level (6)",
    )
    parser.add_argument(
        "--fetch-reps", type=int, default=30, help="no-prefetch pass: sequential runs of the six queries (30)"
    )
    parser.add_argument(
        "--fetch-concurrency",
        default="1,4",
        help="no-prefetch pass: comma-separated hook concurrency levels (1,4)",
    )
    parser.add_argument(
        "--proxy-latency-ms",
        type=float,
        default=40.0,
        help="no-prefetch pass: delay the latency proxy adds before forwarding each FHIR call (40)",
    )
    parser.add_argument("--quick", action="store_true", help="smoke run of everything in about 40 s")
    args = parser.parse_args(argv)
    if args.quick:
        args.duration, args.concurrency, args.rounds, args.warmup = 2.0, 4, 2, 0.5
        args.phase_duration, args.cold_pool = 1.0, 700
        args.fetch_duration, args.fetch_reps, args.fetch_concurrency = 2.0, 6, "1"
    try:
        args.fetch_levels = [int(c) for c in args.fetch_concurrency.split(",") if c.strip()]
    except ValueError:
        parser.error("--fetch-concurrency takes comma-separated integers")
    if args.duration <= 0 or args.concurrency < 1 or args.rounds < 1 or args.warmup < 0:
        parser.error("duration must be > 0, concurrency and rounds >= 1, warmup >= 0")
    if args.cold_pool < 1 or args.fetch_reps < 1 or args.fetch_duration <= 0:
        parser.error("cold pool and fetch reps must be >= 1, fetch duration > 0")
    if not args.fetch_levels or min(args.fetch_levels) < 1:
        parser.error("--fetch-concurrency needs levels >= 1")
    if not 0 <= args.proxy_latency_ms <= 10_000:
        parser.error("--proxy-latency-ms must be between 0 and 10000")
    return args


def print_ratios(stats: dict[str, dict[str, float]], variant: str) -> None:
    """The service/bare ratios of one variant and the p50 target verdict."""
    bare, svc = stats[f"bare/{variant}"], stats[f"service/{variant}"]
    verdict = "met" if svc["p50"] <= 3 * bare["p50"] else "NOT met"
    print(
        f"{variant}: service/bare p50 x{svc['p50'] / bare['p50']:.2f}, p99 x{svc['p99'] / bare['p99']:.2f}, "
        f"throughput x{svc['throughput'] / bare['throughput']:.3f}, "
        f"server CPU per request x{svc['cpu_ms'] / bare['cpu_ms']:.1f}; target p50 <= 3 x bare: {verdict}"
    )


def info_pass(workdir: Path, variants: dict[str, BodySource], args: argparse.Namespace) -> None:
    """Restart the service at log level INFO and print the mean phase timings of each variant's calls."""
    logged = Server("service-info", "cds_service.web.app:app", workdir, service_env(workdir, "INFO"))
    logs: dict[str, tuple[str, dict[str, float]]] = {}
    try:
        logged.start()
        logged.wait_ready()
        url = logged.base_url + HOOK_PATH
        for name, source in variants.items():
            run_load(url, source, args.concurrency, min(args.warmup, 1.0))
            seen = len(logged.stderr_text())
            info = summarize(run_load(url, source, args.concurrency, args.phase_duration))
            logs[name] = (logged.stderr_text()[seen:], info)
    finally:
        logged.stop()
    for name, (text, info) in logs.items():
        calls, means = phase_means(text)
        shown = [p for p in PHASES if p in means] + [p for p in means if p not in PHASES]
        print(
            f"phases {name} (INFO-log pass, {calls} calls, {info['throughput']:.1f} req/s, "
            f"p50 {info['p50']:.2f} ms), mean ms: " + ", ".join(f"{p} {means[p]:.3f}" for p in shown)
        )


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark and print the comparison; 0 on success."""
    args = parse_args(argv)
    body = args.fixture.read_bytes()
    template = json.loads(body)
    segment_s = args.duration / args.rounds
    print(
        f"{time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())}; loadavg {loadavg()}; cpus {os.cpu_count()}; "
        f"python {sys.version.split()[0]}"
    )
    started = time.perf_counter()
    pool = make_cold_pool(template, args.cold_pool)
    probes = make_cold_pool(template, 3)  # other tokens: the correctness check leaves the pool unseen
    print(
        f"fixture {args.fixture.relative_to(ROOT) if args.fixture.is_relative_to(ROOT) else args.fixture} "
        f"(warm: {len(body)} bytes; cold: {len(pool.bodies)} pre-generated bodies of about "
        f"{len(pool.bodies[0])} bytes, {pool.resources} resources and {pool.sentences} report sentences each, "
        f"generated in {time.perf_counter() - started:.1f} s); {args.duration:g} s per target in "
        f"{args.rounds} alternating segments, concurrency {args.concurrency}, warm-up {args.warmup:g} s "
        "per segment"
    )
    with tempfile.TemporaryDirectory(prefix="igg4-bench-") as tmp:
        workdir = Path(tmp)
        bare_env = service_env(workdir, "WARNING")
        servers = {
            "bare": Server("bare", "bare_endpoint:app", workdir, bare_env, app_dir=ROOT / "benchmarks"),
            "service": Server("service", "cds_service.web.app:app", workdir, service_env(workdir, "WARNING")),
        }
        # Each target gets its own cold source: bare and service are sent the same bytes in the same order.
        sources = {
            (name, variant): BodySource([body]) if variant == "warm" else BodySource(pool.bodies)
            for variant in ("warm", "cold")
            for name in servers
        }
        samples = {f"{name}/{variant}": Sample() for name, variant in sources}
        try:
            for server in servers.values():
                server.start()
            for server in servers.values():
                server.wait_ready()
            check_bare(servers["bare"].base_url + HOOK_PATH, body)
            check_bare(servers["bare"].base_url + HOOK_PATH, probes.bodies[0])
            check_service(servers["service"].base_url + HOOK_PATH, body)
            for i, probe in enumerate(probes.bodies):
                check_service(servers["service"].base_url + HOOK_PATH, probe, f"cold probe {i + 1}")
            for _ in range(args.rounds):
                for (name, variant), source in sources.items():
                    server = servers[name]
                    url = server.base_url + HOOK_PATH
                    if args.warmup > 0:
                        run_load(url, source, args.concurrency, args.warmup)
                    cpu_before = server.cpu_seconds()
                    segment = run_load(url, source, args.concurrency, segment_s)
                    segment.server_cpu_s = server.cpu_seconds() - cpu_before
                    samples[f"{name}/{variant}"].extend(segment)
            # The last cold body the service saw must still score like the published case.
            last = pool.bodies[(sources["service", "cold"].handed_out - 1) % len(pool.bodies)]
            check_service(servers["service"].base_url + HOOK_PATH, last, "last cold body")
        finally:
            for server in servers.values():
                server.stop()

        stats = {name: summarize(sample) for name, sample in samples.items()}
        print_table(stats)
        for variant in ("warm", "cold"):
            print_ratios(stats, variant)
        warm, cold = stats["service/warm"], stats["service/cold"]
        print(
            f"service cold/warm: p50 x{cold['p50'] / warm['p50']:.2f}, "
            f"CPU per request x{cold['cpu_ms'] / warm['cpu_ms']:.2f}"
        )
        used = sources["service", "cold"].handed_out
        if used <= len(pool.bodies):
            print(f"cold pool: the service was sent {used} of {len(pool.bodies)} bodies, none twice")
        else:
            misses = "still every one a cache miss (LRU cycle)" if pool.always_misses() else "PARTLY WARM"
            print(
                f"cold pool: the service was sent {used} bodies from a pool of {len(pool.bodies)} "
                f"(cycled: {misses}; raise --cold-pool)"
            )

        if args.phase_duration > 0:
            info_pass(workdir, {"warm": BodySource([body]), "cold": BodySource(pool.bodies)}, args)

    status = 0
    if not args.no_fetch:
        # A subprocess, not an import: fetch_latency.py imports this module (one direction only).
        fetch_script = Path(__file__).with_name("fetch_latency.py")
        passed_on = list(sys.argv[1:] if argv is None else argv)
        status = subprocess.run([sys.executable, str(fetch_script), *passed_on], check=False).returncode
    print(f"loadavg at end {loadavg()}; {time.perf_counter() - started:.0f} s in all")
    return status


if __name__ == "__main__":
    raise SystemExit(main())
