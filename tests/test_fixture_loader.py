"""Loading fixture Bundles: created/updated/refused per entry, idempotence, PUT fallback, the command line."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
import requests
from servers.faulty_fhir import FaultyFhirServer
from servers.fhir import FhirServer, free_port

from cds_service.fixtures.loader import LoadReport, load_bundles, main, read_fixtures
from tests.builders import put_entry

TOKEN = "loader-t0ken-not-printed"


def _bundle(*resources: dict[str, Any]) -> dict[str, Any]:
    return {"resourceType": "Bundle", "type": "transaction", "entry": [put_entry(r) for r in resources]}


def patient_bundle(pid: str) -> dict[str, Any]:
    return _bundle(
        {"resourceType": "Patient", "id": pid, "name": [{"family": "Loader"}]},
        {
            "resourceType": "Condition",
            "id": f"{pid}-c1",
            "code": {"coding": [{"system": "http://snomed.info/sct", "code": "399068003"}]},
            "subject": {"reference": f"Patient/{pid}"},
        },
        {
            "resourceType": "Observation",
            "id": f"{pid}-o1",
            "status": "final",
            "code": {"coding": [{"system": "http://loinc.org", "code": "2469-5"}]},
            "subject": {"reference": f"Patient/{pid}"},
            "effectiveDateTime": "2024-01-01",
        },
    )


def _outcomes(report: LoadReport) -> list[str]:
    return [e.outcome for e in report.entries]


def _counts(server: FhirServer) -> dict[str, int]:
    return {t: server.count(t) for t in ("Patient", "Condition", "Observation")}


# ---------------------------------------------------------------------------------------------------------------
# Real server
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.integration
def test_load_twice_is_idempotent(fhir_server: FhirServer) -> None:
    bundles = [("01-first", patient_bundle("ld-1")), ("02-second", patient_bundle("ld-2"))]
    first = load_bundles(fhir_server.base_url, bundles)
    assert first.ok, first.table()
    assert _outcomes(first) == ["created"] * 6
    assert {e.status for e in first.entries} == {201}
    counts = _counts(fhir_server)

    second = load_bundles(fhir_server.base_url, bundles)
    assert second.ok, second.table()
    assert _outcomes(second) == ["updated"] * 6
    assert {e.status for e in second.entries} == {200}
    assert _counts(fhir_server) == counts
    assert [e.resource for e in second.entries][:3] == [
        "Patient/ld-1",
        "Condition/ld-1-c1",
        "Observation/ld-1-o1",
    ]


@pytest.mark.integration
def test_refused_transaction_reports_diagnostics(fhir_server: FhirServer) -> None:
    bad = patient_bundle("ld-bad")
    bad["entry"][2]["resource"]["bogusElement"] = 1
    report = load_bundles(fhir_server.base_url, [("03-bad", bad)])
    assert not report.ok
    assert _outcomes(report) == ["refused"] * 3
    assert {e.status for e in report.entries} == {400}
    assert all("bogusElement" in e.diagnostics for e in report.entries)
    assert all(e.diagnostics.startswith("transaction refused as a whole") for e in report.entries)
    # rolled back: nothing of it was stored
    assert requests.get(f"{fhir_server.base_url}/Patient/ld-bad", timeout=5).status_code == 404


@pytest.mark.integration
def test_main_loads_fixture_folders(fhir_server: FhirServer, tmp_path: Path) -> None:
    for name, pid in (("01-alpha", "cli-1"), ("02-beta", "cli-2")):
        (tmp_path / name).mkdir()
        (tmp_path / name / "bundle.json").write_text(json.dumps(patient_bundle(pid)))
    assert [name for name, _ in read_fixtures(tmp_path)] == ["01-alpha", "02-beta"]
    out = io.StringIO()
    argv = ["--base-url", fhir_server.base_url, "--fixtures", str(tmp_path), "--token", TOKEN]
    assert main(argv, out) == 0
    text = out.getvalue()
    assert "Patient/cli-1" in text
    assert "6 entries: 6 created, 0 updated, 0 refused, 0 errors" in text
    assert TOKEN not in text

    bad = patient_bundle("cli-bad")
    bad["entry"][0]["resource"]["bogusElement"] = True
    (tmp_path / "03-bad").mkdir()
    (tmp_path / "03-bad" / "bundle.json").write_text(json.dumps(bad))
    out = io.StringIO()
    assert main(argv, out) == 1
    assert "6 updated, 3 refused" in out.getvalue()


# ---------------------------------------------------------------------------------------------------------------
# Misbehaving servers
# ---------------------------------------------------------------------------------------------------------------


def test_falls_back_to_puts_when_transactions_are_rejected(faulty_fhir: FaultyFhirServer) -> None:
    faulty_fhir.clear()
    bad = patient_bundle("fb-2")
    bad["entry"][1]["resource"]["bogus"] = 1
    bundles = [("01-fb", patient_bundle("fb-1")), ("02-fb", bad)]
    report = load_bundles(faulty_fhir.base("notx"), bundles, token=TOKEN)
    assert _outcomes(report) == ["created", "created", "created", "created", "refused", "created"]
    assert {e.via for e in report.entries} == {"put"}
    refused = report.entries[4]
    assert (refused.resource, refused.status) == ("Condition/fb-2-c1", 400)
    assert "Unknown element 'bogus'" in refused.diagnostics
    assert not report.ok
    methods = [r.path for r in faulty_fhir.requests]
    assert methods[0] == "/notx/fhir"
    assert "/notx/fhir/Patient/fb-1" in methods
    assert all(r.headers.get("Authorization") == f"Bearer {TOKEN}" for r in faulty_fhir.requests)

    again = load_bundles(faulty_fhir.base("notx"), bundles[:1])
    assert _outcomes(again) == ["updated"] * 3
    assert all("Authorization" not in r.headers for r in faulty_fhir.requests[-4:])


def test_unreachable_server_is_an_error() -> None:
    report = load_bundles(f"http://127.0.0.1:{free_port()}/fhir", [("01", patient_bundle("x"))], timeout=2)
    assert _outcomes(report) == ["error"] * 3
    assert all(e.diagnostics.startswith("server unreachable") for e in report.entries)
    assert "0 created" in report.table()


def test_main_without_fixtures(tmp_path: Path) -> None:
    out = io.StringIO()
    assert main(["--base-url", "http://127.0.0.1:1/fhir", "--fixtures", str(tmp_path)], out) == 2
    assert "no fixtures found" in out.getvalue()
