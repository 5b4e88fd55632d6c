"""sekmet-fhir 0.1.1 on loopback, started and stopped without pytest: for the tests, the live demo and benchmarks.

``.ci/install-fhir-server.sh`` installs the server into ``$IGG4_FHIR_SERVER_VENV`` (default
``<repo>/.venv-fhir``). :func:`launch` writes a settings file into a working directory and starts

    <venv>/bin/sekmet serve --config <dir>/settings.yaml --host 127.0.0.1 --port <free port>

in its own process group, with the working directory and an empty data directory inside that directory; the
server accepts unauthenticated calls, and its workflow simulator (which reacts to writes such as
MedicationRequest) and its inbound traffic log are off. :meth:`FhirServer.wait_until_up` polls ``/metadata``
(bounded), :func:`start` does both and stops the process when it does not come up. The generic process
helpers (free port, spawn, wait, stop) are :mod:`servers.process`'s.

The tests import this module as ``servers.sekmet`` (``tests/`` is on ``sys.path``); ``scripts/live_demo.py``
and ``benchmarks/fetch_latency.py`` put ``tests/`` on ``sys.path`` first. It must not import pytest.
"""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import requests

from tests.paths import REPO
from tests.servers.process import (
    HOST,
    STARTUP_TIMEOUT_S,
    ServerError,
    clean_env,
    free_port,
    spawn,
    stop_process,
    wait_until_answers,
)

__all__ = ["FhirServer", "ServerError", "launch", "sekmet_executable", "server_venv", "start"]

SEKMET_VERSION = "0.1.1"


def server_venv() -> Path:
    """Where ``.ci/install-fhir-server.sh`` puts the server's virtualenv."""
    return Path(os.environ.get("IGG4_FHIR_SERVER_VENV", str(REPO / ".venv-fhir")))


def sekmet_executable() -> Path:
    """The ``sekmet`` command inside :func:`server_venv` (it may not exist)."""
    return server_venv() / "bin" / "sekmet"


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
