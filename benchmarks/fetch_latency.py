"""No-prefetch hook latency against a local FHIR server, next to the latency of each FHIR query it makes.

The CDS Hooks "live data" path: the request has no ``prefetch``, so the service runs the six queries of
``cds_service.hooks.queries.QUERIES`` against ``fhirServer`` itself, concurrently. This pass starts, on free
loopback ports in one throwaway directory:

* sekmet-fhir, the FHIR test server (``bash .ci/install-fhir-server.sh`` installs it into ``.venv-fhir``),
  started by ``tests/servers/sekmet.py`` (the tests' and the live demo's start/stop code), loaded with every
  fixture Bundle;
* the service (``uvicorn cds_service.web.app:app``, one worker, development mode so loopback FHIR servers are
  allowed, log level WARNING, throwaway SQLite store), with ``_servers.py`` as in ``hook_latency.py``;
* a latency-injecting reverse proxy in front of sekmet-fhir (:class:`LatencyProxy`, a stdlib
  ``ThreadingHTTPServer`` in a thread on 127.0.0.1): every GET waits ``--proxy-latency-ms`` (40) and is then
  forwarded with one pooled ``requests.Session`` per handler thread; sekmet's base URL in the answer is
  rewritten to the proxy's so ``next`` links stay on the proxy's origin. It stands in for a remote EHR FHIR
  server: tens of ms of network latency per call, served concurrently.

Two paths are measured, ``direct`` (fhirServer = sekmet's base) and ``proxied`` (fhirServer = the proxy's
base). For each it checks that the published case without prefetch still gets one ``warning`` card scoring
35, then, ``--rounds`` times with the paths alternating: the hook in a closed loop at each
``--fetch-concurrency`` level, then ``--fetch-reps`` sequential runs of the six queries on their own through
the same path (``requests``, one session, following ``next`` links as the service does, JSON parsed), each
run followed by the six at once from a thread pool (as the service's fetcher runs them). It prints, per
path, the hook's p50/p90/p99 and the service's CPU per call, each query's p50/p90, the slowest query's p50,
the sum of the query p50s, the concurrent batch's p50, and the ratio hook p50 / slowest query p50: the
service runs the queries concurrently, so ≤ 1.5 is the aim. Everything it started is stopped in ``finally``.

Usage (same options as ``hook_latency.py``, which runs this pass at its end unless ``--no-fetch``)::

    python benchmarks/fetch_latency.py             # hook at concurrency 1 and 4, 6 s each; 30 query runs
    python benchmarks/fetch_latency.py --quick     # concurrency 1, 2 s; 6 query runs
    python benchmarks/fetch_latency.py --proxy-latency-ms 80
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from urllib.parse import urljoin, urlsplit

import hook_latency as hl
import requests
from _servers import HOST, Server, percentile, service_env
from requests.adapters import HTTPAdapter

sys.path.insert(0, str(hl.ROOT / "tests"))  # servers.sekmet: sekmet-fhir start/stop shared with the tests

from cds_service.fhir.client import FHIR_JSON
from cds_service.fixtures.catalog import list_fixtures
from cds_service.fixtures.loader import load_bundles
from cds_service.hooks.queries import QUERIES
from tests.servers import sekmet

MAX_PAGES = 10
QUERY_TIMEOUT_S = 30.0
PROXY_IDLE_TIMEOUT_S = 60.0  # a kept-alive client connection idle this long is closed by the proxy
PROXY_STOP_TIMEOUT_S = 10.0
# Not copied from sekmet's answer: hop-by-hop, recomputed (length, encoding: requests decodes the body), or
# written by BaseHTTPRequestHandler itself (Server, Date).
_DROPPED_HEADERS = frozenset(
    {
        "connection",
        "keep-alive",
        "transfer-encoding",
        "content-length",
        "content-encoding",
        "server",
        "date",
    }
)
_FORWARDED_HEADERS = ("Accept", "Authorization", "Accept-Language")


# ------------------------------------------------------------------ the latency-injecting proxy


class _ProxyHandler(BaseHTTPRequestHandler):
    """Forwards one GET to the upstream FHIR server after the proxy's delay; anything else is refused."""

    protocol_version = "HTTP/1.1"  # keep-alive, as the service's pooled connections expect
    # Headers and body go out in two writes: with Nagle on, the body waits for the client's delayed ACK
    # (about 40 ms on Linux), which would add a second, unintended latency to every call.
    disable_nagle_algorithm = True
    timeout = PROXY_IDLE_TIMEOUT_S
    server: _ProxyHTTPServer

    def do_GET(self) -> None:
        """Wait, forward, rewrite sekmet's origin to the proxy's in the body and ``Location``, answer."""
        proxy = self.server.proxy
        time.sleep(proxy.latency_s)
        headers = {name: self.headers[name] for name in _FORWARDED_HEADERS if self.headers[name]}
        try:
            upstream = proxy.session().get(
                proxy.upstream_origin + self.path,
                headers=headers,
                timeout=QUERY_TIMEOUT_S,
                allow_redirects=False,
            )
        except requests.RequestException as exc:
            self._answer(502, [("Content-Type", "text/plain")], f"upstream: {exc}".encode())
            return
        body = upstream.content.replace(proxy.upstream_origin.encode(), proxy.origin.encode())
        kept = [
            (name, value.replace(proxy.upstream_origin, proxy.origin))
            for name, value in upstream.headers.items()
            if name.lower() not in _DROPPED_HEADERS
        ]
        self._answer(upstream.status_code, kept, body)

    def do_POST(self) -> None:
        """Refused: the benchmark only reads through the proxy (the fixtures are loaded into sekmet directly)."""
        self._answer(405, [("Allow", "GET")], b"")

    def _answer(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        """Quiet: no line per request on stderr."""


class _ProxyHTTPServer(ThreadingHTTPServer):
    """A ``ThreadingHTTPServer`` that knows its :class:`LatencyProxy`."""

    daemon_threads = True

    def __init__(self, proxy: LatencyProxy) -> None:
        self.proxy = proxy
        super().__init__((HOST, 0), _ProxyHandler)


@dataclass
class LatencyProxy:
    """A reverse proxy on 127.0.0.1 that adds ``latency_s`` before forwarding each GET to ``upstream_base``.

    Use as a context manager: the server thread starts on entry and is shut down, joined (bounded) and its
    upstream sessions closed on exit. ``base_url`` is ``upstream_base`` with the proxy's origin.
    """

    upstream_base: str
    latency_s: float
    _server: _ProxyHTTPServer | None = field(default=None, init=False, repr=False)
    _thread: threading.Thread | None = field(default=None, init=False, repr=False)
    _local: threading.local = field(default_factory=threading.local, init=False, repr=False)
    _sessions: list[requests.Session] = field(default_factory=list, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    @property
    def upstream_origin(self) -> str:
        """``scheme://host:port`` of the upstream server."""
        parts = urlsplit(self.upstream_base)
        return f"{parts.scheme}://{parts.netloc}"

    @property
    def origin(self) -> str:
        """``http://127.0.0.1:<port>`` of the proxy (only once it is started)."""
        assert self._server is not None, "the proxy is not started"
        return f"http://{HOST}:{self._server.server_address[1]}"

    @property
    def base_url(self) -> str:
        """The upstream FHIR base as seen through the proxy."""
        return self.origin + urlsplit(self.upstream_base).path.rstrip("/")

    def session(self) -> requests.Session:
        """This handler thread's pooled session to the upstream server (created on first use)."""
        current: requests.Session | None = getattr(self._local, "session", None)
        if current is None:
            current = requests.Session()
            current.trust_env = False
            with self._lock:
                self._sessions.append(current)
            self._local.session = current
        return current

    def __enter__(self) -> LatencyProxy:
        self._server = _ProxyHTTPServer(self)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.1},
            name="latency-proxy",
            daemon=True,
        )
        self._thread.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=PROXY_STOP_TIMEOUT_S)
        with self._lock:
            for session in self._sessions:
                session.close()
            self._sessions.clear()


