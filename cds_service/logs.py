"""Structured JSON logs. Log hook instance ids, codes, counts and timings only: never patient data."""

from __future__ import annotations

import logging
import sys

from pythonjsonlogger.json import JsonFormatter


def configure_logging(level: str = "INFO") -> None:
    """Send every log record to stderr as one JSON object a line (idempotent)."""
    root = logging.getLogger()
    if any(getattr(h, "_igg4rd_cds", False) for h in root.handlers):
        root.setLevel(level.upper())
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter("%(asctime)s %(levelname)s %(name)s %(message)s", timestamp=False))
    handler._igg4rd_cds = True  # type: ignore[attr-defined]  # marks our handler for idempotence
    root.addHandler(handler)
    root.setLevel(level.upper())
