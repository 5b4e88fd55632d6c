"""uvicorn subprocesses on loopback for the benchmarks: start, wait until ready (bounded), measure, stop.

Shared by ``hook_latency.py``, ``fetch_latency.py`` and ``load_mixed.py`` (``benchmarks/`` is on
``sys.path`` when they run as scripts). A :class:`Server` runs ``<this python> -m uvicorn <app>`` with one
worker, log level warning and no access log, from the checkout's root, on a free 127.0.0.1 port; its stderr
goes to a file so a full pipe can never block it. :meth:`Server.stop` terminates, then kills.
"""

from __future__ import annotations

import math
import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"
READY_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 10.0
POLL_INTERVAL_S = 0.1


def free_port() -> int:
    """A free TCP port on the loopback interface."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def service_env(workdir: Path, log_level: str) -> dict[str, str]:
    """The service's environment: dev mode, throwaway SQLite database, the given app log level."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("IGG4_CDS_")}
    env["IGG4_CDS_DEV_MODE"] = "true"
    env["IGG4_CDS_DATABASE_URL"] = f"sqlite:///{workdir / 'feedback.sqlite3'}"
    env["IGG4_CDS_LOG_LEVEL"] = log_level
    env["PYTHONUNBUFFERED"] = "1"
    return env


@dataclass
class Server:
    """One uvicorn subprocess on loopback; stderr goes to a file so a full pipe can never block it.

    ``ready_path`` is polled by :meth:`wait_ready`; ``stderr_name`` names the stderr file in ``workdir``
    (default ``<name>-<port>.stderr``).
    """

    name: str
    app: str
    workdir: Path
    env: dict[str, str]
    app_dir: Path | None = None
    ready_path: str = "/healthz"
    stderr_name: str | None = None
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
        cmd += [
            "--workers",
            "1",
            "--log-level",
            "warning",
            "--no-access-log",
            "--loop",
            "uvloop",
            "--http",
            "httptools",
        ]
        if self.app_dir is not None:
            cmd += ["--app-dir", str(self.app_dir)]
        self.stderr_path = self.workdir / (self.stderr_name or f"{self.name}-{self.port}.stderr")
        with self.stderr_path.open("wb") as err:
            self.proc = subprocess.Popen(cmd, cwd=ROOT, env=self.env, stdout=subprocess.DEVNULL, stderr=err)

    def stderr_text(self) -> str:
        """Everything the server wrote to stderr so far."""
        if self.stderr_path is None or not self.stderr_path.exists():
            return ""
        return self.stderr_path.read_text(errors="replace")

    def wait_ready(self, timeout_s: float = READY_TIMEOUT_S) -> None:
        """Poll ``ready_path`` until it answers 200; fail if the process dies or ``timeout_s`` passes."""
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
                    if client.get(f"{self.base_url}{self.ready_path}").status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                time.sleep(POLL_INTERVAL_S)
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

    def runqueue_wait_seconds(self) -> float:
        """Time the server's threads have spent runnable but waiting for a CPU (``/proc/<pid>/task/*/schedstat``).

        On a machine shared with other work, this is how much of the latency was the scheduler's; NaN if
        unavailable.
        """
        if self.proc is None:
            return math.nan
        total = 0
        try:
            for task in Path(f"/proc/{self.proc.pid}/task").iterdir():
                total += int((task / "schedstat").read_text().split()[1])
        except (OSError, IndexError, ValueError):
            return math.nan
        return total / 1e9

    def rss_bytes(self) -> int:
        """Resident set size of the server (and any children), psutil or ``/proc/<pid>/status``."""
        assert self.proc is not None
        try:
            import psutil
        except ImportError:
            for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
            return 0
        process = psutil.Process(self.proc.pid)
        return process.memory_info().rss + sum(c.memory_info().rss for c in process.children(recursive=True))

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
