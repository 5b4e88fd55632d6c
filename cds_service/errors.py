"""The service's exception tree. Exceptions carry data; only the web edge turns them into HTTP responses.

CDSError
├── RequestError          the caller sent something the service cannot use (400)
│   └── HookMismatchError the request's hook is not the one the service answers (400)
├── AuthenticationError   the caller's JWT is missing or fails verification (bare 401)
├── UnknownServiceError   no service with that id (404)
├── PayloadTooLargeError  body over the configured limit (413)
├── DataUnavailableError  data the decision needs is missing and cannot be fetched (412)
└── StorageUnavailableError the feedback store failed (503)
StoreConfigError (ValueError) the feedback store cannot be opened as configured (startup, export)
"""

from __future__ import annotations

from dataclasses import dataclass


class CDSError(Exception):
    """Base of every error the service raises on purpose."""

    status_code = 500

    def __init__(self, diagnostics: str) -> None:
        super().__init__(diagnostics)
        self.diagnostics = diagnostics
        self.hook_instance: str | None = None
        """The hook call it ended, once known (for the log line)."""
        self.read_counts: dict[str, dict[str, int]] | None = None
        """What reading had repaired or skipped by then (for the log line)."""


class RequestError(CDSError):
    """The request is malformed or not a hook request; ``field`` names the offending part."""

    status_code = 400

    def __init__(self, diagnostics: str, field: str | None = None) -> None:
        super().__init__(diagnostics)
        self.field = field


class HookMismatchError(RequestError):
    """The request names a hook that the addressed service does not answer."""


class UnknownServiceError(CDSError):
    """No CDS service has the requested id."""

    status_code = 404


class UnknownCardError(CDSError):
    """Feedback names a card this caller was not shown (another issuer's card): answered as not found."""

    status_code = 404


class PayloadTooLargeError(CDSError):
    """The request body is larger than the configured limit."""

    status_code = 413


@dataclass(frozen=True)
class FailedQuery:
    """One prefetch key whose data could not be had, and why (no patient data in ``reason``)."""

    key: str
    query: str
    reason: str


class DataUnavailableError(CDSError):
    """Required data is absent from prefetch and could not be fetched (CDS Hooks: 412)."""

    status_code = 412

    def __init__(self, failed: list[FailedQuery]) -> None:
        self.failed = failed
        super().__init__(
            "; ".join(f"prefetch '{f.key}' unavailable: {f.reason}" for f in failed)
            or "required data missing"
        )


class StoreConfigError(ValueError):
    """The feedback store cannot be opened as configured (e.g. no hash key for a server database)."""


class StorageUnavailableError(CDSError):
    """The feedback store failed (database down or misconfigured): the server's problem, not the caller's."""

    status_code = 503


class AuthenticationError(CDSError):
    """The caller's CDS Hooks JWT was missing or failed verification (401).

    ``reason`` and ``issuer`` are for the server log only; the HTTP edge answers a bare 401 so a caller
    learns nothing about which check failed. Never put the token itself in either field.
    """

    status_code = 401

    def __init__(self, reason: str, issuer: str | None = None) -> None:
        super().__init__(f"authentication failed: {reason}")
        self.reason = reason
        self.issuer = issuer
