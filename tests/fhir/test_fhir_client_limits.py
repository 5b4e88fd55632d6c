"""The FHIR fetcher against hostile servers (issue 10, holes 4 and 7): size caps while streaming and after
decompression, abandoned fetches closed at the deadline, one slow server cannot starve another's calls, a
``next`` loop is not merged twice, and no URL with a patient id reaches the logs."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator

import pytest

from cds_service.fhir.client import FhirFetcher
from cds_service.settings import Settings
from tests.fhir.helpers import as_failure, as_result, deadline_in
from tests.servers.faulty_fhir import FaultyFhirServer
from tests.servers.fhir import free_port
from tests.servers.hostile_fhir import HostileFhirServer

QUERY = {"conditions": "Condition?patient=123"}
LIMIT = 1 << 20


@pytest.fixture(scope="module")
def hostile() -> Iterator[HostileFhirServer]:
    with HostileFhirServer() as server:
        yield server


@pytest.fixture
def fetcher() -> Iterator[FhirFetcher]:
    with FhirFetcher(max_pages=5, max_response_bytes=LIMIT) as f:
        yield f


@pytest.mark.parametrize("mode", ["big", "endless", "gzipbomb"])
def test_response_size_is_capped_while_streaming(
    fetcher: FhirFetcher, hostile: HostileFhirServer, mode: str
) -> None:
    started = time.monotonic()
    failure = as_failure(fetcher.fetch(hostile.base(mode), None, QUERY, deadline_in(5))["conditions"])
    assert failure.reason == f"response over the {LIMIT}-byte limit"
    assert time.monotonic() - started < 3


def test_size_cap_default_comes_from_settings() -> None:
    assert 1 << 20 <= Settings().max_fhir_response_bytes <= 16 << 20


def test_abandoned_fetch_is_closed_at_the_deadline(fetcher: FhirFetcher, hostile: HostileFhirServer) -> None:
    started = time.monotonic()
    failure = as_failure(fetcher.fetch(hostile.base("drip"), None, QUERY, deadline_in(0.5))["conditions"])
    assert failure.reason.startswith("timeout")
    assert time.monotonic() - started < 1.0
    closed_by = time.monotonic() + 1.5
    while hostile.open_responses and time.monotonic() < closed_by:
        time.sleep(0.05)
    assert hostile.open_responses == 0  # the drip-fed response no longer holds a thread


def test_a_slow_server_does_not_starve_another(
    hostile: HostileFhirServer, faulty_fhir: FaultyFhirServer
) -> None:
    with FhirFetcher(max_pages=1, max_workers=2, max_response_bytes=LIMIT) as fetcher:
        slow = {f"k{n}": f"Condition?patient={n}" for n in range(6)}
        hogs = [
            threading.Thread(target=fetcher.fetch, args=(hostile.base("drip"), None, slow, deadline_in(3)))
            for _ in range(2)
        ]
        for hog in hogs:
            hog.start()
        time.sleep(0.3)  # the slow server now holds every thread it may have
        out = fetcher.fetch(faulty_fhir.base("ok"), None, QUERY, deadline_in(1))
        for hog in hogs:
            hog.join()
    assert as_result(out["conditions"]).resource["resourceType"] == "Bundle"


@pytest.mark.parametrize("mode", ["loop", "cycle"])
def test_next_loop_does_not_merge_a_page_twice(
    fetcher: FhirFetcher, hostile: HostileFhirServer, mode: str
) -> None:
    result = as_result(fetcher.fetch(hostile.base(mode), None, QUERY, deadline_in(3))["conditions"])
    ids = [entry["resource"]["id"] for entry in result.resource["entry"]]
    assert len(ids) == len(set(ids))
    assert not result.complete
    assert result.note == "next link repeats a page already read"


def test_unreachable_server_leaves_no_patient_id_in_logs(
    fetcher: FhirFetcher, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    query = {"conditions": "Condition?patient=secret-patient-4711&_sort=-date"}
    out = fetcher.fetch(f"http://127.0.0.1:{free_port()}/fhir", None, query, deadline_in(2))
    assert as_failure(out["conditions"]).reason == "unreachable"
    assert caplog.records  # urllib3 did log its retry
    for record in caplog.records:
        assert "secret-patient-4711" not in record.getMessage()
        assert "Condition?" not in record.getMessage()
