"""A real FHIR R4 server for integration tests: the pytest fixture on top of :mod:`servers.sekmet`.

``fhir_server`` (session scope; import ``fhir_server_fixture`` into a test module to use it) starts
sekmet-fhir with :func:`servers.sekmet.start` in a throwaway directory (free loopback port, empty data
directory, waits bounded for ``/metadata``), yields a :class:`FhirServer` and stops the process at the end.
It skips with the reason when the server's venv is missing. The start/stop code itself lives in
``servers/sekmet.py``, which does not import pytest, so the live demo and the benchmarks share it.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.servers.process import free_port
from tests.servers.sekmet import FhirServer, sekmet_executable, server_venv, start

__all__ = ["FhirServer", "fhir_server_fixture", "free_port", "server_venv"]


@pytest.fixture(scope="session", name="fhir_server")
def fhir_server_fixture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FhirServer]:
    """A running sekmet-fhir server with an empty throwaway store, for the whole test session."""
    if not sekmet_executable().exists():
        pytest.skip(f"sekmet-fhir not installed in {server_venv()}: run .ci/install-fhir-server.sh")
    server = start(tmp_path_factory.mktemp("sekmet-fhir"))
    try:
        yield server
    finally:
        server.stop()
