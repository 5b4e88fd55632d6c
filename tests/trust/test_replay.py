"""Replay caches: in-memory semantics and a real Redis shared by two "replicas"."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from cds_service.settings import Settings
from cds_service.trust.replay import (
    InMemoryReplayCache,
    RedisReplayCache,
    ReplayCacheError,
    jti_digest,
    make_replay_cache,
)
from tests.servers.redis_server import running_redis

ISS = "https://ehr.example.org"


class Clock:
    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_in_memory_records_and_reports() -> None:
    clock = Clock()
    cache = InMemoryReplayCache(clock=clock)
    assert cache.seen_before(ISS, "a", clock.now + 60) is False
    assert cache.seen_before(ISS, "a", clock.now + 60) is True
    assert cache.seen_before("https://other.example", "a", clock.now + 60) is False  # namespaced by iss


def test_in_memory_forgets_after_expiry() -> None:
    clock = Clock()
    cache = InMemoryReplayCache(clock=clock)
    cache.seen_before(ISS, "a", clock.now + 60)
    clock.now += 61
    assert cache.seen_before(ISS, "a", clock.now + 60) is False
    assert len(cache) == 1


def test_in_memory_evicts_expired_and_fails_closed_when_full() -> None:
    clock = Clock()
    cache = InMemoryReplayCache(max_entries=2, clock=clock)
    cache.seen_before(ISS, "a", clock.now + 10)
    cache.seen_before(ISS, "b", clock.now + 100)
    with pytest.raises(ReplayCacheError):
        cache.seen_before(ISS, "c", clock.now + 100)
    clock.now += 11  # "a" expires and makes room
    assert cache.seen_before(ISS, "c", clock.now + 100) is False
    assert cache.seen_before(ISS, "b", clock.now + 100) is True


def test_in_memory_is_atomic_across_threads() -> None:
    cache = InMemoryReplayCache()
    results: list[bool] = []
    barrier = threading.Barrier(16)

    def worker() -> None:
        barrier.wait()
        results.append(cache.seen_before(ISS, "same", 4_000_000_000.0))

    threads = [threading.Thread(target=worker) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == [False] + [True] * 15


def test_digest_separates_issuer_and_jti() -> None:
    assert jti_digest("ab", "c") != jti_digest("a", "bc")
    assert len(jti_digest(ISS, "x" * 10_000)) == 64


def test_factory_defaults_to_memory() -> None:
    assert isinstance(make_replay_cache(Settings(redis_url=None)), InMemoryReplayCache)


def test_redis_errors_fail_closed() -> None:
    cache = RedisReplayCache.from_url("redis://127.0.0.1:1/0", timeout_s=0.2)  # nothing listens on port 1
    with pytest.raises(ReplayCacheError):
        cache.seen_before(ISS, "a", 4_000_000_000.0)


# -- real Redis ------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    workdir: Path = tmp_path_factory.mktemp("redis")
    with running_redis(workdir) as url:
        yield url


@pytest.mark.integration
def test_two_replicas_share_replay_state(redis_url: str) -> None:
    clock = Clock()
    replica_a = RedisReplayCache(redis.Redis.from_url(redis_url), clock=clock)
    replica_b = RedisReplayCache(redis.Redis.from_url(redis_url), clock=clock)
    assert replica_a.seen_before(ISS, "shared-jti", clock.now + 300) is False
    assert replica_b.seen_before(ISS, "shared-jti", clock.now + 300) is True
    assert replica_a.seen_before(ISS, "shared-jti", clock.now + 300) is True
    assert replica_b.seen_before(ISS, "other-jti", clock.now + 300) is False


@pytest.mark.integration
def test_redis_key_is_namespaced_hashed_and_expires(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    clock = Clock()
    cache = RedisReplayCache(client, namespace="test-ns:", clock=clock)
    cache.seen_before(ISS, "secret-looking-jti", clock.now + 120)
    key = "test-ns:" + jti_digest(ISS, "secret-looking-jti")
    assert client.exists(key) == 1
    assert 0 < int(client.pttl(key)) <= 120_000
    assert not [k for k in client.keys("*") if b"secret-looking-jti" in k]


@pytest.mark.integration
def test_factory_picks_redis(redis_url: str) -> None:
    cache = make_replay_cache(Settings(redis_url=redis_url))
    assert isinstance(cache, RedisReplayCache)
    assert cache.seen_before(ISS, "factory-jti", 4_000_000_000.0) is False
    assert cache.seen_before(ISS, "factory-jti", 4_000_000_000.0) is True
