"""Replay protection for CDS Hooks client JWTs: each (``iss``, ``jti``) is accepted once within its lifetime.

Three implementations of one protocol: a SQLite file (the default: every worker process of one host shares it,
and it outlives a restart), Redis (several hosts sharing state) and an in-process cache (one process, tests).
:func:`make_replay_cache` picks Redis when ``settings.redis_url`` is set, else the file
``settings.replay_db_file``; in-process only when that is set to nothing.
"""

from __future__ import annotations

import hashlib
import heapq
import logging
import math
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

import redis

from cds_service.settings import Settings

log = logging.getLogger(__name__)


class ReplayCacheError(RuntimeError):
    """The cache could not answer (full, or Redis unreachable). Callers must fail closed."""


class ReplayCache(Protocol):
    """Records JWT ids and tells whether one was already recorded."""

    def seen_before(self, iss: str, jti: str, expires_at: float) -> bool:
        """Atomically record (``iss``, ``jti``) until ``expires_at`` (epoch seconds); True if already there.

        :raises ReplayCacheError: when the answer cannot be given.
        """
        ...


def jti_digest(iss: str, jti: str) -> str:
    """A fixed-size key for (``iss``, ``jti``): bounded memory and no caller-chosen text in Redis keys."""
    iss_bytes = iss.encode("utf-8")
    # Length-prefix the issuer so ("ab", "c") and ("a", "bc") cannot collide.
    material = len(iss_bytes).to_bytes(4, "big") + iss_bytes + jti.encode("utf-8")
    return hashlib.sha256(material).hexdigest()


class InMemoryReplayCache:
    """Thread-safe, bounded, in-process replay cache for a single replica.

    When full of unexpired entries it raises :class:`ReplayCacheError` rather than forgetting one: forgetting
    would reopen a replay window.
    """

    def __init__(self, max_entries: int = 100_000, clock: Callable[[], float] = time.time) -> None:
        """Create an empty cache holding at most ``max_entries`` ids; ``clock`` gives epoch seconds."""
        if max_entries < 1:
            raise ValueError("max_entries must be positive")
        self._max_entries = max_entries
        self._clock = clock
        self._lock = threading.Lock()
        self._expiry: dict[str, float] = {}
        self._heap: list[tuple[float, str]] = []  # (expires_at, digest), soonest first, for cheap eviction

    def __len__(self) -> int:
        """Entries currently held (expired ones may linger until the next call)."""
        with self._lock:
            return len(self._expiry)

    def seen_before(self, iss: str, jti: str, expires_at: float) -> bool:
        """See :meth:`ReplayCache.seen_before`."""
        digest = jti_digest(iss, jti)
        with self._lock:
            now = self._clock()
            self._evict_expired(now)
            if digest in self._expiry:
                return True
            if expires_at <= now:
                return False  # already dead: nothing to remember
            if len(self._expiry) >= self._max_entries:
                raise ReplayCacheError("in-memory replay cache is full")
            self._expiry[digest] = expires_at
            heapq.heappush(self._heap, (expires_at, digest))
            return False

    def _evict_expired(self, now: float) -> None:
        while self._heap and self._heap[0][0] <= now:
            _, digest = heapq.heappop(self._heap)
            self._expiry.pop(digest, None)


