"""Hook-call latency of the real CDS service against a bare FastAPI endpoint, over loopback.

Starts two uvicorn servers as subprocesses on free loopback ports, one worker each, same flags:

* ``service``: the real app, ``cds_service.app:app``, in development mode (no authentication) with a
  throwaway SQLite feedback database and application log level WARNING (no per-call log line);
* ``bare``: ``benchmarks/bare_endpoint.py``, which only reads and ``orjson``-parses the body.

Both get the published case (``fhir_fixtures/01-published-case/request.json``, full prefetch) POSTed to
``/cds-services/igg4rd-order-sign`` by a thread pool of keep-alive ``httpx.Client`` s (one connection per
thread) for a fixed duration at a fixed concurrency. The targets are measured in alternating segments
(bare, service, bare, service, ...), each after a warm-up, so machine noise hits both. Then a short extra
pass runs the service at log level INFO and averages the ``timings_ms`` phases of its ``hook call`` lines.

The evaluation date cannot be pinned through the environment (``create_app(today=...)`` only), so the
service uses today's date; the fixture's dates are 2026-10/11 and fall inside the 3-year lab lookback
until 2029-10, so the card stays the same until then. The run fails loudly if the card is not one
``warning``.

Usage::

    python benchmarks/hook_latency.py             # 10 s per target, concurrency 8
    python benchmarks/hook_latency.py --quick     # smoke run: 2 s per target, concurrency 4
"""

from __future__ import annotations

import argparse
import json
import math
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
FIXTURE = ROOT / "fhir_fixtures" / "01-published-case" / "request.json"
SERVICE_ID = "igg4rd-order-sign"
HOOK_PATH = f"/cds-services/{SERVICE_ID}"
HOST = "127.0.0.1"
READY_TIMEOUT_S = 60.0
REQUEST_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 10.0
PHASES = ("parse", "fetch", "evaluate", "render")


def free_port() -> int:
    """A free TCP port on the loopback interface."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


@dataclass
class Server:
    """One uvicorn subprocess on loopback; stderr goes to a file so a full pipe can never block it."""

    name: str
    app: str
    workdir: Path
    env: dict[str, str]
    app_dir: Path | None = None
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None
    stderr_path: Path | None = None

    @property
    def base_url(self) -> str:
        """The server's loopback base URL."""
        return f"http://{HOST}:{self.port}"

    def start(self) -> None:
        """Launch uvicorn (1 worker, log level warning, no access log)."""
        cmd = [sys.executable, "-m", "uvicorn", self.app, "--host", HOST, "--port", str(self.port)]
        cmd += ["--workers", "1", "--log-level", "warning", "--no-access-log"]
        if self.app_dir is not None:
            cmd += ["--app-dir", str(self.app_dir)]
        self.stderr_path = self.workdir / f"{self.name}-{self.port}.stderr"
        with self.stderr_path.open("wb") as err:
            self.proc = subprocess.Popen(cmd, cwd=ROOT, env=self.env, stdout=subprocess.DEVNULL, stderr=err)

    def stderr_text(self) -> str:
        """Everything the server wrote to stderr so far."""
        if self.stderr_path is None or not self.stderr_path.exists():
            return ""
        return self.stderr_path.read_text(errors="replace")

    def wait_ready(self, timeout_s: float = READY_TIMEOUT_S) -> None:
        """Poll ``/healthz`` until it answers 200; fail if the process dies or ``timeout_s`` passes."""
        assert self.proc is not None
        deadline = time.monotonic() + timeout_s
        with httpx.Client(timeout=2.0) as client:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise SystemExit(
                        f"{self.name} exited with code {self.proc.returncode} before it was ready:\n"
                        f"{self.stderr_text()[-3000:]}"
                    )
                try:
                    if client.get(f"{self.base_url}/healthz").status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                time.sleep(0.1)
        raise SystemExit(f"{self.name} not ready after {timeout_s:.0f} s:\n{self.stderr_text()[-3000:]}")

    def cpu_seconds(self) -> float:
        """User + system CPU time the server process has used so far (Linux ``/proc``; NaN elsewhere)."""
        if self.proc is None:
            return math.nan
        try:
            fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return math.nan
        # fields[0] is field 3 (state) of proc(5); utime and stime are fields 14 and 15.
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        """Terminate, then kill if it does not exit in time."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=STOP_TIMEOUT_S)


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


def run_load(url: str, body: bytes, concurrency: int, duration_s: float) -> Sample:
    """POST ``body`` to ``url`` from ``concurrency`` threads, each with its own keep-alive client.

    Each thread sends requests back to back until ``duration_s`` has passed (closed loop, so the
    concurrency is the number of requests in flight). A non-200 answer or a transport error is an error;
    only successful requests' latencies are kept.
    """
    headers = {"Content-Type": "application/json"}
    start_gate = threading.Barrier(concurrency + 1)
    results: list[Sample] = [Sample() for _ in range(concurrency)]
    end_at = [0.0]

    def worker(out: Sample) -> None:
        limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
        with httpx.Client(timeout=REQUEST_TIMEOUT_S, limits=limits) as client:
            start_gate.wait()
            while (t0 := time.perf_counter()) < end_at[0]:
                try:
                    status = client.post(url, content=body, headers=headers).status_code
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


def percentile(sorted_values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile of already sorted values."""
    if not sorted_values:
        return math.nan
    rank = max(1, math.ceil(p / 100 * len(sorted_values)))
    return sorted_values[rank - 1]


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


