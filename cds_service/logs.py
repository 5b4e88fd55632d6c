"""Structured JSON logs. Log hook instance ids, codes, counts and timings only: never patient data."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, Final

import orjson

# The attributes every LogRecord has; anything else on a record came from ``extra=`` and is logged.
_PLAIN_RECORD = logging.LogRecord("", 0, "", 0, "", None, None)
_RECORD_ATTRIBUTES: Final = frozenset(_PLAIN_RECORD.__dict__) | {"message", "asctime", "taskName"}


def _default(value: Any) -> str:
    return str(value)


class JsonLineFormatter(logging.Formatter):
    """One JSON object a line: ``asctime``, ``levelname``, ``name``, ``message``, then the record's extras.

    Encoded with orjson (a hook call's line costs a few microseconds); values orjson does not know are
    written as ``str(value)``; an exception is written as its formatted traceback under ``exc_info``.
    """

    def format(self, record: logging.LogRecord) -> str:
        """The record as one line of JSON."""
        line: dict[str, Any] = {
            "asctime": self.formatTime(record),
            "levelname": record.levelname,
            "name": record.name,
            "message": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _RECORD_ATTRIBUTES:
                line[key] = value
        if record.exc_info:
            line["exc_info"] = self.formatException(record.exc_info)
        if record.stack_info:
            line["stack_info"] = self.formatStack(record.stack_info)
        return orjson.dumps(line, default=_default, option=orjson.OPT_NON_STR_KEYS).decode()


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
    """Send every log record to stderr as one JSON object a line (idempotent).

    The lines carry no caller location, process or thread, so the logging module is told not to look
    them up on every record (the logging HOWTO's "Optimization" switches).
    """
    logging._srcfile = None  # no caller file/line lookup per record
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    root = logging.getLogger()
    if any(getattr(h, "_igg4rd_cds", False) for h in root.handlers):
        root.setLevel(level.upper())
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(HookInstanceFilter())
    handler.setFormatter(JsonLineFormatter())
    handler._igg4rd_cds = True  # type: ignore[attr-defined]  # marks our handler for idempotence
    root.addHandler(handler)
    root.setLevel(level.upper())
