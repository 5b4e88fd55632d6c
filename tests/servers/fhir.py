"""A real FHIR R4 server for integration tests: sekmet-fhir 0.1.1, run from its own virtualenv.

``.ci/install-fhir-server.sh`` installs it into ``$IGG4_FHIR_SERVER_VENV`` (default ``<repo>/.venv-fhir``).
``fhir_server`` (session scope; import ``fhir_server_fixture`` into a test module to use it) writes a settings file into a throwaway directory, starts

    <venv>/bin/sekmet serve --config <dir>/settings.yaml --host 127.0.0.1 --port <free port>

with the working directory and data directory inside that throwaway directory, waits (bounded) until
``GET /fhir/metadata`` answers, yields a :class:`FhirServer` and stops the process at the end. It skips with
the reason when the venv is missing. The server accepts unauthenticated calls; its workflow simulator (which
reacts to writes such as MedicationRequest) and its inbound traffic log are switched off.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

REPO = Path(__file__).resolve().parents[2]
SEKMET_VERSION = "0.1.1"
STARTUP_TIMEOUT_S = 30.0


def server_venv() -> Path:
    """Where ``.ci/install-fhir-server.sh`` puts the server's virtualenv."""
    return Path(os.environ.get("IGG4_FHIR_SERVER_VENV", str(REPO / ".venv-fhir")))


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class FhirServer:
    """A running sekmet-fhir server."""

    base_url: str
    data_dir: Path
    log_path: Path

    def count(self, resource_type: str) -> int:
        """How many resources of a type the server holds (``_summary=count``)."""
        response = requests.get(f"{self.base_url}/{resource_type}", params={"_summary": "count"}, timeout=10)
        response.raise_for_status()
        return int(response.json()["total"])


def _settings_yaml(base_url: str, port: int, data_dir: Path) -> str:
    # JSON is valid YAML: no YAML library needed on this side.
    settings = {
        "base_url": base_url,
        "host": "127.0.0.1",
        "port": port,
        "data_dir": str(data_dir),
        "simulator": {"enabled": False},
        "log_inbound": False,
        "server_auth": {"types": ["none"]},
    }
    return json.dumps(settings, indent=2)


def start_fhir_server(workdir: Path) -> tuple[subprocess.Popen[bytes], FhirServer]:
    """Start sekmet-fhir in ``workdir`` and wait until it answers; raise RuntimeError if it does not."""
    sekmet = server_venv() / "bin" / "sekmet"
    port = free_port()
    base_url = f"http://127.0.0.1:{port}/fhir"
    data_dir = workdir / "data"
    data_dir.mkdir(parents=True, exist_ok=True)
    config = workdir / "settings.yaml"
    config.write_text(_settings_yaml(base_url, port, data_dir))
    log_path = workdir / "server.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SEKMET_", "VIRTUAL_ENV"))}
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            [str(sekmet), "serve", "--config", str(config), "--host", "127.0.0.1", "--port", str(port)],
            cwd=workdir,
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = FhirServer(base_url, data_dir, log_path)
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"sekmet exited with {process.returncode}: {log_path.read_text()[-2000:]}")
        try:
            if requests.get(f"{base_url}/metadata", timeout=1).status_code == 200:
                return process, server
        except requests.RequestException:
            pass
        time.sleep(0.2)
    stop_process(process)
    raise RuntimeError(f"sekmet did not answer /metadata within {STARTUP_TIMEOUT_S:.0f} s")


def stop_process(process: subprocess.Popen[bytes]) -> None:
    """Stop the server (SIGTERM to its process group, then SIGKILL after a grace period)."""
    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=10)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=5)


@pytest.fixture(scope="session", name="fhir_server")
def fhir_server_fixture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FhirServer]:
    """A running sekmet-fhir server with an empty throwaway store, for the whole test session."""
    if not (server_venv() / "bin" / "sekmet").exists():
        pytest.skip(f"sekmet-fhir not installed in {server_venv()}: run .ci/install-fhir-server.sh")
    process, server = start_fhir_server(tmp_path_factory.mktemp("sekmet-fhir"))
    try:
        yield server
    finally:
        stop_process(process)