def check_service(url: str, body: bytes) -> None:
    """Fail loudly unless the service answers the published case with exactly one ``warning`` card."""
    response = httpx.post(url, content=body, headers={"Content-Type": "application/json"}, timeout=30)
    if response.status_code != 200:
        raise SystemExit(f"service answered {response.status_code}: {response.text[:2000]}")
    cards = response.json().get("cards")
    indicators = [c.get("indicator") for c in cards] if isinstance(cards, list) else cards
    if indicators != ["warning"]:
        raise SystemExit(f"expected one 'warning' card from the service, got indicators {indicators!r}")


def check_bare(url: str, body: bytes) -> None:
    """Fail loudly unless the bare endpoint answers ``{"cards": []}``."""
    response = httpx.post(url, content=body, headers={"Content-Type": "application/json"}, timeout=30)
    if response.status_code != 200 or response.json() != {"cards": []}:
        raise SystemExit(f"bare endpoint answered {response.status_code}: {response.text[:500]}")


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


def service_env(workdir: Path, log_level: str) -> dict[str, str]:
    """The service's environment: dev mode, throwaway SQLite database, the given app log level."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("IGG4_CDS_")}
    env["IGG4_CDS_DEV_MODE"] = "true"
    env["IGG4_CDS_DATABASE_URL"] = f"sqlite:///{workdir / 'feedback.sqlite3'}"
    env["IGG4_CDS_LOG_LEVEL"] = log_level
    env["PYTHONUNBUFFERED"] = "1"
    return env


def print_table(stats: dict[str, dict[str, float]]) -> None:
    """One line per target."""
    print(
        f"{'target':<8} {'requests':>9} {'errors':>7} {'req/s':>9} {'p50 ms':>9} {'p90 ms':>9} {'p99 ms':>9} {'cpu ms/req':>10}"
    )
    for name, s in stats.items():
        print(
            f"{name:<8} {s['requests']:>9.0f} {s['errors']:>7.0f} {s['throughput']:>9.1f} "
            f"{s['p50']:>9.2f} {s['p90']:>9.2f} {s['p99']:>9.2f} {s['cpu_ms']:>10.2f}"
        )


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--duration", type=float, default=10.0, help="measured seconds per target (10)")
    parser.add_argument("--concurrency", type=int, default=8, help="requests in flight (8)")
    parser.add_argument("--rounds", type=int, default=2, help="alternating segments per target (2)")
    parser.add_argument("--warmup", type=float, default=1.0, help="warm-up seconds before each segment (1)")
    parser.add_argument(
        "--phase-duration", type=float, default=3.0, help="INFO-log pass seconds (3; 0: skip)"
    )
    parser.add_argument("--fixture", type=Path, default=FIXTURE, help="the hook request JSON to send")
    parser.add_argument("--quick", action="store_true", help="smoke run: 2 s per target, concurrency 4")
    args = parser.parse_args(argv)
    if args.quick:
        args.duration, args.concurrency, args.rounds, args.phase_duration = 2.0, 4, 2, 1.0
    if args.duration <= 0 or args.concurrency < 1 or args.rounds < 1 or args.warmup < 0:
        parser.error("duration must be > 0, concurrency and rounds >= 1, warmup >= 0")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark and print the comparison; 0 on success."""
    args = parse_args(argv)
    body = args.fixture.read_bytes()
    segment_s = args.duration / args.rounds
    print(
        f"fixture {args.fixture.relative_to(ROOT) if args.fixture.is_relative_to(ROOT) else args.fixture} "
        f"({len(body)} bytes); {args.duration:g} s per target in {args.rounds} alternating segments, "
        f"concurrency {args.concurrency}, warm-up {args.warmup:g} s per segment; cpus {os.cpu_count()}; "
        f"python {sys.version.split()[0]}"
    )
    with tempfile.TemporaryDirectory(prefix="igg4-bench-") as tmp:
        workdir = Path(tmp)
        bare_env = service_env(workdir, "WARNING")
        servers = {
            "bare": Server("bare", "bare_endpoint:app", workdir, bare_env, app_dir=ROOT / "benchmarks"),
            "service": Server("service", "cds_service.app:app", workdir, service_env(workdir, "WARNING")),
        }
        samples = {name: Sample() for name in servers}
        try:
            for server in servers.values():
                server.start()
            for server in servers.values():
                server.wait_ready()
            check_bare(servers["bare"].base_url + HOOK_PATH, body)
            check_service(servers["service"].base_url + HOOK_PATH, body)
            for _ in range(args.rounds):
                for name, server in servers.items():
                    url = server.base_url + HOOK_PATH
                    if args.warmup > 0:
                        run_load(url, body, args.concurrency, args.warmup)
                    cpu_before = server.cpu_seconds()
                    segment = run_load(url, body, args.concurrency, segment_s)
                    segment.server_cpu_s = server.cpu_seconds() - cpu_before
                    samples[name].extend(segment)
        finally:
            for server in servers.values():
                server.stop()

        stats = {name: summarize(sample) for name, sample in samples.items()}
        print_table(stats)
        bare, svc = stats["bare"], stats["service"]
        print(
            f"service/bare: p50 x{svc['p50'] / bare['p50']:.2f}, p99 x{svc['p99'] / bare['p99']:.2f}, "
            f"throughput x{svc['throughput'] / bare['throughput']:.3f}, "
            f"server CPU per request x{svc['cpu_ms'] / bare['cpu_ms']:.1f}"
        )
        verdict = "met" if svc["p50"] <= 3 * bare["p50"] else "NOT met"
        print(f"target service p50 <= 3 x bare p50: {verdict}")

        if args.phase_duration > 0:
            logged = Server("service-info", "cds_service.app:app", workdir, service_env(workdir, "INFO"))
            try:
                logged.start()
                logged.wait_ready()
                url = logged.base_url + HOOK_PATH
                run_load(url, body, args.concurrency, min(args.warmup, 1.0))
                info = summarize(run_load(url, body, args.concurrency, args.phase_duration))
            finally:
                logged.stop()
            calls, means = phase_means(logged.stderr_text())
            shown = [p for p in PHASES if p in means] + [p for p in means if p not in PHASES]
            print(
                f"phases (INFO-log pass, {calls} calls incl. warm-up, {info['throughput']:.1f} req/s, "
                f"p50 {info['p50']:.2f} ms), mean ms: " + ", ".join(f"{p} {means[p]:.3f}" for p in shown)
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
