"""``igg4-cds audit --fhir-server``: a real ``$export`` from sekmet-fhir with SMART Backend Services auth.

sekmet-fhir is started on loopback with SMART auth (one registered Backend Services client whose key
``sekmet keys generate`` made) and a static bearer token used to load the population: the fixtures among
synthetic variants, plus patients from ``sekmet seed``.
"""

from __future__ import annotations

import csv
import json
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from cds_service.audit.bulk import BackendServices, BulkClient
from cds_service.audit.ndjson import iter_lines
from cds_service.cli import main
from tests.audit.cards import EVALUATION_DATE, mismatches
from tests.audit.population import fixture_ids, generate, transaction_bundles
from tests.servers import process, sekmet

pytestmark = pytest.mark.integration

POPULATION = 40
SEEDED = 3
CLIENT_ID = "igg4-audit"
LOADER_TOKEN = "loader-token-for-tests-only"


@dataclass(frozen=True)
class BulkServer:
    base_url: str
    private_key: Path
    workdir: Path


def _settings(base_url: str, port: int, data_dir: Path, jwks: dict) -> str:
    settings = json.loads(sekmet.settings_yaml(base_url, port, data_dir))
    settings["server_auth"] = {
        "types": ["smart", "bearer"],
        "tokens": [LOADER_TOKEN],
        "smart_clients": [{"client_id": CLIENT_ID, "jwks": jwks, "scopes": "system/*.read"}],
    }
    return json.dumps(settings, indent=2)


def _run_sekmet(workdir: Path, *args: str) -> str:
    done = subprocess.run(
        [str(sekmet.sekmet_executable()), *args],
        cwd=workdir,
        env=process.clean_env("IGG4_CDS_"),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    return done.stdout


@pytest.fixture(scope="module")
def bulk_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BulkServer]:
    if not sekmet.sekmet_executable().exists():
        pytest.skip(f"sekmet-fhir not installed in {sekmet.server_venv()}")
    workdir = tmp_path_factory.mktemp("sekmet-bulk")
    key = workdir / "keys" / "audit.pem"
    _run_sekmet(workdir, "keys", "generate", "--out", str(key))
    jwks = json.loads(key.with_suffix(".jwks.json").read_text())
    port = process.free_port()
    base_url = f"http://{process.HOST}:{port}/fhir"
    (workdir / "data").mkdir()
    config = workdir / "settings.yaml"
    config.write_text(_settings(base_url, port, workdir / "data", jwks))
    log = workdir / "server.log"
    argv = [
        str(sekmet.sekmet_executable()),
        "serve",
        "--config",
        str(config),
        "--host",
        process.HOST,
        "--port",
        str(port),
    ]
    server = process.spawn("sekmet-fhir", argv, process.clean_env("IGG4_CDS_"), workdir, log)
    try:
        process.wait_until_answers("sekmet-fhir", server, f"{base_url}/metadata", log)
        headers = {"Authorization": f"Bearer {LOADER_TOKEN}", "Content-Type": "application/fhir+json"}
        for bundle in transaction_bundles(generate(POPULATION), per_bundle=20):
            response = requests.post(base_url, json=bundle, headers=headers, timeout=120)
            assert response.status_code == 200, response.text[:500]
        group = {
            "resourceType": "Group",
            "id": "fixtures",
            "type": "person",
            "actual": True,
            "member": [{"entity": {"reference": f"Patient/{pid}"}} for pid in sorted(fixture_ids())[:5]],
        }
        assert requests.put(f"{base_url}/Group/fixtures", json=group, headers=headers, timeout=30).ok
        _run_sekmet(workdir, "seed", "--count", str(SEEDED), "--no-admit", "--config", str(config))
        yield BulkServer(base_url, key, workdir)
    finally:
        process.stop_process(server)


def _rows(out: Path) -> list[dict[str, str]]:
    with (out / "patients.csv").open(newline="") as handle:
        return list(csv.DictReader(handle))


def _audit(server: BulkServer, out: Path, *extra: str) -> int:
    return main(
        [
            "audit",
            "--fhir-server",
            server.base_url,
            "--out",
            str(out),
            "--keep-ids",
            "--no-progress",
            "--as-of",
            EVALUATION_DATE,
            "--today",
            EVALUATION_DATE,
            "--workers",
            "1",
            *extra,
        ]
    )


def test_system_export_with_backend_services_gives_the_hooks_cards(bulk_server, tmp_path):
    code = _audit(
        bulk_server, tmp_path, "--client-id", CLIENT_ID, "--private-key", str(bulk_server.private_key)
    )
    assert code == 0
    assert len(_rows(tmp_path)) == POPULATION + SEEDED
    assert mismatches(tmp_path / "patients.csv", as_of=True) == []


def test_group_export_holds_the_group_only(bulk_server, tmp_path):
    code = _audit(
        bulk_server,
        tmp_path,
        "--group",
        "fixtures",
        "--client-id",
        CLIENT_ID,
        "--private-key",
        str(bulk_server.private_key),
    )
    assert code == 0
    assert {r["patient"] for r in _rows(tmp_path)} == set(sorted(fixture_ids())[:5])


def test_patient_level_export_with_a_bearer_token(bulk_server, tmp_path, monkeypatch):
    monkeypatch.setenv("IGG4_CDS_AUDIT_BEARER_TOKEN", LOADER_TOKEN)
    assert _audit(bulk_server, tmp_path, "--level", "patient") == 0
    assert len(_rows(tmp_path)) == POPULATION + SEEDED


def test_without_credentials_or_with_an_unregistered_key_the_export_fails(bulk_server, tmp_path, capsys):
    assert _audit(bulk_server, tmp_path / "a") == 1
    assert "kick-off: HTTP 401" in capsys.readouterr().err
    other = tmp_path / "other.pem"
    _run_sekmet(bulk_server.workdir, "keys", "generate", "--out", str(other))
    assert _audit(bulk_server, tmp_path / "b", "--client-id", CLIENT_ID, "--private-key", str(other)) == 1
    assert "token endpoint: HTTP 401 invalid_client" in capsys.readouterr().err


def test_polling_sleeps_as_retry_after_says_and_downloads_every_file(bulk_server, tmp_path):
    slept: list[float] = []
    auth = BackendServices(CLIENT_ID, bulk_server.private_key.read_bytes())
    client = BulkClient(bulk_server.base_url, auth, level="patient", sleep=slept.append)
    job = client.run(tmp_path)
    assert job.polls >= 2 and slept and set(slept) == {1.0}  # sekmet answers 202 with Retry-After: 1
    assert auth.token_url.endswith("/auth/token")  # found in .well-known/smart-configuration
    types = {p.name.split("-", 1)[1] for p in job.files}
    assert {"Patient.ndjson", "Condition.ndjson", "Observation.ndjson", "DiagnosticReport.ndjson"} <= types
    patients = sum(1 for p in job.files if p.name.endswith("-Patient.ndjson") for _ in iter_lines(p))
    assert patients == POPULATION + SEEDED
