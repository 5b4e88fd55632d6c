"""Hardening of the HTTP edge (issue 10): length caps on every string the hook request reads, no API
document outside development mode, and CORS only for configured origins."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from cds_service.hooks.request import MAX_LENGTHS
from cds_service.settings import Settings
from cds_service.web.app import create_app
from tests.builders import hook_request
from tests.conftest import EVALUATION_DATE

PATIENT_VIEW = "/cds-services/igg4rd-patient-view"


def _dev_client(tmp_path: Path, **settings: object) -> TestClient:
    s = Settings(dev_mode=True, database_url=f"sqlite:///{tmp_path / 'f.sqlite3'}", **settings)  # type: ignore[arg-type]
    return TestClient(create_app(s, today=lambda: EVALUATION_DATE))


def _production_client(tmp_path: Path, **settings: object) -> TestClient:
    s = Settings(dev_mode=False, database_url=f"sqlite:///{tmp_path / 'f.sqlite3'}", **settings)  # type: ignore[arg-type]
    return TestClient(create_app(s, today=lambda: EVALUATION_DATE))


def _with(body: dict[str, object], dotted: str, value: object) -> dict[str, object]:
    *path, last = dotted.split(".")
    target: dict[str, object] = body
    for part in path:
        target = target.setdefault(part, {})  # type: ignore[assignment]
    target[last] = value
    return body


@pytest.mark.parametrize(
    ("field", "make"),
    [
        ("hookInstance", lambda n: "x" * n),
        ("fhirServer", lambda n: "https://ehr.example.org/" + "a" * n),
        ("fhirAuthorization.access_token", lambda n: "t" * n),
        ("hook", lambda n: "patient-view" + "x" * n),
    ],
)
def test_every_request_string_has_a_cap(tmp_path: Path, field: str, make: object) -> None:
    client = _dev_client(tmp_path)
    cap = MAX_LENGTHS[field]
    body = hook_request("patient-view")
    if field == "fhirAuthorization.access_token":
        body = _with(
            body,
            "fhirAuthorization",
            {"access_token": "t", "token_type": "Bearer", "scope": "x", "expires_in": 1},
        )
    response = client.post(PATIENT_VIEW, json=_with(body, field, make(cap + 1)))  # type: ignore[operator]
    assert response.status_code == 400
    assert field in response.text
    assert len(response.content) < 2000  # the over-long value is not echoed


def test_three_megabyte_hook_instance_is_refused_without_a_huge_log_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    client = _dev_client(tmp_path)
    response = client.post(
        PATIENT_VIEW, json=_with(hook_request("patient-view"), "hookInstance", "h" * 3_000_000)
    )
    assert response.status_code == 400
    assert all(len(r.getMessage()) + len(str(r.__dict__)) < 10_000 for r in caplog.records)


def test_selections_are_capped(tmp_path: Path) -> None:
    client = _dev_client(tmp_path)
    body = hook_request("order-select")
    body["context"]["selections"] = ["ServiceRequest/" + "s" * MAX_LENGTHS["context.selections"]]
    response = client.post("/cds-services/igg4rd-order-select", json=body)
    assert response.status_code == 400
    assert "context.selections" in response.text


@pytest.mark.parametrize("path", ["/openapi.json", "/docs", "/redoc"])
def test_no_api_document_outside_development_mode(tmp_path: Path, path: str) -> None:
    assert _production_client(tmp_path).get(path).status_code == 404


def test_api_document_in_development_mode(tmp_path: Path) -> None:
    assert _dev_client(tmp_path).get("/openapi.json").status_code == 200


def _preflight(client: TestClient, origin: str) -> dict[str, str]:
    response = client.options(
        PATIENT_VIEW, headers={"Origin": origin, "Access-Control-Request-Method": "POST"}
    )
    return {k.lower(): v for k, v in response.headers.items()}


def test_no_cors_by_default_outside_development_mode(tmp_path: Path) -> None:
    headers = _preflight(_production_client(tmp_path), "https://evil.example")
    assert "access-control-allow-origin" not in headers


def test_wildcard_cors_is_refused_outside_development_mode(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="CORS"):
        _production_client(tmp_path, cors_origins=["*"])


def test_configured_origin_only(tmp_path: Path) -> None:
    client = _production_client(tmp_path, cors_origins=["https://sandbox.cds-hooks.org"])
    assert _preflight(client, "https://sandbox.cds-hooks.org")["access-control-allow-origin"] == (
        "https://sandbox.cds-hooks.org"
    )
    assert "access-control-allow-origin" not in _preflight(client, "https://evil.example")


def test_development_mode_allows_any_origin_by_default(tmp_path: Path) -> None:
    assert _preflight(_dev_client(tmp_path), "http://localhost:3000")["access-control-allow-origin"] in (
        "*",
        "http://localhost:3000",
    )
