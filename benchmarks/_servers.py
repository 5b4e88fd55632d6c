"""uvicorn subprocesses on loopback for the benchmarks: start, wait until ready (bounded), measure, stop.

Shared by ``hook_latency.py``, ``fetch_latency.py`` and ``load_mixed.py`` (``benchmarks/`` is on
``sys.path`` when they run as scripts). A :class:`Server` runs ``<this python> -m uvicorn <app>`` with one
worker, log level warning and no access log, from the checkout's root, on a free 127.0.0.1 port; its stderr
goes to a file so a full pipe can never block it. The command and the service's environment are
``tests/servers/service.py``'s, the start/wait/stop code the tests' process kit
(``tests/servers/process.py``): the process runs in its own session and :meth:`Server.stop` stops its
group (SIGTERM, then SIGKILL).
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the checkout's cds_service and tests/servers, whatever the working directory

from tests.servers.process import (  # noqa: E402 - after the sys.path set-up
    HOST,
    ServerError,
    free_port,
    spawn,
    stop_process,
    wait_until_answers,
)
from tests.servers.service import dev_env, uvicorn_argv  # noqa: E402

__all__ = ["HOST", "ROOT", "Server", "free_port", "percentile", "service_env"]

READY_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 10.0
POLL_INTERVAL_S = 0.1


def service_env(workdir: Path, log_level: str) -> dict[str, str]:
    """The service's environment: dev mode, throwaway SQLite database, the given app log level."""
    return dev_env(workdir, log_level)


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
        cmd = uvicorn_argv(self.port, self.app, self.app_dir)
        self.stderr_path = self.workdir / (self.stderr_name or f"{self.name}-{self.port}.stderr")
        self.proc = spawn(self.name, cmd, self.env, ROOT, self.stderr_path)

    def stderr_text(self) -> str:
        """Everything the server wrote (stdout and stderr) so far."""
        if self.stderr_path is None or not self.stderr_path.exists():
            return ""
        return self.stderr_path.read_text(errors="replace")

    def wait_ready(self, timeout_s: float = READY_TIMEOUT_S) -> None:
        """Poll ``ready_path`` until it answers 200; exit if the process dies or ``timeout_s`` passes."""
        assert self.proc is not None and self.stderr_path is not None
        url = f"{self.base_url}{self.ready_path}"
        try:
            wait_until_answers(self.name, self.proc, url, self.stderr_path, timeout_s, POLL_INTERVAL_S)
        except ServerError as exc:
            raise SystemExit(str(exc)) from None

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
        """Stop the server's process group: SIGTERM, then SIGKILL if it does not exit in time."""
        if self.proc is not None:
            stop_process(self.proc, STOP_TIMEOUT_S)


def percentile(values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile (``p`` in 0..100) of ``values``; NaN when there are none."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[rank - 1]
