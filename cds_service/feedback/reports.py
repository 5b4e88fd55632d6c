"""What the feedback store reports: stored feedback joined to its card, and acceptance/override rates.

Read-only queries over :mod:`cds_service.feedback.schema`'s tables, run through a ``connect`` callable that
opens one short read (the :class:`~cds_service.feedback.store.Store` passes its own, holding its lock for an
in-memory database). ``user_comment`` (clinician free text that may contain patient data) is read only when
asked for and never part of a ``repr``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import Connection, and_, func, select
from sqlalchemy.sql.elements import ColumnElement

from cds_service.feedback.request import FeedbackOutcome
from cds_service.feedback.schema import cards_shown, feedback

Connect = Callable[[], AbstractContextManager[Connection]]
"""Opens one connection for a short read (and closes it on exit)."""


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
    issuer: str | None = None
    """``iss`` of the call that sent the feedback (None in development mode without trust)."""
    user_comment: str | None = field(default=None, repr=False)


def iter_feedback(
    connect: Connect,
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
        feedback.c.issuer,
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
        with connect() as conn:
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
                issuer=row["issuer"],
                user_comment=row["user_comment"] if include_comments else None,
            )
        if len(rows) < batch_size:
            return
        last_id = rows[-1]["id"]


def rates_by_service(connect: Connect, *, top_reasons: int = 5) -> list[ServiceRates]:
    """Acceptance and override figures per service, sorted by service id (see :class:`ServiceRates`)."""
    known = and_(
        cards_shown.c.card_uuid == feedback.c.card_uuid, cards_shown.c.service_id == feedback.c.service_id
    )
    with connect() as conn:
        shown: dict[str, int] = dict(
            conn.execute(
                select(cards_shown.c.service_id, func.count()).group_by(cards_shown.c.service_id)
            ).all()
        )
        items: dict[str, int] = dict(
            conn.execute(select(feedback.c.service_id, func.count()).group_by(feedback.c.service_id)).all()
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
                    feedback.c.outcome == FeedbackOutcome.OVERRIDDEN.value,
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
                feedback.c.outcome == FeedbackOutcome.OVERRIDDEN.value,
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
        accepted = outcome_counts.get((service, FeedbackOutcome.ACCEPTED.value), 0)
        overridden = outcome_counts.get((service, FeedbackOutcome.OVERRIDDEN.value), 0)
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