# ------------------------------------------------------------------ measuring


def timed_query(session: requests.Session, base: str, query: str) -> tuple[float, int]:
    """Run one query as the service does (GET, follow ``next`` links, parse JSON): seconds and entries."""
    url = f"{base}/{query}"
    entries = 0
    started = time.perf_counter()
    for _ in range(MAX_PAGES):
        response = session.get(
            url, headers={"Accept": FHIR_JSON}, timeout=QUERY_TIMEOUT_S, allow_redirects=False
        )
        if response.status_code != 200:
            raise SystemExit(f"FHIR query {query} answered {response.status_code}: {response.text[:500]}")
        page = response.json()
        entries += len(page.get("entry") or []) if page.get("resourceType") == "Bundle" else 1
        nxt = [link["url"] for link in page.get("link") or [] if link.get("relation") == "next"]
        if not nxt:
            break
        url = urljoin(url, nxt[0])
        if not url.startswith(base):
            raise SystemExit(f"FHIR query {query}: next link {url} leaves {base}")
    return time.perf_counter() - started, entries


def timed_batch(pool: ThreadPoolExecutor, session: requests.Session, base: str, queries: list[str]) -> float:
    """Seconds for all ``queries`` run at once on ``pool``, as the service's fetcher does."""
    started = time.perf_counter()
    list(pool.map(lambda query: timed_query(session, base, query), queries))
    return time.perf_counter() - started


