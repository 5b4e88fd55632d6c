"""The HTTP API: discovery, every hook, the prefetch cases, 412, errors and the reference examples."""

from __future__ import annotations

import copy
import json
import re

import pytest

from cds_service.hooks.discovery import SERVICE_FOR_HOOK
from cds_service.hooks.queries import QUERIES
from tests.builders import ICD10, bundle, condition, hook_request, observation, report, service_request
from tests.conftest import REFERENCE

HEPATECTOMY = service_request("47130", reason=(ICD10, "C22.1"))
CCA = condition("312104005", verification="provisional")
IGG4_HIGH = observation("2469-5", 2.43, high=0.864, when="2026-09-01")
CT = report(
    "Long stricture of the common hepatic duct and proximal common bile duct with periductal thickening. "
    "Diffuse enlargement of the pancreas. Bilateral renal cortical low-density areas.",
)


def post(client, hook, body):
    return client.post(f"/cds-services/{SERVICE_FOR_HOOK[hook]}", json=body)


# ------------------------------------------------------------------ discovery


def test_discovery_lists_the_three_hooks(client, validate):
    response = client.get("/cds-services")
    assert response.status_code == 200
    body = response.json()
    validate(body, "discoveryResponse")
    assert {s["hook"] for s in body["services"]} == {"order-sign", "order-select", "patient-view"}
    for service in body["services"]:
        assert service["title"] and service["description"]
        assert set(service["prefetch"]) == {q.key for q in QUERIES}


def test_prefetch_templates_use_only_allowed_tokens(client):
    allowed = {"context.patientId", "context.userId", "context.encounterId", "userPractitionerId"}
    for service in client.get("/cds-services").json()["services"]:
        for template in service["prefetch"].values():
            assert set(re.findall(r"{{\s*([^}]+?)\s*}}", template)) <= allowed


def test_observation_template_asks_for_the_spec_loinc_codes_newest_first(client):
    template = client.get("/cds-services").json()["services"][0]["prefetch"]["observations"]
    for code in ("2469-5", "4485-9", "4498-2", "711-2", "46266-3", "24108-3"):
        assert f"http://loinc.org|{code}" in template
    assert "_sort=-date" in template


# ------------------------------------------------------------------ hooks


def test_order_sign_gives_a_warning_card(client, validate):
    response = post(
        client,
        "order-sign",
        hook_request(orders=[HEPATECTOMY], conditions=[CCA], observations=[IGG4_HIGH], reports=[CT]),
    )
    assert response.status_code == 200
    validate(response.json(), "response")
    [card] = response.json()["cards"]
    assert card["indicator"] == "warning"
    assert card["extension"]["igg4rd-cds.classification"]["total"] == 35


def test_order_select_answers_like_order_sign(client, validate):
    body = hook_request(
        "order-select", orders=[HEPATECTOMY], conditions=[CCA], observations=[IGG4_HIGH], reports=[CT]
    )
    body["context"]["selections"] = [f"ServiceRequest/{HEPATECTOMY['id']}"]
    response = post(client, "order-select", body)
    assert response.status_code == 200
    validate(response.json(), "response")
    assert [c["indicator"] for c in response.json()["cards"]] == ["warning"]


def test_patient_view_needs_no_order(client, validate):
    response = post(
        client,
        "patient-view",
        hook_request("patient-view", conditions=[CCA], observations=[IGG4_HIGH], reports=[CT]),
    )
    assert response.status_code == 200
    validate(response.json(), "response")
    assert [c["indicator"] for c in response.json()["cards"]] == ["warning"]


def test_routine_order_answers_at_once_without_patient_data(client):
    cbc = service_request("58410-2", "http://loinc.org", text="CBC")
    body = hook_request(orders=[cbc])
    del body["prefetch"]  # no data at all, and no fhirServer: still no 412
    response = post(client, "order-sign", body)
    assert response.status_code == 200
    assert response.json() == {"cards": []}


def test_no_presumption_no_card(client):
    response = post(
        client, "order-sign", hook_request(orders=[service_request("47130")], observations=[IGG4_HIGH])
    )
    assert response.json() == {"cards": []}


# ------------------------------------------------------------------ prefetch cases


def test_absent_required_key_without_fhir_server_is_412(client):
    response = post(
        client, "order-sign", hook_request(orders=[HEPATECTOMY], conditions=[CCA], omit=("reports",))
    )
    assert response.status_code == 412
    outcome = response.json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert [i["expression"] for i in outcome["issue"]] == [["prefetch.reports"]]


def test_null_key_means_no_data(client):
    body = hook_request(orders=[HEPATECTOMY], conditions=[CCA], reports=[CT])
    body["prefetch"]["observations"] = None
    response = post(client, "order-sign", body)
    assert response.status_code == 200
    extension = response.json()["cards"][0]["extension"]["igg4rd-cds.classification"]
    assert extension["domains"]["serum-igg4"]["assessed"] is False


