"""A throwaway PostgreSQL server for integration tests, started from Debian's binaries.

``postgres_server`` (session scope) runs ``initdb`` into a fresh temporary directory, starts the server on a
free loopback port with its unix socket in that directory, and stops it and removes the directory at the
end. Each test asks it for a fresh database with ``create_database()``; ``postgres_url`` does that and
yields a ``postgresql+psycopg://`` URL.

It skips (with the reason) when the binaries (``apt-get install postgresql``) or psycopg are missing. As
root it runs the server as the ``postgres`` user (PostgreSQL refuses to run as root), which the Debian
package creates.
"""

from __future__ import annotations

import glob
import os
import pwd
import re
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.servers.process import free_port

SUPERUSER = "postgres"
RUN_AS_WHEN_ROOT = "postgres"


def find_bin_dir() -> Path | None:
    """The newest Debian PostgreSQL ``bin`` directory, else the one holding ``initdb`` on PATH."""

    def version(path: str) -> tuple[int, ...]:
        match = re.search(r"/postgresql/([\d.]+)/bin", path)
        return tuple(int(p) for p in match.group(1).split(".")) if match else ()

    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=version, reverse=True)
    for initdb in candidates:
        bin_dir = Path(initdb).parent
        if (bin_dir / "pg_ctl").exists():
            return bin_dir
    on_path = shutil.which("initdb")
    if on_path and shutil.which("pg_ctl"):
        return Path(on_path).resolve().parent
    return None


@dataclass
class PostgresServer:
    """A running server: trust authentication on loopback, superuser ``postgres``."""

    bin_dir: Path
    base_dir: Path
    port: int
    run_as: str | None
    _databases: int = field(default=0)

    @property
    def data_dir(self) -> Path:
        return self.base_dir / "data"

    @property
    def log_file(self) -> Path:
        return self.base_dir / "server.log"

    def _command(self, *args: str) -> list[str]:
        return ["runuser", "-u", self.run_as, "--", *args] if self.run_as else list(args)

    def _run(self, *args: str, timeout: float = 60) -> None:
        result = subprocess.run(
            self._command(*args), capture_output=True, text=True, timeout=timeout, check=False
        )
        if result.returncode != 0:
            log = self.log_file.read_text(errors="replace")[-2000:] if self.log_file.exists() else ""
            raise RuntimeError(
                f"{args[0]} failed ({result.returncode}): {result.stdout}{result.stderr}\nserver log:\n{log}"
            )

    def start(self) -> None:
        """initdb and start the server; wait until it accepts connections."""
        self._run(
            str(self.bin_dir / "initdb"),
            "-D",
            str(self.data_dir),
            "-U",
            SUPERUSER,
            "--auth=trust",
            "--encoding=UTF8",
            "--locale=C",
            "--no-sync",
            timeout=120,
        )
        options = (
            f"-p {self.port} -k {self.base_dir} -c listen_addresses=127.0.0.1 "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        )
        self._run(
            str(self.bin_dir / "pg_ctl"),
            "-D",
            str(self.data_dir),
            "-o",
            options,
            "-l",
            str(self.log_file),
            "-w",
            "-t",
            "60",
            "start",
            timeout=90,
        )

    def stop(self) -> None:
        """Stop the server (fast shutdown: open connections are closed)."""
        self._run(str(self.bin_dir / "pg_ctl"), "-D", str(self.data_dir), "-m", "fast", "-w", "stop")

    def url(self, database: str = "postgres") -> str:
        """The SQLAlchemy URL of ``database`` on this server."""
        return f"postgresql+psycopg://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def create_database(self, prefix: str = "test") -> str:
        """Create a new empty database and return its SQLAlchemy URL."""
        import psycopg  # noqa: PLC0415 - optional dependency, checked by the fixture
        from psycopg import sql  # noqa: PLC0415

        self._databases += 1
        name = f"{prefix}_{os.getpid()}_{self._databases}"
        with psycopg.connect(
            host="127.0.0.1", port=self.port, user=SUPERUSER, dbname="postgres", autocommit=True
        ) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return self.url(name)


def _run_as_user() -> str | None:
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam(RUN_AS_WHEN_ROOT)
    except KeyError:
        pytest.skip(f"running as root and no '{RUN_AS_WHEN_ROOT}' user to run PostgreSQL as")
    if shutil.which("runuser") is None:
        pytest.skip("running as root and runuser is not available to drop privileges for PostgreSQL")
    return RUN_AS_WHEN_ROOT


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A PostgreSQL server for the whole test session (skips when PostgreSQL or psycopg is absent)."""
    pytest.importorskip("psycopg", reason="psycopg is not installed")
    bin_dir = find_bin_dir()
    if bin_dir is None:
        pytest.skip(
            "PostgreSQL binaries not found (/usr/lib/postgresql/*/bin/initdb); apt-get install postgresql"
        )
    run_as = _run_as_user()
    # Not under pytest's tmp_path: as root that sits in a 0700 directory the server user cannot enter.
    base_dir = Path(tempfile.mkdtemp(prefix="igg4-cds-pg-"))
    if run_as:
        entry = pwd.getpwnam(run_as)
        os.chown(base_dir, entry.pw_uid, entry.pw_gid)
    server = PostgresServer(bin_dir=bin_dir, base_dir=base_dir, port=free_port(), run_as=run_as)
    try:
        server.start()
        deadline = time.monotonic() + 30
        while not _accepts(server.port):
            if time.monotonic() > deadline:
                raise RuntimeError("PostgreSQL did not accept connections")
            time.sleep(0.1)
        yield server
    finally:
        try:
            if (server.data_dir / "postmaster.pid").exists():
                server.stop()
        finally:
            shutil.rmtree(base_dir, ignore_errors=True)


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> str:
    """The URL of a fresh, empty database on the session's PostgreSQL server."""
    return postgres_server.create_database()
