"""A FHIR Bulk Data Access client: kick-off, status polling that honours ``Retry-After``, download.

Authorisation is a static bearer token or SMART Backend Services (client credentials with a signed JWT
client assertion, RS384/ES384, ``private_key_jwt``), as Bulk Data servers require. Tokens, assertions and
downloaded records are never logged.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any, Final, Protocol

import requests
from joserfc import jwt
from joserfc.jwk import ECKey, RSAKey, import_key

log = logging.getLogger(__name__)

EXPORT_TYPES: Final = (
    "Patient",
    "Condition",
    "Observation",
    "DiagnosticReport",
    "MedicationRequest",
    "MedicationStatement",
    "ServiceRequest",
)
"""The resource types the core reads, asked for with ``_type`` so the export carries nothing else."""
ASSERTION_TYPE: Final = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
ASSERTION_LIFETIME_S: Final = 300
DEFAULT_WAIT_S: Final = 2.0
MAX_WAIT_S: Final = 120.0
TIMEOUT_S: Final = 30.0
CHUNK_BYTES: Final = 1 << 20


class BulkExportError(RuntimeError):
    """The export could not be started, finished or downloaded (the message names the step, not the data)."""


class Authorizer(Protocol):
    """Gives the ``Authorization`` header value for the next request."""

    def header(self) -> str:
        """``Bearer <token>``."""
        ...


@dataclass(frozen=True)
class BearerToken:
    """A token obtained elsewhere (``--bearer-token``)."""

    token: str = field(repr=False)

    def header(self) -> str:
        """``Bearer <token>``."""
        return f"Bearer {self.token}"


@dataclass
class BackendServices:
    """SMART Backend Services: a client-credentials token obtained with a signed JWT client assertion.

    ``token_url`` may be left empty: it is then read from ``<fhir base>/.well-known/smart-configuration``.
    The token is reused until a minute before it expires.
    """

    client_id: str
    private_key_pem: bytes = field(repr=False)
    scope: str = "system/*.read"
    token_url: str = ""
    algorithm: str = ""
    key_id: str | None = None
    session: requests.Session = field(default_factory=requests.Session, repr=False)
    clock: Callable[[], float] = time.time
    _token: str = field(default="", repr=False)
    _expires: float = 0.0

    def discover(self, fhir_base: str) -> None:
        """Find the token endpoint in the server's SMART configuration unless one was given."""
        if self.token_url:
            return
        url = f"{fhir_base.rstrip('/')}/.well-known/smart-configuration"
        response = self.session.get(url, headers={"Accept": "application/json"}, timeout=TIMEOUT_S)
        if response.status_code != 200:
            raise BulkExportError(f"SMART configuration: HTTP {response.status_code} from {url}")
        endpoint = response.json().get("token_endpoint")
        if not isinstance(endpoint, str) or not endpoint:
            raise BulkExportError(f"SMART configuration at {url} names no token_endpoint")
        self.token_url = endpoint

    def _key(self) -> RSAKey | ECKey:
        for kind in ("RSA", "EC"):
            try:
                key = import_key(self.private_key_pem, kind)
            except (ValueError, TypeError):
                continue
            if isinstance(key, RSAKey | ECKey):
                return key
        raise BulkExportError("the Backend Services key must be an RSA or EC private key (PEM)")

    def assertion(self) -> str:
        """A fresh client assertion: iss = sub = client id, aud = token URL, exp in 5 minutes, random jti."""
        key = self._key()
        algorithm = self.algorithm or ("RS384" if isinstance(key, RSAKey) else "ES384")
        header: dict[str, Any] = {"alg": algorithm, "typ": "JWT"}
        header["kid"] = self.key_id or key.thumbprint()
        now = int(self.clock())
        claims = {
            "iss": self.client_id,
            "sub": self.client_id,
            "aud": self.token_url,
            "exp": now + ASSERTION_LIFETIME_S,
            "iat": now,
            "jti": secrets.token_hex(16),
        }
        return jwt.encode(header, claims, key, algorithms=[algorithm])

    def header(self) -> str:
        """``Bearer <token>``, fetching a new token when there is none or it is about to expire."""
        if not self._token or self.clock() > self._expires - 60:
            self._fetch()
        return f"Bearer {self._token}"

    def _fetch(self) -> None:
        if not self.token_url:
            raise BulkExportError("no token endpoint: call discover() or give --token-url")
        form = {
            "grant_type": "client_credentials",
            "scope": self.scope,
            "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": self.assertion(),
        }
        response = self.session.post(self.token_url, data=form, timeout=TIMEOUT_S)
        if response.status_code != 200:
            error = _oauth_error(response)
            raise BulkExportError(f"token endpoint: HTTP {response.status_code} {error}".rstrip())
        body = response.json()
        token = body.get("access_token")
        if not isinstance(token, str) or not token:
            raise BulkExportError("token endpoint answered without an access_token")
        self._token = token
        expires_in = body.get("expires_in")
        self._expires = self.clock() + (float(expires_in) if isinstance(expires_in, int | float) else 300.0)


