"""The CDS Hooks 2.0 feedback request: pydantic models and validation of the POSTed body.

A CDS Client POSTs ``{"feedback": [FeedbackItem, ...]}`` to ``{baseUrl}/cds-services/{id}/feedback``
(CDS Hooks 2.0.1, "Feedback"). :func:`parse_feedback` turns the decoded JSON into a
:class:`FeedbackRequest` or raises :class:`~cds_service.errors.RequestError` whose ``field`` names the
first failing part, e.g. ``feedback[0].outcome``.

Rules applied on top of the JSON schema of the specification (``feedbackItem``):

- ``acceptedSuggestions`` is required (at least one) when ``outcome`` is ``accepted`` and rejected otherwise;
- ``overrideReason`` is only allowed when ``outcome`` is ``overridden``, and when present carries a
  ``reason`` Coding (``system`` and ``code`` required), a ``userComment``, or both;
- ``outcomeTimestamp`` is an RFC 3339 date-time; it is normalised to UTC. A timestamp without an offset is
  read as UTC (the specification says the value is UTC) rather than refused;
- ``card`` and suggestion ids are non-empty strings (the specification's type; this service issues UUIDs
  but does not refuse other ids), bounded in length so that they fit the store's columns;
- unknown members anywhere are ignored.

``overrideReason.userComment`` is clinician free text that may contain patient data: it is excluded from
the models' ``repr`` and never appears in error messages. Error messages never echo input values.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any, Final

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from cds_service.errors import RequestError

MAX_ID_LENGTH: Final = 200
"""Longest card or suggestion id accepted (the store's column width)."""
MAX_CODE_LENGTH: Final = 200
MAX_SYSTEM_LENGTH: Final = 500
MAX_DISPLAY_LENGTH: Final = 500
MAX_COMMENT_LENGTH: Final = 4000
MAX_ITEMS: Final = 1000
"""Most feedback items accepted in one request."""

Identifier = Annotated[str, StringConstraints(min_length=1, max_length=MAX_ID_LENGTH)]

# RFC 3339 section 5.6 date-time; the offset is optional here (read as UTC), fractions of any length.
_RFC3339: Final = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(\.\d+)?([Zz]|[+-]\d{2}:\d{2})?$"
)


class FeedbackOutcome(StrEnum):
    """What the user did with a card."""

    ACCEPTED = "accepted"
    OVERRIDDEN = "overridden"


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)


class Coding(_Model):
    """A CDS Hooks Coding: ``system`` and ``code`` required, ``display`` optional."""

    system: Annotated[str, StringConstraints(min_length=1, max_length=MAX_SYSTEM_LENGTH)]
    code: Annotated[str, StringConstraints(min_length=1, max_length=MAX_CODE_LENGTH)]
    display: Annotated[str, StringConstraints(min_length=1, max_length=MAX_DISPLAY_LENGTH)] | None = None


class AcceptedSuggestion(_Model):
    """One accepted suggestion, identified by the ``suggestion.uuid`` the service sent."""

    id: Identifier


class OverrideReason(_Model):
    """Why the card was overridden: a coded reason, a free-text comment, or both.

    ``user_comment`` is clinician free text that may contain patient data: never log it.
    """

    reason: Coding | None = None
    user_comment: Annotated[str, StringConstraints(min_length=1, max_length=MAX_COMMENT_LENGTH)] | None = (
        Field(default=None, alias="userComment", repr=False)
    )

    @model_validator(mode="after")
    def _not_empty(self) -> OverrideReason:
        if self.reason is None and self.user_comment is None:
            raise PydanticCustomError(
                "override_reason_empty",
                "overrideReason needs a reason, a userComment or both",
                {"field": "reason"},
            )
        return self


