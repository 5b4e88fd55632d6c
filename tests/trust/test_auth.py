"""CDS Hooks client JWT verification: tables of good and bad tokens minted here, the spec's ES384 vector,
jku fetching from a local HTTP server with key rotation, and replay across two replicas sharing Redis."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
import requests
from joserfc import jwt
from joserfc.jwk import ECKey, Key, RSAKey

from cds_service.errors import AuthenticationError
from cds_service.settings import Settings
from cds_service.trust.authenticator import Authenticator, Caller, build_authenticator
from cds_service.trust.config import (
    TrustConfig,
    TrustConfigError,
    TrustedIssuer,
    load_trust_config,
    parse_jwks,
)
from cds_service.trust.jwks import JwksFetcher
from cds_service.trust.replay import InMemoryReplayCache, RedisReplayCache
from cds_service.web.app import create_app
from tests.paths import REPO
from tests.servers.redis_server import running_redis

NOW = 1_800_000_000
URL = "https://cds.example.org/cds-services/igg4rd-consider"
ISS = "https://ehr.example.org"
TENANT = "hospital-1"
FHIR = "https://ehr.example.org/fhir/r4"

SPEC = REPO.parent / "shared" / "reference" / "cds-hooks" / "examples" / "spec-2.0.1"


@dataclass(frozen=True)
class Keys:
    es: ECKey
    rs: RSAKey
    stranger: ECKey  # a valid key nobody trusts


@pytest.fixture(scope="module")
def keys() -> Keys:
    return Keys(
        es=ECKey.generate_key("P-384", parameters={"kid": "es-1"}),
        rs=RSAKey.generate_key(2048, parameters={"kid": "rs-1"}),
        stranger=ECKey.generate_key("P-384", parameters={"kid": "es-1"}),
    )


def public(*private: Key) -> dict[str, Key]:
    return {str(k.kid): parse_jwks({"keys": [k.as_dict(private=False)]})[str(k.kid)] for k in private}


def trust_for(keys: Keys, **overrides: Any) -> TrustConfig:
    fields: dict[str, Any] = {
        "iss": ISS,
        "tenant": TENANT,
        "algorithms": frozenset({"ES384", "RS384"}),
        "static_keys": public(keys.es, keys.rs),
        "jku_allow": ("https://ehr.example.org/.well-known/jwks.json",),
        "allowed_fhir_bases": (FHIR,),
    }
    fields.update(overrides)
    return TrustConfig((TrustedIssuer(**fields),))


def claims(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "iss": ISS,
        "aud": URL,
        "iat": NOW,
        "exp": NOW + 300,
        "jti": str(uuid.uuid4()),
        "tenant": TENANT,
        "sub": "ehr-client-7",
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not DROP}


DROP = object()  # marks a claim or header to leave out


def mint(key: Key, alg: str = "ES384", header: dict[str, Any] | None = None, **claim_overrides: Any) -> str:
    head: dict[str, Any] = {"alg": alg, "typ": "JWT", "kid": key.kid}
    head.update(header or {})
    head = {k: v for k, v in head.items() if v is not DROP}
    return "Bearer " + jwt.encode(head, claims(**claim_overrides), key, algorithms=[alg])


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def forge(header: dict[str, Any], payload: object, signature: Callable[[bytes], bytes]) -> str:
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(payload).encode())}"
    return f"Bearer {signing_input}.{b64(signature(signing_input.encode()))}"


def hs256_with_public_key(key: Key) -> Callable[[bytes], bytes]:
    # The classic algorithm-confusion attack: HMAC keyed with the verifier's public key.
    assert isinstance(key, ECKey)
    secret = key.as_pem(private=False)
    return lambda data: hmac.new(secret, data, hashlib.sha256).digest()


def make_auth(trust: TrustConfig, now: float = NOW, **options: Any) -> Authenticator:
    return Authenticator(trust, InMemoryReplayCache(clock=lambda: now), now=lambda: now, **options)


# -- good tokens -----------------------------------------------------------------------------------------------

GOOD: list[tuple[str, Callable[[Keys], str]]] = [
    ("ES384", lambda k: mint(k.es)),
    ("RS384", lambda k: mint(k.rs, "RS384")),
    ("aud as array", lambda k: mint(k.es, aud=[URL])),
    ("aud array with others", lambda k: mint(k.es, aud=["https://other.example/x", URL])),
    ("no typ", lambda k: mint(k.es, header={"typ": DROP})),
    ("lowercase scheme", lambda k: mint(k.es).replace("Bearer ", "bearer ")),
    ("exp within leeway", lambda k: mint(k.es, iat=NOW - 300, exp=NOW - 30)),
    ("iat within leeway", lambda k: mint(k.es, iat=NOW + 30, exp=NOW + 330)),
    ("no sub", lambda k: mint(k.es, sub=DROP)),
    (
        "allow-listed jku, pinned kid",
        lambda k: mint(k.es, header={"jku": "https://ehr.example.org/.well-known/jwks.json"}),
    ),
]


@pytest.mark.parametrize("make", [m for _, m in GOOD], ids=[i for i, _ in GOOD])
def test_good_tokens(keys: Keys, make: Callable[[Keys], str]) -> None:
    caller = make_auth(trust_for(keys)).verify(make(keys), URL)
    assert caller.iss == ISS
    assert caller.tenant == TENANT
    assert caller.kid in {"es-1", "rs-1"}


def test_caller_fields(keys: Keys) -> None:
    caller = make_auth(trust_for(keys)).verify(mint(keys.es, jti="jti-1"), URL)
    assert caller == Caller(
        iss=ISS, sub="ehr-client-7", kid="es-1", tenant=TENANT, jti="jti-1", allowed_fhir_bases=(FHIR,)
    )
    assert caller.may_use_fhir_base(FHIR + "/Patient/123")
    assert not caller.may_use_fhir_base("https://evil.example/fhir")


# -- bad tokens ------------------------------------------------------------------------------------------------

BAD: list[tuple[str, Callable[[Keys], str | None], str]] = [
    ("no header", lambda k: None, "missing Authorization"),
    ("empty header", lambda k: "", "missing Authorization"),
    ("Bearer missing", lambda k: mint(k.es).removeprefix("Bearer "), "not Bearer"),
    ("Basic scheme", lambda k: "Basic dXNlcjpwYXNz", "not Bearer"),
    ("Bearer only", lambda k: "Bearer", "not a compact JWS"),
    ("garbage", lambda k: "Bearer garbage!", "not a compact JWS"),
    ("three dots", lambda k: "Bearer a.b.c.d", "not a compact JWS"),
    ("dots only", lambda k: "Bearer ...", "not a compact JWS"),
    ("undecodable parts", lambda k: "Bearer a.b.c", "undecodable"),
    ("huge header", lambda k: "Bearer " + "a" * 20_000, "too long"),
    (
        "payload not object",
        lambda k: forge({"alg": "ES384", "kid": "es-1"}, [], lambda d: b"x"),
        "not a JSON object",
    ),
    (
        "alg none",
        lambda k: forge({"alg": "none", "kid": "es-1"}, claims(), lambda d: b"x"),
        "alg 'none' not allowed",
    ),
    ("alg none, no signature", lambda k: mint(k.es).rsplit(".", 1)[0] + ".", "not a compact JWS"),
    (
        "HS256 keyed with the public key",
        lambda k: forge({"alg": "HS256", "typ": "JWT", "kid": "es-1"}, claims(), hs256_with_public_key(k.es)),
        "alg 'HS256' not allowed",
    ),
    ("RS256 not allowed", lambda k: mint(k.rs, "RS256"), "alg 'RS256' not allowed"),
    (
        "alg/key type mismatch",
        lambda k: forge({"alg": "ES384", "kid": "rs-1"}, claims(), lambda d: b"x" * 96),
        "key does not fit",
    ),
    ("missing kid", lambda k: mint(k.es, header={"kid": DROP}), "missing kid"),
    ("unknown kid", lambda k: mint(k.es, header={"kid": "nope"}), "unknown kid"),
    ("right kid, wrong key", lambda k: mint(k.stranger), "bad signature"),
    ("typ not JWT", lambda k: mint(k.es, header={"typ": "at+jwt"}), "typ is not JWT"),
    (
        "crit header",
        lambda k: forge({"alg": "ES384", "kid": "es-1", "crit": ["exp"], "exp": 1}, claims(), lambda d: b"x"),
        "critical",
    ),
    ("wrong iss", lambda k: mint(k.es, iss="https://evil.example"), "untrusted issuer"),
    ("iss with trailing slash", lambda k: mint(k.es, iss=ISS + "/"), "untrusted issuer"),
    ("missing iss", lambda k: mint(k.es, iss=DROP), "missing or non-string iss"),
    ("wrong aud", lambda k: mint(k.es, aud="https://cds.example.org/cds-services/other"), "aud"),
    ("aud trailing slash", lambda k: mint(k.es, aud=URL + "/"), "aud"),
    (
        "aud other host",
        lambda k: mint(k.es, aud=URL.replace("cds.example.org", "cds.example.org.evil.com")),
        "aud",
    ),
    ("aud array without us", lambda k: mint(k.es, aud=["https://other.example/x"]), "aud"),
    ("missing aud", lambda k: mint(k.es, aud=DROP), "aud"),
    ("expired", lambda k: mint(k.es, iat=NOW - 600, exp=NOW - 61), "expired"),
    ("iat in the future", lambda k: mint(k.es, iat=NOW + 120, exp=NOW + 400), "iat"),
    ("missing exp", lambda k: mint(k.es, exp=DROP), "exp"),
    ("missing iat", lambda k: mint(k.es, iat=DROP), "iat"),
    ("exp as string", lambda k: mint(k.es, exp=str(NOW + 300)), "exp"),
    ("lifetime too long", lambda k: mint(k.es, exp=NOW + 7200), "lifetime"),
    ("missing jti", lambda k: mint(k.es, jti=DROP), "jti"),
    ("empty jti", lambda k: mint(k.es, jti=""), "jti"),
    ("jti not a string", lambda k: mint(k.es, jti=42), "jti"),
    ("wrong tenant", lambda k: mint(k.es, tenant="hospital-2"), "tenant not trusted"),
    ("missing tenant", lambda k: mint(k.es, tenant=DROP), "tenant not trusted"),
    (
        "jku not allow-listed",
        lambda k: mint(k.es, header={"jku": "https://evil.example/jwks.json"}),
        "jku not on",
    ),
    (
        "jku look-alike host",
        lambda k: mint(k.es, header={"jku": "https://ehr.example.org.evil.com/.well-known/jwks.json"}),
        "jku not on",
    ),
]


@pytest.mark.parametrize(("make", "reason"), [(m, r) for _, m, r in BAD], ids=[i for i, _, _ in BAD])
def test_bad_tokens(keys: Keys, make: Callable[[Keys], str | None], reason: str) -> None:
    authorization = make(keys)
    with pytest.raises(AuthenticationError) as caught:
        make_auth(trust_for(keys)).verify(authorization, URL)
    error = caught.value
    assert reason in error.reason
    assert error.status_code == 401
    token = (authorization or "").removeprefix("Bearer ")
    if len(token) > 10:  # never echo the token (or a part of it) into the log line
        for part in token.split("."):
            assert not part or part not in str(error) + error.reason


def test_replayed_jti_is_refused(keys: Keys) -> None:
    auth = make_auth(trust_for(keys))
    token = mint(keys.es)
    auth.verify(token, URL)
    with pytest.raises(AuthenticationError, match="replayed jti"):
        auth.verify(token, URL)


def test_failed_tokens_do_not_burn_their_jti(keys: Keys) -> None:
    auth = make_auth(trust_for(keys))
    auth_header = mint(keys.es, jti="reused")
    with pytest.raises(AuthenticationError):
        auth.verify(auth_header, URL + "/")
    assert auth.verify(auth_header, URL).jti == "reused"


def test_issuer_of_failure_is_recorded(keys: Keys) -> None:
    with pytest.raises(AuthenticationError) as caught:
        make_auth(trust_for(keys)).verify(mint(keys.es, aud="https://x.example"), URL)
    assert caught.value.issuer == ISS


# -- the spec's test vector ------------------------------------------------------------------------------------


@pytest.fixture
def spec_vector() -> tuple[str, dict[str, Any], TrustConfig]:
    if not SPEC.exists():
        pytest.skip("shared/reference not present")
    token = (SPEC / "jwt-compact-ES384.txt").read_text().strip()
    payload = json.loads((SPEC / "jwt-payload.json").read_text())
    header = json.loads((SPEC / "jwt-header.json").read_text())
    issuer = TrustedIssuer(
        iss=payload["iss"],
        tenant=payload["tenant"],
        algorithms=frozenset({"ES384"}),
        static_keys=parse_jwks(json.loads((SPEC / "jwks-public.json").read_text())),
        jku_allow=(header["jku"],),
    )
    return token, payload, TrustConfig((issuer,))


def test_spec_vector_verifies_at_its_iat(spec_vector: tuple[str, dict[str, Any], TrustConfig]) -> None:
    token, payload, trust = spec_vector
    # Its lifetime is years long, so the lifetime cap is lifted for this vector only.
    auth = make_auth(trust, now=payload["iat"], max_lifetime_s=None)
    caller = auth.verify(f"Bearer {token}", payload["aud"])
    assert (caller.iss, caller.kid, caller.jti, caller.tenant) == (
        payload["iss"],
        "example-kid",
        payload["jti"],
        payload["tenant"],
    )


def test_spec_vector_is_expired_today(spec_vector: tuple[str, dict[str, Any], TrustConfig]) -> None:
    token, payload, trust = spec_vector
    auth = Authenticator(trust, InMemoryReplayCache(), max_lifetime_s=None)
    with pytest.raises(AuthenticationError, match="expired"):
        auth.verify(f"Bearer {token}", payload["aud"])


def test_spec_vector_tampered_payload_fails(spec_vector: tuple[str, dict[str, Any], TrustConfig]) -> None:
    token, payload, trust = spec_vector
    head, _, sig = token.split(".")
    forged = b64(json.dumps({**payload, "aud": URL}).encode())
    auth = make_auth(trust, now=payload["iat"], max_lifetime_s=None)
    with pytest.raises(AuthenticationError, match="bad signature"):
        auth.verify(f"Bearer {head}.{forged}.{sig}", URL)


# -- jku fetched from a local server ---------------------------------------------------------------------------


class JwksServer:
    """A tiny loopback HTTP server serving a mutable JWK Set at /jwks.json and counting requests."""

    def __init__(self) -> None:
        self.jwks: dict[str, Any] = {"keys": []}
        self.status = 200
        self.requests = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                outer.requests += 1
                body = json.dumps(outer.jwks).encode()
                self.send_response(outer.status if self.path == "/jwks.json" else 404)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/jwks.json"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def serve(self, *private: Key) -> None:
        self.jwks = {"keys": [k.as_dict(private=False) for k in private]}

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def jwks_server() -> Iterator[JwksServer]:
    server = JwksServer()
    yield server
    server.close()


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def jku_setup(server: JwksServer) -> tuple[Authenticator, Clock]:
    clock = Clock()
    trust = TrustConfig(
        (
            TrustedIssuer(
                iss=ISS, tenant=None, algorithms=frozenset({"ES384"}), static_keys={}, jku_allow=(server.url,)
            ),
        )
    )
    fetcher = JwksFetcher(timeout_s=2.0, min_refetch_interval_s=60.0, cache_ttl_s=3600.0, clock=clock)
    return make_auth(trust, fetcher=fetcher), clock


def test_jku_fetch_cache_and_rotation(jwks_server: JwksServer) -> None:
    old = ECKey.generate_key("P-384", parameters={"kid": "old"})
    new = ECKey.generate_key("P-384", parameters={"kid": "new"})
    jwks_server.serve(old)
    auth, clock = jku_setup(jwks_server)
    jku = {"jku": jwks_server.url}

    assert auth.verify(mint(old, header=jku, tenant=DROP), URL).kid == "old"
    assert jwks_server.requests == 1
    auth.verify(mint(old, header=jku, tenant=DROP), URL)
    assert jwks_server.requests == 1  # cached

    clock.now += 61
    jwks_server.serve(old, new)  # the client rotates in a new key
    assert auth.verify(mint(new, header=jku, tenant=DROP), URL).kid == "new"
    assert jwks_server.requests == 2  # one refetch, triggered by the unknown kid


def test_unknown_kid_refetch_is_rate_limited(jwks_server: JwksServer) -> None:
    known = ECKey.generate_key("P-384", parameters={"kid": "known"})
    jwks_server.serve(known)
    auth, clock = jku_setup(jwks_server)
    jku = {"jku": jwks_server.url}
    auth.verify(mint(known, header=jku, tenant=DROP), URL)
    for n in range(5):  # an attacker sprays made-up kids
        with pytest.raises(AuthenticationError, match="unknown kid"):
            auth.verify(mint(known, header={**jku, "kid": f"made-up-{n}"}, tenant=DROP), URL)
    assert jwks_server.requests == 1
    clock.now += 61
    with pytest.raises(AuthenticationError, match="unknown kid"):
        auth.verify(mint(known, header={**jku, "kid": "made-up-x"}, tenant=DROP), URL)
    assert jwks_server.requests == 2


def test_jku_server_failure_keeps_old_keys(jwks_server: JwksServer) -> None:
    key = ECKey.generate_key("P-384", parameters={"kid": "k"})
    jwks_server.serve(key)
    auth, clock = jku_setup(jwks_server)
    jku = {"jku": jwks_server.url}
    auth.verify(mint(key, header=jku, tenant=DROP), URL)
    jwks_server.status = 500
    clock.now += 3601  # the cached set is stale; the refresh fails
    assert auth.verify(mint(key, header=jku, tenant=DROP), URL).kid == "k"
    assert jwks_server.requests == 2


def test_jku_other_path_on_same_server_is_refused(jwks_server: JwksServer) -> None:
    key = ECKey.generate_key("P-384", parameters={"kid": "k"})
    auth, _ = jku_setup(jwks_server)
    other = jwks_server.url.replace("/jwks.json", "/evil.json")
    with pytest.raises(AuthenticationError, match="jku not on"):
        auth.verify(mint(key, header={"jku": other}, tenant=DROP), URL)
    assert jwks_server.requests == 0


def test_jku_missing_with_no_pinned_keys(jwks_server: JwksServer) -> None:
    key = ECKey.generate_key("P-384", parameters={"kid": "k"})
    jwks_server.serve(key)
    auth, _ = jku_setup(jwks_server)
    with pytest.raises(AuthenticationError, match="unknown kid"):
        auth.verify(mint(key, tenant=DROP), URL)


# -- construction from settings --------------------------------------------------------------------------------


def test_from_settings_with_example_trust_file() -> None:
    auth = Authenticator.from_settings(Settings(trust_file=REPO / "trust.example.json"))
    with pytest.raises(AuthenticationError, match="untrusted issuer"):
        auth.verify(forge({"alg": "ES384", "kid": "x"}, claims(iss="https://x.example"), lambda d: b"x"), URL)


@pytest.mark.parametrize(("leeway_s", "accepted"), [(60, True), (5, False)])
def test_leeway_comes_from_settings(tmp_path: Path, keys: Keys, leeway_s: int, accepted: bool) -> None:
    trust = {"issuers": [{"iss": ISS, "tenant": TENANT, "jwks": {"keys": [keys.es.as_dict(private=False)]}}]}
    (tmp_path / "trust.json").write_text(json.dumps(trust))
    settings = Settings(trust_file=tmp_path / "trust.json", jwt_leeway_s=leeway_s)
    auth = Authenticator.from_settings(settings, now=lambda: NOW)
    token = mint(keys.es, iat=NOW + 30, exp=NOW + 330)  # issued 30 s in the future
    if accepted:
        assert auth.verify(token, URL).iss == ISS
    else:
        with pytest.raises(AuthenticationError, match="iat"):
            auth.verify(token, URL)


def test_build_authenticator_modes(tmp_path: Path) -> None:
    assert build_authenticator(Settings(dev_mode=True, trust_file=None)).verify(None, URL) is None
    with pytest.raises(AuthenticationError, match="no trust configured"):
        build_authenticator(Settings(dev_mode=False, trust_file=None)).verify("Bearer x.y.z", URL)
    assert isinstance(build_authenticator(Settings(trust_file=REPO / "trust.example.json")), Authenticator)
    dev_with_trust = Settings(dev_mode=True, trust_file=REPO / "trust.example.json")
    assert isinstance(build_authenticator(dev_with_trust), Authenticator)
    with pytest.raises(TrustConfigError, match="TRUST_FILE"):
        Authenticator.from_settings(Settings(trust_file=None))


# -- two replicas sharing Redis --------------------------------------------------------------------------------


@pytest.mark.integration
def test_replay_refused_across_replicas(keys: Keys, tmp_path: Path) -> None:
    with running_redis(tmp_path) as url:
        replicas = [
            Authenticator(trust_for(keys), RedisReplayCache.from_url(url), now=lambda: NOW) for _ in range(2)
        ]
        token = mint(keys.es)
        replicas[0].verify(token, URL)
        with pytest.raises(AuthenticationError, match="replayed jti"):
            replicas[1].verify(token, URL)


def test_wrong_aud_names_the_tokens_aud_and_the_expected_url(keys: Keys) -> None:
    local = URL.replace("https://cds.example.org", "http://127.0.0.1:8080")
    with pytest.raises(AuthenticationError) as caught:
        make_auth(trust_for(keys)).verify(mint(keys.es, aud=local), URL)
    assert f"the token's aud is '{local}'" in caught.value.reason
    assert f"this service expected '{URL}'" in caught.value.reason


def test_verification_logs_issuer_and_kid_at_info_once_per_key(
    keys: Keys, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="cds_service.trust.authenticator")
    auth = make_auth(trust_for(keys))
    first, second = mint(keys.es), mint(keys.es)
    auth.verify(first, URL)
    auth.verify(second, URL)
    records = [r for r in caplog.records if r.getMessage() == "caller verified"]
    assert [(r.levelno, r.issuer, r.kid) for r in records] == [
        (logging.INFO, ISS, records[0].kid),
        (logging.DEBUG, ISS, records[0].kid),
    ]
    assert records[0].kid
    for part in (first + "." + second).removeprefix("Bearer ").split("."):
        assert part.removeprefix("Bearer ") not in caplog.text


# -- jku cannot be used to freeze the service (issue 10, hole 1) -----------------------------------------------


def prefix_setup(server: JwksServer, *allowed: str) -> tuple[Authenticator, Clock]:
    clock = Clock()
    trust = TrustConfig(
        (
            TrustedIssuer(
                iss=ISS, tenant=None, algorithms=frozenset({"ES384"}), static_keys={}, jku_allow=allowed
            ),
        )
    )
    fetcher = JwksFetcher(timeout_s=2.0, min_refetch_interval_s=60.0, cache_ttl_s=3600.0, clock=clock)
    return make_auth(trust, fetcher=fetcher), clock


def test_jku_must_equal_an_allowed_url_exactly(jwks_server: JwksServer) -> None:
    key = ECKey.generate_key("P-384", parameters={"kid": "k"})
    jwks_server.serve(key)
    origin = jwks_server.url.rsplit("/", 1)[0]  # an entry naming a whole server is no prefix for jku
    auth, _ = prefix_setup(jwks_server, origin)
    with pytest.raises(AuthenticationError, match="jku not on"):
        auth.verify(mint(key, header={"jku": jwks_server.url}, tenant=DROP), URL)
    assert jwks_server.requests == 0


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"exp": NOW - 600, "iat": NOW - 900}, "expired"),
        ({"iat": NOW + 600, "exp": NOW + 900}, "iat"),
        ({"aud": "https://elsewhere.example/x"}, "aud"),
        ({"exp": NOW + 86_400}, "lifetime"),
        ({"jti": DROP}, "jti"),
    ],
)
def test_cheap_checks_run_before_any_key_fetch(
    jwks_server: JwksServer, overrides: dict[str, Any], reason: str
) -> None:
    key = ECKey.generate_key("P-384", parameters={"kid": "k"})
    jwks_server.serve(key)
    auth, _ = prefix_setup(jwks_server, jwks_server.url)
    with pytest.raises(AuthenticationError, match=reason):
        auth.verify(mint(key, header={"jku": jwks_server.url}, tenant=DROP, **overrides), URL)
    assert jwks_server.requests == 0


def test_forged_token_with_disallowed_alg_fetches_nothing(jwks_server: JwksServer) -> None:
    auth, _ = prefix_setup(jwks_server, jwks_server.url)
    forged = forge({"alg": "RS256", "kid": "x", "jku": jwks_server.url}, claims(tenant=DROP), lambda d: b"x")
    with pytest.raises(AuthenticationError, match="not allowed"):
        auth.verify(forged, URL)
    assert jwks_server.requests == 0


def test_unknown_kid_refresh_is_limited_per_issuer_not_per_url(jwks_server: JwksServer) -> None:
    key = ECKey.generate_key("P-384", parameters={"kid": "k"})
    jwks_server.serve(key)
    second = jwks_server.url.replace("/jwks.json", "/jwks.json/")  # a second allow-listed spelling
    auth, clock = prefix_setup(jwks_server, jwks_server.url, second)
    for n, jku in enumerate([jwks_server.url, second, jwks_server.url, second]):
        with pytest.raises(AuthenticationError, match="unknown kid"):
            auth.verify(mint(key, header={"jku": jku, "kid": f"made-up-{n}"}, tenant=DROP), URL)
    assert jwks_server.requests == 1
    clock.now += 61
    with pytest.raises(AuthenticationError, match="unknown kid"):
        auth.verify(mint(key, header={"jku": second, "kid": "made-up-x"}, tenant=DROP), URL)
    assert jwks_server.requests == 2


def test_key_set_cache_is_bounded(jwks_server: JwksServer) -> None:
    keys_ = [ECKey.generate_key("P-384", parameters={"kid": f"k{n}"}) for n in range(5)]
    jwks_server.serve(*keys_)
    fetcher = JwksFetcher(timeout_s=2.0, max_sets=2, max_keys_per_set=3)
    for n in range(4):
        fetcher.get_key(f"issuer-{n}", f"{jwks_server.url}?n={n}", "k0")
    assert fetcher.cached_sets() <= 2
    capped = JwksFetcher(timeout_s=2.0, max_keys_per_set=3)
    assert capped.get_key("issuer", jwks_server.url, "k0") is not None
    assert capped.get_key("issuer", jwks_server.url, "k4") is None  # only the first three keys are kept


def test_key_fetch_does_not_block_the_event_loop(tmp_path: Path) -> None:
    """A forged token naming the allow-listed jku of a slow key server must not stall /healthz."""
    slow = JwksServer()
    delay = 1.5
    original = slow.httpd.RequestHandlerClass.do_GET  # type: ignore[attr-defined]

    def slow_get(handler: Any) -> None:
        threading.Event().wait(delay)
        original(handler)

    slow.httpd.RequestHandlerClass.do_GET = slow_get  # type: ignore[attr-defined]
    try:
        trust = {"issuers": [{"iss": ISS, "jku_allow": [slow.url], "algorithms": ["ES384"]}]}
        (tmp_path / "trust.json").write_text(json.dumps(trust))
        settings = Settings(
            trust_file=tmp_path / "trust.json",
            public_base_url="https://cds.example.org",
            database_url=f"sqlite:///{tmp_path / 'f.sqlite3'}",
            replay_db_file=tmp_path / "replay.sqlite3",
        )
        app = create_app(settings)
        now = int(time.time())
        forged = forge(
            {"alg": "ES384", "kid": "made-up", "jku": slow.url},
            claims(
                aud="https://cds.example.org/cds-services/igg4rd-patient-view",
                iat=now,
                exp=now + 300,
                tenant=DROP,
            ),
            lambda d: b"x" * 96,
        )

        async def scenario() -> float:
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="https://cds.example.org") as http:
                started = time.perf_counter()
                call = asyncio.create_task(
                    http.post("/cds-services/igg4rd-patient-view", json={}, headers={"Authorization": forged})
                )
                await asyncio.sleep(0.1)  # the call is now waiting for the key server
                health = await http.get("/healthz")
                took = time.perf_counter() - started
                assert health.status_code == 200
                assert (await call).status_code == 401
                return took

        assert asyncio.run(scenario()) < 0.8  # the key server takes 1.5 s
        assert slow.requests == 1
    finally:
        slow.close()


class NoNetwork(requests.Session):
    def request(self, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        raise AssertionError("no key fetch expected")


def test_example_trust_file_sandbox_jku_is_exact() -> None:
    trust = load_trust_config(REPO / "trust.example.json")
    sandbox = trust.lookup("https://sandbox.cds-hooks.org", None)
    assert sandbox is not None and sandbox.jku_allow
    auth = make_auth(trust, fetcher=JwksFetcher(session=NoNetwork()))
    for jku in [sandbox.jku_allow[0] + "/x", sandbox.jku_allow[0].rsplit("/", 1)[0] + "/other.json"]:
        forged = forge(
            {"alg": "ES384", "kid": "made-up", "jku": jku},
            claims(iss="https://sandbox.cds-hooks.org", tenant=DROP),
            lambda d: b"x" * 96,
        )
        with pytest.raises(AuthenticationError, match="jku not on"):
            auth.verify(forged, URL)


def test_drip_fed_key_set_is_abandoned_at_the_timeout() -> None:
    drip = JwksServer()

    def dripping(handler: Any) -> None:
        handler.send_response(200)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", "100000")
        handler.end_headers()
        for _ in range(100):
            handler.wfile.write(b" ")
            handler.wfile.flush()
            if threading.Event().wait(0.05):
                break

    drip.httpd.RequestHandlerClass.do_GET = dripping  # type: ignore[attr-defined]
    try:
        fetcher = JwksFetcher(timeout_s=0.5)
        started = time.monotonic()
        assert fetcher.get_key(ISS, drip.url, "k") is None
        assert time.monotonic() - started < 1.5
    finally:
        drip.close()
