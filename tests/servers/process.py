"""Generic process helpers for servers on loopback: one kit for the tests, the benchmarks and the scripts.

:func:`free_port` finds a free 127.0.0.1 port; :func:`spawn` starts a command in its own session (so its
whole process group can be stopped) with its output in a log file; :func:`wait_until_answers` polls a URL
(bounded) until it answers 200; :func:`stop_process` stops the group: SIGTERM, then SIGKILL after a grace
period. :func:`clean_env` and :func:`log_tail` help with the environment and the error messages.

Used by ``servers/sekmet.py`` (the FHIR test server), ``servers/postgres.py``, ``servers/redis_server.py``,
``benchmarks/_servers.py`` and ``scripts/live_demo.py`` (the last two put the checkout's root on
``sys.path`` first). It must not import pytest.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import requests

HOST = "127.0.0.1"
STARTUP_TIMEOUT_S = 30.0
STOP_GRACE_S = 10.0
POLL_INTERVAL_S = 0.2


class ServerError(RuntimeError):
    """A server could not be started, or did not answer in time."""


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def clean_env(*drop_prefixes: str) -> dict[str, str]:
    """This environment without venv activation, ``SEKMET_`` settings and variables starting with ``drop_prefixes``."""
    prefixes = ("SEKMET_", "VIRTUAL_ENV", *drop_prefixes)
    return {k: v for k, v in os.environ.items() if not k.startswith(prefixes)}


def log_tail(path: Path, chars: int = 2000) -> str:
    """The last ``chars`` characters of a log file ("" when it cannot be read)."""
    try:
        return path.read_text(errors="replace")[-chars:]
    except OSError:
        return ""


def spawn(
    name: str, argv: list[str], env: dict[str, str], cwd: Path, log_path: Path
) -> subprocess.Popen[bytes]:
    """Start ``argv`` in its own session (so its whole process group can be stopped), output to ``log_path``."""
    with log_path.open("wb") as log_file:
        try:
            return subprocess.Popen(  # fixed argv built by the caller, no shell
                argv, cwd=cwd, env=env, stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True
            )
        except OSError as exc:
            raise ServerError(f"cannot start {name} ({argv[0]}): {exc}") from exc


def wait_until_answers(
    name: str,
    process: subprocess.Popen[bytes],
    probe_url: str,
    log_path: Path,
    timeout_s: float = STARTUP_TIMEOUT_S,
    poll_interval_s: float = POLL_INTERVAL_S,
) -> None:
    """Poll ``probe_url`` until it answers 200; raise :class:`ServerError` if the process dies or time runs out."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise ServerError(f"{name} exited with {process.returncode}:\n{log_tail(log_path)}")
        with contextlib.suppress(requests.RequestException):
            if requests.get(probe_url, timeout=1).status_code == 200:
                return
        time.sleep(poll_interval_s)
    raise ServerError(f"{name} did not answer {probe_url} within {timeout_s:.0f} s:\n{log_tail(log_path)}")


def stop_process(process: subprocess.Popen[bytes], grace_s: float = STOP_GRACE_S) -> None:
    """Stop a process started by :func:`spawn` with its group: SIGTERM, wait ``grace_s``, then SIGKILL."""
    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=grace_s)
    except ProcessLookupError:
        process.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=5)
