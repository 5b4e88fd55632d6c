"""Structured JSON logs. Log hook instance ids, codes, counts and timings only: never patient data."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from pythonjsonlogger.json import JsonFormatter

MAX_HOOK_INSTANCE_CHARS = 128
"""A longer hookInstance is cut in log lines (a client could send megabytes)."""

_hook_instance: ContextVar[str | None] = ContextVar("hook_instance", default=None)


@contextmanager
def hook_instance_context(hook_instance: str) -> Iterator[None]:
    """Every log record made inside this block (any module, this thread or task) carries ``hook_instance``."""
    token = _hook_instance.set(hook_instance[:MAX_HOOK_INSTANCE_CHARS])
    try:
        yield
    finally:
        _hook_instance.reset(token)


class HookInstanceFilter(logging.Filter):
    """Adds the current hook call's ``hook_instance`` to records that do not name one already."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Annotate the record; never drops it."""
        current = _hook_instance.get()
        if current is not None and not hasattr(record, "hook_instance"):
            record.hook_instance = current
        return True


def configure_logging(level: str = "INFO") -> None:
    """Send every log record to stderr as one JSON object a line (idempotent)."""
    root = logging.getLogger()
    if any(getattr(h, "_igg4rd_cds", False) for h in root.handlers):
        root.setLevel(level.upper())
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(HookInstanceFilter())
    handler.setFormatter(JsonFormatter("%(asctime)s %(levelname)s %(name)s %(message)s", timestamp=False))
    handler._igg4rd_cds = True  # type: ignore[attr-defined]  # marks our handler for idempotence
    root.addHandler(handler)
    root.setLevel(level.upper())