class FeedbackItem(_Model):
    """One user interaction with one card (CDS Hooks 2.0 **Feedback**)."""

    card: Identifier
    outcome: FeedbackOutcome
    accepted_suggestions: (
        Annotated[tuple[AcceptedSuggestion, ...], Field(min_length=1, max_length=MAX_ITEMS)] | None
    ) = Field(default=None, alias="acceptedSuggestions")
    override_reason: OverrideReason | None = Field(default=None, alias="overrideReason")
    outcome_timestamp: datetime = Field(alias="outcomeTimestamp")

    @field_validator("outcome_timestamp", mode="before")
    @classmethod
    def _rfc3339(cls, value: Any) -> datetime:
        return parse_timestamp(value)

    @model_validator(mode="after")
    def _conditional_members(self) -> FeedbackItem:
        if self.outcome is FeedbackOutcome.ACCEPTED:
            if self.accepted_suggestions is None:
                raise PydanticCustomError(
                    "accepted_without_suggestions",
                    "acceptedSuggestions is required when outcome is 'accepted'",
                    {"field": "acceptedSuggestions"},
                )
            if self.override_reason is not None:
                raise PydanticCustomError(
                    "reason_not_overridden",
                    "overrideReason is only allowed when outcome is 'overridden'",
                    {"field": "overrideReason"},
                )
        elif self.accepted_suggestions is not None:
            raise PydanticCustomError(
                "suggestions_not_accepted",
                "acceptedSuggestions is only allowed when outcome is 'accepted'",
                {"field": "acceptedSuggestions"},
            )
        return self

    @property
    def accepted_suggestion_ids(self) -> tuple[str, ...]:
        """The accepted suggestion ids, in the order sent (empty unless accepted)."""
        return tuple(s.id for s in self.accepted_suggestions or ())


class FeedbackRequest(_Model):
    """The feedback POST body: one or more feedback items."""

    feedback: Annotated[tuple[FeedbackItem, ...], Field(min_length=1, max_length=MAX_ITEMS)]


def parse_timestamp(value: object) -> datetime:
    """Parse an RFC 3339 date-time string into an aware UTC ``datetime`` (no offset means UTC).

    Raises ``PydanticCustomError`` (a ``ValueError``) for anything else, including numbers and dates
    without a time. The message does not include the value.
    """
    if isinstance(value, datetime):
        parsed = value
    else:
        if not isinstance(value, str) or _RFC3339.match(value) is None:
            raise PydanticCustomError(
                "rfc3339", "must be an RFC 3339 date-time such as 1985-04-12T23:20:50.52Z"
            )
        text = value.upper().replace(" ", "T")
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError:
            raise PydanticCustomError("rfc3339", "is not a valid date-time") from None
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def _field_path(loc: tuple[int | str, ...]) -> str:
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += f".{part}" if path else part
    return path


def _to_request_error(error: ValidationError) -> RequestError:
    errors = error.errors(include_input=False, include_url=False)
    locs = [tuple(e["loc"]) for e in errors]
    # A failing item also fails its container's length check; report only the innermost problems.
    errors = [
        e
        for e, loc in zip(errors, locs, strict=True)
        if not any(len(other) > len(loc) and other[: len(loc)] == loc for other in locs)
    ] or errors
    first = errors[0]
    loc = tuple(first["loc"])
    ctx = first.get("ctx") or {}
    extra = ctx.get("field")
    if isinstance(extra, str):
        loc = (*loc, extra)
    field = _field_path(loc) or None
    message = first["msg"]
    diagnostics = f"{field}: {message}" if field else f"feedback request: {message}"
    if len(errors) > 1:
        diagnostics += f" (and {len(errors) - 1} more problem{'s' if len(errors) > 2 else ''})"
    return RequestError(diagnostics, field=field)


def parse_feedback(body: object) -> FeedbackRequest:
    """Validate a decoded feedback POST body and return it as a :class:`FeedbackRequest`.

    Raises :class:`RequestError` with ``field`` set to the first failing member (``feedback``,
    ``feedback[2].outcomeTimestamp``, ``feedback[0].overrideReason.reason.code``...) or ``None`` when the
    body is not a JSON object. Diagnostics never contain submitted values.
    """
    if not isinstance(body, dict):
        raise RequestError("feedback request must be a JSON object with a 'feedback' array", field=None)
    try:
        return FeedbackRequest.model_validate(body)
    except ValidationError as exc:
        raise _to_request_error(exc) from None


def parse_feedback_json(raw: str | bytes) -> FeedbackRequest:
    """Decode a feedback POST body from JSON text and validate it (see :func:`parse_feedback`)."""
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise RequestError("feedback request is not valid JSON", field=None) from None
    return parse_feedback(body)
