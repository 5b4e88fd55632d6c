"""Live data against a public FHIR sandbox: load the fixture patients, then fetch instead of prefetching.

The target FHIR base comes from ``IGG4_CDS_SANDBOX_FHIR`` (default the public HAPI R4 server
``https://hapi.fhir.org/baseR4``); ``IGG4_CDS_SANDBOX_TOKEN``, when set, is sent as a bearer token both when
loading and (as ``fhirAuthorization``) in every hook call. A module-scoped fixture first probes
``GET <base>/metadata`` with a 3 s timeout and **skips** every test, naming the base and the error, when the
server cannot be reached or does not answer a FHIR CapabilityStatement: offline machines and CI skip, never fail.

When reachable, every fixture Bundle is loaded (transaction ``PUT``s with fixed ids, all prefixed ``fNN-`` so
they do not collide with other people's data on a shared server), then each fixture's hook request is sent
twice to the app: once with its full prefetch and once with the prefetch removed and ``fhirServer`` set to the
sandbox. The two responses must be equal apart from card ``uuid``s.

Public servers can be slow (HAPI's public server often takes seconds per search), so the default 2.5 s hook
time budget is raised here to ``IGG4_CDS_HOOK_TIME_BUDGET_S`` if set, else 10 s. Public sandboxes are shared
and reset without notice: a failure here after a successful load usually means someone else changed the data.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from fastapi.testclient import TestClient

from cds_service.fixtures.catalog import FIXTURE_DATE, Fixture, list_fixtures
from cds_service.fixtures.loader import load_bundles
from cds_service.hooks.discovery import SERVICE_FOR_HOOK
from cds_service.settings import Settings
from cds_service.web.app import create_app
from tests.builders import without_uuids

pytestmark = pytest.mark.sandbox

DEFAULT_SANDBOX = "https://hapi.fhir.org/baseR4"
PROBE_TIMEOUT_S = 3.0
DEFAULT_BUDGET_S = 10.0
EVALUATION_DATE = FIXTURE_DATE
"""Fixture dates are absolute: the lookback window is evaluated on this day."""

FIXTURES = list_fixtures()


def _base() -> str:
    return (os.environ.get("IGG4_CDS_SANDBOX_FHIR") or DEFAULT_SANDBOX).rstrip("/")


def _token() -> str | None:
    return os.environ.get("IGG4_CDS_SANDBOX_TOKEN") or None


def _budget() -> float:
    return float(os.environ.get("IGG4_CDS_HOOK_TIME_BUDGET_S") or DEFAULT_BUDGET_S)


def _probe(base: str, token: str | None) -> None:
    """Skip the module unless ``GET <base>/metadata`` answers a CapabilityStatement within the timeout."""
    headers = {"Accept": "application/fhir+json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    try:
        response = requests.get(f"{base}/metadata", headers=headers, timeout=PROBE_TIMEOUT_S)
    except requests.RequestException as exc:
        pytest.skip(f"FHIR sandbox {base} unreachable: {type(exc).__name__}: {exc}")
    if response.status_code != 200:
        pytest.skip(f"FHIR sandbox {base} answered HTTP {response.status_code} to GET /metadata")
    try:
        body = response.json()
    except ValueError:
        pytest.skip(f"FHIR sandbox {base}: GET /metadata is not JSON (not a FHIR server?)")
    if not isinstance(body, dict) or body.get("resourceType") != "CapabilityStatement":
        pytest.skip(f"FHIR sandbox {base}: GET /metadata is not a CapabilityStatement (not a FHIR server?)")


@pytest.fixture(scope="module")
def sandbox() -> str:
    """The sandbox base, reachable and loaded with every fixture Bundle (skips when unreachable)."""
    base, token = _base(), _token()
    _probe(base, token)
    report = load_bundles(base, [(f.name, f.bundle) for f in FIXTURES], token=token)
    assert report.ok, f"loading the fixtures into {base} failed:\n{report.table()}"
    return base


@pytest.fixture(scope="module")
def sandbox_client(sandbox: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    """The app allowed to fetch from the sandbox, with a raised time budget and a throwaway feedback store."""
    database = Path(tmp_path_factory.mktemp("sandbox-store")) / "feedback.sqlite3"
    settings = Settings(
        dev_mode=True,
        allowed_fhir_bases=[sandbox],
        hook_time_budget_s=_budget(),
        database_url=f"sqlite:///{database}",
    )
    with TestClient(create_app(settings, today=lambda: EVALUATION_DATE)) as client:
        yield client


def _call(client: TestClient, request: dict[str, Any]) -> Any:
    return client.post(f"/cds-services/{SERVICE_FOR_HOOK[request['hook']]}", json=request)


@pytest.mark.parametrize("fixture", FIXTURES, ids=[f.name for f in FIXTURES])
def test_sandbox_fetch_gives_the_prefetch_cards(
    sandbox_client: TestClient, sandbox: str, fixture: Fixture
) -> None:
    with_prefetch = _call(sandbox_client, fixture.request)
    request = copy.deepcopy(fixture.request)
    del request["prefetch"]
    request["fhirServer"] = sandbox
    token = _token()
    if token:
        request["fhirAuthorization"] = {
            "access_token": token,
            "token_type": "Bearer",
            "expires_in": 300,
            "scope": "user/*.read",
            "subject": "igg4-cds-sandbox-test",
        }
    fetched = _call(sandbox_client, request)
    assert with_prefetch.status_code == 200, with_prefetch.text
    assert fetched.status_code == 200, fetched.text
    assert without_uuids(fetched.json()) == without_uuids(with_prefetch.json())
