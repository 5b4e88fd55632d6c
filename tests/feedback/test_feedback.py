"""Validation of the CDS Hooks 2.0 feedback POST body."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from cds_service.errors import RequestError
from cds_service.feedback.request import (
    FeedbackItem,
    FeedbackOutcome,
    parse_feedback,
    parse_feedback_json,
    parse_timestamp,
)
from tests.paths import SHARED

# shared/ sits beside the repository (locally and in CI).
EXAMPLES = SHARED / "reference/cds-hooks/examples/spec-2.0.1"
EXAMPLE_FILES = sorted(EXAMPLES.glob("feedback-*.json"))

ACCEPTED: dict[str, Any] = {
    "card": "4e0a3a1e-3283-4575-ab82-028d55fe2719",
    "outcome": "accepted",
    "acceptedSuggestions": [{"id": "e56e1945-20b3-4393-8503-a1a20fd73152"}],
    "outcomeTimestamp": "2021-12-11T10:05:31Z",
}
OVERRIDDEN: dict[str, Any] = {
    "card": "9368d37b-283f-44a0-93ea-547cebab93ed",
    "outcome": "overridden",
    "overrideReason": {
        "reason": {"code": "d7ecf885", "system": "https://example.com/cds-hooks/override-reason-system"},
        "userComment": "Patient Jane Roe already has IgG4-RD",
    },
    "outcomeTimestamp": "2020-12-11T00:00:00Z",
}


def body(*items: dict[str, Any]) -> dict[str, Any]:
    return {"feedback": [copy.deepcopy(i) for i in items]}


def with_(item: dict[str, Any], **changes: Any) -> dict[str, Any]:
    changed = copy.deepcopy(item)
    for key, value in changes.items():
        if value is ...:
            changed.pop(key, None)
        else:
            changed[key] = value
    return changed


def test_spec_examples_are_present() -> None:
    assert len(EXAMPLE_FILES) == 3, f"spec examples not found under {EXAMPLES}"


@pytest.mark.parametrize("path", EXAMPLE_FILES, ids=lambda p: p.name)
def test_spec_examples_validate(path: Path) -> None:
    raw = path.read_text()
    request = parse_feedback(json.loads(raw))
    assert request == parse_feedback_json(raw.encode())
    expected = json.loads(raw)["feedback"]
    assert [i.card for i in request.feedback] == [e["card"] for e in expected]
    for item, sent in zip(request.feedback, expected, strict=True):
        assert item.outcome.value == sent["outcome"]
        assert item.outcome_timestamp.tzinfo is UTC


def test_parsed_values() -> None:
    request = parse_feedback(body(ACCEPTED, OVERRIDDEN))
    accepted, overridden = request.feedback
    assert accepted.outcome is FeedbackOutcome.ACCEPTED
    assert accepted.accepted_suggestion_ids == ("e56e1945-20b3-4393-8503-a1a20fd73152",)
    assert accepted.outcome_timestamp == datetime(2021, 12, 11, 10, 5, 31, tzinfo=UTC)
    assert overridden.override_reason is not None
    assert overridden.override_reason.reason is not None
    assert overridden.override_reason.reason.code == "d7ecf885"
    assert overridden.override_reason.user_comment == "Patient Jane Roe already has IgG4-RD"
    assert overridden.accepted_suggestion_ids == ()


def test_comment_not_in_repr() -> None:
    request = parse_feedback(body(OVERRIDDEN))
    assert "Jane Roe" not in repr(request)
    assert "Jane Roe" not in str(request)


def test_unknown_members_are_tolerated() -> None:
    item = with_(ACCEPTED, extension={"x": 1}, somethingNew=True)
    item["acceptedSuggestions"][0]["extra"] = "ok"
    request = parse_feedback({"feedback": [item], "extension": {}})
    assert request.feedback[0].card == ACCEPTED["card"]


def test_override_with_comment_only_and_reason_display() -> None:
    only_comment = with_(OVERRIDDEN, overrideReason={"userComment": "not relevant"})
    coded = with_(
        OVERRIDDEN, overrideReason={"reason": {"system": "s", "code": "c", "display": "Already known"}}
    )
    first, second = parse_feedback(body(only_comment, coded)).feedback
    assert first.override_reason is not None
    assert first.override_reason.reason is None
    assert second.override_reason is not None
    assert second.override_reason.reason is not None
    assert second.override_reason.reason.display == "Already known"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1985-04-12T23:20:50.52Z", datetime(1985, 4, 12, 23, 20, 50, 520000, tzinfo=UTC)),
        ("1985-04-12t23:20:50z", datetime(1985, 4, 12, 23, 20, 50, tzinfo=UTC)),
        ("1996-12-19T16:39:57-08:00", datetime(1996, 12, 20, 0, 39, 57, tzinfo=UTC)),
        ("2020-12-11T00:00:00", datetime(2020, 12, 11, tzinfo=UTC)),
        ("2020-12-11 01:00:00+01:00", datetime(2020, 12, 11, tzinfo=UTC)),
    ],
)
def test_timestamps(text: str, expected: datetime) -> None:
    parsed = parse_timestamp(text)
    assert parsed == expected
    assert parsed.utcoffset() == timedelta(0)


def test_timestamp_datetime_passthrough() -> None:
    aware = datetime(2020, 1, 1, 12, tzinfo=timezone(timedelta(hours=2)))
    assert parse_timestamp(aware) == datetime(2020, 1, 1, 10, tzinfo=UTC)
    item = FeedbackItem(card="c", outcome=FeedbackOutcome.OVERRIDDEN, outcome_timestamp=aware)
    assert item.outcome_timestamp.tzinfo is UTC


BAD_BODIES: list[tuple[str, Any, str | None]] = [
    ("not an object", [ACCEPTED], None),
    ("no feedback", {}, "feedback"),
    ("feedback not an array", {"feedback": ACCEPTED}, "feedback"),
    ("empty feedback", {"feedback": []}, "feedback"),
    ("item not an object", {"feedback": ["x"]}, "feedback[0]"),
    ("no card", body(with_(ACCEPTED, card=...)), "feedback[0].card"),
    ("empty card", body(with_(ACCEPTED, card="")), "feedback[0].card"),
    ("card a number", body(with_(ACCEPTED, card=42)), "feedback[0].card"),
    ("card too long", body(with_(ACCEPTED, card="x" * 201)), "feedback[0].card"),
    ("no outcome", body(with_(ACCEPTED, outcome=...)), "feedback[0].outcome"),
    ("bad outcome", body(with_(ACCEPTED, outcome="ignored")), "feedback[0].outcome"),
    ("outcome case", body(with_(ACCEPTED, outcome="Accepted")), "feedback[0].outcome"),
    ("no timestamp", body(with_(ACCEPTED, outcomeTimestamp=...)), "feedback[0].outcomeTimestamp"),
    ("date only", body(with_(ACCEPTED, outcomeTimestamp="2021-12-11")), "feedback[0].outcomeTimestamp"),
    ("epoch number", body(with_(ACCEPTED, outcomeTimestamp=1639217131)), "feedback[0].outcomeTimestamp"),
    ("epoch string", body(with_(ACCEPTED, outcomeTimestamp="1639217131")), "feedback[0].outcomeTimestamp"),
    (
        "impossible date",
        body(with_(ACCEPTED, outcomeTimestamp="2021-02-30T00:00:00Z")),
        "feedback[0].outcomeTimestamp",
    ),
    (
        "garbage timestamp",
        body(with_(ACCEPTED, outcomeTimestamp="yesterday")),
        "feedback[0].outcomeTimestamp",
    ),
    (
        "accepted without suggestions",
        body(with_(ACCEPTED, acceptedSuggestions=...)),
        "feedback[0].acceptedSuggestions",
    ),
    (
        "accepted with empty suggestions",
        body(with_(ACCEPTED, acceptedSuggestions=[])),
        "feedback[0].acceptedSuggestions",
    ),
    (
        "suggestion without id",
        body(with_(ACCEPTED, acceptedSuggestions=[{}])),
        "feedback[0].acceptedSuggestions[0].id",
    ),
    (
        "suggestion empty id",
        body(with_(ACCEPTED, acceptedSuggestions=[{"id": ""}])),
        "feedback[0].acceptedSuggestions[0].id",
    ),
    (
        "accepted with override reason",
        body(with_(ACCEPTED, overrideReason=OVERRIDDEN["overrideReason"])),
        "feedback[0].overrideReason",
    ),
    (
        "overridden with suggestions",
        body(with_(OVERRIDDEN, acceptedSuggestions=ACCEPTED["acceptedSuggestions"])),
        "feedback[0].acceptedSuggestions",
    ),
    (
        "empty override reason",
        body(with_(OVERRIDDEN, overrideReason={})),
        "feedback[0].overrideReason.reason",
    ),
    (
        "reason without system",
        body(with_(OVERRIDDEN, overrideReason={"reason": {"code": "c"}})),
        "feedback[0].overrideReason.reason.system",
    ),
    (
        "reason without code",
        body(with_(OVERRIDDEN, overrideReason={"reason": {"system": "s"}})),
        "feedback[0].overrideReason.reason.code",
    ),
    (
        "reason empty display",
        body(with_(OVERRIDDEN, overrideReason={"reason": {"system": "s", "code": "c", "display": ""}})),
        "feedback[0].overrideReason.reason.display",
    ),
    (
        "empty comment",
        body(with_(OVERRIDDEN, overrideReason={"userComment": ""})),
        "feedback[0].overrideReason.userComment",
    ),
    (
        "comment not a string",
        body(with_(OVERRIDDEN, overrideReason={"userComment": ["x"]})),
        "feedback[0].overrideReason.userComment",
    ),
    ("second item bad", body(ACCEPTED, with_(OVERRIDDEN, outcome="nope")), "feedback[1].outcome"),
]


@pytest.mark.parametrize(("name", "bad", "field"), BAD_BODIES, ids=[b[0] for b in BAD_BODIES])
def test_bad_bodies_name_the_field(name: str, bad: Any, field: str | None) -> None:
    with pytest.raises(RequestError) as caught:
        parse_feedback(bad)
    error = caught.value
    assert error.status_code == 400
    assert error.field == field, error.diagnostics
    if field is not None:
        assert error.diagnostics.startswith(field + ":")


def test_diagnostics_never_echo_values() -> None:
    secret = "Jane Roe MRN 12345"
    bad = body(with_(OVERRIDDEN, outcome=secret, card=secret, outcomeTimestamp=secret))
    with pytest.raises(RequestError) as caught:
        parse_feedback(bad)
    assert "Jane" not in caught.value.diagnostics
    assert "more problem" in caught.value.diagnostics


def test_too_many_items() -> None:
    with pytest.raises(RequestError) as caught:
        parse_feedback({"feedback": [ACCEPTED] * 1001})
    assert caught.value.field == "feedback"


@pytest.mark.parametrize("raw", [b"{", b"\xff\xfe", "not json"])
def test_bad_json(raw: str | bytes) -> None:
    with pytest.raises(RequestError) as caught:
        parse_feedback_json(raw)
    assert caught.value.field is None
