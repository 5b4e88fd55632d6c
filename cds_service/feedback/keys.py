"""The HMAC key that hashes patient references in the feedback store, and its generated key file.

The key comes from the ``feedback_hash_key`` setting (``IGG4_CDS_FEEDBACK_HASH_KEY``). When it is unset and
the database is a SQLite file, a random key is generated once and kept in ``<database file>.hash-key``
(mode 0600, created atomically: the first writer wins) next to the database. Whoever can read both files can
test guessed patient ids against the hashes: production should set the key from a secret store.
"""

from __future__ import annotations

import logging
import os
import secrets
from pathlib import Path
from typing import Final

from sqlalchemy.engine import URL

from cds_service.errors import StoreConfigError

log = logging.getLogger(__name__)

KEY_FILE_SUFFIX: Final = ".hash-key"
"""Appended to a SQLite database file's path to name its generated key file."""
MIN_KEY_LENGTH: Final = 16


def key_bytes(key: object) -> bytes:
    """The HMAC key from a setting value (``str``, ``bytes`` or pydantic ``SecretStr``/``SecretBytes``)."""
    secret = getattr(key, "get_secret_value", None)
    if callable(secret):
        key = secret()
    if isinstance(key, str):
        key = key.strip().encode()
    if not isinstance(key, bytes) or len(key) < MIN_KEY_LENGTH:
        raise StoreConfigError(f"the feedback hash key must be at least {MIN_KEY_LENGTH} characters")
    return key


def sqlite_in_memory(url: URL) -> bool:
    """Whether a SQLite URL names an in-memory database (no file, hence no key file)."""
    return url.database in (None, "", ":memory:") or "mode=memory" in (url.database or "")


def read_key_file(path: Path) -> bytes:
    """The key kept in ``path`` (:class:`StoreConfigError` when too short, ``OSError`` when unreadable)."""
    return key_bytes(path.read_text(encoding="ascii"))


def load_or_create_key_file(path: Path) -> bytes:
    """Read the key file, creating it (0600, atomically: the first writer wins) when absent."""
    try:
        return read_key_file(path)
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="ascii") as fh:
            fh.write(secrets.token_hex(32) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        try:
            os.link(tmp, path)
            log.info("generated a feedback hash key in %s", path)
        except FileExistsError:
            pass
    finally:
        tmp.unlink(missing_ok=True)
    return read_key_file(path)