class RedisReplayCache:
    """Replay cache shared by every replica through Redis (``SET key 1 NX PX ttl``, atomic on the server)."""

    def __init__(
        self,
        client: redis.Redis,
        namespace: str = "igg4rd-cds:jti:",
        clock: Callable[[], float] = time.time,
    ) -> None:
        """Use ``client``; keys are ``namespace`` + sha256 of (iss, jti)."""
        self._client = client
        self._namespace = namespace
        self._clock = clock

    @classmethod
    def from_url(
        cls, url: str, timeout_s: float = 1.0, namespace: str = "igg4rd-cds:jti:"
    ) -> RedisReplayCache:
        """Connect lazily to the Redis at ``url`` with short timeouts (a hook call has a time budget)."""
        client = redis.Redis.from_url(url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s)
        return cls(client, namespace=namespace)

    def seen_before(self, iss: str, jti: str, expires_at: float) -> bool:
        """See :meth:`ReplayCache.seen_before`."""
        # A relative TTL (PX) rather than PXAT: it does not depend on the Redis host's clock agreeing with ours.
        ttl_ms = math.ceil((expires_at - self._clock()) * 1000)
        if ttl_ms <= 0:
            return False
        key = self._namespace + jti_digest(iss, jti)
        try:
            created = self._client.set(key, b"1", nx=True, px=ttl_ms)
        except redis.RedisError as error:
            raise ReplayCacheError(f"redis: {type(error).__name__}") from None
        return not created


class SqliteReplayCache:
    """Replay cache in a SQLite file, shared by every process that opens the same file.

    One atomic upsert per call: a row whose first use has expired is replaced, an unexpired one is left alone
    and reported as a replay. The file (WAL mode) survives restarts, so a token cannot be replayed after one.
    Expired rows are purged every ``purge_every`` calls. Any SQLite error raises :class:`ReplayCacheError`.
    """

    def __init__(
        self,
        path: Path,
        clock: Callable[[], float] = time.time,
        purge_every: int = 1000,
        timeout_s: float = 2.0,
    ) -> None:
        """Open (lazily creating) the file at ``path``; ``clock`` gives epoch seconds."""
        self._path = path
        self._clock = clock
        self._purge_every = purge_every
        self._timeout_s = timeout_s
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None
        self._calls = 0

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            conn = sqlite3.connect(
                str(self._path), timeout=self._timeout_s, isolation_level=None, check_same_thread=False
            )
            try:
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA synchronous=NORMAL")  # durable across process restarts; cheap commits
                conn.execute(
                    "CREATE TABLE IF NOT EXISTS seen_jti (digest TEXT PRIMARY KEY, expires_at REAL NOT NULL)"
                    " WITHOUT ROWID"
                )
            except sqlite3.Error:
                conn.close()
                raise
            self._conn = conn
        return self._conn

    def seen_before(self, iss: str, jti: str, expires_at: float) -> bool:
        """See :meth:`ReplayCache.seen_before`."""
        digest = jti_digest(iss, jti)
        with self._lock:
            now = self._clock()
            try:
                conn = self._connection()
                if expires_at <= now:  # already dead: nothing to remember, but an earlier use still counts
                    row = conn.execute(
                        "SELECT 1 FROM seen_jti WHERE digest = ? AND expires_at > ?", (digest, now)
                    ).fetchone()
                    return row is not None
                created = conn.execute(
                    "INSERT INTO seen_jti (digest, expires_at) VALUES (?, ?) ON CONFLICT(digest) DO UPDATE"
                    " SET expires_at = excluded.expires_at WHERE seen_jti.expires_at <= ?",
                    (digest, expires_at, now),
                ).rowcount
                self._calls += 1
                if self._calls % self._purge_every == 0:
                    conn.execute("DELETE FROM seen_jti WHERE expires_at <= ?", (now,))
            except sqlite3.Error as error:
                raise ReplayCacheError(f"sqlite: {type(error).__name__}") from None
        return created == 0

    def close(self) -> None:
        """Close the connection (reopened on the next call)."""
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None


def make_replay_cache(settings: Settings) -> ReplayCache:
    """Redis when ``settings.redis_url`` is set (several hosts); else the SQLite file every worker of this host
    shares (``settings.replay_db_file``); in-process only when that setting is empty (one process only)."""
    if settings.redis_url:
        return RedisReplayCache.from_url(settings.redis_url)
    if settings.replay_db_file is not None:
        return SqliteReplayCache(settings.replay_db_file)
    log.warning(
        "replay protection is per process (no redis_url, no replay_db_file): run one worker only, "
        "and a restart forgets every jti"
    )
    return InMemoryReplayCache()
