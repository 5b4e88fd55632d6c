"""The app's collaborators, built once from the settings: authenticator, feedback store, FHIR fetcher."""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlalchemy.exc import SQLAlchemyError

from cds_service.errors import StorageUnavailableError, StoreConfigError
from cds_service.feedback.recorder import CardRecorder
from cds_service.feedback.request import FeedbackItem
from cds_service.feedback.store import Store
from cds_service.hooks.handler import Fetcher
from cds_service.settings import Settings
from cds_service.trust.authenticator import Caller, CallerCheck, build_authenticator

log = logging.getLogger(__name__)


@dataclass
class Dependencies:
    """Everything a request handler needs besides the request. One per app."""

    settings: Settings
    authenticator: CallerCheck
    fetcher: Fetcher | None = None
    _store: Store | None = field(default=None, init=False)
    _store_lock: threading.Lock = field(default_factory=threading.Lock, init=False)
    recorder: CardRecorder = field(init=False)

    def __post_init__(self) -> None:
        self.recorder = CardRecorder(lambda: self.store)

    @classmethod
    def from_settings(cls, settings: Settings, fetcher: Fetcher | None = None) -> Dependencies:
        """Build from settings (how calls are authenticated: :func:`build_authenticator`)."""
        return cls(settings, build_authenticator(settings), fetcher)

    def authenticate(self, authorization: str | None, url: str) -> Caller | None:
        """The verified caller, or None in dev mode without trust. Raises AuthenticationError otherwise."""
        return self.authenticator.verify(authorization, url)

    def record_feedback(
        self, service_id: str, items: Sequence[FeedbackItem], issuer: str | None = None
    ) -> int:
        """Store feedback items from ``issuer``; a store failure becomes :class:`StorageUnavailableError` (503).

        Feedback on another issuer's card raises :class:`~cds_service.errors.UnknownCardError` (404).
        """
        try:
            return self.store.record_feedback(service_id, items, issuer)
        except (SQLAlchemyError, StoreConfigError, OSError) as exc:
            log.error(
                "feedback store failed", extra={"service": service_id, "error_type": type(exc).__name__}
            )
            raise StorageUnavailableError("the feedback store is unavailable; retry later") from None

    @property
    def store(self) -> Store:
        """The feedback store, opened (and its SQLite file created) on first use."""
        with self._store_lock:
            if self._store is None:
                self._store = Store.from_settings(self.settings)
            return self._store

    def close(self) -> None:
        """Write the queued card records, then release pooled connections."""
        self.recorder.close()
        close_fetcher = getattr(self.fetcher, "close", None)
        if callable(close_fetcher):
            close_fetcher()
        with self._store_lock:
            if self._store is not None:
                self._store.close()
                self._store = None
