"""Feedback is bound to the issuer whose call showed the card (issue 10, hole 6): cards shown and feedback carry
the issuer, and feedback from another issuer on a card is refused with a 404 and not stored."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from joserfc import jwt
from joserfc.jwk import ECKey
from sqlalchemy import select

from cds_service.feedback.schema import cards_shown, feedback
from cds_service.feedback.store import Store
from cds_service.fixtures.catalog import list_fixtures
from cds_service.settings import Settings
from cds_service.web.app import create_app
from tests.conftest import EVALUATION_DATE

BASE = "https://cds.example.org"
SIGN = "/cds-services/igg4rd-order-sign"
A, B = "https://ehr-a.example.org", "https://ehr-b.example.org"


@pytest.fixture(scope="module")
def keys() -> dict[str, ECKey]:
    return {iss: ECKey.generate_key("P-384", parameters={"kid": f"k-{n}"}) for n, iss in enumerate((A, B))}


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory, keys: dict[str, ECKey]) -> tuple[TestClient, Path]:
    tmp = tmp_path_factory.mktemp("issuers")
    trust = {
        "issuers": [
            {"iss": iss, "jwks": {"keys": [key.as_dict(private=False)]}, "algorithms": ["ES384"]}
            for iss, key in keys.items()
        ]
    }
    (tmp / "trust.json").write_text(json.dumps(trust))
    settings = Settings(
        trust_file=tmp / "trust.json",
        public_base_url=BASE,
        database_url=f"sqlite:///{tmp / 'feedback.sqlite3'}",
        replay_db_file=tmp / "replay.sqlite3",
    )
    return TestClient(create_app(settings, today=lambda: EVALUATION_DATE)), tmp


def _auth(keys: dict[str, ECKey], iss: str, path: str) -> dict[str, str]:
    now = int(time.time())
    claims = {"iss": iss, "aud": BASE + path, "iat": now, "exp": now + 300, "jti": str(uuid.uuid4())}
    key = keys[iss]
    value = jwt.encode({"alg": "ES384", "typ": "JWT", "kid": key.kid}, claims, key, algorithms=["ES384"])
    return {"Authorization": f"Bearer {value}"}


def _item(card: dict[str, Any]) -> dict[str, Any]:
    return {
        "card": card["uuid"],
        "outcome": "overridden",
        "overrideReason": {"reason": card["overrideReasons"][0]},
        "outcomeTimestamp": "2026-11-25T10:00:00Z",
    }


def test_feedback_on_another_issuers_card_is_404_and_not_stored(
    setup: tuple[TestClient, Path], keys: dict[str, ECKey]
) -> None:
    client, tmp = setup
    card = client.post(SIGN, json=list_fixtures()[0].request, headers=_auth(keys, A, SIGN)).json()["cards"][0]
    client.app.state.deps.recorder.flush()  # type: ignore[attr-defined]
    path = SIGN + "/feedback"

    stolen = client.post(path, json={"feedback": [_item(card)]}, headers=_auth(keys, B, path))
    assert stolen.status_code == 404
    own = client.post(path, json={"feedback": [_item(card)]}, headers=_auth(keys, A, path))
    assert own.status_code == 200

    store = Store.from_url(f"sqlite:///{tmp / 'feedback.sqlite3'}")
    with store.engine.connect() as conn:
        shown = conn.execute(
            select(cards_shown.c.issuer).where(cards_shown.c.card_uuid == card["uuid"])
        ).all()
        stored = conn.execute(select(feedback.c.issuer).where(feedback.c.card_uuid == card["uuid"])).all()
    assert [row.issuer for row in shown] == [A]
    assert [row.issuer for row in stored] == [A]
    [record] = [r for r in store.iter_feedback() if r.card_uuid == card["uuid"]]
    assert record.issuer == A
