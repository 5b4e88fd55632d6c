"""hooks/request.py on its own: checking a CDS Hooks 2.0 request body and sorting its prefetch."""

from __future__ import annotations

from typing import Any

import pytest

from cds_service.errors import HookMismatchError, RequestError
from cds_service.hooks.queries import QUERIES
from cds_service.hooks.request import FhirTarget, parse_hook_request, search_errors, sort_prefetch


def body(**changes: Any) -> dict[str, Any]:
    value: dict[str, Any] = {
        "hook": "patient-view",
        "hookInstance": "hi-1",
        "context": {"userId": "Practitioner/u1", "patientId": "p-1"},
        "prefetch": {},
    }
    value.update(changes)
    return {k: v for k, v in value.items() if v is not None}


def test_a_valid_request_is_read() -> None:
    request = parse_hook_request(
        body(fhirServer="https://ehr.example/fhir", fhirAuthorization={"access_token": "t0k"}), "patient-view"
    )
    assert (request.hook, request.hook_instance, request.patient_id) == ("patient-view", "hi-1", "p-1")
    assert request.fhir_target == FhirTarget("https://ehr.example/fhir", "p-1", "t0k")
    assert "t0k" not in repr(request) and "t0k" not in repr(request.fhir_target)


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"hook": None}, "hook"),
        ({"hook": ""}, "hook"),
        ({"hookInstance": 7}, "hookInstance"),
        ({"context": None}, "context"),
        ({"context": ["p-1"]}, "context"),
        ({"prefetch": []}, "prefetch"),
        ({"fhirServer": "  "}, "fhirServer"),
        ({"fhirAuthorization": "Bearer x"}, "fhirAuthorization"),
        ({"fhirAuthorization": {"token_type": "Bearer"}}, "fhirAuthorization.access_token"),
    ],
)
def test_malformed_parts_are_named(changes: dict[str, Any], field: str) -> None:
    with pytest.raises(RequestError) as raised:
        parse_hook_request(body(**changes), "patient-view")
    assert raised.value.field == field
    assert not isinstance(raised.value, HookMismatchError)


def test_not_an_object_is_refused() -> None:
    with pytest.raises(RequestError) as raised:
        parse_hook_request(["hook"], "patient-view")
    assert raised.value.field == "$"


def test_another_hook_is_a_mismatch() -> None:
    with pytest.raises(HookMismatchError) as raised:
        parse_hook_request(body(hook="order-sign"), "patient-view")
    assert raised.value.field == "hook"


@pytest.mark.parametrize("patient_id", ["1&_include=*", "../Patient/x", "", "p" * 65, 42, None])
def test_a_patient_id_outside_fhirs_id_rule_is_no_patient_id(patient_id: Any) -> None:
    request = parse_hook_request(
        body(context={"patientId": patient_id}, fhirServer="https://ehr.example/fhir"), "patient-view"
    )
    assert request.patient_id is None
    assert request.fhir_target is None


def test_no_fhir_server_means_no_target() -> None:
    assert parse_hook_request(body(), "patient-view").fhir_target is None


def test_prefetch_is_sorted_into_data_client_failures_and_absent_keys() -> None:
    outcome = {"resourceType": "OperationOutcome", "issue": [{"code": "forbidden"}, {"code": "timeout"}]}
    sorted_ = sort_prefetch(
        {"patient": None, "conditions": outcome, "observations": {"resourceType": "Bundle"}}
    )
    assert sorted_.data == {"patient": None, "observations": {"resourceType": "Bundle"}}
    assert sorted_.failed == {"conditions": "the client's OperationOutcome (forbidden, timeout)"}
    assert sorted_.absent == [
        q.key for q in QUERIES if q.key not in {"patient", "conditions", "observations"}
    ]


def test_unknown_prefetch_keys_are_ignored() -> None:
    assert "extra" not in sort_prefetch({"extra": {"resourceType": "Bundle"}}).data


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, (None, True)),
        ({"resourceType": "Patient"}, (None, True)),
        ({"resourceType": "Bundle", "entry": "garbage"}, (None, True)),
        (
            {
                "resourceType": "Bundle",
                "entry": [
                    {"resource": {"resourceType": "OperationOutcome", "issue": [{"severity": "warning"}]}}
                ],
            },
            (None, True),
        ),
        (
            {
                "resourceType": "Bundle",
                "entry": [
                    {"resource": {"resourceType": "Condition"}},
                    {
                        "resource": {
                            "resourceType": "OperationOutcome",
                            "issue": [{"severity": "fatal", "code": "too-costly"}],
                        }
                    },
                ],
            },
            ("the search reported an error (too-costly)", True),
        ),
        (
            {
                "resourceType": "Bundle",
                "entry": [
                    {
                        "resource": {
                            "resourceType": "OperationOutcome",
                            "issue": [{"severity": "error", "code": "timeout"}],
                        }
                    }
                ],
            },
            ("the search reported an error (timeout)", False),
        ),
    ],
)
def test_search_errors(value: Any, expected: tuple[str | None, bool]) -> None:
    assert search_errors(value) == expected
