"""The HTTP edge under trust: JWT authentication, bare 401s, CORS, feedback, card records and private logs."""

from __future__ import annotations

import base64
import json
import logging
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from joserfc import jwt
from joserfc.jwk import ECKey

from cds_service.feedback.store import Store
from cds_service.fixtures.catalog import list_fixtures
from cds_service.settings import Settings
from cds_service.web.app import create_app
from tests.conftest import EVALUATION_DATE

ISS = "https://ehr.example.org"
BASE = "https://cds.example.org"
SIGN = "/cds-services/igg4rd-order-sign"
FIXTURES = list_fixtures()
PUBLISHED = FIXTURES[0].request


@pytest.fixture(scope="module")
def key() -> ECKey:
    return ECKey.generate_key("P-384", parameters={"kid": "k1"})


@pytest.fixture(scope="module")
def trusted(tmp_path_factory, key) -> tuple[TestClient, Path]:
    tmp = tmp_path_factory.mktemp("trusted")
    trust = {
        "issuers": [{"iss": ISS, "jwks": {"keys": [key.as_dict(private=False)]}, "algorithms": ["ES384"]}]
    }
    (tmp / "trust.json").write_text(json.dumps(trust))
    settings = Settings(
        trust_file=tmp / "trust.json",
        public_base_url=BASE,
        database_url=f"sqlite:///{tmp / 'feedback.sqlite3'}",
        cors_origins=["https://sandbox.cds-hooks.org"],
    )
    return TestClient(create_app(settings, today=lambda: EVALUATION_DATE)), tmp


def token(key: ECKey, path: str = SIGN, **overrides: Any) -> str:
    now = int(time.time())
    claims = {
        "iss": ISS,
        "aud": BASE + path,
        "iat": now,
        "exp": now + 300,
        "jti": str(uuid.uuid4()),
    } | overrides
    return jwt.encode({"alg": "ES384", "typ": "JWT", "kid": "k1"}, claims, key, algorithms=["ES384"])