def test_operation_outcome_for_required_key_is_412_and_not_refetched(client):
    body = hook_request(orders=[HEPATECTOMY], conditions=[CCA], reports=[CT])
    body["prefetch"]["observations"] = {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": "error", "code": "timeout"}],
    }
    body["fhirServer"] = "http://127.0.0.1:9/fhir"  # would refuse connections if it were called
    response = post(client, "order-sign", body)
    assert response.status_code == 412
    assert "OperationOutcome" in response.json()["issue"][0]["diagnostics"]


def test_failed_optional_key_degrades_the_card(client):
    body = hook_request(orders=[HEPATECTOMY], conditions=[CCA], observations=[IGG4_HIGH], reports=[CT])
    body["prefetch"]["medicationRequests"] = {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": "error", "code": "exception"}],
    }
    response = post(client, "order-sign", body)
    assert response.status_code == 200
    assert "Incomplete data" in response.json()["cards"][0]["detail"]


def test_malformed_resource_is_skipped_and_the_call_goes_on(client):
    broken = {"resourceType": "Observation", "status": 42, "code": "not a CodeableConcept"}
    body = hook_request(
        orders=[HEPATECTOMY], conditions=[CCA], observations=[IGG4_HIGH, broken], reports=[CT]
    )
    body["prefetch"]["conditions"]["entry"].append({"resource": {"resourceType": "Condition", "code": []}})
    body["prefetch"]["reports"]["entry"].append("garbage")
    response = post(client, "order-sign", body)
    assert response.status_code == 200
    assert response.json()["cards"][0]["extension"]["igg4rd-cds.classification"]["total"] == 35


def test_record_text_is_escaped_in_the_card(client):
    hostile = report(
        "<img src=x onerror=alert(1)> Diffuse enlargement of the pancreas [x](javascript:alert(1))."
    )
    body = hook_request(orders=[HEPATECTOMY], conditions=[CCA], observations=[IGG4_HIGH], reports=[hostile])
    detail = post(client, "order-sign", body).json()["cards"][0]["detail"]
    assert "<img" not in detail and "](javascript" not in detail


# ------------------------------------------------------------------ errors


