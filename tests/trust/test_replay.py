"""Replay caches: in-memory semantics and a real Redis shared by two "replicas"."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from cds_service.settings import Settings
from cds_service.trust.replay import (
    InMemoryReplayCache,
    RedisReplayCache,
    ReplayCacheError,
    SqliteReplayCache,
    jti_digest,
    make_replay_cache,
)
from tests.paths import REPO
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


def test_factory_defaults_to_a_shared_file(tmp_path: Path) -> None:
    # Several workers of one host share it; a restart keeps it (issue 10, hole 5).
    cache = make_replay_cache(Settings(redis_url=None, replay_db_file=tmp_path / "replay.sqlite3"))
    assert isinstance(cache, SqliteReplayCache)
    assert cache.seen_before(ISS, "a", 4_000_000_000) is False
    again = make_replay_cache(Settings(redis_url=None, replay_db_file=tmp_path / "replay.sqlite3"))
    assert again.seen_before(ISS, "a", 4_000_000_000) is True


def test_factory_in_memory_only_when_asked(caplog: pytest.LogCaptureFixture) -> None:
    assert isinstance(make_replay_cache(Settings(redis_url=None, replay_db_file=None)), InMemoryReplayCache)
    assert "per process" in caplog.text


def test_sqlite_semantics(tmp_path: Path) -> None:
    clock = Clock()
    cache = SqliteReplayCache(tmp_path / "r.sqlite3", clock=clock)
    assert cache.seen_before(ISS, "a", clock.now + 60) is False
    assert cache.seen_before(ISS, "a", clock.now + 60) is True
    assert cache.seen_before("https://other.example", "a", clock.now + 60) is False
    assert cache.seen_before(ISS, "dead", clock.now - 1) is False  # already expired: nothing to remember
    clock.now += 61
    assert cache.seen_before(ISS, "a", clock.now + 60) is False  # its first use expired: accepted again


def test_sqlite_unusable_file_fails_closed(tmp_path: Path) -> None:
    (tmp_path / "r.sqlite3").write_bytes(b"not a database" * 100)
    with pytest.raises(ReplayCacheError):
        SqliteReplayCache(tmp_path / "r.sqlite3").seen_before(ISS, "a", 4_000_000_000)


_WORKER = """
import sys, time
from pathlib import Path
from cds_service.settings import Settings
from cds_service.trust.replay import make_replay_cache
cache = make_replay_cache(Settings(redis_url=None, replay_db_file=Path(sys.argv[1])))
start = float(sys.argv[2])
while time.time() < start:
    time.sleep(0.001)
accepted = [jti for jti in sys.argv[3].split(",") if not cache.seen_before("https://ehr.example.org", jti, 4e9)]
print(",".join(accepted))
"""


def _workers(path: Path, jtis: list[str], count: int) -> list[set[str]]:
    start = time.time() + 1.5
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _WORKER, str(path), str(start), ",".join(jtis)],
            stdout=subprocess.PIPE,
            text=True,
            cwd=REPO,
        )
        for _ in range(count)
    ]
    out = [proc.communicate(timeout=60)[0].strip() for proc in procs]
    assert all(proc.returncode == 0 for proc in procs)
    return [set(o.split(",")) - {""} for o in out]


def test_two_processes_never_accept_one_jti_twice_and_a_restart_remembers(tmp_path: Path) -> None:
    path = tmp_path / "replay.sqlite3"
    jtis = [f"jti-{n}" for n in range(300)]
    first, second = _workers(path, jtis, 2)
    assert first.isdisjoint(second)
    assert first | second == set(jtis)
    (after_restart,) = _workers(path, jtis, 1)
    assert after_restart == set()


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


def test_empty_replay_file_setting_means_per_process(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IGG4_CDS_REPLAY_DB_FILE", "")
    assert Settings().replay_db_file is None
