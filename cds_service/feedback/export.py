"""Export stored feedback (one row per feedback item, joined to the card shown) and per-service rates.

Formats:

- CSV: :func:`export` writes the feedback rows (header :data:`FEEDBACK_COLUMNS`); :func:`export_rates`
  writes the rates (header :data:`RATES_COLUMNS`) to a second file;
- JSON: one object ``{"format", "version", "generated_at", "includes_comments", "feedback": [...],
  "rates": [...]}``.

``user_comment`` (the clinician's free-text ``overrideReason.userComment``, which may contain patient data)
is left out unless ``include_comments=True``. Patient hashes are never exported. CSV cells that a
spreadsheet would run as a formula (starting with ``= + - @``, tab or carriage return) are prefixed with
``'``.

Console use (the ``igg4-cds feedback-export`` sub-command calls :func:`main`)::

    igg4-cds feedback-export --format csv|json [--out FILE] [--rates-out FILE] [--database-url URL]
                             [--service ID] [--include-comments]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
from collections.abc import Iterable, Sequence
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final, Literal, TextIO

from sqlalchemy.exc import SQLAlchemyError

from cds_service.errors import StoreConfigError
from cds_service.feedback.reports import FeedbackRecord, ServiceRates
from cds_service.feedback.store import Store
from cds_service.hooks.cards import override_reason_display

Format = Literal["csv", "json"]

FEEDBACK_COLUMNS: Final[tuple[str, ...]] = (
    "feedback_id",
    "service_id",
    "issuer",
    "card_uuid",
    "card_known",
    "hook",
    "indicator",
    "classification",
    "total",
    "outcome",
    "accepted_suggestion_ids",
    "override_reason_system",
    "override_reason_code",
    "override_reason_display",
    "outcome_timestamp",
    "received_at",
    "card_shown_at",
)
"""CSV columns of the feedback rows; ``user_comment`` is appended when comments are included."""

RATES_COLUMNS: Final[tuple[str, ...]] = (
    "service_id",
    "cards_shown",
    "feedback_items",
    "accepted",
    "overridden",
    "acceptance_rate",
    "override_rate",
    "overridden_without_reason",
    "feedback_unknown_card",
    "top_override_reasons",
)
"""CSV columns of the rates; ``top_override_reasons`` is ``system|code=count`` joined by ``; ``."""

EXPORT_FORMAT: Final = "igg4rd-cds.feedback-export"
EXPORT_VERSION: Final = 1
_FORMULA_START: Final = ("=", "+", "-", "@", "\t", "\r")


def _iso(value: datetime | None) -> str | None:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z") if value is not None else None


def feedback_row(record: FeedbackRecord, *, include_comments: bool = False) -> dict[str, Any]:
    """One feedback record as a JSON-ready dict keyed by :data:`FEEDBACK_COLUMNS` (+ ``user_comment``)."""
    row: dict[str, Any] = {
        "feedback_id": record.id,
        "service_id": record.service_id,
        "issuer": record.issuer,
        "card_uuid": record.card_uuid,
        "card_known": record.card_known,
        "hook": record.hook,
        "indicator": record.indicator,
        "classification": record.classification,
        "total": record.total,
        "outcome": record.outcome,
        "accepted_suggestion_ids": list(record.accepted_suggestion_ids),
        "override_reason_system": record.override_reason_system,
        "override_reason_code": record.override_reason_code,
        "override_reason_display": record.override_reason_display
        or override_reason_display(record.override_reason_system, record.override_reason_code),
        "outcome_timestamp": _iso(record.outcome_timestamp),
        "received_at": _iso(record.received_at),
        "card_shown_at": _iso(record.card_shown_at),
    }
    if include_comments:
        row["user_comment"] = record.user_comment
    return row


def rates_row(rates: ServiceRates) -> dict[str, Any]:
    """One service's rates as a JSON-ready dict keyed by :data:`RATES_COLUMNS`."""
    row = asdict(rates)
    row["top_override_reasons"] = [
        {**asdict(r), "display": r.display or override_reason_display(r.system, r.code)}
        for r in rates.top_override_reasons
    ]
    return row


def _csv_cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        value = ";".join(str(v) for v in value)
    text = str(value)
    return "'" + text if text.startswith(_FORMULA_START) else text


def _records(store: Store, service_id: str | None, include_comments: bool) -> Iterable[FeedbackRecord]:
    return store.iter_feedback(service_id=service_id, include_comments=include_comments)


