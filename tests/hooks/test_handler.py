"""hooks/handler.py on its own: one hook call from parsed JSON to cards, without the HTTP edge.

The fetcher is a recording fake (the handler's contract with it is pure data); the real fetcher is tested
against real FHIR servers in tests/fhir.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from cds_service.errors import DataUnavailableError, HookMismatchError, UnknownServiceError
from cds_service.fixtures.catalog import FIXTURE_DATE, load_fixture
from cds_service.hooks.discovery import SERVICE_FOR_HOOK, find_service
from cds_service.hooks.handler import gather_data, handle_hook
from cds_service.hooks.request import FhirTarget, parse_hook_request
from cds_service.settings import Settings
from tests.builders import bundle, condition, hook_request, service_request

SETTINGS = Settings(dev_mode=True, hook_time_budget_s=2.0)
ORDER_SIGN = find_service(SERVICE_FOR_HOOK["order-sign"])
PATIENT_VIEW = find_service(SERVICE_FOR_HOOK["patient-view"])
HEPATECTOMY = "47130"
SERVER = "https://ehr.example/fhir"


class RecordingFetcher:
    """Answers every key from ``answers`` (else a failure) and records each call."""

    def __init__(self, answers: dict[str, Any] | None = None) -> None:
        self.answers = answers or {}
        self.calls: list[tuple[FhirTarget, list[str], float, tuple[str, ...]]] = []

    def fetch_missing(
        self, target: FhirTarget, keys: list[str], deadline: float, allowed_bases: tuple[str, ...] = ()
    ) -> tuple[dict[str, Any], dict[str, str]]:
        self.calls.append((target, list(keys), deadline, allowed_bases))
        got = {k: self.answers[k] for k in keys if k in self.answers}
        return got, {k: "unreachable" for k in keys if k not in self.answers}


def _published() -> dict[str, Any]:
    return copy.deepcopy(load_fixture("01").request)


def test_published_case_gives_one_warning_card_from_its_assessment() -> None:
    result = handle_hook(ORDER_SIGN, _published(), SETTINGS, today=FIXTURE_DATE)
    assert [card["indicator"] for card in result.cards] == ["warning"]
    assert result.assessment is not None and result.assessment.criteria is not None
    assert result.assessment.criteria.total == 35
    assert result.hook_instance == _published()["hookInstance"]
    assert result.patient_id == _published()["context"]["patientId"]
    assert list(result.timings_ms) == ["parse", "fetch", "evaluate", "render"]
    assert (result.fetched, result.skipped_resources) == ([], 0)


def test_order_not_acting_on_cca_needs_no_patient_data() -> None:
    body = hook_request(orders=[service_request(text="Chest X-ray")], omit=("conditions", "reports"))
    result = handle_hook(ORDER_SIGN, body, SETTINGS, RecordingFetcher(), today=FIXTURE_DATE)
    # Required keys are absent, yet no 412: the decision never needed them.
    assert (result.cards, result.assessment) == ([], None)
    assert list(result.timings_ms) == ["parse"]


def test_wrong_hook_for_the_service_is_refused() -> None:
    with pytest.raises(HookMismatchError):
        handle_hook(PATIENT_VIEW, _published(), SETTINGS)


def test_unknown_service_id_is_refused_once_by_find_service() -> None:
    with pytest.raises(UnknownServiceError):
        find_service("igg4rd-nope")


def test_absent_required_key_without_fhir_server_is_412_naming_the_reason() -> None:
    body = hook_request(orders=[service_request(HEPATECTOMY)], omit=("reports",))
    with pytest.raises(DataUnavailableError) as raised:
        handle_hook(ORDER_SIGN, body, SETTINGS, RecordingFetcher())
    [failed] = raised.value.failed
    assert (failed.key, failed.reason) == ("reports", "absent from prefetch and no FHIR server to query")


def test_fhir_server_without_valid_patient_id_is_never_queried() -> None:
    body = hook_request(orders=[service_request(HEPATECTOMY)], omit=("reports",), patient_id="1&_include=*")
    body["fhirServer"] = SERVER
    fetcher = RecordingFetcher()
    with pytest.raises(DataUnavailableError) as raised:
        handle_hook(ORDER_SIGN, body, SETTINGS, fetcher)
    assert fetcher.calls == []
    assert raised.value.failed[0].reason == "absent from prefetch and context.patientId missing"


def test_absent_keys_are_fetched_for_the_target_within_the_budget() -> None:
    body = hook_request(orders=[service_request(HEPATECTOMY)], omit=("reports", "medicationStatements"))
    body["fhirServer"] = SERVER
    body["fhirAuthorization"] = {"access_token": "token-1", "token_type": "Bearer"}
    fetcher = RecordingFetcher({"reports": bundle()})
    result = handle_hook(
        ORDER_SIGN,
        body,
        SETTINGS,
        fetcher,
        allowed_bases=("https://other.example/fhir",),
        today=FIXTURE_DATE,
        clock=lambda: 100.0,
    )
    [(target, keys, deadline, allowed)] = fetcher.calls
    assert target == FhirTarget(SERVER, "p1", "token-1")
    assert keys == ["reports", "medicationStatements"]
    assert deadline == 100.0 + SETTINGS.hook_time_budget_s
    assert allowed == ("https://other.example/fhir",)
    assert result.fetched == ["reports"]
    assert result.assessment is not None
    # The optional key that failed is reported to the core as unavailable; the fetched one is not.
    assert result.assessment.evidence.unavailable == {"medicationStatements"}


def test_search_bundle_with_an_error_is_partial_with_data_and_failed_without() -> None:
    error = {"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "timeout"}]}
    body = hook_request("patient-view")
    body["prefetch"]["conditions"] = bundle(condition("363418001"), error)
    body["prefetch"]["medicationRequests"] = bundle(error)
    data, unavailable, fetched = gather_data(parse_hook_request(body, "patient-view"), SETTINGS, None, 0.0)
    assert "conditions" in data and "medicationRequests" not in data
    assert unavailable == {"conditions", "medicationRequests"}
    assert fetched == []


def test_required_search_failed_by_the_client_is_412() -> None:
    error = {"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "timeout"}]}
    body = hook_request("patient-view")
    body["prefetch"]["observations"] = bundle(error)
    with pytest.raises(DataUnavailableError) as raised:
        handle_hook(PATIENT_VIEW, body, SETTINGS)
    assert [f.key for f in raised.value.failed] == ["observations"]
