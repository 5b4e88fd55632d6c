"""One URL policy: how a URL is normalised and whether the service may call it.

Every allow-list decision (the FHIR servers a hook may name, the key-set URLs of the trust file) is made here.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Final
from urllib.parse import unquote, urlsplit

_DEFAULT_PORTS: Final = {"http": 80, "https": 443}


@dataclass(frozen=True)
class NormalisedUrl:
    """A normalised http(s) URL: lower-case scheme and host, explicit port, path without trailing slash."""

    scheme: str
    host: str
    port: int
    path: str

    def contains(self, other: NormalisedUrl, *, loopback_as_one: bool = False) -> bool:
        """Whether ``other`` is this URL or lies under it (same origin, path equal or below on a ``/`` boundary).

        ``loopback_as_one`` (development mode): every loopback host name is the same host, so a FHIR server
        called as ``127.0.0.1`` that links to ``localhost`` (or the reverse) stays the same server.
        """
        same_host = self.host == other.host or (
            loopback_as_one and is_loopback(self.host) and is_loopback(other.host)
        )
        if not same_host or (self.scheme, self.port) != (other.scheme, other.port):
            return False
        return self.path in ("", other.path) or other.path.startswith(self.path + "/")


def normalise(url: str) -> NormalisedUrl | None:
    """Parse ``url`` into a :class:`NormalisedUrl`, or None when it is not a plain absolute http(s) URL.

    Refused: other schemes, user-info (``https://a@b``), missing host, bad ports, query or fragment parts, and
    paths with ``.``/``..`` segments or encoded slashes (they could step outside an allowed prefix).
    """
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS or not parts.hostname:
        return None
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        return None
    if parts.query or parts.fragment:
        return None
    raw_path = parts.path
    if "%2f" in raw_path.lower() or "%5c" in raw_path.lower() or "\\" in raw_path:
        return None
    segments = [s for s in unquote(raw_path).split("/") if s]
    if any(s in (".", "..") for s in segments):
        return None
    path = "/" + "/".join(segments) if segments else ""
    host = parts.hostname.lower().rstrip(".")
    return NormalisedUrl(scheme, host, port if port is not None else _DEFAULT_PORTS[scheme], path)


def is_loopback(host: str) -> bool:
    """Whether ``host`` (already lower-cased) names this machine: localhost, ``*.localhost``, 127.0.0.0/8 or ::1."""
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def is_allowed_base(fhir_server: str, allowed: list[str], dev_mode: bool) -> bool:
    """Whether the service may fetch from ``fhir_server``.

    Allowed when the normalised URL equals an entry of ``allowed`` or lies under it on a path boundary, on the
    same scheme, host and port: ``https://ehr.example/fhir`` allows ``https://ehr.example/fhir/r4`` but not
    ``https://ehr.example/fhirx``, ``https://ehr.example.evil.com/fhir`` or ``http://ehr.example/fhir``. In
    development mode loopback hosts (127.0.0.0/8, ::1, localhost) are allowed as well. Malformed URLs and
    allow-list entries never match. Plain ``http`` is refused for any host but loopback, even when an
    ``http`` entry is listed: patient data and access tokens never cross a network in clear (CDS Hooks: TLS).
    """
    target = normalise(fhir_server)
    if target is None:
        return False
    if dev_mode and is_loopback(target.host):
        return True
    if target.scheme != "https" and not is_loopback(target.host):
        return False
    return any(url_under(fhir_server, entry) for entry in allowed)


def url_under(url: str, prefix: str) -> bool:
    """Whether ``url`` is ``prefix`` or lies under it (same scheme, host and port; whole path segments).

    ``https://a.org/fhir`` holds ``https://a.org/fhir/Patient`` but not ``https://a.org/fhir-evil`` nor
    ``https://a.org.evil.com/fhir``. Either URL failing :func:`normalise` means no match.
    """
    target, base = normalise(url), normalise(prefix)
    return target is not None and base is not None and base.contains(target)


def check_allow_url(url: str) -> str:
    """Validate an allow-list entry (a jku or a FHIR base) and return it unchanged; ValueError says why not.

    It must pass :func:`normalise` (absolute http(s), no credentials, query, fragment or dot segments), and
    plain ``http`` is accepted on loopback only (tests and a sidecar FHIR server on the same host).
    """
    parsed = normalise(url)
    if parsed is None:
        raise ValueError(
            f"{url!r} is not an absolute http(s) URL free of credentials, query, fragment, encoded slashes and '.' or '..' segments"
        )
    if parsed.scheme != "https" and not is_loopback(parsed.host):
        raise ValueError(f"{url!r} must use https (plain http is allowed on loopback only)")
    return url