def export(
    store: Store,
    fmt: Format,
    out: TextIO,
    *,
    include_comments: bool = False,
    service_id: str | None = None,
) -> int:
    """Write every stored feedback item (optionally of one service) to ``out``; return the row count.

    CSV: a header of :data:`FEEDBACK_COLUMNS` then one row per item (rates go through
    :func:`export_rates`). JSON: one object with the items under ``feedback`` and the per-service
    ``rates``. ``user_comment`` (free text that may contain patient data) only with ``include_comments``.
    For CSV, open ``out`` with ``newline=""``.
    """
    if fmt == "csv":
        columns = (*FEEDBACK_COLUMNS, "user_comment") if include_comments else FEEDBACK_COLUMNS
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(columns)
        count = 0
        for record in _records(store, service_id, include_comments):
            row = feedback_row(record, include_comments=include_comments)
            writer.writerow([_csv_cell(row[c]) for c in columns])
            count += 1
        return count
    if fmt == "json":
        head = {
            "format": EXPORT_FORMAT,
            "version": EXPORT_VERSION,
            "generated_at": _iso(datetime.now(UTC)),
            "includes_comments": include_comments,
        }
        out.write(json.dumps(head, ensure_ascii=False)[:-1] + ', "feedback": [')
        count = 0
        for record in _records(store, service_id, include_comments):
            out.write(",\n" if count else "\n")
            out.write(json.dumps(feedback_row(record, include_comments=include_comments), ensure_ascii=False))
            count += 1
        rates = [rates_row(r) for r in store.rates_by_service() if service_id in (None, r.service_id)]
        out.write('\n], "rates": ' + json.dumps(rates, ensure_ascii=False) + "}\n")
        return count
    raise ValueError(f"unknown export format {fmt!r}")


def export_rates(store: Store, out: TextIO, *, service_id: str | None = None) -> int:
    """Write the per-service rates as CSV (:data:`RATES_COLUMNS`) to ``out``; return the row count."""
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(RATES_COLUMNS)
    count = 0
    for rates in store.rates_by_service():
        if service_id not in (None, rates.service_id):
            continue
        row = rates_row(rates)
        row["top_override_reasons"] = "; ".join(
            f"{r.system}|{r.code}={r.count}" for r in rates.top_override_reasons
        )
        writer.writerow([_csv_cell(row[c]) for c in RATES_COLUMNS])
        count += 1
    return count


def _open_private(path: Path) -> TextIO:
    """Open ``path`` for writing, readable by its owner only when newly created (exports are clinical)."""
    return open(path, "w", encoding="utf-8", newline="", opener=lambda p, flags: os.open(p, flags, 0o600))


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``igg4-cds feedback-export``."""
    parser = argparse.ArgumentParser(
        prog="igg4-cds feedback-export",
        description="Export CDS Hooks feedback joined to the cards shown, with acceptance/override rates.",
    )
    parser.add_argument("--format", choices=("csv", "json"), default="csv", help="output format (csv)")
    parser.add_argument("--out", type=Path, help="output file (default: standard output)")
    parser.add_argument(
        "--rates-out",
        type=Path,
        help="CSV only: file for the per-service rates (default: <out>.rates.csv when --out is given)",
    )
    parser.add_argument(
        "--database-url", help="SQLAlchemy URL of the feedback store (default: from settings)"
    )
    parser.add_argument("--service", help="export only this CDS service id")
    parser.add_argument(
        "--include-comments",
        action="store_true",
        help="include clinicians' free-text override comments (may contain patient data)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``igg4-cds feedback-export``; return the process exit code (0 ok, 2 usage or store error)."""
    args = build_parser().parse_args(argv)
    url: str | None = args.database_url
    if url is None:
        from cds_service.settings import get_settings  # noqa: PLC0415 - settings only when needed

        url = get_settings().database_url
    try:
        store = Store.from_url(url, create=False)
    except StoreConfigError as exc:
        print(f"feedback-export: {exc}", file=sys.stderr)
        return 2
    fmt: Format = args.format
    try:
        if args.include_comments:
            print(
                "feedback-export: the export includes free-text comments (may contain patient data)",
                file=sys.stderr,
            )
        if args.out is None:
            count = export(
                store, fmt, sys.stdout, include_comments=args.include_comments, service_id=args.service
            )
        else:
            with _open_private(args.out) as out:
                count = export(
                    store, fmt, out, include_comments=args.include_comments, service_id=args.service
                )
        rates_path: Path | None = args.rates_out
        if fmt == "csv" and rates_path is None and args.out is not None:
            rates_path = args.out.with_name(args.out.stem + ".rates.csv")
        if fmt == "csv" and rates_path is not None:
            with _open_private(rates_path) as out:
                export_rates(store, out, service_id=args.service)
        print(f"feedback-export: {count} feedback items", file=sys.stderr)
    except SQLAlchemyError as exc:
        print(f"feedback-export: cannot read the feedback store ({type(exc).__name__})", file=sys.stderr)
        return 2
    finally:
        store.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
