"""Redaction of urllib3's own log lines: no URL path or query (which carries the patient id) reaches a log.

:func:`redact_urllib3_logs` is called when :mod:`cds_service.fhir.client` is imported.
"""

from __future__ import annotations

import logging
import re

_URL_PATH = re.compile(r"(?<![\w.:/])/[^\s'\"]*|https?://[^\s'\"]*")


class UrlRedactingFilter(logging.Filter):
    """Rewrites urllib3's own log lines without URL paths or queries (``Condition?patient=...``).

    urllib3 logs the request path of a retried or failed connection (and, at DEBUG, of every request); the
    path carries the patient id. The line keeps its level and the rest of its text.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        """Replace the message by its redacted rendering; never drops a record."""
        try:
            message = record.getMessage()
        except (TypeError, ValueError):
            message = str(record.msg)
        record.msg = _URL_PATH.sub("<url withheld>", message)
        record.args = None
        return True


def redact_urllib3_logs() -> None:
    """Install one :class:`UrlRedactingFilter` on each urllib3 logger that names URLs (idempotent)."""
    redactor = UrlRedactingFilter()
    for name in ("urllib3.connectionpool", "urllib3.util.retry", "urllib3.poolmanager", "urllib3.response"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, UrlRedactingFilter) for f in logger.filters):
            logger.addFilter(redactor)
