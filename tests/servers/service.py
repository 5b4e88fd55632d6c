"""The CDS service under uvicorn on loopback, in development mode: one way to start it for tests, scripts and benchmarks.

:func:`dev_env` is the service's environment (every inherited ``IGG4_CDS_`` variable dropped, then development
mode, a throwaway SQLite store in the working directory and the given application log level);
:func:`uvicorn_argv` is the command (``<this python> -m uvicorn <app>``, one worker, uvicorn log level warning,
no access log). :func:`launch` starts both with :func:`servers.process.spawn` from the checkout's root;
:meth:`DevService.wait_until_up` polls ``/healthz``. Used by ``tests/web/test_preview_browser.py``,
``scripts/live_demo.py`` and ``benchmarks/_servers.py``. It must not import pytest.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from tests.paths import REPO
from tests.servers.process import (
    HOST,
    STARTUP_TIMEOUT_S,
    clean_env,
    free_port,
    spawn,
    stop_process,
    wait_until_answers,
)

APP = "cds_service.web.app:app"
READY_PATH = "/healthz"


def dev_env(
    workdir: Path, app_log_level: str = "WARNING", extra: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The service's environment: no inherited ``IGG4_CDS_`` settings, dev mode, SQLite in ``workdir``, ``extra``."""
    env = clean_env("IGG4_CDS_")
    env["IGG4_CDS_DEV_MODE"] = "true"
    env["IGG4_CDS_DATABASE_URL"] = f"sqlite:///{workdir / 'feedback.sqlite3'}"
    env["IGG4_CDS_LOG_LEVEL"] = app_log_level
    env["PYTHONUNBUFFERED"] = "1"
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    env.update(extra or {})
    return env


def uvicorn_argv(port: int, app: str = APP, app_dir: Path | None = None) -> list[str]:
    """``<this python> -m uvicorn <app>`` on loopback: one worker, log level warning, no access log."""
    argv = [sys.executable, "-m", "uvicorn", app, "--host", HOST, "--port", str(port)]
    argv += ["--workers", "1", "--log-level", "warning", "--no-access-log"]
    if app_dir is not None:
        argv += ["--app-dir", str(app_dir)]
    return argv


@dataclass(frozen=True)
class DevService:
    """A started service: its base URL, log file and process."""

    base_url: str
    log_path: Path
    process: subprocess.Popen[bytes] = field(compare=False, repr=False)

    def wait_until_up(self, timeout_s: float = STARTUP_TIMEOUT_S) -> None:
        """Wait (bounded) until ``/healthz`` answers 200; :class:`servers.process.ServerError` otherwise."""
        url = f"{self.base_url}{READY_PATH}"
        wait_until_answers("CDS service", self.process, url, self.log_path, timeout_s)

    def stop(self) -> None:
        """Stop the service's process group."""
        stop_process(self.process)


def launch(workdir: Path, env: Mapping[str, str], log_name: str = "cds-service.log") -> DevService:
    """Start the service on a free loopback port with ``env`` (see :func:`dev_env`); do not wait.

    The caller owns the returned service from here on (stop it, also when waiting for it fails).
    """
    port = free_port()
    log_path = workdir / log_name
    process = spawn("CDS service", uvicorn_argv(port), dict(env), REPO, log_path)
    return DevService(f"http://{HOST}:{port}", log_path, process)


def start(workdir: Path, env: Mapping[str, str], log_name: str = "cds-service.log") -> DevService:
    """:func:`launch`, then wait until it answers; stop it and re-raise if it does not."""
    service = launch(workdir, env, log_name)
    try:
        service.wait_until_up()
    except BaseException:
        service.stop()
        raise
    return service
