"""The store binds cards and feedback to the issuer (issue 10, hole 6), and upgrades files made before."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from sqlalchemy import inspect

from cds_service.errors import UnknownCardError
from cds_service.feedback.request import parse_feedback
from cds_service.feedback.store import CardBatch, ShownCard, Store

A, B = "https://ehr-a.example.org", "https://ehr-b.example.org"
ITEM = {"card": "card-1", "outcome": "overridden", "outcomeTimestamp": "2026-11-25T10:00:00Z"}


def _store(tmp_path: Path) -> Store:
    return Store.from_url(f"sqlite:///{tmp_path / 'f.sqlite3'}")


def test_foreign_card_is_refused_and_nothing_stored(tmp_path: Path) -> None:
    store = _store(tmp_path)
    store.record_card_batches([CardBatch("svc", "order-sign", "h1", None, [ShownCard("card-1")], A)])
    feedback = parse_feedback({"feedback": [ITEM, {**ITEM, "card": "never-shown"}]}).feedback
    with pytest.raises(UnknownCardError):
        store.record_feedback("svc", feedback, B)
    assert list(store.iter_feedback()) == []
    assert store.record_feedback("svc", feedback, A) == 2  # own card, and a card never recorded
    assert {r.issuer for r in store.iter_feedback()} == {A}


def test_store_made_before_issuers_gets_the_columns(tmp_path: Path) -> None:
    path = tmp_path / "f.sqlite3"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE cards_shown (card_uuid VARCHAR(64) PRIMARY KEY, service_id VARCHAR(200))")
        conn.execute("CREATE TABLE feedback (id INTEGER PRIMARY KEY, card_uuid VARCHAR(64))")
    store = Store.from_url(f"sqlite:///{path}")
    columns = {
        t: {c["name"] for c in inspect(store.engine).get_columns(t)} for t in ("cards_shown", "feedback")
    }
    assert "issuer" in columns["cards_shown"]
    assert "issuer" in columns["feedback"]
