"""The CDS Hooks sandbox's own requests give the cards their README table says, through the HTTP API.

The captures (tests/data/sandbox_captures, copied from the shared reference) are real client output and
not valid R4 in every detail: the draft MedicationRequest has ``category`` and ``reasonCode`` as single
objects and no ``intent`` until a medication is chosen. Each is sent twice: with the prefetch the sandbox
filled, and with no prefetch at all so the service fetches the data from a real FHIR server (sekmet-fhir)
loaded with the fixture patients the sandbox was pointed at.
"""

from __future__ import annotations

import copy
import json
import logging
import re
from typing import Any

import pytest
from fastapi.testclient import TestClient

from cds_service.fixtures.catalog import list_fixtures
from cds_service.fixtures.loader import load_bundles
from cds_service.hooks.discovery import SERVICES
from cds_service.logs import HookInstanceFilter
from cds_service.settings import Settings
from cds_service.web.app import create_app
from tests.conftest import EVALUATION_DATE
from tests.paths import TEST_DATA
from tests.servers.fhir import FhirServer

CAPTURES = TEST_DATA / "sandbox_captures"
SERVICE_FOR_HOOK = {s.hook: s.id for s in SERVICES}

# file -> (indicator, points) of the one card expected, or None for no card: the README's table.
EXPECTED: dict[str, tuple[str, int] | None] = {
    "patient-view-published-case.json": ("warning", 35),
    "rx-view-no-medication-yet.json": None,
    "rx-view-capecitabine.json": ("warning", 35),
    "rx-view-capecitabine-treating-cca.json": ("warning", 35),
    "rx-sign-capecitabine.json": ("warning", 35),
    "pama-no-service-chosen.json": None,
    "pama-hepatobiliary-imaging.json": None,
    "pama-hepatobiliary-imaging-for-biliary-stricture.json": ("warning", 35),
    "patient-view-as-igg4-not-measured.json": ("info", 0),
}
HOOK_CAPTURES = sorted(EXPECTED)


def _capture(name: str) -> dict[str, Any]:
    return json.loads((CAPTURES / name).read_text())


def _cards(response: Any) -> list[tuple[str, int]]:
    assert response.status_code == 200, response.text
    return [
        (card["indicator"], card["extension"]["igg4rd-cds.classification"]["total"])
        for card in response.json()["cards"]
    ]


def _post(client: TestClient, body: dict[str, Any]) -> Any:
    return client.post(f"/cds-services/{SERVICE_FOR_HOOK[body['hook']]}", json=body)


def test_every_capture_in_the_readme_table_is_tested():
    table = re.findall(r"^\| `([^`]+\.json)` \|", (CAPTURES / "README.md").read_text(), re.MULTILINE)
    assert set(table) == {*EXPECTED, "feedback-override.json"}
    assert {p.name for p in CAPTURES.glob("*.json")} == set(table)


@pytest.mark.parametrize("name", HOOK_CAPTURES)
def test_capture_with_prefetch_gives_its_card(client, name):
    expected = EXPECTED[name]
    assert _cards(_post(client, _capture(name))) == ([expected] if expected else [])


def test_the_sandbox_draft_order_is_read_and_its_repairs_logged(client, caplog):
    caplog.set_level(logging.INFO, logger="cds_service.calls")
    body = _capture("rx-view-capecitabine-treating-cca.json")
    assert _cards(_post(client, body)) == [("warning", 35)]
    [line] = [r for r in caplog.records if r.getMessage() == "hook call"]
    assert line.hook_instance == body["hookInstance"]
    # category and reasonCode were single objects: repaired, the order kept.
    assert line.read == {"repaired": {"MedicationRequest": 2}}
    assert line.skipped_resources == 0


def test_the_early_answer_for_no_qualifying_order_still_logs_its_counts(client, caplog):
    caplog.set_level(logging.INFO, logger="cds_service.calls")
    body = _capture("rx-view-no-medication-yet.json")
    assert _cards(_post(client, body)) == []
    [line] = [r for r in caplog.records if r.getMessage() == "hook call"]
    # No intent and no medication yet: counted as missing, not as a skipped order.
    assert line.read == {"missing": {"MedicationRequest": 2}}
    assert line.timings_ms.keys() == {"parse"}


def test_lines_logged_during_a_call_carry_its_hook_instance(client, caplog):
    caplog.set_level(logging.INFO)
    caplog.handler.addFilter(HookInstanceFilter())
    body = _capture("patient-view-published-case.json")
    observations = body["prefetch"]["observations"]["entry"]
    odd = copy.deepcopy(next(e for e in observations if "valueQuantity" in e["resource"]))
    odd["resource"]["id"] = "odd-unit"
    odd["resource"]["valueQuantity"]["code"] = odd["resource"]["valueQuantity"]["unit"] = "furlong"
    observations.append(odd)
    _post(client, body)
    [unit_line] = [r for r in caplog.records if r.getMessage() == "lab unit not convertible"]
    assert unit_line.hook_instance == body["hookInstance"]


def test_feedback_capture_is_stored(client):
    response = client.post(
        "/cds-services/igg4rd-patient-view/feedback", json=_capture("feedback-override.json")
    )
    assert response.status_code == 200, response.text


@pytest.fixture(scope="module")
def loaded(fhir_server: FhirServer) -> FhirServer:
    report = load_bundles(fhir_server.base_url, [(f.name, f.bundle) for f in list_fixtures()])
    assert report.ok, report.table()
    return fhir_server


@pytest.fixture(scope="module")
def live_client() -> TestClient:
    return TestClient(create_app(Settings(dev_mode=True), today=lambda: EVALUATION_DATE))


@pytest.mark.integration
@pytest.mark.parametrize("name", HOOK_CAPTURES)
def test_capture_with_data_fetched_from_a_fhir_server_gives_its_card(live_client, loaded, name, caplog):
    caplog.set_level(logging.INFO, logger="cds_service.calls")
    body = _capture(name)
    del body["prefetch"]
    body["fhirServer"] = loaded.base_url
    expected = EXPECTED[name]
    assert _cards(_post(live_client, body)) == ([expected] if expected else [])
    [line] = [r for r in caplog.records if r.getMessage() == "hook call"]
    assert line.skipped_resources == 0
    if expected is not None:
        assert line.fetched, "the data came from the FHIR server"


def test_the_412_line_carries_the_hook_instance_and_the_counts_read_so_far(client, caplog):
    caplog.set_level(logging.INFO, logger="cds_service.calls")
    body = _capture("rx-view-capecitabine-treating-cca.json")
    del body["prefetch"], body["fhirServer"]  # the order acts, but the patient's data cannot be had
    assert _post(client, body).status_code == 412
    [line] = [r for r in caplog.records if r.getMessage() == "call refused"]
    assert line.hook_instance == body["hookInstance"]
    assert line.read == {"repaired": {"MedicationRequest": 2}}