@pytest.mark.parametrize(
    ("raw", "status", "field"),
    [
        (b"{not json", 400, "$"),
        (b"[]", 400, "$"),
        (b'{"hookInstance": "x", "context": {}}', 400, "hook"),
        (b'{"hook": "order-sign", "context": {}}', 400, "hookInstance"),
        (b'{"hook": "order-sign", "hookInstance": "x"}', 400, "context"),
        (b'{"hook": "order-sign", "hookInstance": "x", "context": {}, "prefetch": []}', 400, "prefetch"),
        (b'{"hook": "patient-view", "hookInstance": "x", "context": {}}', 400, "hook"),
    ],
)
def test_bad_requests_are_400_with_the_field(client, raw, status, field):
    response = client.post(
        "/cds-services/igg4rd-order-sign", content=raw, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == status
    issue = response.json()["issue"][0]
    assert issue["expression"] == [field]
    assert "Traceback" not in response.text


def test_unknown_service_is_404(client):
    response = client.post("/cds-services/nope", json=hook_request())
    assert response.status_code == 404
    assert response.json()["resourceType"] == "OperationOutcome"


def test_body_over_the_limit_is_413(client, settings):
    response = client.post("/cds-services/igg4rd-order-sign", content=b" " * (settings.max_body_bytes + 1))
    assert response.status_code == 413


# ------------------------------------------------------------------ reference examples


def _reference_requests():
    examples = REFERENCE / "examples"
    if not examples.exists():
        return []
    found = []
    for path in sorted(examples.rglob("*.json")):
        data = json.loads(path.read_text())
        name = path.name
        if "hook" in data and "context" in data:
            found.append(pytest.param(data["hook"], data, id=name))
        elif set(data) == {"context"}:  # hooks library and spec context examples: wrap them in a request
            hook = next((h for h in SERVICE_FOR_HOOK if name.startswith(h)), None)
            hook = hook or ("patient-view" if "patientId-only" in name else "order-sign")
            found.append(
                pytest.param(
                    hook,
                    {"hook": hook, "hookInstance": "11111111-2222-4333-8444-555555555555", **data},
                    id=name,
                )
            )
    return found


@pytest.mark.parametrize(("hook", "body"), _reference_requests())
def test_reference_example_requests(client, validate, hook, body):
    response = post(client, hook, copy.deepcopy(body))
    assert response.status_code in {200, 412}, response.text
    if response.status_code == 200:
        validate(response.json(), "response")
    else:
        assert response.json()["resourceType"] == "OperationOutcome"


def test_reference_examples_were_found():
    assert len(_reference_requests()) >= 12 or not (REFERENCE / "examples").exists()


def test_empty_searchset_bundles_are_accepted(client):
    body = hook_request(orders=[HEPATECTOMY], conditions=[CCA])
    body["prefetch"]["reports"] = bundle()
    assert post(client, "order-sign", body).status_code == 200


@pytest.mark.parametrize("patient_id", ["1&_include=*", "../Patient/2", "a b", "x" * 65])
def test_a_patient_id_that_is_not_a_fhir_id_is_never_put_into_a_query(client, patient_id):
    body = hook_request(orders=[HEPATECTOMY], conditions=[CCA], patient_id=patient_id, omit=("reports",))
    body["fhirServer"] = "http://127.0.0.1:9/fhir"
    response = post(client, "order-sign", body)
    assert response.status_code == 412
    assert "patientId" in response.json()["issue"][0]["diagnostics"]


def test_benign_stricture_order_without_any_cca_shows_no_card(client):
    ercp = service_request("43260", reason=(ICD10, "K83.1"))  # ERCP for a biliary stricture, no CCA anywhere
    stricture = report("Smooth tapering stricture of the distal common bile duct, likely benign.")
    response = post(
        client, "order-sign", hook_request(orders=[ercp], observations=[IGG4_HIGH], reports=[stricture])
    )
    assert response.json() == {"cards": []}


def test_order_select_considers_only_the_selected_orders(client):
    cbc = service_request("58410-2", "http://loinc.org", text="CBC")
    body = hook_request(
        "order-select", orders=[HEPATECTOMY, cbc], conditions=[CCA], observations=[IGG4_HIGH], reports=[CT]
    )
    body["context"]["selections"] = [f"ServiceRequest/{cbc['id']}"]  # the hepatectomy was selected earlier
    assert post(client, "order-select", body).json() == {"cards": []}
    body["context"]["selections"] = [f"ServiceRequest/{HEPATECTOMY['id']}"]
    assert [c["indicator"] for c in post(client, "order-select", body).json()["cards"]] == ["warning"]


def test_no_draft_orders_suggested_without_a_patient_id(client):
    body = hook_request("patient-view", conditions=[CCA], reports=[CT])
    del body["context"]["patientId"]
    [card] = post(client, "patient-view", body).json()["cards"]
    assert "suggestions" not in card and "selectionBehavior" not in card


def _with_outcome_entry(searchset, severity="error"):
    outcome = {"resourceType": "OperationOutcome", "issue": [{"severity": severity, "code": "too-costly"}]}
    searchset.setdefault("entry", []).append({"resource": outcome, "search": {"mode": "outcome"}})
    return searchset


def test_a_search_error_beside_results_marks_the_data_incomplete(client):
    body = hook_request(orders=[HEPATECTOMY], conditions=[CCA], observations=[IGG4_HIGH], reports=[CT])
    _with_outcome_entry(body["prefetch"]["observations"])
    [card] = post(client, "order-sign", body).json()["cards"]
    assert "Incomplete data" in card["detail"]
    assert card["extension"]["igg4rd-cds.classification"]["total"] == 35


def test_a_search_that_only_failed_is_412_when_required(client):
    body = hook_request(orders=[HEPATECTOMY], conditions=[CCA], observations=[IGG4_HIGH])
    _with_outcome_entry(body["prefetch"]["reports"])
    response = post(client, "order-sign", body)
    assert response.status_code == 412
    assert "too-costly" in response.json()["issue"][0]["diagnostics"]


def test_a_warning_outcome_in_a_search_changes_nothing(client):
    body = hook_request(orders=[HEPATECTOMY], conditions=[CCA], observations=[IGG4_HIGH], reports=[CT])
    _with_outcome_entry(body["prefetch"]["observations"], severity="warning")
    [card] = post(client, "order-sign", body).json()["cards"]
    assert "Incomplete data" not in card["detail"]


# ------------------------------------------------------------------ first hour (issue 11, item 5)


@pytest.mark.parametrize(
    "path", ["/cds-services/igg4rd-order-sign", "/cds-services/igg4rd-order-sign/feedback"]
)
def test_get_on_a_hook_url_answers_405_with_allow_and_a_hint(client, path):
    response = client.get(path)
    assert response.status_code == 405
    assert response.headers["Allow"] == "POST"
    diagnostics = response.json()["issue"][0]["diagnostics"]
    assert "called with POST" in diagnostics and "GET /cds-services" in diagnostics


def test_discovery_answers_with_a_trailing_slash_too(client):
    assert client.get("/cds-services/").json() == client.get("/cds-services").json()
    assert client.get("/cds-services/igg4rd-unknown").status_code == 405  # a service URL: POST only
