"""The fallback FHIR fetcher: budgets, failure reasons, paging, tokens, the allow-list, and a real server."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from typing import Any

import pytest

from cds_service.core import codes
from cds_service.fhir.client import FhirFetcher
from cds_service.fixtures.loader import load_bundles
from cds_service.hooks.fetcher import PrefetchFetcher
from cds_service.hooks.queries import QUERIES, QUERIES_BY_KEY
from cds_service.hooks.request import FhirTarget
from cds_service.settings import Settings
from tests.builders import put_entry
from tests.fhir.helpers import as_failure, as_result, deadline_in
from tests.servers.faulty_fhir import FaultyFhirServer
from tests.servers.fhir import FhirServer, free_port

TOKEN = "s3cr3t-t0ken-do-not-log"
QUERY = {"conditions": "Condition?patient=123"}


@pytest.fixture
def fetcher() -> Iterator[FhirFetcher]:
    with FhirFetcher(max_pages=5) as f:
        yield f


def _ids(bundle: dict[str, Any]) -> list[str]:
    return [
        e["resource"]["id"] for e in bundle.get("entry", []) if e.get("search", {}).get("mode") != "outcome"
    ]


# ---------------------------------------------------------------------------------------------------------------
# Misbehaving server
# ---------------------------------------------------------------------------------------------------------------


def test_ok_search_and_read(fetcher: FhirFetcher, faulty_fhir: FaultyFhirServer) -> None:
    out = fetcher.fetch(
        faulty_fhir.base("ok"), None, {"c": "Condition?patient=1", "p": "Patient/1"}, deadline_in(2)
    )
    assert list(out) == ["c", "p"]
    assert _ids(as_result(out["c"]).resource) == ["c1"]
    assert as_result(out["p"]).resource == {"resourceType": "Patient", "id": "1"}


def test_timeout_returns_within_budget(fetcher: FhirFetcher, faulty_fhir: FaultyFhirServer) -> None:
    budget = 0.6
    started = time.monotonic()
    out = fetcher.fetch(
        faulty_fhir.base("slow"), None, {"a": "Condition?patient=1", "b": "Patient/1"}, deadline_in(budget)
    )
    elapsed = time.monotonic() - started
    assert elapsed < budget + 0.5, f"fetch took {elapsed:.2f} s for a {budget} s budget"
    for key in ("a", "b"):
        assert as_failure(out[key]).reason == "timeout after 0.6 s"


def test_slow_query_does_not_hold_back_fast_ones(fetcher: FhirFetcher, faulty_fhir: FaultyFhirServer) -> None:
    queries = {"slow": "Condition?patient=1", "fast": "Condition?patient=2"}
    started = time.monotonic()
    slow = fetcher.fetch(faulty_fhir.base("slow"), None, {"slow": queries["slow"]}, deadline_in(0.5))
    fast = fetcher.fetch(faulty_fhir.base("ok"), None, {"fast": queries["fast"]}, deadline_in(0.5))
    assert time.monotonic() - started < 2.0
    assert as_failure(slow["slow"]).reason.startswith("timeout after")
    assert _ids(as_result(fast["fast"]).resource) == ["c1"]


def test_deadline_already_passed(fetcher: FhirFetcher, faulty_fhir: FaultyFhirServer) -> None:
    faulty_fhir.clear()
    out = fetcher.fetch(faulty_fhir.base("ok"), None, QUERY, time.monotonic() - 1)
    assert as_failure(out["conditions"]).reason == "timeout after 0.0 s"
    assert faulty_fhir.requests == []


@pytest.mark.parametrize(
    ("mode", "query", "reason", "status"),
    [
        ("500", "Condition?patient=1", "HTTP 500", 500),
        ("401", "Condition?patient=1", "HTTP 401", 401),
        ("notjson", "Condition?patient=1", "not JSON", None),
        ("garbage", "Condition?patient=1", "not a FHIR Bundle", None),
        ("garbage", "Patient/1", "not a FHIR resource", None),
        ("redirect", "Condition?patient=1", "HTTP 302", 302),
    ],
)
def test_failure_reasons(
    fetcher: FhirFetcher,
    faulty_fhir: FaultyFhirServer,
    caplog: pytest.LogCaptureFixture,
    mode: str,
    query: str,
    reason: str,
    status: int | None,
) -> None:
    caplog.set_level(logging.DEBUG)
    failure = as_failure(fetcher.fetch(faulty_fhir.base(mode), TOKEN, {"k": query}, deadline_in(2))["k"])
    assert (failure.reason, failure.status) == (reason, status)
    for text in ("secret-diagnostics", "boom", "Login page", TOKEN):
        assert text not in failure.reason
        assert text not in caplog.text


def test_unreachable(fetcher: FhirFetcher) -> None:
    out = fetcher.fetch(f"http://127.0.0.1:{free_port()}/fhir", None, QUERY, deadline_in(2))
    assert as_failure(out["conditions"]).reason == "unreachable"


def test_bad_fhir_server_url(fetcher: FhirFetcher) -> None:
    out = fetcher.fetch("file:///etc/passwd", None, QUERY, deadline_in(2))
    assert as_failure(out["conditions"]).reason == "fhirServer is not a plain http(s) URL"


def test_cross_origin_next_link_not_followed(fetcher: FhirFetcher, faulty_fhir: FaultyFhirServer) -> None:
    faulty_fhir.clear()
    result = as_result(
        fetcher.fetch(faulty_fhir.base("crossorigin"), TOKEN, QUERY, deadline_in(2))["conditions"]
    )
    assert (result.pages, result.complete) == (1, False)
    assert result.note == "next link outside the FHIR server base not followed"
    assert _ids(result.resource) == ["p1"]
    assert len(faulty_fhir.requests) == 1


def test_paging_merges_all_pages(fetcher: FhirFetcher, faulty_fhir: FaultyFhirServer) -> None:
    result = as_result(fetcher.fetch(faulty_fhir.base("paged"), None, QUERY, deadline_in(3))["conditions"])
    assert (result.pages, result.complete) == (4, True)
    assert _ids(result.resource) == ["c1", "c2", "c3", "c4"]
    assert [link["relation"] for link in result.resource.get("link", [])] == ["self"]


def test_paging_stops_at_page_limit(faulty_fhir: FaultyFhirServer) -> None:
    with FhirFetcher(max_pages=2) as fetcher:
        result = as_result(
            fetcher.fetch(faulty_fhir.base("paged"), None, QUERY, deadline_in(3))["conditions"]
        )
    assert (result.pages, result.complete, result.note) == (2, False, "stopped after 2 pages")
    assert _ids(result.resource) == ["c1", "c2"]


def test_headers_and_token_only_when_given(
    fetcher: FhirFetcher, faulty_fhir: FaultyFhirServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    faulty_fhir.clear()
    fetcher.fetch(faulty_fhir.base("paged"), TOKEN, QUERY, deadline_in(3))
    assert len(faulty_fhir.requests) == 4
    for request in faulty_fhir.requests:
        assert request.headers["Authorization"] == f"Bearer {TOKEN}"
        assert request.headers["Accept"] == "application/fhir+json"
    faulty_fhir.clear()
    fetcher.fetch(faulty_fhir.base("ok"), None, QUERY, deadline_in(2))
    fetcher.fetch(faulty_fhir.base("ok"), "", QUERY, deadline_in(2))
    assert len(faulty_fhir.requests) == 2
    assert all("Authorization" not in r.headers for r in faulty_fhir.requests)
    fetcher.fetch(faulty_fhir.base("slow"), TOKEN, QUERY, deadline_in(0.3))
    fetcher.fetch(faulty_fhir.base("401"), TOKEN, QUERY, deadline_in(2))
    assert caplog.records, "the fetcher should log keys and statuses"
    assert any("conditions" in r.getMessage() for r in caplog.records)
    for record in caplog.records:
        assert TOKEN not in record.getMessage()
        assert TOKEN not in repr(record.args)


def test_closed_fetcher_refuses() -> None:
    fetcher = FhirFetcher(max_pages=1)
    fetcher.close()
    with pytest.raises(RuntimeError):
        fetcher.fetch("http://127.0.0.1:1/fhir", None, QUERY, deadline_in(1))


# ---------------------------------------------------------------------------------------------------------------
# Real FHIR server (sekmet-fhir)
# ---------------------------------------------------------------------------------------------------------------

PATIENT = "igg4-fetch-1"
OTHER = "igg4-fetch-2"
MANY = "igg4-fetch-many"


def _coding(system: str, code: str) -> dict[str, Any]:
    return {"coding": [{"system": system, "code": code}]}


def _obs(oid: str, patient: str, code: str, date: str) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "id": oid,
        "status": "final",
        "code": _coding(codes.LOINC, code),
        "subject": {"reference": f"Patient/{patient}"},
        "effectiveDateTime": date,
        "valueQuantity": {"value": 1.0, "unit": "g/L", "system": "http://unitsofmeasure.org", "code": "g/L"},
    }


def _report(rid: str, patient: str, category: tuple[str, str], date: str) -> dict[str, Any]:
    return {
        "resourceType": "DiagnosticReport",
        "id": rid,
        "status": "final",
        "category": [_coding(*category)],
        "code": _coding(codes.LOINC, "24627-2"),
        "subject": {"reference": f"Patient/{patient}"},
        "effectiveDateTime": date,
    }


def _condition(cid: str, patient: str, code: str) -> dict[str, Any]:
    return {
        "resourceType": "Condition",
        "id": cid,
        "code": _coding("http://hl7.org/fhir/sid/icd-10-cm", code),
        "subject": {"reference": f"Patient/{patient}"},
    }


def clinical_bundle() -> dict[str, Any]:
    """One patient with data for every query, another patient, and records the queries must not return."""
    med = _coding(codes.RXNORM, "8640")
    resources: list[dict[str, Any]] = [
        {"resourceType": "Patient", "id": PATIENT, "name": [{"family": "Fetch"}], "birthDate": "1960-01-01"},
        {"resourceType": "Patient", "id": OTHER, "name": [{"family": "Other"}]},
        _condition("fc-1", PATIENT, "C22.1"),
        _condition("fc-2", PATIENT, "K83.01"),
        _condition("fc-x", OTHER, "C22.1"),
        _obs("fo-igg4-old", PATIENT, codes.IGG4, "2023-01-10"),
        _obs("fo-igg4-new", PATIENT, codes.IGG4, "2024-05-02"),
        _obs("fo-c3", PATIENT, codes.C3, "2024-03-01"),
        _obs("fo-ca199", PATIENT, "24108-3", "2023-06-01"),
        _obs("fo-unasked", PATIENT, "2345-7", "2024-06-01"),
        _obs("fo-other", OTHER, codes.IGG4, "2024-06-01"),
        _report("fr-rad", PATIENT, (codes.LOINC, "LP29684-5"), "2024-02-01"),
        _report("fr-pat", PATIENT, (codes.V2_0074, "PAT"), "2024-04-01"),
        _report("fr-lab", PATIENT, (codes.V2_0074, "LAB"), "2024-05-01"),
        {
            "resourceType": "MedicationRequest",
            "id": "fmr-1",
            "status": "active",
            "intent": "order",
            "medicationCodeableConcept": med,
            "subject": {"reference": f"Patient/{PATIENT}"},
        },
        {
            "resourceType": "MedicationStatement",
            "id": "fms-1",
            "status": "active",
            "medicationCodeableConcept": med,
            "subject": {"reference": f"Patient/{PATIENT}"},
        },
    ]
    return {"resourceType": "Bundle", "type": "transaction", "entry": [put_entry(r) for r in resources]}


def many_conditions_bundle(n: int) -> dict[str, Any]:
    resources = [{"resourceType": "Patient", "id": MANY}]
    resources += [_condition(f"fm-{i:02d}", MANY, "K83.01") for i in range(n)]
    return {"resourceType": "Bundle", "type": "transaction", "entry": [put_entry(r) for r in resources]}


@pytest.fixture(scope="module")
def loaded_server(fhir_server: FhirServer) -> FhirServer:
    report = load_bundles(
        fhir_server.base_url, [("clinical", clinical_bundle()), ("many", many_conditions_bundle(7))]
    )
    assert report.ok, report.table()
    return fhir_server


EXPECTED = {
    "patient": None,
    "conditions": ["fc-1", "fc-2"],
    "observations": ["fo-igg4-new", "fo-c3", "fo-ca199", "fo-igg4-old"],  # _sort=-date
    "reports": ["fr-pat", "fr-rad"],  # _sort=-date; the LAB report is not asked for
    "medicationRequests": ["fmr-1"],
    "medicationStatements": ["fms-1"],
}


@pytest.mark.integration
def test_every_prefetch_query_against_real_server(loaded_server: FhirServer, fetcher: FhirFetcher) -> None:
    queries = {q.key: q.render(PATIENT) for q in QUERIES}
    assert set(queries) == set(EXPECTED)
    out = fetcher.fetch(loaded_server.base_url, None, queries, deadline_in(10))
    for key, expected in EXPECTED.items():
        result = as_result(out[key])
        if expected is None:
            assert result.resource["resourceType"] == "Patient"
            assert result.resource["id"] == PATIENT
            continue
        bundle = result.resource
        assert bundle["resourceType"] == "Bundle"
        assert bundle["type"] == "searchset"
        outcomes = [e for e in bundle.get("entry", []) if e.get("search", {}).get("mode") == "outcome"]
        assert outcomes == [], f"{key}: server ignored part of the query: {outcomes}"
        if key in ("observations", "reports"):
            assert _ids(bundle) == expected, key
        else:
            assert sorted(_ids(bundle)) == sorted(expected), key


@pytest.mark.integration
def test_missing_patient_is_http_404(loaded_server: FhirServer, fetcher: FhirFetcher) -> None:
    query = QUERIES_BY_KEY["patient"].render("no-such-patient")
    failure = as_failure(
        fetcher.fetch(loaded_server.base_url, None, {"patient": query}, deadline_in(5))["patient"]
    )
    assert (failure.reason, failure.status) == ("HTTP 404", 404)


@pytest.mark.integration
def test_real_server_paging_merges_pages(loaded_server: FhirServer) -> None:
    query = {"conditions": f"Condition?patient={MANY}&_count=2"}
    with FhirFetcher(max_pages=5) as fetcher:
        result = as_result(fetcher.fetch(loaded_server.base_url, None, query, deadline_in(10))["conditions"])
    assert (result.pages, result.complete) == (4, True)
    assert sorted(_ids(result.resource)) == [f"fm-{i:02d}" for i in range(7)]
    assert result.resource["total"] == 7
    with FhirFetcher(max_pages=3) as fetcher:
        result = as_result(fetcher.fetch(loaded_server.base_url, None, query, deadline_in(10))["conditions"])
    assert (result.pages, result.complete) == (3, False)
    assert len(_ids(result.resource)) == 6


# ---------------------------------------------------------------------------------------------------------------
# PrefetchFetcher: the service's Fetcher
# ---------------------------------------------------------------------------------------------------------------


def _hook(server: str, patient: str = PATIENT, token: str | None = None) -> FhirTarget:
    return FhirTarget(server, patient, token)


def test_prefetch_fetcher_refuses_servers_off_the_allow_list(faulty_fhir: FaultyFhirServer) -> None:
    faulty_fhir.clear()
    settings = Settings(dev_mode=False, allowed_fhir_bases=["https://ehr.example/fhir"])
    fetcher = PrefetchFetcher(settings, FhirFetcher(max_pages=1))
    try:
        data, failures = fetcher.fetch_missing(
            _hook(faulty_fhir.base("ok")), ["conditions", "nope"], deadline_in(2)
        )
    finally:
        fetcher.close()
    assert data == {}
    assert failures == {"conditions": "fhirServer not allowed", "nope": "unknown prefetch key"}
    assert faulty_fhir.requests == []


def test_prefetch_fetcher_reports_reasons(faulty_fhir: FaultyFhirServer) -> None:
    fetcher = PrefetchFetcher(Settings(dev_mode=True), FhirFetcher(max_pages=1))
    try:
        data, failures = fetcher.fetch_missing(
            _hook(faulty_fhir.base("401"), token=TOKEN), ["conditions"], deadline_in(2)
        )
    finally:
        fetcher.close()
    assert (data, failures) == ({}, {"conditions": "HTTP 401"})


@pytest.mark.integration
def test_prefetch_fetcher_against_real_server(loaded_server: FhirServer) -> None:
    fetcher = PrefetchFetcher(Settings(allowed_fhir_bases=[loaded_server.base_url]))
    try:
        data, failures = fetcher.fetch_missing(_hook(loaded_server.base_url), list(EXPECTED), deadline_in(10))
        missing, missing_failures = fetcher.fetch_missing(
            _hook(loaded_server.base_url, "nobody"), ["patient"], deadline_in(5)
        )
    finally:
        fetcher.close()
    assert failures == {}
    assert data["patient"]["id"] == PATIENT
    assert sorted(_ids(data["conditions"])) == ["fc-1", "fc-2"]
    assert (missing, missing_failures) == ({"patient": None}, {})


def test_localhost_and_127_0_0_1_are_one_server_in_development_mode(faulty_fhir: FaultyFhirServer) -> None:
    """Issue 11, item 7: a server called as localhost whose next links say 127.0.0.1 is the same server."""
    base = f"http://localhost:{faulty_fhir.port}/aliased/fhir"
    with FhirFetcher(max_pages=5, loopback_as_one=True) as dev:
        result = as_result(dev.fetch(base, None, QUERY, deadline_in(3))["conditions"])
    assert (result.pages, result.complete) == (2, True)
    assert _ids(result.resource) == ["a1", "a2"]
    with FhirFetcher(max_pages=5) as production:
        result = as_result(production.fetch(base, None, QUERY, deadline_in(3))["conditions"])
    assert (result.pages, result.complete) == (1, False)  # outside development mode: another host
