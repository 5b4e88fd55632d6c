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
import os
import secrets
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    Connection,
    DateTime,
    Dialect,
    Engine,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    and_,
    create_engine,
    event,
    func,
    insert,
    select,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import IntegrityError
from sqlalchemy.pool import StaticPool
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.types import TypeDecorator

from cds_service.feedback.request import (
    MAX_CODE_LENGTH,
    MAX_DISPLAY_LENGTH,
    MAX_ID_LENGTH,
    MAX_SYSTEM_LENGTH,
    FeedbackItem,
    Outcome,
)

log = logging.getLogger(__name__)

CLASSIFICATION_EXTENSION: Final = "igg4rd-cds.classification"
"""The card ``extension`` key whose ``classification`` and ``total`` are recorded with each card."""
KEY_FILE_SUFFIX: Final = ".hash-key"
MIN_KEY_LENGTH: Final = 16
_NAME_LENGTH: Final = 200


class StoreConfigError(ValueError):
    """The store cannot be opened as configured (e.g. no hash key for a server database)."""


class UTCDateTime(TypeDecorator[datetime]):
    """An aware UTC ``datetime`` on every backend (SQLite keeps naive UTC text; PostgreSQL timestamptz)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Normalise to UTC; SQLite gets the naive UTC value."""
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Return an aware UTC value."""
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


metadata = MetaData()

_Id = BigInteger().with_variant(Integer(), "sqlite")

cards_shown = Table(
    "cards_shown",
    metadata,
    Column("card_uuid", String(MAX_ID_LENGTH), primary_key=True),
    Column("service_id", String(_NAME_LENGTH), nullable=False),
    Column("hook", String(_NAME_LENGTH), nullable=False),
    Column("hook_instance", String(_NAME_LENGTH), nullable=False),
    Column("patient_hash", String(64), nullable=True, comment="HMAC-SHA256 of the patient reference"),
    Column("patient_key_id", String(16), nullable=True, comment="which hash key made patient_hash"),
    Column("indicator", String(32), nullable=True),
    Column("classification", String(64), nullable=True),
    Column("total", Integer, nullable=True),
    Column("suggestion_ids", JSON, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Index("ix_cards_shown_service_created", "service_id", "created_at"),
)

feedback = Table(
    "feedback",
    metadata,
    Column("id", _Id, primary_key=True, autoincrement=True),
    Column("card_uuid", String(MAX_ID_LENGTH), nullable=False),
    Column("service_id", String(_NAME_LENGTH), nullable=False),
    Column("outcome", String(16), nullable=False),
    Column("accepted_suggestion_ids", JSON, nullable=False),
    Column("override_reason_system", String(MAX_SYSTEM_LENGTH), nullable=True),
    Column("override_reason_code", String(MAX_CODE_LENGTH), nullable=True),
    Column("override_reason_display", String(MAX_DISPLAY_LENGTH), nullable=True),
    Column("user_comment", Text, nullable=True, comment="clinician free text: may hold patient data"),
    Column("outcome_timestamp", UTCDateTime, nullable=False),
    Column("received_at", UTCDateTime, nullable=False),
    Column("content_digest", String(64), nullable=False, comment="keyed digest of the item's content"),
    UniqueConstraint(
        "service_id", "card_uuid", "outcome", "outcome_timestamp", "content_digest", name="uq_feedback_item"
    ),
    Index("ix_feedback_card", "card_uuid"),
    Index("ix_feedback_service_outcome", "service_id", "outcome"),
)


@dataclass(frozen=True, slots=True)
class ReasonCount:
    """How often one coded override reason was given."""

    system: str
    code: str
    display: str | None
    count: int


@dataclass(frozen=True, slots=True)
class ServiceRates:
    """Feedback figures for one CDS service.

    ``accepted`` and ``overridden`` count distinct shown cards with at least one such feedback item (a card
    may count in both); the rates divide them by ``cards_shown`` and are ``None`` when no card was shown.
    ``feedback_items`` counts stored items (duplicates are stored once), including
    ``feedback_unknown_card`` items about cards this store never recorded. ``top_override_reasons``
    counts every stored overridden item with a coded reason (most frequent first).
    """

    service_id: str
    cards_shown: int
    feedback_items: int
    accepted: int
    overridden: int
    acceptance_rate: float | None
    override_rate: float | None
    overridden_without_reason: int
    feedback_unknown_card: int
    top_override_reasons: tuple[ReasonCount, ...] = ()


@dataclass(frozen=True, slots=True)
class FeedbackRecord:
    """One stored feedback item joined to the card it is about (card fields ``None`` if unknown).

    ``user_comment`` is ``None`` unless asked for: it may contain patient data, never log it.
    """

    id: int
    service_id: str
    card_uuid: str
    outcome: str
    accepted_suggestion_ids: tuple[str, ...]
    override_reason_system: str | None
    override_reason_code: str | None
    override_reason_display: str | None
    outcome_timestamp: datetime
    received_at: datetime
    card_known: bool
    hook: str | None
    indicator: str | None
    classification: str | None
    total: int | None
    card_suggestion_ids: tuple[str, ...]
    card_shown_at: datetime | None
    user_comment: str | None = field(default=None, repr=False)


def _key_bytes(key: object) -> bytes:
    """The HMAC key from a setting value (``str``, ``bytes`` or pydantic ``SecretStr``/``SecretBytes``)."""
    secret = getattr(key, "get_secret_value", None)
    if callable(secret):
        key = secret()
    if isinstance(key, str):
        key = key.strip().encode()
    if not isinstance(key, bytes) or len(key) < MIN_KEY_LENGTH:
        raise StoreConfigError(f"the feedback hash key must be at least {MIN_KEY_LENGTH} characters")
    return key


def key_file_for(url: str | URL) -> Path | None:
    """Where the generated hash key of a SQLite file database is kept (``None`` for other databases)."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or _sqlite_in_memory(parsed):
        return None
    assert parsed.database is not None
    return Path(parsed.database + KEY_FILE_SUFFIX)


