"""``jku`` key sets: fetching JWK Sets from allow-listed URLs, caching them, and throttling refreshes.

:class:`JwksFetcher` is what :class:`~cds_service.trust.authenticator.Authenticator` asks for a key a token's
``jku`` names when the key is not pinned in the trust file.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import requests
import urllib3.exceptions
from joserfc.jwk import Key

from cds_service.trust.config import KeySetError, parse_jwks

log = logging.getLogger(__name__)


@dataclass
class _CachedSet:
    keys: Mapping[str, Key] = field(default_factory=dict)
    fetched_at: float | None = None  # last successful fetch


class JwksFetcher:
    """Fetches and caches JWK Sets from allow-listed ``jku`` URLs.

    A set is refetched when older than ``cache_ttl_s`` or when a token names a ``kid`` it lacks (key
    rotation), but never more often than once per ``min_refetch_interval_s`` per *issuer* (whatever URL
    its tokens name), so a stream of tokens with made-up ``kid`` s cannot turn into a stream of fetches.
    A failed refresh keeps the previous keys. The cache is bounded: at most ``max_sets`` sets (least
    recently used dropped first) of at most ``max_keys_per_set`` keys, and a download stops at
    ``max_bytes`` or ``timeout_s`` in total, whichever comes first. Calls block while fetching: callers
    on an event loop must run them in a worker thread.
    """

    def __init__(
        self,
        *,
        timeout_s: float = 3.0,
        cache_ttl_s: float = 3600.0,
        min_refetch_interval_s: float = 60.0,
        max_bytes: int = 64 * 1024,
        max_sets: int = 64,
        max_keys_per_set: int = 32,
        session: requests.Session | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """Configure timeouts, cache lifetime, bounds and rate limit; ``session`` and ``clock`` are for tests."""
        self._timeout_s = timeout_s
        self._cache_ttl_s = cache_ttl_s
        self._min_interval_s = min_refetch_interval_s
        self._max_bytes = max_bytes
        self._max_sets = max_sets
        self._max_keys = max_keys_per_set
        self._session = session or requests.Session()
        self._session.trust_env = False
        self._clock = clock
        self._sets: OrderedDict[str, _CachedSet] = OrderedDict()
        self._attempted: dict[str, float] = {}  # issuer -> last fetch attempt (rate limit)
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    def cached_sets(self) -> int:
        """How many key sets are cached."""
        with self._guard:
            return len(self._sets)

    def get_key(self, iss: str, jku: str, kid: str) -> Key | None:
        """The key ``kid`` of the set at ``jku`` for issuer ``iss`` (fetching it if allowed), or None."""
        with self._lock_for(iss):
            with self._guard:
                cached = self._sets.get(jku)
                if cached is not None:
                    self._sets.move_to_end(jku)
            now = self._clock()
            if self._needs_fetch(cached, kid, now) and self._may_attempt(iss, now):
                cached = self._refresh(iss, jku, cached, now)
            return cached.keys.get(kid) if cached is not None else None

    def _lock_for(self, iss: str) -> threading.Lock:
        # One lock per issuer: concurrent calls wait for one fetch instead of each starting their own.
        with self._guard:
            lock = self._locks.get(iss)
            if lock is None:
                if len(self._locks) >= 4 * self._max_sets:
                    self._locks.clear()  # bounded; a lock in use stays referenced by its holder
                lock = self._locks[iss] = threading.Lock()
            return lock

    def _needs_fetch(self, cached: _CachedSet | None, kid: str, now: float) -> bool:
        if cached is None or cached.fetched_at is None:
            return True
        return now - cached.fetched_at >= self._cache_ttl_s or kid not in cached.keys

    def _may_attempt(self, iss: str, now: float) -> bool:
        with self._guard:
            attempted = self._attempted.get(iss)
            if attempted is not None and now - attempted < self._min_interval_s:
                return False
            if len(self._attempted) >= 4 * self._max_sets:
                self._attempted = {k: v for k, v in self._attempted.items() if now - v < self._min_interval_s}
            self._attempted[iss] = now
            return True

    def _refresh(self, iss: str, jku: str, cached: _CachedSet | None, now: float) -> _CachedSet:
        fresh = _CachedSet(dict(cached.keys), cached.fetched_at) if cached is not None else _CachedSet()
        try:
            keys = parse_jwks(self._download(jku), strict=False)
            fresh = _CachedSet(dict(list(keys.items())[: self._max_keys]), now)
        except (requests.RequestException, urllib3.exceptions.HTTPError, OSError, ValueError) as error:
            # KeySetError and JSON errors are ValueErrors; raw reads raise urllib3's own errors. Keep the old keys: a blip must not lock callers out.
            log.warning("jku fetch failed for issuer %s: %s", ascii(iss[:200]), _describe_fetch_error(error))
        with self._guard:
            self._sets[jku] = fresh
            self._sets.move_to_end(jku)
            while len(self._sets) > self._max_sets:
                self._sets.popitem(last=False)
        return fresh

    def _download(self, jku: str) -> object:
        # No redirects: the allow-list check applied to this exact URL, not to wherever it points.
        deadline = time.monotonic() + self._timeout_s
        with self._session.get(
            jku,
            timeout=self._timeout_s,
            allow_redirects=False,
            stream=True,
            headers={"Accept": "application/json", "Accept-Encoding": "identity"},
        ) as response:
            if response.status_code != 200:
                raise KeySetError(f"HTTP {response.status_code}")
            if response.headers.get("Content-Encoding", "identity").lower() != "identity":
                raise KeySetError("compressed key set")
            body = b""
            # read1: what one socket read gave, so a server dripping bytes cannot hold us past the deadline.
            while chunk := response.raw.read1(8192, decode_content=False):
                body += chunk
                if len(body) > self._max_bytes:
                    raise KeySetError(f"key set larger than {self._max_bytes} bytes")
                if time.monotonic() > deadline:
                    raise KeySetError(f"key set download over {self._timeout_s} s")
        return json.loads(body)


def _describe_fetch_error(error: Exception) -> str:
    text = str(error) if isinstance(error, KeySetError) else ""
    return f"{type(error).__name__} {text}".strip()
