"""Export of stored feedback to CSV and JSON, and the ``feedback-export`` command."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from cds_service.feedback.export import FEEDBACK_COLUMNS, RATES_COLUMNS, export, export_rates, main
from cds_service.feedback.request import parse_feedback
from cds_service.feedback.store import ShownCard, Store
from cds_service.settings import get_settings

SERVICE = "igg4rd-cca"
COMMENT = "Jane Roe MRN 4411 already on rituximab"


def _card(uuid: str, suggestions: tuple[str, ...] = ()) -> ShownCard:
    return ShownCard(uuid, "warning", "meets", 35, suggestions)


def _populate(store: Store) -> None:
    store.record_cards(SERVICE, "order-sign", "hi-1", "pt-1", [_card("c-1", ("s-1", "s-2")), _card("c-2")])
    body = {
        "feedback": [
            {
                "card": "c-1",
                "outcome": "accepted",
                "acceptedSuggestions": [{"id": "s-1"}, {"id": "s-2"}],
                "outcomeTimestamp": "2024-05-01T10:00:00Z",
            },
            {
                "card": "c-2",
                "outcome": "overridden",
                "overrideReason": {
                    "reason": {"system": "urn:x", "code": "already-known", "display": "=HYPERLINK(1)"},
                    "userComment": COMMENT,
                },
                "outcomeTimestamp": "2024-05-01T11:00:00+01:00",
            },
        ]
    }
    store.record_feedback(SERVICE, parse_feedback(body).feedback)


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'feedback.sqlite3'}"


@pytest.fixture
def store(db_url: str) -> Iterator[Store]:
    with Store.from_url(db_url) as opened:
        _populate(opened)
        yield opened


def test_csv_export(store: Store) -> None:
    out = io.StringIO()
    assert export(store, "csv", out) == 2
    text = out.getvalue()
    assert COMMENT not in text
    rows = list(csv.reader(io.StringIO(text)))
    assert tuple(rows[0]) == FEEDBACK_COLUMNS
    assert "user_comment" not in rows[0]
    first, second = (dict(zip(rows[0], r, strict=True)) for r in rows[1:])
    assert first["service_id"] == SERVICE
    assert first["card_uuid"] == "c-1"
    assert first["card_known"] == "true"
    assert (first["indicator"], first["classification"], first["total"]) == ("warning", "meets", "35")
    assert first["outcome"] == "accepted"
    assert first["accepted_suggestion_ids"] == "s-1;s-2"
    assert first["override_reason_code"] == ""
    assert first["outcome_timestamp"] == "2024-05-01T10:00:00Z"
    assert second["outcome"] == "overridden"
    assert second["override_reason_code"] == "already-known"
    assert second["override_reason_display"] == "'=HYPERLINK(1)"  # formula neutralised
    assert second["outcome_timestamp"] == "2024-05-01T10:00:00Z"


def test_csv_export_with_comments(store: Store) -> None:
    out = io.StringIO()
    export(store, "csv", out, include_comments=True)
    rows = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert [r["user_comment"] for r in rows] == ["", COMMENT]


def test_csv_rates(store: Store) -> None:
    out = io.StringIO()
    assert export_rates(store, out) == 1
    (row,) = csv.DictReader(io.StringIO(out.getvalue()))
    assert tuple(row) == RATES_COLUMNS
    assert row["service_id"] == SERVICE
    assert (row["cards_shown"], row["feedback_items"], row["accepted"], row["overridden"]) == (
        "2",
        "2",
        "1",
        "1",
    )
    assert float(row["acceptance_rate"]) == 0.5
    assert row["top_override_reasons"] == "urn:x|already-known=1"


def test_json_export(store: Store) -> None:
    out = io.StringIO()
    assert export(store, "json", out) == 2
    assert COMMENT not in out.getvalue()
    data = json.loads(out.getvalue())
    assert data["format"] == "igg4rd-cds.feedback-export"
    assert data["includes_comments"] is False
    assert [f["card_uuid"] for f in data["feedback"]] == ["c-1", "c-2"]
    assert set(data["feedback"][0]) == set(FEEDBACK_COLUMNS)
    assert data["feedback"][0]["accepted_suggestion_ids"] == ["s-1", "s-2"]
    assert data["feedback"][0]["total"] == 35
    assert data["feedback"][1]["override_reason_display"] == "=HYPERLINK(1)"
    (rates,) = data["rates"]
    assert rates["service_id"] == SERVICE
    assert rates["acceptance_rate"] == 0.5
    assert rates["override_rate"] == 0.5
    assert rates["top_override_reasons"] == [
        {"system": "urn:x", "code": "already-known", "display": "=HYPERLINK(1)", "count": 1}
    ]
    assert "patient_hash" not in out.getvalue()


def test_json_export_with_comments_and_empty(store: Store, tmp_path: Path) -> None:
    out = io.StringIO()
    export(store, "json", out, include_comments=True)
    data = json.loads(out.getvalue())
    assert data["includes_comments"] is True
    assert data["feedback"][1]["user_comment"] == COMMENT
    with Store.from_url(f"sqlite:///{tmp_path / 'empty.sqlite3'}") as empty:
        out = io.StringIO()
        assert export(empty, "json", out, service_id="nothing") == 0
        assert json.loads(out.getvalue())["feedback"] == []


def test_unknown_format(store: Store) -> None:
    with pytest.raises(ValueError, match="format"):
        export(store, "xml", io.StringIO())  # type: ignore[arg-type]


def test_main_csv_to_files(store: Store, db_url: str, tmp_path: Path) -> None:
    out = tmp_path / "export.csv"
    assert main(["--format", "csv", "--out", str(out), "--database-url", db_url]) == 0
    assert out.read_text().startswith(",".join(FEEDBACK_COLUMNS))
    assert COMMENT not in out.read_text()
    assert out.stat().st_mode & 0o077 == 0
    rates = tmp_path / "export.rates.csv"
    assert rates.read_text().startswith(",".join(RATES_COLUMNS))


def test_main_json_to_stdout(store: Store, db_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        main(["--format", "json", "--database-url", db_url, "--include-comments", "--service", SERVICE]) == 0
    )
    captured = capsys.readouterr()
    assert json.loads(captured.out)["feedback"][1]["user_comment"] == COMMENT
    assert "free-text" in captured.err
    assert COMMENT not in captured.err


def test_main_missing_database(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite:///{tmp_path / 'absent.sqlite3'}"
    assert main(["--database-url", url]) == 2
    assert "no feedback database" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_main_uses_settings(
    store: Store, db_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("IGG4_CDS_DATABASE_URL", db_url)
    get_settings.cache_clear()
    try:
        assert main(["--format", "csv"]) == 0
    finally:
        get_settings.cache_clear()
    assert capsys.readouterr().out.count("\n") == 3


def test_own_override_reasons_sent_as_code_and_system_get_their_display(tmp_path: Path) -> None:
    from cds_service.hooks.cards import OVERRIDE_SYSTEM  # noqa: PLC0415

    with Store.from_url(f"sqlite:///{tmp_path / 'f.sqlite3'}") as store:
        store.record_cards(SERVICE, "order-sign", "hi-1", "pt-1", [_card("c-9")])
        reason = {"system": OVERRIDE_SYSTEM, "code": "tissue-result"}  # what the CDS Hooks sandbox sends
        item = {
            "card": "c-9",
            "outcome": "overridden",
            "overrideReason": {"reason": reason},
            "outcomeTimestamp": "2026-11-25T10:00:00Z",
        }
        store.record_feedback(SERVICE, parse_feedback({"feedback": [item]}).feedback)
        out = io.StringIO()
        export(store, "json", out)
    data = json.loads(out.getvalue())
    shown = "Tissue result showing malignancy available outside this record"
    assert data["feedback"][0]["override_reason_display"] == shown
    assert data["rates"][0]["top_override_reasons"][0]["display"] == shown