def no_prefetch_body(fixture: Path, fhir_base: str) -> bytes:
    """The fixture request without ``prefetch``, pointed at ``fhir_base``."""
    request = json.loads(fixture.read_bytes())
    request.pop("prefetch", None)
    request["fhirServer"] = fhir_base
    return json.dumps(request, indent=2).encode()


@dataclass
class PathResults:
    """What one path (direct or proxied) measured: hook samples per level, query and batch seconds."""

    name: str
    fhir_base: str
    body: bytes
    hooks: dict[int, hl.Sample]
    times: dict[str, list[float]] = field(default_factory=lambda: {q.key: [] for q in QUERIES})
    batches: list[float] = field(default_factory=list)
    entries: dict[str, int] = field(default_factory=dict)


def measure_round(
    args: argparse.Namespace,
    service: Server,
    path: PathResults,
    queries: dict[str, str],
    session: requests.Session,
    pool: ThreadPoolExecutor,
) -> None:
    """One round on one path: the hook at each concurrency level, then the sequential and concurrent queries."""
    url = service.base_url + hl.HOOK_PATH
    for level in args.fetch_levels:
        if args.warmup > 0:
            hl.run_load(url, path.body, level, args.warmup)
        cpu_before = service.cpu_seconds()
        segment = hl.run_load(url, path.body, level, args.fetch_duration / args.rounds)
        segment.server_cpu_s = service.cpu_seconds() - cpu_before
        path.hooks[level].extend(segment)
    for _ in range(max(1, args.fetch_reps // args.rounds)):
        for key, query in queries.items():
            elapsed, path.entries[key] = timed_query(session, path.fhir_base, query)
            path.times[key].append(elapsed)
        path.batches.append(timed_batch(pool, session, path.fhir_base, list(queries.values())))


def report(path: PathResults) -> bool:
    """Print one path's tables and ratios; whether its hook calls all succeeded."""
    print(f"\n[{path.name}] fhirServer {path.fhir_base}")
    print(
        f"{'hook, no prefetch':<22} {'requests':>9} {'errors':>7} {'req/s':>8} {'p50 ms':>8} {'p90 ms':>8} "
        f"{'p99 ms':>8} {'cpu ms/req':>10}"
    )
    stats = {level: hl.summarize(sample) for level, sample in path.hooks.items()}
    for level, s in stats.items():
        print(
            f"{f'concurrency {level}':<22} {s['requests']:>9.0f} {s['errors']:>7.0f} {s['throughput']:>8.1f} "
            f"{s['p50']:>8.2f} {s['p90']:>8.2f} {s['p99']:>8.2f} {s['cpu_ms']:>10.2f}"
        )
    p50s: dict[str, float] = {}
    print(f"{'query (on its own)':<22} {'runs':>9} {'entries':>7} {'':>8} {'p50 ms':>8} {'p90 ms':>8}")
    for key, values in path.times.items():
        ordered = sorted(values)
        p50s[key] = percentile(ordered, 50) * 1000
        print(
            f"{key:<22} {len(ordered):>9} {path.entries.get(key, 0):>7} {'':>8} {p50s[key]:>8.2f} "
            f"{percentile(ordered, 90) * 1000:>8.2f}"
        )
    slowest = max(p50s, key=p50s.__getitem__)
    print(
        f"slowest query: {slowest} p50 {p50s[slowest]:.2f} ms; sum of the query p50s "
        f"{sum(p50s.values()):.2f} ms"
    )
    batch_p50 = percentile(sorted(path.batches), 50) * 1000
    print(
        f"all {len(p50s)} queries at once from the client (thread pool, {len(path.batches)} runs): p50 "
        f"{batch_p50:.2f} ms = x{batch_p50 / p50s[slowest]:.2f} the slowest query, "
        f"x{batch_p50 / sum(p50s.values()):.2f} the sum"
    )
    for level, s in stats.items():
        ratio = s["p50"] / p50s[slowest]
        aim = "met" if ratio <= 1.5 else "NOT met"
        print(
            f"[{path.name}] concurrency {level}: hook p50 / slowest query p50 = x{ratio:.2f} (aim <= 1.5: "
            f"{aim}); hook p50 / sum of query p50s = x{s['p50'] / sum(p50s.values()):.2f}"
        )
    return all(s["errors"] == 0 for s in stats.values())


def run(args: argparse.Namespace) -> int:
    """The no-prefetch pass, direct and through the latency proxy: start, load, check, measure, print, stop."""
    print(
        f"\nno-prefetch pass: hook {args.fetch_duration:g} s per concurrency level {args.fetch_levels} and "
        f"{args.fetch_reps} sequential runs of the {len(QUERIES)} queries, in {args.rounds} alternating rounds, "
        f"direct and through a proxy adding {args.proxy_latency_ms:g} ms per call"
    )
    workdir = Path(tempfile.mkdtemp(prefix="igg4-bench-fetch-"))
    fhir: sekmet.FhirServer | None = None
    service: Server | None = None
    paths: list[PathResults] = []
    try:
        began = time.perf_counter()
        try:
            fhir = sekmet.launch(workdir / "fhir")
            fhir.wait_until_up()
        except sekmet.ServerError as exc:
            print(f"no-prefetch pass failed: {exc}", file=sys.stderr)
            return 2
        service = Server("service", "cds_service.web.app:app", workdir, service_env(workdir, "WARNING"))
        service.start()
        service.wait_ready()
        loaded = load_bundles(fhir.base_url, [(f.name, f.bundle) for f in list_fixtures()])
        if not loaded.ok:
            print(f"loading the fixtures failed:\n{loaded.table()}", file=sys.stderr)
            return 2
        print(
            f"sekmet-fhir and service up, {len(loaded.entries)} fixture resources loaded, "
            f"in {time.perf_counter() - began:.1f} s"
        )
        with (
            LatencyProxy(fhir.base_url, args.proxy_latency_ms / 1000) as proxy,
            requests.Session() as session,
            ThreadPoolExecutor(len(QUERIES)) as pool,
        ):
            session.trust_env = False  # as the service's fetcher, with as many pooled connections
            adapter = HTTPAdapter(pool_connections=len(QUERIES), pool_maxsize=2 * len(QUERIES))
            session.mount("http://", adapter)
            for name, base in (("direct", fhir.base_url), ("proxied", proxy.base_url)):
                body = no_prefetch_body(args.fixture, base)
                hl.check_service(
                    service.base_url + hl.HOOK_PATH, body, f"published case, no prefetch, {name}"
                )
                paths.append(
                    PathResults(name, base, body, {level: hl.Sample() for level in args.fetch_levels})
                )
            patient_id = json.loads(paths[0].body)["context"]["patientId"]
            queries = {q.key: q.render(patient_id) for q in QUERIES}
            for path in paths:  # warm-up: connections, server-side first-call costs
                for query in queries.values():
                    timed_query(session, path.fhir_base, query)
            for _ in range(args.rounds):
                for path in paths:
                    measure_round(args, service, path, queries, session, pool)
    finally:
        if service is not None:
            service.stop()
        if fhir is not None:
            fhir.stop()
        shutil.rmtree(workdir, ignore_errors=True)

    ok = [report(path) for path in paths]
    return 0 if all(ok) else 1


def main(argv: Sequence[str] | None = None) -> int:
    """Run only the no-prefetch pass, with ``hook_latency.py``'s options."""
    return run(hl.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
