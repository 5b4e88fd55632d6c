"""The feedback store on SQLite (a file in tmp_path) and on a real PostgreSQL server (integration)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, text

from cds_service.errors import StoreConfigError
from cds_service.feedback.keys import KEY_FILE_SUFFIX
from cds_service.feedback.reports import ReasonCount
from cds_service.feedback.request import FeedbackItem, parse_feedback
from cds_service.feedback.schema import cards_shown, feedback
from cds_service.feedback.store import ShownCard, Store
from cds_service.settings import Settings
from tests.servers import postgres as _postgres

PostgresServer = _postgres.PostgresServer
# Fixtures used here, re-bound so pytest finds them in this module.
postgres_server = _postgres.postgres_server
postgres_url = _postgres.postgres_url

SERVICE = "igg4rd-cca"
OTHER = "igg4rd-patient-view"
PATIENT = "Patient/pt-8f3a-secret-ref"
KEY = "test-key-0123456789abcdef"


def card(
    uuid: str,
    *,
    indicator: str = "warning",
    classification: str = "meets",
    total: int = 35,
    suggestions: tuple[str, ...] = (),
) -> ShownCard:
    return ShownCard(uuid, indicator, classification, total, suggestions)


def accepted(card_uuid: str, *suggestions: str, at: str = "2024-05-01T10:00:00Z") -> dict[str, Any]:
    return {
        "card": card_uuid,
        "outcome": "accepted",
        "acceptedSuggestions": [{"id": s} for s in suggestions],
        "outcomeTimestamp": at,
    }


def overridden(
    card_uuid: str, code: str | None = None, *, comment: str | None = None, at: str = "2024-05-01T10:00:00Z"
) -> dict[str, Any]:
    item: dict[str, Any] = {"card": card_uuid, "outcome": "overridden", "outcomeTimestamp": at}
    reason: dict[str, Any] = {}
    if code:
        reason["reason"] = {"system": "urn:igg4rd-cds:override", "code": code, "display": f"Reason {code}"}
    if comment:
        reason["userComment"] = comment
    if reason:
        item["overrideReason"] = reason
    return item


def items(*raw: dict[str, Any]) -> tuple[FeedbackItem, ...]:
    return parse_feedback({"feedback": list(raw)}).feedback


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.integration)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'db' / 'feedback.sqlite3'}"
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture
def store(database_url: str) -> Iterator[Store]:
    with Store.from_url(database_url, hash_key=KEY) as opened:
        yield opened


def count(store: Store, table: Any) -> int:
    with store.engine.connect() as conn:
        return len(conn.execute(select(table)).all())


def test_record_cards_is_idempotent_and_skips_cards_without_uuid(store: Store) -> None:
    cards = [card("c-1", suggestions=("s-1", "s-2")), card("c-2", indicator="info"), card("")]
    assert store.record_cards(SERVICE, "order-sign", "hi-1", PATIENT, cards) == 2
    assert store.record_cards(SERVICE, "order-sign", "hi-1", PATIENT, cards) == 0
    assert store.record_cards(SERVICE, "order-sign", "hi-1", PATIENT, []) == 0
    with store.engine.connect() as conn:
        rows = {r.card_uuid: r for r in conn.execute(select(cards_shown))}
    assert set(rows) == {"c-1", "c-2"}
    first = rows["c-1"]
    assert (first.service_id, first.hook, first.hook_instance) == (SERVICE, "order-sign", "hi-1")
    assert (first.indicator, first.classification, first.total) == ("warning", "meets", 35)
    assert first.suggestion_ids == ["s-1", "s-2"]
    assert first.patient_hash == store.patient_hash(PATIENT)
    assert first.created_at.tzinfo is not None


def test_patient_reference_is_only_a_keyed_hash(store: Store) -> None:
    store.record_cards(SERVICE, "patient-view", "hi-1", PATIENT, [card("c-1")])
    digest = store.patient_hash(PATIENT)
    assert len(digest) == 64
    assert PATIENT not in digest
    assert store.patient_hash(" " + PATIENT) == digest
    with Store.from_url("sqlite://", hash_key="another-key-0123456789") as other:
        assert other.patient_hash(PATIENT) != digest
    with store.engine.connect() as conn:
        values = [v for row in conn.execute(select(cards_shown)) for v in row]
    assert all("pt-8f3a" not in str(v) for v in values)


def test_patient_reference_not_in_sqlite_file(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'feedback.sqlite3'}"
    with Store.from_url(url) as store:
        store.record_cards(SERVICE, "patient-view", "hi-1", PATIENT, [card("c-1"), card("c-2")])
        store.record_feedback(SERVICE, items(overridden("c-1", "already-known")))
        # Read while the WAL still holds the rows, then again after close (checkpointed into the file).
        assert b"c-1" in b"".join(p.read_bytes() for p in tmp_path.iterdir())
        for path in tmp_path.iterdir():
            assert b"pt-8f3a" not in path.read_bytes() or path.name.endswith(KEY_FILE_SUFFIX), path
    data = b"".join(p.read_bytes() for p in tmp_path.iterdir())
    assert b"c-1" in data
    assert b"pt-8f3a" not in data
    assert b"pt-8f3a".hex().encode() not in data


def test_generated_key_is_persisted_next_to_sqlite(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'sub' / 'feedback.sqlite3'}"
    with Store.from_url(url) as first:
        digest = first.patient_hash(PATIENT)
    key_file = tmp_path / "sub" / ("feedback.sqlite3" + KEY_FILE_SUFFIX)
    assert key_file.exists()
    assert key_file.stat().st_mode & 0o077 == 0
    with Store.from_url(url) as again:
        assert again.patient_hash(PATIENT) == digest
    with Store.from_url(url, hash_key=KEY) as explicit:
        assert explicit.patient_hash(PATIENT) != digest


def test_from_settings(tmp_path: Path, database_url: str) -> None:
    settings = Settings(database_url=database_url, feedback_hash_key=KEY)
    with Store.from_settings(settings) as store:
        assert store.patient_hash(PATIENT)
    unkeyed = Settings(database_url=database_url, feedback_hash_key=None)
    if database_url.startswith("sqlite"):
        Store.from_settings(unkeyed).close()
    else:
        with pytest.raises(StoreConfigError):
            Store.from_settings(unkeyed)


def test_short_key_refused() -> None:
    with pytest.raises(StoreConfigError):
        Store.from_url("sqlite://", hash_key="short")


def test_missing_database_not_created_without_create(tmp_path: Path) -> None:
    with pytest.raises(StoreConfigError):
        Store.from_url(f"sqlite:///{tmp_path / 'absent.sqlite3'}", create=False)
    assert list(tmp_path.iterdir()) == []


def test_duplicate_feedback_stored_once(store: Store) -> None:
    store.record_cards(SERVICE, "order-sign", "hi-1", PATIENT, [card("c-1", suggestions=("s-1",))])
    batch = items(accepted("c-1", "s-1"), overridden("c-1", "r1", comment="free text"))
    assert store.record_feedback(SERVICE, batch) == 2
    assert store.record_feedback(SERVICE, batch) == 0
    # A resend inside one request, too.
    assert store.record_feedback(SERVICE, items(accepted("c-1", "s-1"), accepted("c-1", "s-1"))) == 0
    assert count(store, feedback) == 2
    # Different content or time is a distinct interaction.
    assert store.record_feedback(SERVICE, items(overridden("c-1", "r1", comment="other text"))) == 1
    assert store.record_feedback(SERVICE, items(accepted("c-1", "s-1", at="2024-05-01T10:00:01Z"))) == 1
    assert store.record_feedback(SERVICE, items(accepted("c-1", "s-1", at="2024-05-01T12:00:00+02:00"))) == 0
    assert store.record_feedback(OTHER, items(accepted("c-1", "s-1"))) == 1
    assert count(store, feedback) == 5


def test_feedback_about_unknown_cards_is_kept(store: Store) -> None:
    assert store.record_feedback(SERVICE, items(overridden("never-shown"))) == 1
    (record,) = store.iter_feedback()
    assert not record.card_known
    assert record.hook is None
    assert record.card_suggestion_ids == ()


def test_iter_feedback_joins_card_and_hides_comments(store: Store) -> None:
    store.record_cards(SERVICE, "order-sign", "hi-1", PATIENT, [card("c-1", suggestions=("s-1", "s-2"))])
    store.record_feedback(
        SERVICE,
        items(
            accepted("c-1", "s-2", "s-1", at="2024-05-01T10:00:00.123456Z"),
            overridden("c-1", "r1", comment="Jane Roe already treated"),
        ),
    )
    first, second = store.iter_feedback()
    assert first.card_known
    assert (first.hook, first.indicator, first.classification, first.total) == (
        "order-sign",
        "warning",
        "meets",
        35,
    )
    assert first.accepted_suggestion_ids == ("s-2", "s-1")
    assert first.card_suggestion_ids == ("s-1", "s-2")
    assert first.outcome_timestamp == datetime(2024, 5, 1, 10, 0, 0, 123456, tzinfo=UTC)
    assert first.received_at.tzinfo is not None
    assert second.override_reason_code == "r1"
    assert second.override_reason_display == "Reason r1"
    assert second.user_comment is None
    assert "Jane" not in repr(second)
    with_comments = list(store.iter_feedback(include_comments=True))
    assert with_comments[1].user_comment == "Jane Roe already treated"
    assert "Jane" not in repr(with_comments[1])


def test_iter_feedback_filters_and_batches(store: Store) -> None:
    for n in range(7):
        service = SERVICE if n % 2 == 0 else OTHER
        store.record_feedback(service, items(overridden(f"c-{n}", at=f"2024-05-0{n + 1}T00:00:00Z")))
    assert [r.card_uuid for r in store.iter_feedback(batch_size=2)] == [f"c-{n}" for n in range(7)]
    assert [r.card_uuid for r in store.iter_feedback(service_id=OTHER, batch_size=1)] == ["c-1", "c-3", "c-5"]
    since = datetime(2024, 5, 3, tzinfo=UTC)
    until = since + timedelta(days=2)
    assert [r.card_uuid for r in store.iter_feedback(since=since, until=until)] == ["c-2", "c-3"]


def test_rates_by_service(store: Store) -> None:
    store.record_cards(
        SERVICE, "order-sign", "hi-1", PATIENT, [card(f"a-{n}", suggestions=("s",)) for n in range(4)]
    )
    store.record_cards(OTHER, "patient-view", "hi-2", None, [card("b-1", indicator="info")])
    store.record_feedback(
        SERVICE,
        items(
            accepted("a-0", "s"),
            accepted("a-0", "s", at="2024-05-02T00:00:00Z"),  # same card again: one accepted card
            overridden("a-1", "already-known"),
            overridden("a-2", "already-known", comment="x"),
            overridden("a-3", "not-relevant"),
            overridden("a-3", at="2024-06-01T00:00:00Z"),  # no reason
            overridden("ghost", "already-known"),  # card unknown: not in the rates
        ),
    )
    rates = {r.service_id: r for r in store.rates_by_service()}
    assert set(rates) == {SERVICE, OTHER}
    main = rates[SERVICE]
    assert main.cards_shown == 4
    assert main.feedback_items == 7
    assert main.accepted == 1
    assert main.overridden == 3
    assert main.acceptance_rate == pytest.approx(0.25)
    assert main.override_rate == pytest.approx(0.75)
    assert main.overridden_without_reason == 1
    assert main.feedback_unknown_card == 1
    assert main.top_override_reasons == (
        ReasonCount("urn:igg4rd-cds:override", "already-known", "Reason already-known", 3),
        ReasonCount("urn:igg4rd-cds:override", "not-relevant", "Reason not-relevant", 1),
    )
    other = rates[OTHER]
    assert (other.cards_shown, other.feedback_items, other.accepted, other.overridden) == (1, 0, 0, 0)
    assert other.acceptance_rate == 0.0
    assert other.top_override_reasons == ()
    assert store.rates_by_service(top_reasons=1)[0].top_override_reasons[0].code == "already-known"


def test_rates_for_feedback_only_service(store: Store) -> None:
    store.record_feedback(SERVICE, items(overridden("ghost")))
    (rates,) = store.rates_by_service()
    assert rates.cards_shown == 0
    assert rates.acceptance_rate is None
    assert rates.override_rate is None


def test_concurrent_writers(store: Store) -> None:
    threads_n, rounds = 8, 15
    store.record_cards(SERVICE, "order-sign", "hi-0", PATIENT, [card(f"c-{n}") for n in range(rounds)])
    errors: list[BaseException] = []
    results: list[int] = []
    lock = threading.Lock()

    def work(t: int) -> None:
        try:
            for n in range(rounds):
                # Every thread sends the same shared item (duplicates) and one of its own.
                new = store.record_feedback(
                    SERVICE, items(overridden(f"c-{n}", "dup"), accepted(f"c-{n}", f"s-{t}"))
                )
                store.record_cards(SERVICE, "order-sign", f"hi-{t}", PATIENT, [card(f"t{t}-{n}")])
                list(store.iter_feedback(service_id=SERVICE, batch_size=50))
                with lock:
                    results.append(new)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(threads_n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    expected = rounds + threads_n * rounds
    assert sum(results) == expected
    assert count(store, feedback) == expected
    assert count(store, cards_shown) == rounds + threads_n * rounds
    (rates,) = store.rates_by_service()
    assert rates.accepted == rounds
    assert rates.overridden == rounds


def test_sqlite_runs_in_wal_mode(tmp_path: Path) -> None:
    with (
        Store.from_url(f"sqlite:///{tmp_path / 'f.sqlite3'}", hash_key=KEY) as store,
        store.engine.connect() as conn,
    ):
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"


@pytest.mark.integration
def test_postgres_server_fixture(postgres_server: PostgresServer) -> None:
    first = postgres_server.create_database()
    second = postgres_server.create_database()
    assert first != second
    assert first.startswith("postgresql+psycopg://")


def test_the_suite_never_writes_into_the_developers_feedback_database(client: Any, settings: Any) -> None:
    """Issue 11, item 1: tests use a temporary database by default, even if the shell exports another one."""
    from cds_service.fixtures.catalog import load_fixture  # noqa: PLC0415
    from cds_service.settings import Settings  # noqa: PLC0415
    from tests.conftest import TEST_DATABASE_DIR, TEST_DATABASE_URL  # noqa: PLC0415

    default = Settings.model_fields["database_url"].default
    assert settings.database_url == Settings().database_url == TEST_DATABASE_URL != default
    developers = Path.cwd() / "igg4rd-cds-feedback.sqlite3"
    before = developers.stat().st_mtime_ns if developers.exists() else None
    response = client.post("/cds-services/igg4rd-order-sign", json=load_fixture("01-published-case").request)
    assert response.status_code == 200 and response.json()["cards"]
    client.app.state.deps.recorder.flush()
    assert (TEST_DATABASE_DIR / "feedback.sqlite3").is_file()  # the card shown was recorded here
    assert (developers.stat().st_mtime_ns if developers.exists() else None) == before
