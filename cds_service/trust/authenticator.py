"""Authentication of CDS Clients by the signed JWT of CDS Hooks 2.0.1 ("Trusting CDS Clients").

Every call carries ``Authorization: Bearer <JWT>``, signed with an asymmetric key of a trusted issuer.
:class:`Authenticator` checks the header (``alg`` allowed for the issuer, ``kid``, ``typ``), picks the key
(pinned in the trust file, or fetched from an allow-listed ``jku`` by :mod:`cds_service.trust.jwks`),
verifies the signature with joserfc, then the claims (``iss``, ``aud`` = the exact URL called, ``exp``/``iat`` with leeway, ``jti`` unseen,
``tenant``). Any failure raises :class:`~cds_service.errors.AuthenticationError`; its ``reason`` is for
the log and never contains the token.

Framework-free: the web edge passes the header value and the public URL it was called at.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from joserfc import jws
from joserfc.errors import ExpiredTokenError, InvalidClaimError, JoseError, MissingClaimError
from joserfc.jwk import Key
from joserfc.jws import CompactSignature, JWSRegistry
from joserfc.jwt import JWTClaimsRegistry

from cds_service.errors import AuthenticationError
from cds_service.fhir.urls import url_under
from cds_service.settings import Settings
from cds_service.trust.config import (
    TrustConfig,
    TrustConfigError,
    TrustedIssuer,
    load_trust_config,
)
from cds_service.trust.jwks import JwksFetcher
from cds_service.trust.replay import ReplayCache, ReplayCacheError, make_replay_cache

log = logging.getLogger(__name__)

#: Longest Authorization header looked at; joserfc's own limits are about 130 kB.
MAX_AUTHORIZATION_LENGTH = 16 * 1024
_COMPACT_JWS = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+")


@dataclass(frozen=True)
class Caller:
    """The authenticated CDS Client of one call."""

    iss: str
    sub: str | None
    kid: str
    tenant: str | None
    jti: str
    allowed_fhir_bases: tuple[str, ...] = ()

    def may_use_fhir_base(self, url: str) -> bool:
        """Whether this caller may name ``url`` as ``fhirServer`` (prefix match on whole path segments)."""
        return any(url_under(url, prefix) for prefix in self.allowed_fhir_bases)


# --------------------------------------------------------------------------------------------------------------
# The authenticator


class Authenticator:
    """Verifies the ``Authorization`` header of CDS Hooks calls against a :class:`TrustConfig`."""

    def __init__(
        self,
        trust: TrustConfig,
        replay_cache: ReplayCache,
        *,
        leeway_s: int = 60,
        max_lifetime_s: int | None = 3600,
        fetcher: JwksFetcher | None = None,
        now: Callable[[], float] = time.time,
    ) -> None:
        """Build an authenticator.

        :param trust: trusted issuers and their keys.
        :param replay_cache: where ``jti`` s are recorded (shared across replicas in production).
        :param leeway_s: clock skew tolerated on ``exp``, ``iat`` and ``nbf``.
        :param max_lifetime_s: longest ``exp - iat`` accepted (bounds replay-cache memory); None: no limit.
        :param fetcher: ``jku`` key set fetcher; a default one is made if omitted.
        :param now: epoch-seconds clock, injectable so tests can freeze time without global patching.
        """
        self._trust = trust
        self._replay = replay_cache
        self._leeway_s = leeway_s
        self._max_lifetime_s = max_lifetime_s
        self._fetcher = fetcher or JwksFetcher()
        self._now = now
        self._verified_keys: set[tuple[str, str]] = set()  # (iss, kid) already logged at INFO

    @classmethod
    def from_settings(cls, settings: Settings, **options: Any) -> Authenticator:
        """Build from ``settings.trust_file`` and ``settings.redis_url``; ``options`` go to the constructor.

        :raises TrustConfigError: when no trust file is configured or it is invalid.
        """
        if settings.trust_file is None:
            raise TrustConfigError("IGG4_CDS_TRUST_FILE is not set: no CDS Client can be authenticated")
        options.setdefault("leeway_s", settings.jwt_leeway_s)
        return cls(load_trust_config(settings.trust_file), make_replay_cache(settings), **options)

    def verify(self, authorization: str | None, url: str) -> Caller:
        """Authenticate one call: ``authorization`` is the raw header value, ``url`` the public URL called.

        :raises AuthenticationError: on any failure (reason and issuer for the log only).
        """
        token = _bearer_token(authorization)
        signed, header, unverified = _parse_unverified(token)
        issuer = self._pick_issuer(unverified)
        alg, kid = _check_header(header, issuer)
        # Every cheap check comes before the key look-up, which may go to the network: a token that is
        # expired, aimed elsewhere or badly formed never causes a fetch. The claims checked here are
        # unverified; the signature check below covers these exact payload bytes, and nothing is recorded
        # (no jti burnt) before it.
        self._check_claims(unverified, url, issuer)
        key = self._resolve_key(header, kid, issuer)
        _verify_signature(signed, key, alg, issuer.iss)
        claims = unverified  # from here on, verified
        jti = claims["jti"]
        self._check_replay(issuer.iss, jti, claims["exp"])
        sub = claims.get("sub")
        # Confirms the trust set-up to an integrator: which issuer and key signed. Never the token. INFO the
        # first time a key is seen (set.add is atomic under the GIL: at worst a key is logged twice), then DEBUG.
        first = (issuer.iss, kid) not in self._verified_keys
        self._verified_keys.add((issuer.iss, kid))
        log.log(
            logging.INFO if first else logging.DEBUG,
            "caller verified",
            extra={"issuer": issuer.iss, "kid": kid},
        )
        return Caller(
            iss=issuer.iss,
            sub=sub if isinstance(sub, str) else None,
            kid=kid,
            tenant=claims.get("tenant"),
            jti=jti,
            allowed_fhir_bases=issuer.allowed_fhir_bases,
        )

    # -- steps ------------------------------------------------------------------------------------------------

    def _pick_issuer(self, unverified: Mapping[str, Any]) -> TrustedIssuer:
        # The unverified iss/tenant only choose which keys to try; the signature check that follows is
        # what makes them trustworthy.
        iss, tenant = unverified.get("iss"), unverified.get("tenant")
        if not isinstance(iss, str):
            raise AuthenticationError("missing or non-string iss")
        shown = ascii(iss[:200])  # unverified and caller-chosen: bounded and escaped before it reaches a log
        if tenant is not None and not isinstance(tenant, str):
            raise AuthenticationError("non-string tenant", shown)
        issuer = self._trust.lookup(iss, tenant)
        if issuer is None:
            reason = "tenant not trusted for issuer" if self._trust.knows(iss) else "untrusted issuer"
            raise AuthenticationError(reason, shown)
        return issuer

    def _resolve_key(self, header: Mapping[str, Any], kid: str, issuer: TrustedIssuer) -> Key:
        jku = header.get("jku")
        if jku is not None and not (isinstance(jku, str) and issuer.jku_allowed(jku)):
            raise AuthenticationError("jku not on the issuer's allow-list", issuer.iss)
        key = issuer.static_keys.get(kid)  # pinned keys win: no network call when the kid is known
        if key is None and jku is not None:
            key = self._fetcher.get_key(issuer.iss, jku, kid)
        if key is None:
            raise AuthenticationError("unknown kid", issuer.iss)
        return key

    def _check_claims(self, claims: Mapping[str, Any], url: str, issuer: TrustedIssuer) -> None:
        registry = JWTClaimsRegistry(
            now=int(self._now()),
            leeway=self._leeway_s,
            iss={"essential": True, "value": issuer.iss},
            aud={"essential": True, "value": url},
            exp={"essential": True},
            iat={"essential": True},
            jti={"essential": True},
        )
        try:
            registry.validate(dict(claims))
        except ExpiredTokenError:
            raise AuthenticationError("token expired", issuer.iss) from None
        except InvalidClaimError as error:
            if error.claim == "aud":
                raise AuthenticationError(_aud_mismatch(claims.get("aud"), url), issuer.iss) from None
            raise AuthenticationError(
                f"{error.error} {error.claim!r}: {error.description}", issuer.iss
            ) from None
        except MissingClaimError as error:
            raise AuthenticationError(
                f"{error.error} {error.claim!r}: {error.description}", issuer.iss
            ) from None
        if issuer.tenant is not None and claims.get("tenant") != issuer.tenant:
            raise AuthenticationError("tenant mismatch", issuer.iss)
        lifetime = claims["exp"] - claims["iat"]
        if self._max_lifetime_s is not None and lifetime > self._max_lifetime_s:
            raise AuthenticationError(f"lifetime {lifetime:.0f}s over {self._max_lifetime_s}s", issuer.iss)

    def _check_replay(self, iss: str, jti: str, exp: float) -> None:
        try:
            seen = self._replay.seen_before(iss, jti, float(exp) + self._leeway_s)
        except ReplayCacheError as error:
            # Fail closed: without the cache a stolen token could be replayed.
            raise AuthenticationError(f"replay cache unavailable ({error})", iss) from None
        if seen:
            raise AuthenticationError("replayed jti", iss)


# --------------------------------------------------------------------------------------------------------------
# Pure helpers


def _bearer_token(authorization: str | None) -> str:
    if not authorization:
        raise AuthenticationError("missing Authorization header")
    if len(authorization) > MAX_AUTHORIZATION_LENGTH:
        raise AuthenticationError("Authorization header too long")
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer":  # auth schemes are case-insensitive (RFC 7235)
        raise AuthenticationError("Authorization scheme is not Bearer")
    token = token.strip()
    if not _COMPACT_JWS.fullmatch(token):
        raise AuthenticationError("bearer token is not a compact JWS")
    return token


def _parse_unverified(token: str) -> tuple[CompactSignature, Mapping[str, Any], Mapping[str, Any]]:
    try:
        signed = jws.extract_compact(token.encode("ascii"))
    except (JoseError, ValueError) as error:
        raise AuthenticationError(f"undecodable token ({type(error).__name__})") from None
    header = signed.headers()
    if not isinstance(header, Mapping):
        raise AuthenticationError("JWS header is not a JSON object")
    return signed, header, _json_object(signed.payload, None)


def _json_object(payload: bytes, iss: str | None) -> Mapping[str, Any]:
    try:
        claims = json.loads(payload)
    except (ValueError, TypeError):
        raise AuthenticationError("JWT payload is not JSON", iss) from None
    if not isinstance(claims, dict):
        raise AuthenticationError("JWT payload is not a JSON object", iss)
    return claims


def _aud_mismatch(aud: object, expected: str) -> str:
    """The log reason for a wrong ``aud``: what the token names and the exact URL this service expected.

    Both are URLs of this service (no patient data). ``http://127.0.0.1:8080`` and ``http://localhost:8080`` look
    alike in an EHR's set-up screen but are different audiences; behind a proxy set ``IGG4_CDS_PUBLIC_BASE_URL``.
    """
    named = aud if isinstance(aud, str) else ", ".join(str(a) for a in aud) if isinstance(aud, list) else "?"
    return (
        f"aud mismatch: the token's aud is {named[:200]!r}, this service expected {expected[:200]!r} (the URL "
        "called, or IGG4_CDS_PUBLIC_BASE_URL + path); aud must be the exact URL the client called"
    )


def _check_header(header: Mapping[str, Any], issuer: TrustedIssuer) -> tuple[str, str]:
    alg, kid, typ = header.get("alg"), header.get("kid"), header.get("typ")
    # The issuer's allow-list never holds none/HS* (the trust loader refuses them), so this also
    # blocks alg=none and the HS256-with-public-key confusion.
    if not isinstance(alg, str) or alg not in issuer.algorithms:
        raise AuthenticationError(f"alg {str(alg)[:16]!r} not allowed", issuer.iss)
    if not isinstance(kid, str) or not kid:
        raise AuthenticationError("missing kid", issuer.iss)
    if typ is not None and (not isinstance(typ, str) or typ.upper() != "JWT"):
        raise AuthenticationError("typ is not JWT", issuer.iss)
    if "crit" in header or "b64" in header:
        raise AuthenticationError("unsupported critical header", issuer.iss)
    return alg, kid


def _verify_signature(signed: CompactSignature, key: Key, alg: str, iss: str) -> None:
    # A registry allowing exactly the header's (already vetted) alg; extra header fields are tolerated.
    registry = JWSRegistry(algorithms=[alg], strict_check_header=False)
    try:
        valid = jws.validate_compact(signed, key, registry=registry)
    except JoseError as error:  # key type, curve, use or alg of the key do not fit
        raise AuthenticationError(f"key does not fit token ({error.error})", iss) from None
    if not valid:
        raise AuthenticationError("bad signature", iss)


class NoAuthentication:
    """Development mode without a trust file: every call is accepted, with no caller."""

    def verify(self, authorization: str | None, url: str) -> None:
        """Accept the call unauthenticated."""
        return None


class RefuseEveryCall:
    """No trust file outside development mode: every hook and feedback call is refused."""

    def verify(self, authorization: str | None, url: str) -> Caller:
        """Refuse the call (:class:`AuthenticationError`)."""
        raise AuthenticationError("no trust configured and not in development mode")


CallerCheck = Authenticator | NoAuthentication | RefuseEveryCall
"""What authenticates a call: ``verify(authorization, url)`` returns the caller (``None``: unauthenticated)."""


def build_authenticator(settings: Settings) -> CallerCheck:
    """How calls are authenticated: the one decision, from ``trust_file`` and ``dev_mode``.

    A trust file: JWTs are verified (also in dev mode). No trust file: in dev mode calls are accepted
    unauthenticated; otherwise every hook and feedback call is refused (discovery stays open).

    :raises TrustConfigError: when the trust file is invalid.
    """
    if settings.trust_file is not None:
        return Authenticator.from_settings(settings)
    if settings.dev_mode:
        log.warning("dev mode without a trust file: CDS Hooks calls are NOT authenticated")
        return NoAuthentication()
    log.warning("no trust file configured: hook and feedback calls are refused (discovery stays open)")
    return RefuseEveryCall()
