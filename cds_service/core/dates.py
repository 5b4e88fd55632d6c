"""Dates from FHIR values (date, dateTime, partial dates) and the lookback window."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any


def to_date(value: Any) -> date | None:
    """A calendar date from a FHIR date/dateTime (model value or string, partial dates included)."""
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    if isinstance(value, str) and len(value) >= 4 and value[:4].isdigit():
        parts = value[:10].split("-")
        try:
            year = int(parts[0])
            month = int(parts[1]) if len(parts) > 1 else 1
            day = int(parts[2]) if len(parts) > 2 else 1
            return date(year, month, day)
        except ValueError:
            return None
    return None


def window_start(today: date, years: float) -> date:
    """The first day of a lookback window of ``years`` ending ``today``."""
    return today - timedelta(days=round(365.25 * years))


def in_window(when: date | None, start: date) -> bool:
    """True when ``when`` falls on or after ``start``; an undated record is kept (it cannot be excluded)."""
    return when is None or when >= start
