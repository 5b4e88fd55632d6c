"""Shared fixtures: the app with a pinned evaluation date, and the CDS Hooks JSON Schema.

The suite never writes into the developer's feedback database: :func:`pytest_configure` points
``IGG4_CDS_DATABASE_URL`` at a fresh SQLite file in a temporary directory before any ``Settings`` is built, so
every ``Settings()`` and every server a test starts (they inherit the environment) uses it, whatever the
developer's shell exports. A test that wants its own store still passes ``database_url`` explicitly.
"""

from __future__ import annotations

import atexit
import json
import os
import shutil
import tempfile
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from jsonschema import Draft202012Validator

from cds_service.fixtures.catalog import FIXTURE_DATE
from cds_service.settings import Settings
from cds_service.web.app import create_app
from tests.paths import REPO
from tests.servers.faulty_fhir import faulty_fhir_fixture  # noqa: F401 - one shared faulty server per session
from tests.servers.fhir import fhir_server_fixture  # noqa: F401 - one shared FHIR server per session

# Seen JWT ids go to a file of this test session, not to the checkout (Settings read the environment).
os.environ.setdefault(
    "IGG4_CDS_REPLAY_DB_FILE", os.path.join(tempfile.mkdtemp(prefix="igg4-replay-"), "replay.sqlite3")
)

REFERENCE = REPO.parent / "shared" / "reference" / "cds-hooks"
SCHEMA_PATH = REFERENCE / "cds-hooks-2.0.1.schema.json"
EVALUATION_DATE = FIXTURE_DATE
"""Fixture dates are absolute: the lookback window is evaluated on this day."""


TEST_DATABASE_DIR = Path(tempfile.mkdtemp(prefix="igg4-cds-tests-"))
"""Where the suite's default feedback database lives; removed when the run ends."""
TEST_DATABASE_URL = f"sqlite:///{TEST_DATABASE_DIR / 'feedback.sqlite3'}"


def pytest_configure(config: pytest.Config) -> None:
    """Point the default feedback store at the run's temporary database (overriding the developer's)."""
    os.environ["IGG4_CDS_DATABASE_URL"] = TEST_DATABASE_URL
    # Removed at interpreter exit, after the session app's recorder thread has had its last write.
    atexit.register(shutil.rmtree, TEST_DATABASE_DIR, ignore_errors=True)


@pytest.fixture(scope="session")
def settings() -> Settings:
    return Settings(dev_mode=True)


@pytest.fixture(scope="session")
def client(settings: Settings) -> TestClient:
    return TestClient(create_app(settings, today=lambda: EVALUATION_DATE))


@pytest.fixture(scope="session")
def schema() -> dict:
    if not SCHEMA_PATH.exists():
        pytest.skip(f"CDS Hooks schema not found at {SCHEMA_PATH} (../shared/reference missing)")
    return json.loads(SCHEMA_PATH.read_text())


@pytest.fixture(scope="session")
def validate(schema: dict):
    """Validate an instance against one definition of the CDS Hooks 2.0.1 schema."""

    def check(instance: object, definition: str) -> None:
        wrapper = {"$schema": schema["$schema"], "$defs": schema["$defs"], "$ref": f"#/$defs/{definition}"}
        errors = sorted(Draft202012Validator(wrapper).iter_errors(instance), key=lambda e: list(e.path))
        assert not errors, [f"{list(e.path)}: {e.message}" for e in errors[:5]]

    return check
