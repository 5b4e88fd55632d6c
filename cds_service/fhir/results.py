"""What one FHIR query gives: data (:class:`FetchResult`) or a reason safe to log and show (:class:`FetchFailure`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class FetchResult:
    """A query that answered: the resource read, or the searchset Bundle with every followed page merged.

    ``complete`` is False when paging stopped early (page limit reached, or a ``next`` link that left the
    server's base was not followed); ``note`` then says why.
    """

    resource: dict[str, Any]
    pages: int = 1
    elapsed_s: float = 0.0
    complete: bool = True
    note: str | None = None


@dataclass(frozen=True)
class FetchFailure:
    """A query that gave no usable data; ``reason`` is safe to log and to show (no token, URL or body)."""

    reason: str
    status: int | None = None
    elapsed_s: float = 0.0


FetchResultOrFailure = FetchResult | FetchFailure
"""What one query gave: data (:class:`FetchResult`) or a safe reason (:class:`FetchFailure`)."""


class QueryError(Exception):
    """Internal to the fetcher: one query failed with a safe reason."""

    def __init__(self, reason: str, status: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status
