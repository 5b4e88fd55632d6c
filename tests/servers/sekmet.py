"""sekmet-fhir 0.1.1 on loopback, started and stopped without pytest: for the tests, the live demo and benchmarks.

``.ci/install-fhir-server.sh`` installs the server into ``$IGG4_FHIR_SERVER_VENV`` (default
``<repo>/.venv-fhir``). :func:`launch` writes a settings file into a working directory and starts

    <venv>/bin/sekmet serve --config <dir>/settings.yaml --host 127.0.0.1 --port <free port>

in its own process group, with the working directory and an empty data directory inside that directory; the
server accepts unauthenticated calls, and its workflow simulator (which reacts to writes such as
MedicationRequest) and its inbound traffic log are off. :func:`wait_until_answers` polls ``/metadata``
(bounded), :func:`start` does both and stops the process when it does not come up, and :func:`stop_process`
stops a process group: SIGTERM, then SIGKILL after a grace period.

The tests import this module as ``servers.sekmet`` (``tests/`` is on ``sys.path``); ``scripts/live_demo.py``
and ``benchmarks/fetch_latency.py`` put ``tests/`` on ``sys.path`` first. It must not import pytest.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import requests

from tests.paths import REPO

SEKMET_VERSION = "0.1.1"
HOST = "127.0.0.1"
STARTUP_TIMEOUT_S = 30.0
STOP_GRACE_S = 10.0
POLL_INTERVAL_S = 0.2


class ServerError(RuntimeError):
    """A server could not be started, or did not answer in time."""


def server_venv() -> Path:
    """Where ``.ci/install-fhir-server.sh`` puts the server's virtualenv."""
    return Path(os.environ.get("IGG4_FHIR_SERVER_VENV", str(REPO / ".venv-fhir")))


def sekmet_executable() -> Path:
    """The ``sekmet`` command inside :func:`server_venv` (it may not exist)."""
    return server_venv() / "bin" / "sekmet"


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def clean_env(*drop_prefixes: str) -> dict[str, str]:
    """This environment without venv activation, ``SEKMET_`` settings and variables starting with ``drop_prefixes``.

    sekmet-fhir itself is started without the service's ``IGG4_CDS_`` settings.
    """
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
) -> None:
    """Poll ``probe_url`` until it answers 200; raise :class:`ServerError` if the process dies or time runs out."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise ServerError(f"{name} exited with {process.returncode}:\n{log_tail(log_path)}")
        with contextlib.suppress(requests.RequestException):
            if requests.get(probe_url, timeout=1).status_code == 200:
                return
        time.sleep(POLL_INTERVAL_S)
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


@dataclass(frozen=True)
class FhirServer:
    """A started sekmet-fhir server: its FHIR base URL, data directory, log file and process."""

    base_url: str
    data_dir: Path
    log_path: Path
    process: subprocess.Popen[bytes] = field(compare=False, repr=False)

    def count(self, resource_type: str) -> int:
        """How many resources of a type the server holds (``_summary=count``)."""
        response = requests.get(f"{self.base_url}/{resource_type}", params={"_summary": "count"}, timeout=10)
        response.raise_for_status()
        return int(response.json()["total"])

    def wait_until_up(self, timeout_s: float = STARTUP_TIMEOUT_S) -> None:
        """Wait (bounded) until ``GET <base>/metadata`` answers 200; :class:`ServerError` otherwise."""
        wait_until_answers("sekmet-fhir", self.process, f"{self.base_url}/metadata", self.log_path, timeout_s)

    def stop(self) -> None:
        """Stop the server (see :func:`stop_process`)."""
        stop_process(self.process)


def settings_yaml(base_url: str, port: int, data_dir: Path) -> str:
    """sekmet's settings: loopback, no simulator reacting to writes, no inbound log, no auth.

    JSON is valid YAML: no YAML library needed on this side.
    """
    settings = {
        "base_url": base_url,
        "host": HOST,
        "port": port,
        "data_dir": str(data_dir),
        "simulator": {"enabled": False},
        "log_inbound": False,
        "server_auth": {"types": ["none"]},
    }
    return json.dumps(settings, indent=2)


def launch(workdir: Path, log_name: str = "server.log") -> FhirServer:
    """Start sekmet-fhir in ``workdir`` on a free loopback port with an empty data directory; do not wait.

    The caller owns the returned server from here on (stop it, also when waiting for it fails).
    Raises :class:`ServerError` when sekmet-fhir is not installed or cannot be started.
    """
    sekmet = sekmet_executable()
    if not sekmet.exists():
        raise ServerError(
            f"sekmet-fhir not installed in {server_venv()}: run bash .ci/install-fhir-server.sh"
        )
    port = free_port()
    base_url = f"http://{HOST}:{port}/fhir"
    data_dir = workdir / "data"
    data_dir.mkdir(parents=True, exist_ok=True)
    config = workdir / "settings.yaml"
    config.write_text(settings_yaml(base_url, port, data_dir))
    log_path = workdir / log_name
    argv = [str(sekmet), "serve", "--config", str(config), "--host", HOST, "--port", str(port)]
    process = spawn("sekmet-fhir", argv, clean_env("IGG4_CDS_"), workdir, log_path)
    return FhirServer(base_url, data_dir, log_path, process)


def start(workdir: Path, log_name: str = "server.log", timeout_s: float = STARTUP_TIMEOUT_S) -> FhirServer:
    """:func:`launch`, then wait until it answers; stop it and raise :class:`ServerError` if it does not."""
    server = launch(workdir, log_name)
    try:
        server.wait_until_up(timeout_s)
    except BaseException:
        server.stop()
        raise
    return server