def _oauth_error(response: requests.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return ""
    return str(body.get("error", "")) if isinstance(body, dict) else ""


def retry_after_seconds(
    value: str | None, now: datetime | None = None, default: float = DEFAULT_WAIT_S
) -> float:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or HTTP date), within [0, MAX_WAIT_S]."""
    if value is None or not value.strip():
        return default
    text = value.strip()
    if text.isdigit():
        return min(float(text), MAX_WAIT_S)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return default
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    delta = (when - (now or datetime.now(UTC))).total_seconds()
    return min(max(delta, 0.0), MAX_WAIT_S)


@dataclass
class ExportJob:
    """A finished export: the manifest and the files downloaded from it."""

    status_url: str
    manifest: dict[str, Any]
    files: list[Path] = field(default_factory=list)
    polls: int = 0
    waited_s: float = 0.0


@dataclass
class BulkClient:
    """Runs one ``$export`` against ``fhir_base`` (system level, or one Group with ``group``)."""

    fhir_base: str
    authorizer: Authorizer | None = None
    group: str | None = None
    level: str = "system"
    """``system`` ([base]/$export), ``patient`` ([base]/Patient/$export) or ``group`` (with ``group``)."""
    types: tuple[str, ...] = EXPORT_TYPES
    timeout_s: float = 3600.0
    session: requests.Session = field(default_factory=requests.Session, repr=False)
    sleep: Callable[[float], None] = time.sleep
    on_poll: Callable[[str], None] | None = None
    """Called with the server's ``X-Progress`` text after each 202."""

    def __post_init__(self) -> None:
        if self.group is not None:
            self.level = "group"
        if isinstance(self.authorizer, BackendServices):
            self.authorizer.session = self.session
            self.authorizer.discover(self.fhir_base)

    def _headers(self, accept: str = "application/fhir+json") -> dict[str, str]:
        headers = {"Accept": accept}
        if self.authorizer is not None:
            headers["Authorization"] = self.authorizer.header()
        return headers

    def kickoff_url(self) -> str:
        """The ``$export`` URL for the level asked for."""
        base = self.fhir_base.rstrip("/")
        if self.level == "group":
            return f"{base}/Group/{self.group}/$export"
        if self.level == "patient":
            return f"{base}/Patient/$export"
        return f"{base}/$export"

    def kickoff(self) -> str:
        """Start the export; returns the status URL (``Content-Location`` of the 202)."""
        params = {"_outputFormat": "application/fhir+ndjson", "_type": ",".join(self.types)}
        headers = {**self._headers(), "Prefer": "respond-async"}
        response = self.session.get(self.kickoff_url(), params=params, headers=headers, timeout=TIMEOUT_S)
        if response.status_code != 202:
            raise BulkExportError(f"kick-off: HTTP {response.status_code} from {self.kickoff_url()}")
        location = response.headers.get("Content-Location")
        if not location:
            raise BulkExportError("kick-off: 202 without Content-Location")
        return location

    def wait(self, status_url: str) -> ExportJob:
        """Poll the status URL until the manifest comes, sleeping as ``Retry-After`` says (429 too)."""
        job = ExportJob(status_url, {})
        deadline = time.monotonic() + self.timeout_s
        while True:
            response = self.session.get(
                status_url, headers=self._headers("application/json"), timeout=TIMEOUT_S
            )
            job.polls += 1
            if response.status_code == 200:
                manifest = response.json()
                if not isinstance(manifest, dict) or not isinstance(manifest.get("output"), list):
                    raise BulkExportError("status: 200 without a manifest")
                job.manifest = manifest
                return job
            if response.status_code not in (202, 429):
                raise BulkExportError(f"status: HTTP {response.status_code}")
            if self.on_poll is not None and response.status_code == 202:
                self.on_poll(response.headers.get("X-Progress", ""))
            pause = retry_after_seconds(response.headers.get("Retry-After"))
            if time.monotonic() + pause > deadline:
                raise BulkExportError(f"export not finished within {self.timeout_s:.0f} s")
            self.sleep(pause)
            job.waited_s += pause

    def download(self, job: ExportJob, folder: Path) -> list[Path]:
        """Stream every output file of the manifest into ``folder`` (``NNN-Type.ndjson``)."""
        folder.mkdir(parents=True, exist_ok=True)
        needs_token = bool(job.manifest.get("requiresAccessToken"))
        for number, item in enumerate(job.manifest["output"]):
            if not isinstance(item, Mapping) or not isinstance(item.get("url"), str):
                raise BulkExportError(f"manifest output {number} has no url")
            rtype = str(item.get("type", "Resource"))
            if not rtype.isalnum():
                raise BulkExportError(f"manifest output {number} has an unusable type")
            target = folder / f"{number:03d}-{rtype}.ndjson"
            headers = (
                self._headers("application/fhir+ndjson")
                if needs_token
                else {"Accept": "application/fhir+ndjson"}
            )
            with self.session.get(
                str(item["url"]), headers=headers, stream=True, timeout=TIMEOUT_S
            ) as response:
                if response.status_code != 200:
                    raise BulkExportError(
                        f"download of output {number} ({rtype}): HTTP {response.status_code}"
                    )
                with target.open("wb") as out:
                    for chunk in response.iter_content(CHUNK_BYTES):
                        out.write(chunk)
            job.files.append(target)
        return job.files

    def delete(self, job: ExportJob) -> None:
        """Tell the server the files may go (best effort)."""
        try:
            self.session.delete(job.status_url, headers=self._headers(), timeout=TIMEOUT_S)
        except requests.RequestException:
            log.info("could not delete the export job on the server")

    def run(self, folder: Path) -> ExportJob:
        """Kick off, wait, download into ``folder``, delete the job on the server; returns the job."""
        job = self.wait(self.kickoff())
        self.download(job, folder)
        self.delete(job)
        log.info("bulk export downloaded", extra={"files": len(job.files), "polls": job.polls})
        return job