def auth(value: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {value}"}


def test_signed_call_is_answered(trusted, key):
    client, _ = trusted
    response = client.post(SIGN, json=PUBLISHED, headers=auth(token(key)))
    assert response.status_code == 200
    assert response.json()["cards"][0]["indicator"] == "warning"


@pytest.mark.parametrize(
    "make_header",
    [
        lambda key: {},
        lambda key: {"Authorization": "Basic dXNlcjpwYXNz"},
        lambda key: auth("not.a.jwt"),
        lambda key: auth(token(key, aud=BASE + "/cds-services/other")),
        lambda key: auth(token(key, iss="https://evil.example")),
        lambda key: auth(token(key, exp=int(time.time()) - 3600, iat=int(time.time()) - 3900)),
        lambda key: auth(token(ECKey.generate_key("P-384", parameters={"kid": "k1"}))),
    ],
    ids=["missing", "basic", "garbage", "wrong-aud", "untrusted-iss", "expired", "wrong-key"],
)
def test_failures_are_a_bare_401(trusted, key, make_header):
    client, _ = trusted
    response = client.post(SIGN, json=PUBLISHED, headers=make_header(key))
    assert response.status_code == 401
    assert response.content == b""


def test_replayed_token_is_refused(trusted, key):
    client, _ = trusted
    once = token(key)
    assert client.post(SIGN, json=PUBLISHED, headers=auth(once)).status_code == 200
    assert client.post(SIGN, json=PUBLISHED, headers=auth(once)).status_code == 401


def test_discovery_stays_open(trusted):
    client, _ = trusted
    assert client.get("/cds-services").status_code == 200


def test_no_trust_and_not_dev_mode_refuses_hooks(tmp_path):
    client = TestClient(
        create_app(Settings(dev_mode=False, trust_file=None, database_url=f"sqlite:///{tmp_path}/f.db"))
    )
    assert client.post(SIGN, json=PUBLISHED).status_code == 401
    assert client.get("/cds-services").status_code == 200


def test_cors_preflight_for_a_configured_origin(trusted):
    client, _ = trusted
    response = client.options(
        SIGN,
        headers={
            "Origin": "https://sandbox.cds-hooks.org",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization,content-type",
        },
    )
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == "https://sandbox.cds-hooks.org"
    other = client.options(
        SIGN, headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"}
    )
    assert "access-control-allow-origin" not in other.headers


def test_feedback_is_stored_once_and_joined_to_the_card(trusted, key):
    client, tmp = trusted
    card = client.post(SIGN, json=PUBLISHED, headers=auth(token(key))).json()["cards"][0]
    item = {
        "card": card["uuid"],
        "outcome": "overridden",
        "overrideReason": {"reason": card["overrideReasons"][0], "userComment": "free text"},
        "outcomeTimestamp": "2026-11-25T10:00:00Z",
    }
    path = SIGN + "/feedback"
    for _ in range(2):  # clients may resend: stored once
        response = client.post(path, json={"feedback": [item]}, headers=auth(token(key, path=path)))
        assert response.status_code == 200
    client.app.state.deps.recorder.flush()  # cards are recorded off the request path
    store = Store.from_url(f"sqlite:///{tmp / 'feedback.sqlite3'}")
    [rates] = [r for r in store.rates_by_service() if r.service_id == "igg4rd-order-sign"]
    assert rates.overridden >= 1
    [record] = [r for r in store.iter_feedback() if r.card_uuid == card["uuid"]]
    assert (record.card_known, record.indicator, record.total) == (True, "warning", 35)
    assert record.user_comment is None  # comments stay out unless asked for
    raw = (tmp / "feedback.sqlite3").read_bytes()
    assert PUBLISHED["context"]["patientId"].encode() not in raw  # hashed, never in clear


def test_bad_feedback_is_400_naming_the_field(trusted, key):
    client, _ = trusted
    path = SIGN + "/feedback"
    response = client.post(
        path, json={"feedback": [{"card": "x", "outcome": "maybe"}]}, headers=auth(token(key, path=path))
    )
    assert response.status_code == 400
    assert response.json()["resourceType"] == "OperationOutcome"
    assert "outcome" in json.dumps(response.json())


RECORD_TEXT_KEYS = {"family", "given", "text", "conclusion", "display", "data", "valueString"}


def _record_texts(fixture_request: dict[str, Any]) -> list[str]:
    """Record text that must never reach a log: names, free text, report narrative, tokens."""
    texts: list[str] = []

    def walk(value: Any, key: str = "") -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                walk(v, k)
        elif isinstance(value, list):
            for v in value:
                walk(v, key)
        elif isinstance(value, str) and key in RECORD_TEXT_KEYS and len(value) >= 6:
            texts.append(base64.b64decode(value).decode()[:60] if key == "data" else value)

    walk(fixture_request)
    return texts


def test_logs_carry_no_patient_data(key, tmp_path, caplog):
    settings = Settings(dev_mode=True, database_url=f"sqlite:///{tmp_path}/f.db", log_level="DEBUG")
    client = TestClient(create_app(settings, today=lambda: EVALUATION_DATE))
    caplog.set_level(logging.DEBUG)
    secrets = ["tok-SECRET-123"]
    for fixture in FIXTURES:
        request = fixture.request | {
            "fhirAuthorization": {
                "access_token": "tok-SECRET-123",
                "token_type": "Bearer",
                "expires_in": 300,
                "scope": "x",
                "subject": "y",
            }
        }
        client.post(f"/cds-services/igg4rd-{request['hook']}", json=request)
        secrets += _record_texts(fixture.request)
    client.post(SIGN, content=b'{"broken": "Jane Doe', headers={"Content-Type": "application/json"})
    logged = "\n".join(f"{r.getMessage()} {r.__dict__}" for r in caplog.records)
    hook_lines = [r for r in caplog.records if r.getMessage() == "hook call"]
    assert len(hook_lines) == len(FIXTURES)
    for record in hook_lines:
        assert {"hook_instance", "service", "status", "timings_ms", "cards"} <= set(record.__dict__)
        assert set(record.timings_ms) >= {"parse"}
    assert len(secrets) > 50
    for secret in secrets:
        assert secret not in logged, secret[:30]
    assert "Jane Doe" not in logged


def test_feedback_store_failure_is_503_not_500(tmp_path):
    blocked = tmp_path / "not-a-directory"
    blocked.write_text("a file where the database directory should be")
    settings = Settings(dev_mode=True, database_url=f"sqlite:///{blocked}/feedback.sqlite3")
    client = TestClient(create_app(settings))
    item = {"card": str(uuid.uuid4()), "outcome": "overridden", "outcomeTimestamp": "2026-11-25T10:00:00Z"}
    response = client.post(SIGN + "/feedback", json={"feedback": [item]})
    assert response.status_code == 503
    assert response.json()["resourceType"] == "OperationOutcome"
    # The hook itself still answers: recording the card is best effort.
    assert client.post(SIGN, json=PUBLISHED).status_code == 200


def test_integrator_logs_name_the_audience_and_the_key(trusted, key, caplog):
    """Issue 11, item 7: a wrong aud logs what was expected and the URL called; success logs issuer and kid."""
    client, _ = trusted
    caplog.set_level(logging.DEBUG)
    wrong = token(key, aud="http://127.0.0.1:8080" + SIGN)
    assert client.post(SIGN, json=PUBLISHED, headers=auth(wrong)).status_code == 401
    [failed] = [r for r in caplog.records if r.getMessage() == "authentication failed"]
    assert "http://127.0.0.1:8080/cds-services/igg4rd-order-sign" in failed.reason  # the token's aud
    assert f"expected '{BASE}{SIGN}'" in failed.reason  # what this service expected
    assert failed.url_called == f"http://testserver{SIGN}"  # the URL the request arrived at
    caplog.clear()
    good = token(key)
    assert client.post(SIGN, json=PUBLISHED, headers=auth(good)).status_code == 200
    verified = [r for r in caplog.records if r.getMessage() == "caller verified"]
    assert [(r.issuer, r.kid) for r in verified] == [(ISS, "k1")]
    for part in good.split(".") + wrong.split("."):
        assert part not in caplog.text
