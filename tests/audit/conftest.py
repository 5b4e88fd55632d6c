"""A small generated population (the fixtures among synthetic patients), written once per session."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.audit.population import generate, write_ndjson

POPULATION = 90


@pytest.fixture(scope="session")
def export_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A Bulk Data-like export folder of the population, gzip files."""
    folder = tmp_path_factory.mktemp("export")
    write_ndjson(folder, generate(POPULATION), gzip_files=True)
    return folder
