"""Shared fixtures: the app with a pinned evaluation date, and the CDS Hooks JSON Schema."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient
from jsonschema import Draft202012Validator

from cds_service.fixtures.catalog import FIXTURE_DATE
from cds_service.settings import Settings
from cds_service.web.app import create_app
from tests.paths import REPO
from tests.servers.faulty_fhir import faulty_fhir_fixture  # noqa: F401 - one shared faulty server per session
from tests.servers.fhir import fhir_server_fixture  # noqa: F401 - one shared FHIR server per session

REFERENCE = REPO.parent / "shared" / "reference" / "cds-hooks"
SCHEMA_PATH = REFERENCE / "cds-hooks-2.0.1.schema.json"
EVALUATION_DATE = FIXTURE_DATE
"""Fixture dates are absolute: the lookback window is evaluated on this day."""


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
