"""Live data: hooks without prefetch fetch from a real FHIR server (sekmet-fhir) and give the same cards."""

from __future__ import annotations

import copy
import time
from typing import Any

import pytest
from fastapi.testclient import TestClient

from cds_service.fixtures.catalog import list_fixtures
from cds_service.fixtures.loader import load_bundles
from cds_service.hooks.discovery import SERVICE_FOR_HOOK
from cds_service.settings import Settings
from cds_service.web.app import create_app
from tests.builders import without_uuids
from tests.conftest import EVALUATION_DATE
from tests.servers.faulty_fhir import FaultyFhirServer
from tests.servers.fhir import FhirServer

pytestmark = pytest.mark.integration

FIXTURES = list_fixtures()
OPTIONAL_KEYS = ("patient", "medicationRequests", "medicationStatements")


@pytest.fixture(scope="module")
def loaded(fhir_server: FhirServer) -> FhirServer:
    report = load_bundles(fhir_server.base_url, [(f.name, f.bundle) for f in FIXTURES])
    assert report.ok, report.table()
    return fhir_server


@pytest.fixture(scope="module")
def live_client() -> TestClient:
    # Dev mode allows loopback FHIR servers; the budget is the default 2.5 s.
    return TestClient(create_app(Settings(dev_mode=True), today=lambda: EVALUATION_DATE))


def _call(client: TestClient, request: dict[str, Any]) -> Any:
    return client.post(f"/cds-services/{SERVICE_FOR_HOOK[request['hook']]}", json=request)


@pytest.mark.parametrize("fixture", FIXTURES, ids=[f.name for f in FIXTURES])
def test_same_cards_with_and_without_prefetch(live_client, loaded, fixture):
    with_prefetch = _call(live_client, fixture.request)
    request = copy.deepcopy(fixture.request)
    del request["prefetch"]
    request["fhirServer"] = loaded.base_url
    fetched = _call(live_client, request)
    assert with_prefetch.status_code == fetched.status_code == 200, fetched.text
    assert without_uuids(fetched.json()) == without_uuids(with_prefetch.json())


def test_partial_prefetch_fetches_only_the_absent_keys(live_client, loaded):
    fixture = FIXTURES[0]
    request = copy.deepcopy(fixture.request)
    for key in ("reports", "medicationRequests"):
        del request["prefetch"][key]
    request["fhirServer"] = loaded.base_url
    response = _call(live_client, request)
    assert response.status_code == 200
    assert without_uuids(response.json()) == without_uuids(_call(live_client, fixture.request).json())


def test_null_prefetch_key_is_not_fetched(live_client, loaded):
    fixture = FIXTURES[0]
    request = copy.deepcopy(fixture.request)
    request["prefetch"]["observations"] = None  # the client says: no data
    request["fhirServer"] = loaded.base_url
    card = _call(live_client, request).json()["cards"][0]
    assert card["extension"]["igg4rd-cds.classification"]["domains"]["serum-igg4"]["assessed"] is False


def test_fhir_server_not_allowed_is_412():
    client = TestClient(
        create_app(Settings(dev_mode=True, allowed_fhir_bases=[]), today=lambda: EVALUATION_DATE)
    )
    request = copy.deepcopy(FIXTURES[0].request)
    del request["prefetch"]
    request["fhirServer"] = "https://evil.example/fhir"
    response = _call(client, request)
    assert response.status_code == 412
    assert "not allowed" in response.json()["issue"][0]["diagnostics"]


@pytest.mark.parametrize(
    ("mode", "reason"),
    [("500", "HTTP 500"), ("401", "HTTP 401"), ("notjson", "not JSON"), ("garbage", "not a FHIR")],
)
def test_fhir_server_failures_answer_412_naming_the_query(
    live_client, faulty_fhir: FaultyFhirServer, mode, reason
):
    request = copy.deepcopy(FIXTURES[0].request)
    del request["prefetch"]
    request["fhirServer"] = faulty_fhir.base(mode)
    response = _call(live_client, request)
    assert response.status_code == 412
    diagnostics = " ".join(i["diagnostics"] for i in response.json()["issue"])
    assert reason in diagnostics
    assert "secret-diagnostics" not in diagnostics  # the server's own text is not echoed


def test_slow_fhir_server_is_cut_at_the_budget(live_client, faulty_fhir: FaultyFhirServer):
    request = copy.deepcopy(FIXTURES[0].request)
    del request["prefetch"]
    request["fhirServer"] = faulty_fhir.base("slow")
    started = time.monotonic()
    response = _call(live_client, request)
    elapsed = time.monotonic() - started
    assert response.status_code == 412
    assert "timeout" in response.json()["issue"][0]["diagnostics"]
    assert elapsed < Settings().hook_time_budget_s + 1.0  # a correctness bound: the call is not waited for


def test_failed_optional_query_degrades_the_card(live_client, faulty_fhir: FaultyFhirServer):
    request = copy.deepcopy(FIXTURES[0].request)
    for key in OPTIONAL_KEYS:
        del request["prefetch"][key]
    request["fhirServer"] = faulty_fhir.base("500")
    response = _call(live_client, request)
    assert response.status_code == 200
    [card] = response.json()["cards"]
    assert card["indicator"] == "warning"
    assert "Incomplete data" in card["detail"]


def test_access_token_is_sent_to_the_fhir_server(live_client, faulty_fhir: FaultyFhirServer):
    faulty_fhir.clear()
    request = copy.deepcopy(FIXTURES[0].request)
    del request["prefetch"]
    request["fhirServer"] = faulty_fhir.base("ok")
    request["fhirAuthorization"] = {
        "access_token": "tok-123",
        "token_type": "Bearer",
        "expires_in": 300,
        "scope": "user/*.read",
        "subject": "cds",
    }
    _call(live_client, request)
    assert faulty_fhir.requests
    assert all(r.headers.get("Authorization") == "Bearer tok-123" for r in faulty_fhir.requests)
