"""Structured JSON logs. Log hook instance ids, codes, counts and timings only: never patient data."""

from __future__ import annotations

import logging
import sys
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
    handler.setFormatter(JsonLineFormatter())
    handler._igg4rd_cds = True  # type: ignore[attr-defined]  # marks our handler for idempotence
    root.addHandler(handler)
    root.setLevel(level.upper())
