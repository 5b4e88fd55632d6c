"""The feedback store's tables: the cards the service showed (``cards_shown``) and the feedback (``feedback``).

SQLAlchemy 2 Core table definitions shared by :mod:`cds_service.feedback.store` (writes) and
:mod:`cds_service.feedback.reports` (reads). Tables are created on first use (``create_all``; there are no
migrations yet). Every timestamp column is an aware UTC ``datetime`` on every backend (:class:`UTCDateTime`).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Final

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    DateTime,
    Dialect,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.types import TypeDecorator

from cds_service.feedback.request import (
    MAX_CODE_LENGTH,
    MAX_DISPLAY_LENGTH,
    MAX_ID_LENGTH,
    MAX_SYSTEM_LENGTH,
)

NAME_LENGTH: Final = 200
"""Longest stored service id, hook name or hook instance (longer values are cut)."""
ISSUER_LENGTH: Final = 512
"""Longest stored issuer (``iss`` of the caller's JWT; trusted, so never cut in practice)."""
INDICATOR_LENGTH: Final = 32
CLASSIFICATION_LENGTH: Final = 64


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
    Column("service_id", String(NAME_LENGTH), nullable=False),
    Column("hook", String(NAME_LENGTH), nullable=False),
    Column("hook_instance", String(NAME_LENGTH), nullable=False),
    Column("issuer", String(ISSUER_LENGTH), nullable=True, comment="iss of the call that showed the card"),
    Column("patient_hash", String(64), nullable=True, comment="HMAC-SHA256 of the patient reference"),
    Column("patient_key_id", String(16), nullable=True, comment="which hash key made patient_hash"),
    Column("indicator", String(INDICATOR_LENGTH), nullable=True),
    Column("classification", String(CLASSIFICATION_LENGTH), nullable=True),
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
    Column("service_id", String(NAME_LENGTH), nullable=False),
    Column("issuer", String(ISSUER_LENGTH), nullable=True, comment="iss of the call that sent the feedback"),
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