def _sqlite_in_memory(url: URL) -> bool:
    return url.database in (None, "", ":memory:") or "mode=memory" in (url.database or "")


def _read_key_file(path: Path) -> bytes:
    return _key_bytes(path.read_text(encoding="ascii"))


def _load_or_create_key_file(path: Path) -> bytes:
    """Read the key file, creating it (0600, atomically: the first writer wins) when absent."""
    try:
        return _read_key_file(path)
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="ascii") as fh:
            fh.write(secrets.token_hex(32) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        try:
            os.link(tmp, path)
            log.info("generated a feedback hash key in %s", path)
        except FileExistsError:
            pass
    finally:
        tmp.unlink(missing_ok=True)
    return _read_key_file(path)


def _clip(value: object, length: int) -> str | None:
    return value[:length] if isinstance(value, str) and value else None


def _card_row(
    card: Mapping[str, Any], service_id: str, hook: str, hook_instance: str, patient: tuple[str, str] | None
) -> dict[str, Any] | None:
    card_uuid = card.get("uuid")
    if not isinstance(card_uuid, str) or not card_uuid or len(card_uuid) > MAX_ID_LENGTH:
        return None
    extension = card.get("extension")
    summary = extension.get(CLASSIFICATION_EXTENSION) if isinstance(extension, Mapping) else None
    classification = summary.get("classification") if isinstance(summary, Mapping) else None
    total = summary.get("total") if isinstance(summary, Mapping) else None
    if isinstance(total, float) and total.is_integer():
        total = int(total)
    suggestions = card.get("suggestions")
    suggestion_ids = [
        s["uuid"]
        for s in (suggestions if isinstance(suggestions, list) else [])
        if isinstance(s, Mapping) and isinstance(s.get("uuid"), str)
    ]
    return {
        "card_uuid": card_uuid,
        "service_id": service_id[:_NAME_LENGTH],
        "hook": hook[:_NAME_LENGTH],
        "hook_instance": hook_instance[:_NAME_LENGTH],
        "patient_hash": patient[0] if patient else None,
        "patient_key_id": patient[1] if patient else None,
        "indicator": _clip(card.get("indicator"), 32),
        "classification": _clip(classification, 64),
        "total": total if isinstance(total, int) and not isinstance(total, bool) else None,
        "suggestion_ids": suggestion_ids,
    }


@dataclass(frozen=True)
class CardBatch:
    """The cards of one hook response, to record (the patient reference is hashed when stored)."""

    service_id: str
    hook: str
    hook_instance: str
    patient_ref: str | None
    cards: Sequence[Mapping[str, Any]]


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
        key: bytes | None = None if hash_key is None else _key_bytes(hash_key)
        if parsed.get_backend_name() == "sqlite":
            connect_args: dict[str, Any] = {"check_same_thread": False, "timeout": 30}
            if _sqlite_in_memory(parsed):
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
                        key = _load_or_create_key_file(key_path)
                    elif key_path.exists():
                        key = _read_key_file(key_path)
            options["connect_args"] = connect_args
        options.update(engine_options or {})
        engine = create_engine(parsed, **options)
        if parsed.get_backend_name() == "sqlite":
            event.listen(engine, "connect", _sqlite_on_connect)
        if create:
            metadata.create_all(engine)
        return cls(engine, key, serialise=serialise)

    @classmethod
    def from_settings(cls, settings: object) -> Store:
        """Open the store the settings describe (``database_url``, ``feedback_hash_key``).

        Raises :class:`StoreConfigError` when no hash key is configured for a database that is not a
        SQLite file.
        """
        url: str = getattr(settings, "database_url", "sqlite:///igg4rd-cds-feedback.sqlite3")
        store = cls.from_url(url, hash_key=getattr(settings, "feedback_hash_key", None))
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
        cards: Sequence[Mapping[str, Any]],
    ) -> int:
        """Record the cards of one hook response; return how many were new.

        Cards without a ``uuid`` are skipped (no feedback can name them); a card already recorded is kept
        as first recorded. ``indicator``, the ``igg4rd-cds.classification`` extension's ``classification``
        and ``total``, and the suggestion uuids are kept; ``patient_ref`` (e.g. ``context.patientId``) is
        stored only as :meth:`patient_hash`.
        """
        return self.record_card_batches([CardBatch(service_id, hook, hook_instance, patient_ref, cards)])

    def record_card_batches(self, batches: Sequence[CardBatch]) -> int:
        """Record the cards of several hook responses in one transaction; return how many were new."""
        now = datetime.now(UTC)
        rows = []
        for batch in batches:
            patient = (self.patient_hash(batch.patient_ref), self._key_id()) if batch.patient_ref else None
            rows += [
                row
                for card in batch.cards
                if (row := _card_row(card, batch.service_id, batch.hook, batch.hook_instance, patient))
                is not None
            ]
        if not rows:
            return 0
        with self._lock, self._engine.begin() as conn:
            new = self._insert_many_ignoring_duplicates(
                conn, cards_shown, [{**row, "created_at": now} for row in rows]
            )
        log.debug("recorded %d new of %d cards from %d responses", new, len(rows), len(batches))
        return new

    def record_feedback(self, service_id: str, items: Sequence[FeedbackItem]) -> int:
        """Store validated feedback items for ``service_id``; return how many rows were new.

        Idempotent: an item equal to a stored one (same service, card, outcome, outcomeTimestamp,
        accepted suggestions, override reason and comment) is not stored again, since CDS Clients may
        resend. Feedback about cards this store never recorded is kept too (counted apart in the rates).
        The ``userComment`` is stored but never logged.
        """
        now = datetime.now(UTC)
        new = 0
        with self._lock, self._engine.begin() as conn:
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
                    "service_id": service_id[:_NAME_LENGTH],
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

    def iter_feedback(
        self,
        *,
        service_id: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        include_comments: bool = False,
        batch_size: int = 500,
    ) -> Iterator[FeedbackRecord]:
        """Yield stored feedback in storage order, joined to the card shown.

        Filters: ``service_id``; ``since`` (inclusive) and ``until`` (exclusive) on the outcome timestamp
        (aware datetimes). ``user_comment`` is read only with ``include_comments=True`` (it may contain
        patient data). Reads in batches of ``batch_size`` with no transaction held between batches.
        """
        columns = [
            feedback.c.id,
            feedback.c.service_id,
            feedback.c.card_uuid,
            feedback.c.outcome,
            feedback.c.accepted_suggestion_ids,
            feedback.c.override_reason_system,
            feedback.c.override_reason_code,
            feedback.c.override_reason_display,
            feedback.c.outcome_timestamp,
            feedback.c.received_at,
            cards_shown.c.card_uuid.label("shown_uuid"),
            cards_shown.c.hook,
            cards_shown.c.indicator,
            cards_shown.c.classification,
            cards_shown.c.total,
            cards_shown.c.suggestion_ids,
            cards_shown.c.created_at,
        ]
        if include_comments:
            columns.append(feedback.c.user_comment)
        conditions: list[ColumnElement[bool]] = []
        if service_id is not None:
            conditions.append(feedback.c.service_id == service_id)
        if since is not None:
            conditions.append(feedback.c.outcome_timestamp >= since)
        if until is not None:
            conditions.append(feedback.c.outcome_timestamp < until)
        joined = feedback.outerjoin(
            cards_shown,
            and_(
                cards_shown.c.card_uuid == feedback.c.card_uuid,
                cards_shown.c.service_id == feedback.c.service_id,
            ),
        )
        last_id = 0
        while True:
            query = (
                select(*columns)
                .select_from(joined)
                .where(feedback.c.id > last_id, *conditions)
                .order_by(feedback.c.id)
                .limit(batch_size)
            )
            with self._lock, self._engine.connect() as conn:
                rows = conn.execute(query).mappings().all()
            for row in rows:
                yield FeedbackRecord(
                    id=row["id"],
                    service_id=row["service_id"],
                    card_uuid=row["card_uuid"],
                    outcome=row["outcome"],
                    accepted_suggestion_ids=tuple(row["accepted_suggestion_ids"] or ()),
                    override_reason_system=row["override_reason_system"],
                    override_reason_code=row["override_reason_code"],
                    override_reason_display=row["override_reason_display"],
                    outcome_timestamp=row["outcome_timestamp"],
                    received_at=row["received_at"],
                    card_known=row["shown_uuid"] is not None,
                    hook=row["hook"],
                    indicator=row["indicator"],
                    classification=row["classification"],
                    total=row["total"],
                    card_suggestion_ids=tuple(row["suggestion_ids"] or ()),
                    card_shown_at=row["created_at"],
                    user_comment=row["user_comment"] if include_comments else None,
                )
            if len(rows) < batch_size:
                return
            last_id = rows[-1]["id"]

    def rates_by_service(self, *, top_reasons: int = 5) -> list[ServiceRates]:
        """Acceptance and override figures per service, sorted by service id (see :class:`ServiceRates`)."""
        known = and_(
            cards_shown.c.card_uuid == feedback.c.card_uuid, cards_shown.c.service_id == feedback.c.service_id
        )
        with self._lock, self._engine.connect() as conn:
            shown: dict[str, int] = dict(
                conn.execute(
                    select(cards_shown.c.service_id, func.count()).group_by(cards_shown.c.service_id)
                ).all()
            )
            items: dict[str, int] = dict(
                conn.execute(
                    select(feedback.c.service_id, func.count()).group_by(feedback.c.service_id)
                ).all()
            )
            by_outcome = conn.execute(
                select(feedback.c.service_id, feedback.c.outcome, func.count(feedback.c.card_uuid.distinct()))
                .select_from(feedback.join(cards_shown, known))
                .group_by(feedback.c.service_id, feedback.c.outcome)
            )
            outcome_counts: dict[tuple[str, str], int] = {(s, o): n for s, o, n in by_outcome}
            unknown: dict[str, int] = dict(
                conn.execute(
                    select(feedback.c.service_id, func.count())
                    .select_from(feedback.outerjoin(cards_shown, known))
                    .where(cards_shown.c.card_uuid.is_(None))
                    .group_by(feedback.c.service_id)
                ).all()
            )
            no_reason: dict[str, int] = dict(
                conn.execute(
                    select(feedback.c.service_id, func.count())
                    .where(
                        feedback.c.outcome == Outcome.OVERRIDDEN.value,
                        feedback.c.override_reason_code.is_(None),
                    )
                    .group_by(feedback.c.service_id)
                ).all()
            )
            reason_rows = conn.execute(
                select(
                    feedback.c.service_id,
                    feedback.c.override_reason_system,
                    feedback.c.override_reason_code,
                    func.max(feedback.c.override_reason_display),
                    func.count(),
                )
                .where(
                    feedback.c.outcome == Outcome.OVERRIDDEN.value,
                    feedback.c.override_reason_code.is_not(None),
                )
                .group_by(
                    feedback.c.service_id, feedback.c.override_reason_system, feedback.c.override_reason_code
                )
            )
            reasons: dict[str, list[ReasonCount]] = {}
            for service, system, code, display, count in reason_rows:
                reasons.setdefault(service, []).append(ReasonCount(system or "", code or "", display, count))

        result = []
        for service in sorted(set(shown) | set(items)):
            n_shown = shown.get(service, 0)
            accepted = outcome_counts.get((service, Outcome.ACCEPTED.value), 0)
            overridden = outcome_counts.get((service, Outcome.OVERRIDDEN.value), 0)
            top = sorted(reasons.get(service, []), key=lambda r: (-r.count, r.system, r.code))[:top_reasons]
            result.append(
                ServiceRates(
                    service_id=service,
                    cards_shown=n_shown,
                    feedback_items=items.get(service, 0),
                    accepted=accepted,
                    overridden=overridden,
                    acceptance_rate=accepted / n_shown if n_shown else None,
                    override_rate=overridden / n_shown if n_shown else None,
                    overridden_without_reason=no_reason.get(service, 0),
                    feedback_unknown_card=unknown.get(service, 0),
                    top_override_reasons=tuple(top),
                )
            )
        return result


def _sqlite_on_connect(dbapi_connection: Any, _record: Any) -> None:
    """WAL journal (readers never block the writer), a busy timeout, and durable-enough syncing."""
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA synchronous=NORMAL")
    finally:
        cursor.close()
