"""Durable feedback store: the cards the service showed and the feedback CDS Clients sent about them.

Built on SQLAlchemy 2 Core, so any SQLAlchemy database URL works; SQLite (the default, a file created on
first use) and PostgreSQL (``postgresql+psycopg://...``) are tested. Tables are created on first use
(``create_all``; there are no migrations yet).

Privacy:

- the patient reference is never stored in clear: ``cards_shown.patient_hash`` is
  ``HMAC-SHA256(key, "patient:" + reference)``. The key comes from the ``feedback_hash_key`` setting
  (``IGG4_CDS_FEEDBACK_HASH_KEY``). When it is unset and the database is a SQLite file, a random key is
  generated once and kept in ``<database file>.hash-key`` (mode 0600) next to the database. That keeps a
  local install working with no set-up, but whoever can read both files can test guessed patient ids
  against the hashes: production should set the key from a secret store, kept apart from the database and
  its backups. For other databases (PostgreSQL) the key must be configured;
  :meth:`Store.from_settings` refuses to start without it. Changing the key makes new hashes unlinkable to
  old ones (``patient_key_id`` records which key made each hash);
- ``feedback.user_comment`` (``overrideReason.userComment``) is clinician free text that may contain patient
  data. It is stored, because it is the most useful part of an override, but it is never logged, never part
  of a ``repr``, and :meth:`Store.iter_feedback` leaves it out unless ``include_comments=True``.

Thread safety: one :class:`Store` (one engine with its connection pool) serves every thread of the server;
each call runs in its own short transaction. SQLite runs in WAL mode with a busy timeout and
``check_same_thread=False``; an in-memory SQLite database (tests) is serialised with a lock.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import secrets
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, Table, create_engine, event, insert, inspect, select, text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import IntegrityError
from sqlalchemy.pool import StaticPool

from cds_service.core.assessment import Assessment
from cds_service.errors import StoreConfigError, UnknownCardError
from cds_service.feedback import reports
from cds_service.feedback.keys import (
    KEY_FILE_SUFFIX,
    key_bytes,
    load_or_create_key_file,
    read_key_file,
    sqlite_in_memory,
)
from cds_service.feedback.reports import FeedbackRecord, ServiceRates
from cds_service.feedback.request import MAX_ID_LENGTH, FeedbackItem
from cds_service.feedback.schema import (
    CLASSIFICATION_LENGTH,
    INDICATOR_LENGTH,
    ISSUER_LENGTH,
    NAME_LENGTH,
    cards_shown,
    feedback,
    metadata,
)
from cds_service.settings import Settings

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ShownCard:
    """What is recorded of one card shown: its uuid, indicator, classification and score, suggestion uuids."""

    uuid: str
    indicator: str | None = None
    classification: str | None = None
    total: int | None = None
    suggestion_ids: tuple[str, ...] = ()


def shown_cards(cards: Sequence[Mapping[str, Any]], assessment: Assessment | None) -> list[ShownCard]:
    """The cards of one response as recorded: uuids from the rendered cards, the rest from the assessment."""
    criteria = assessment.criteria if assessment is not None else None
    shown = []
    for card in cards:
        suggestions = card.get("suggestions") or ()
        shown.append(
            ShownCard(
                uuid=card["uuid"],
                indicator=assessment.indicator.value if assessment is not None else None,
                classification=criteria.classification.value if criteria is not None else None,
                total=criteria.total if criteria is not None else None,
                suggestion_ids=tuple(s["uuid"] for s in suggestions),
            )
        )
    return shown


def _clip(value: str | None, length: int) -> str | None:
    return value[:length] if value else None


def _card_row(card: ShownCard, batch: CardBatch, patient: tuple[str, str] | None) -> dict[str, Any] | None:
    if not card.uuid or len(card.uuid) > MAX_ID_LENGTH:
        return None
    return {
        "card_uuid": card.uuid,
        "service_id": batch.service_id[:NAME_LENGTH],
        "hook": batch.hook[:NAME_LENGTH],
        "hook_instance": batch.hook_instance[:NAME_LENGTH],
        "issuer": batch.issuer[:ISSUER_LENGTH] if batch.issuer else None,
        "patient_hash": patient[0] if patient else None,
        "patient_key_id": patient[1] if patient else None,
        "indicator": _clip(card.indicator, INDICATOR_LENGTH),
        "classification": _clip(card.classification, CLASSIFICATION_LENGTH),
        "total": card.total,
        "suggestion_ids": list(card.suggestion_ids),
    }


@dataclass(frozen=True)
class CardBatch:
    """The cards of one hook response, to record (the patient reference is hashed when stored)."""

    service_id: str
    hook: str
    hook_instance: str
    patient_ref: str | None
    cards: Sequence[ShownCard]
    issuer: str | None = None
    """``iss`` of the authenticated call (None in development mode without trust)."""


class Store:
    """The feedback store. Create with :meth:`from_url` or :meth:`from_settings`; share one per process."""

    def __init__(self, engine: Engine, hash_key: bytes | None, *, serialise: bool = False) -> None:
        """Wrap an engine whose tables exist. ``hash_key`` keys the patient hash (``None``: none stored)."""
        self._engine = engine
        self._key = hash_key
        self._lock: AbstractContextManager[Any] = threading.Lock() if serialise else nullcontext()

    @classmethod
    def from_url(
        cls,
        url: str | URL,
        *,
        hash_key: object = None,
        create: bool = True,
        engine_options: Mapping[str, Any] | None = None,
    ) -> Store:
        """Open the store at a SQLAlchemy database URL.

        ``hash_key`` (str, bytes or a pydantic secret, at least 16 characters) keys the patient hash; when
        ``None``, a SQLite file database uses (and with ``create`` generates) ``<file>.hash-key`` and an
        in-memory database a random key; other databases then have no key, and :meth:`record_cards` with a
        patient reference raises :class:`StoreConfigError`. With ``create`` (the default) the SQLite file,
        its directory and the tables are created when missing; without it nothing is written (exports).
        """
        parsed = make_url(url)
        options: dict[str, Any] = {"pool_pre_ping": True}
        serialise = False
        key: bytes | None = None if hash_key is None else key_bytes(hash_key)
        if parsed.get_backend_name() == "sqlite":
            connect_args: dict[str, Any] = {"check_same_thread": False, "timeout": 30}
            if sqlite_in_memory(parsed):
                options["poolclass"] = StaticPool
                serialise = True
                key = key or secrets.token_bytes(32)
            else:
                assert parsed.database is not None
                db_path = Path(parsed.database)
                if not create and not db_path.exists():
                    raise StoreConfigError(f"no feedback database at {db_path}")
                if create:
                    db_path.parent.mkdir(parents=True, exist_ok=True)
                key_path = Path(parsed.database + KEY_FILE_SUFFIX)
                if key is None:
                    if create:
                        key = load_or_create_key_file(key_path)
                    elif key_path.exists():
                        key = read_key_file(key_path)
            options["connect_args"] = connect_args
        options.update(engine_options or {})
        engine = create_engine(parsed, **options)
        if parsed.get_backend_name() == "sqlite":
            event.listen(engine, "connect", _sqlite_on_connect)
        if create:
            metadata.create_all(engine)
            _add_missing_columns(engine)
        return cls(engine, key, serialise=serialise)

    @classmethod
    def from_settings(cls, settings: Settings) -> Store:
        """Open the store the settings describe (``database_url``, ``feedback_hash_key``).

        Raises :class:`StoreConfigError` when no hash key is configured for a database that is not a
        SQLite file.
        """
        store = cls.from_url(settings.database_url, hash_key=settings.feedback_hash_key)
        if store._key is None:
            store.close()
            raise StoreConfigError(
                "set IGG4_CDS_FEEDBACK_HASH_KEY (feedback_hash_key): patient references are stored only as "
                "keyed hashes, and a database other than a SQLite file gets no generated key"
            )
        return store

    @property
    def engine(self) -> Engine:
        """The SQLAlchemy engine (for health checks and tests)."""
        return self._engine

    def close(self) -> None:
        """Close every pooled connection."""
        self._engine.dispose()

    def __enter__(self) -> Store:
        """Use the store as a context manager that closes it."""
        return self

    def __exit__(self, *exc: object) -> None:
        """Close the store."""
        self.close()

    def patient_hash(self, patient_ref: str) -> str:
        """The keyed hash stored in place of a patient reference (hex HMAC-SHA256)."""
        if self._key is None:
            raise StoreConfigError("no feedback hash key configured: cannot record a patient reference")
        return hmac.new(self._key, b"patient:" + patient_ref.strip().encode(), hashlib.sha256).hexdigest()

    def _key_id(self) -> str:
        assert self._key is not None
        return hmac.new(self._key, b"key-id", hashlib.sha256).hexdigest()[:16]

    def _digest(self, content: object) -> str:
        canonical = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        if self._key is None:
            return hashlib.sha256(canonical.encode()).hexdigest()
        return hmac.new(self._key, b"feedback:" + canonical.encode(), hashlib.sha256).hexdigest()

    def _insert_ignoring_duplicates(self, conn: Connection, table: Table, row: Mapping[str, Any]) -> int:
        """Insert ``row`` unless it violates a uniqueness constraint; return 1 if inserted, else 0."""
        key = next(iter(table.primary_key.columns))
        dialect = conn.dialect.name
        if dialect in ("sqlite", "postgresql"):
            dialect_insert = sqlite_insert if dialect == "sqlite" else pg_insert
            # RETURNING rather than rowcount, which some drivers leave at -1 for ON CONFLICT.
            stmt = dialect_insert(table).values(**row).on_conflict_do_nothing().returning(key)
            return len(conn.execute(stmt).all())
        try:
            with conn.begin_nested():
                conn.execute(insert(table).values(**row))
        except IntegrityError:
            return 0
        return 1

    def _insert_many_ignoring_duplicates(
        self, conn: Connection, table: Table, rows: list[dict[str, Any]]
    ) -> int:
        """Insert ``rows`` in one statement where the dialect allows, skipping duplicates; return how many were new."""
        dialect = conn.dialect.name
        if dialect not in ("sqlite", "postgresql"):
            return sum(self._insert_ignoring_duplicates(conn, table, row) for row in rows)
        key = next(iter(table.primary_key.columns))
        dialect_insert = sqlite_insert if dialect == "sqlite" else pg_insert
        stmt = dialect_insert(table).on_conflict_do_nothing().returning(key)
        return len(conn.execute(stmt, rows).all())

    def record_cards(
        self,
        service_id: str,
        hook: str,
        hook_instance: str,
        patient_ref: str | None,
        cards: Sequence[ShownCard],
    ) -> int:
        """Record the cards of one hook response; return how many were new.

        Cards without a ``uuid`` are skipped (no feedback can name them); a card already recorded is kept
        as first recorded. ``patient_ref`` (e.g. ``context.patientId``) is stored only as
        :meth:`patient_hash`.
        """
        return self.record_card_batches([CardBatch(service_id, hook, hook_instance, patient_ref, cards)])

    def record_card_batches(self, batches: Sequence[CardBatch]) -> int:
        """Record the cards of several hook responses in one transaction; return how many were new."""
        now = datetime.now(UTC)
        rows = []
        for batch in batches:
            patient = (self.patient_hash(batch.patient_ref), self._key_id()) if batch.patient_ref else None
            rows += [row for card in batch.cards if (row := _card_row(card, batch, patient)) is not None]
        if not rows:
            return 0
        with self._lock, self._engine.begin() as conn:
            new = self._insert_many_ignoring_duplicates(
                conn, cards_shown, [{**row, "created_at": now} for row in rows]
            )
        log.debug("recorded %d new of %d cards from %d responses", new, len(rows), len(batches))
        return new

    def record_feedback(
        self, service_id: str, items: Sequence[FeedbackItem], issuer: str | None = None
    ) -> int:
        """Store validated feedback items for ``service_id`` from ``issuer``; return how many rows were new.

        Feedback is bound to the issuer: when an item names a card shown to another issuer, nothing is
        stored and :class:`~cds_service.errors.UnknownCardError` (404, as if the card did not exist) is raised.

        Idempotent: an item equal to a stored one (same service, card, outcome, outcomeTimestamp,
        accepted suggestions, override reason and comment) is not stored again, since CDS Clients may
        resend. Feedback about cards this store never recorded is kept too (counted apart in the rates).
        The ``userComment`` is stored but never logged.
        """
        now = datetime.now(UTC)
        new = 0
        with self._lock, self._engine.begin() as conn:
            _check_card_owners(conn, {item.card for item in items}, issuer)
            for item in items:
                reason = item.override_reason.reason if item.override_reason else None
                comment = item.override_reason.user_comment if item.override_reason else None
                accepted = list(item.accepted_suggestion_ids)
                content = {
                    "accepted": sorted(accepted),
                    "reason": reason.model_dump() if reason else None,
                    "comment": comment,
                }
                row = {
                    "card_uuid": item.card,
                    "service_id": service_id[:NAME_LENGTH],
                    "issuer": issuer[:ISSUER_LENGTH] if issuer else None,
                    "outcome": item.outcome.value,
                    "accepted_suggestion_ids": accepted,
                    "override_reason_system": reason.system if reason else None,
                    "override_reason_code": reason.code if reason else None,
                    "override_reason_display": reason.display if reason else None,
                    "user_comment": comment,
                    "outcome_timestamp": item.outcome_timestamp,
                    "received_at": now,
                    "content_digest": self._digest(content),
                }
                new += self._insert_ignoring_duplicates(conn, feedback, row)
        log.info("stored %d new of %d feedback items for service %s", new, len(items), service_id)
        return new

    @contextmanager
    def _reading(self) -> Iterator[Connection]:
        """One connection for a short read (serialised for an in-memory database)."""
        with self._lock, self._engine.connect() as conn:
            yield conn

    def iter_feedback(
        self,
        *,
        service_id: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        include_comments: bool = False,
        batch_size: int = 500,
    ) -> Iterator[FeedbackRecord]:
        """Yield stored feedback in storage order, joined to the card shown (see :func:`reports.iter_feedback`)."""
        return reports.iter_feedback(
            self._reading,
            service_id=service_id,
            since=since,
            until=until,
            include_comments=include_comments,
            batch_size=batch_size,
        )

    def rates_by_service(self, *, top_reasons: int = 5) -> list[ServiceRates]:
        """Acceptance and override figures per service, sorted by service id (see :class:`ServiceRates`)."""
        return reports.rates_by_service(self._reading, top_reasons=top_reasons)


def _check_card_owners(conn: Connection, cards: set[str], issuer: str | None) -> None:
    """Raise :class:`UnknownCardError` when one of ``cards`` was shown to another issuer than ``issuer``."""
    if not cards:
        return
    query = select(cards_shown.c.issuer).where(cards_shown.c.card_uuid.in_(sorted(cards)))
    owners = {row.issuer for row in conn.execute(query)}
    stored_issuer = issuer[:ISSUER_LENGTH] if issuer else None
    if owners - {stored_issuer}:
        log.warning("feedback refused: a card was shown to another issuer")
        raise UnknownCardError("no such card for this caller")


def _add_missing_columns(engine: Engine) -> None:
    """Add the ``issuer`` columns to tables made before they existed (the store has no migrations)."""
    inspector = inspect(engine)
    for table in (cards_shown, feedback):
        if not inspector.has_table(table.name):
            continue
        present = {column["name"] for column in inspector.get_columns(table.name)}
        if "issuer" not in present:
            with engine.begin() as conn:
                conn.execute(text(f"ALTER TABLE {table.name} ADD COLUMN issuer VARCHAR({ISSUER_LENGTH})"))


def _sqlite_on_connect(dbapi_connection: Any, _record: Any) -> None:
    """WAL journal (readers never block the writer), a busy timeout, and durable-enough syncing."""
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA synchronous=NORMAL")
    finally:
        cursor.close()
