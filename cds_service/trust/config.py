"""Trust configuration: which CDS Clients (JWT issuers) the service accepts, with which keys and algorithms.

The configuration is one JSON or TOML file (``settings.trust_file``) shaped as::

    {"issuers": [{"iss": "...", "tenant": null, "jwks": {"keys": [...]}, "jwks_file": null,
                  "jku_allow": ["https://..."], "algorithms": ["ES384", "RS384"],
                  "allowed_fhir_bases": ["https://..."]}]}

CDS Hooks 2.0.1 ("Trusting CDS Clients") asks services to keep an allowlist of ``iss`` and ``jku`` URLs and
forbids ``none`` and symmetric (HMAC) algorithms; this module refuses a file that would allow either.
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from joserfc.errors import JoseError
from joserfc.jwk import Key, import_key
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from cds_service.fhir.urls import check_allow_url

#: Asymmetric JWS algorithms a trust file may allow. Everything else (``none``, ``HS*``) is refused.
SUPPORTED_ALGORITHMS = frozenset(
    {"ES256", "ES384", "ES512", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "EdDSA"}
)
#: The two algorithms CDS Hooks 2.0.1 recommends.
DEFAULT_ALGORITHMS = ("ES384", "RS384")

_PUBLIC_KEY_TYPES = frozenset({"EC", "RSA", "OKP"})
_PRIVATE_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})


class TrustConfigError(ValueError):
    """The trust file is missing, unreadable or invalid; the message names the file and the field."""


class KeySetError(ValueError):
    """A JWK Set (inline, from a file or fetched from a ``jku``) is not a usable set of public keys."""


# --------------------------------------------------------------------------------------------------------------
# Keys


def parse_jwks(data: object, *, strict: bool = True) -> dict[str, Key]:
    """Import a JWK Set (``{"keys": [...]}``) into public keys by ``kid``.

    With ``strict`` (configuration files) any unusable key is an error; without it (sets fetched from a
    ``jku``) unusable keys are skipped so one odd key does not lock out the others. Private key material,
    symmetric keys, keys without a ``kid``, keys not meant for signatures and duplicate ``kid`` s are never
    accepted.
    """
    if not isinstance(data, Mapping) or not isinstance(data.get("keys"), list):
        raise KeySetError("a JWK Set must be an object with a 'keys' array")
    keys: dict[str, Key] = {}
    for index, raw in enumerate(data["keys"]):
        try:
            kid, key = _parse_jwk(raw)
            if kid in keys:
                raise KeySetError(f"duplicate kid {kid!r}")
        except KeySetError as error:
            if strict:
                raise KeySetError(f"keys[{index}]: {error}") from None
            continue
        keys[kid] = key
    if strict and not keys:
        raise KeySetError("the JWK Set has no keys")
    return keys


def _parse_jwk(raw: object) -> tuple[str, Key]:
    if not isinstance(raw, Mapping):
        raise KeySetError("a JWK must be an object")
    kid = raw.get("kid")
    if not isinstance(kid, str) or not kid:
        raise KeySetError("every key needs a non-empty 'kid' (CDS Hooks resolves keys by kid)")
    if raw.get("kty") not in _PUBLIC_KEY_TYPES:
        raise KeySetError(f"key {kid!r}: kty must be one of {sorted(_PUBLIC_KEY_TYPES)}")
    if _PRIVATE_MEMBERS & raw.keys():
        # A trust file or a published key set must hold public keys only; refuse rather than strip.
        raise KeySetError(f"key {kid!r} contains private key material")
    if raw.get("use", "sig") != "sig":
        raise KeySetError(f"key {kid!r} is not a signature key (use={raw.get('use')!r})")
    alg = raw.get("alg")
    if alg is not None and alg not in SUPPORTED_ALGORITHMS:
        raise KeySetError(f"key {kid!r} names an unsupported alg {alg!r}")
    try:
        key = import_key(dict(raw))
    except (JoseError, ValueError, TypeError, KeyError) as error:
        raise KeySetError(f"key {kid!r} cannot be imported: {type(error).__name__}") from None
    return kid, key


# --------------------------------------------------------------------------------------------------------------
# File schema (pydantic) and the resolved, immutable configuration


class IssuerEntry(BaseModel):
    """One trusted issuer as written in the trust file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    iss: str = Field(min_length=1, description="Exact `iss` claim of the CDS Client's JWTs.")
    tenant: str | None = Field(None, min_length=1, description="Required `tenant` claim, if any.")
    description: str | None = Field(None, description="Free text for operators; ignored.")
    jwks: dict[str, Any] | None = Field(None, description="Inline JWK Set of the issuer's public keys.")
    jwks_file: Path | None = Field(None, description="JWK Set file, relative to the trust file.")
    jku_allow: list[str] = Field(default_factory=list, description="Allowed `jku` URLs (exact match).")
    algorithms: list[str] = Field(default_factory=lambda: list(DEFAULT_ALGORITHMS))
    allowed_fhir_bases: list[str] = Field(default_factory=list, description="Allowed fhirServer prefixes.")

    @field_validator("algorithms")
    @classmethod
    def _check_algorithms(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("at least one algorithm is required")
        for alg in value:
            if alg.lower() == "none" or alg.upper().startswith("HS"):
                raise ValueError(
                    f"{alg!r} is forbidden by CDS Hooks (no 'none', no symmetric/HMAC algorithms)"
                )
            if alg not in SUPPORTED_ALGORITHMS:
                raise ValueError(f"{alg!r} is not one of {sorted(SUPPORTED_ALGORITHMS)}")
        return value

    @field_validator("jku_allow", "allowed_fhir_bases")
    @classmethod
    def _check_urls(cls, value: list[str]) -> list[str]:
        return [check_allow_url(url) for url in value]

    @field_validator("jwks")
    @classmethod
    def _check_jwks(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is not None:
            parse_jwks(value)  # KeySetError is a ValueError: pydantic reports it under "jwks"
        return value

    @model_validator(mode="after")
    def _check_key_source(self) -> IssuerEntry:
        if self.jwks is None and self.jwks_file is None and not self.jku_allow:
            raise ValueError("give the issuer's keys as 'jwks', 'jwks_file' or 'jku_allow'")
        if self.jwks is not None and self.jwks_file is not None:
            raise ValueError("give either 'jwks' or 'jwks_file', not both")
        return self


class TrustFile(BaseModel):
    """The whole trust file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    issuers: list[IssuerEntry] = Field(min_length=1)

    @model_validator(mode="after")
    def _check_unique(self) -> TrustFile:
        seen: set[tuple[str, str | None]] = set()
        for entry in self.issuers:
            pair = (entry.iss, entry.tenant)
            if pair in seen:
                raise ValueError(f"issuer {entry.iss!r} with tenant {entry.tenant!r} is listed twice")
            seen.add(pair)
        return self


@dataclass(frozen=True)
class TrustedIssuer:
    """A trusted issuer, resolved: pinned keys imported, lists frozen."""

    iss: str
    tenant: str | None
    algorithms: frozenset[str]
    static_keys: Mapping[str, Key] = field(repr=False)
    jku_allow: tuple[str, ...] = ()
    allowed_fhir_bases: tuple[str, ...] = ()

    def jku_allowed(self, jku: str) -> bool:
        """Whether ``jku`` is exactly one of this issuer's allowed jku URLs (no prefixes: every other
        URL, even on the same server, is refused without a fetch)."""
        return jku in self.jku_allow


@dataclass(frozen=True)
class TrustConfig:
    """All trusted issuers. Look-ups are by exact ``iss`` (and ``tenant`` when an entry names one)."""

    issuers: tuple[TrustedIssuer, ...]

    def knows(self, iss: str) -> bool:
        """Whether any entry has this ``iss``."""
        return any(issuer.iss == iss for issuer in self.issuers)

    def lookup(self, iss: str, tenant: str | None) -> TrustedIssuer | None:
        """The entry for ``iss`` whose tenant is ``tenant``, else its tenant-less entry, else None."""
        fallback = None
        for issuer in self.issuers:
            if issuer.iss != iss:
                continue
            if issuer.tenant is not None and issuer.tenant == tenant:
                return issuer
            if issuer.tenant is None:
                fallback = issuer
        return fallback


def load_trust_config(path: Path) -> TrustConfig:
    """Read, validate and resolve the trust file at ``path`` (``.toml`` is TOML, anything else JSON).

    :raises TrustConfigError: naming the file and the offending field.
    """
    raw = _read_file(path)
    try:
        parsed = TrustFile.model_validate(raw)
    except ValidationError as error:
        raise TrustConfigError(f"{path}: {_describe(error)}") from None
    return TrustConfig(tuple(_resolve(entry, index, path) for index, entry in enumerate(parsed.issuers)))


def _read_file(path: Path) -> object:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise TrustConfigError(f"{path}: cannot read trust file ({error.strerror})") from None
    try:
        return tomllib.loads(text) if path.suffix.lower() == ".toml" else json.loads(text)
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as error:
        raise TrustConfigError(f"{path}: not valid {path.suffix.lstrip('.') or 'JSON'}: {error}") from None


def _describe(error: ValidationError) -> str:
    problems = []
    for item in error.errors():
        where = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in item["loc"]).lstrip(
            "."
        )
        problems.append(f"{where or '(top level)'}: {item['msg']}")
    return "; ".join(problems)


def _resolve(entry: IssuerEntry, index: int, trust_path: Path) -> TrustedIssuer:
    keys: dict[str, Key] = {}
    if entry.jwks is not None:
        keys = parse_jwks(entry.jwks)
    elif entry.jwks_file is not None:
        keys = _load_jwks_file(entry.jwks_file, index, trust_path)
    return TrustedIssuer(
        iss=entry.iss,
        tenant=entry.tenant,
        algorithms=frozenset(entry.algorithms),
        static_keys=keys,
        jku_allow=tuple(entry.jku_allow),
        allowed_fhir_bases=tuple(entry.allowed_fhir_bases),
    )


def _load_jwks_file(jwks_file: Path, index: int, trust_path: Path) -> dict[str, Key]:
    where = f"{trust_path}: issuers[{index}].jwks_file"
    # Relative paths are relative to the trust file, so a config directory can be moved as a whole.
    full = jwks_file if jwks_file.is_absolute() else trust_path.parent / jwks_file
    try:
        return parse_jwks(json.loads(full.read_text(encoding="utf-8")))
    except OSError as error:
        raise TrustConfigError(f"{where}: cannot read {full} ({error.strerror})") from None
    except (json.JSONDecodeError, KeySetError) as error:
        raise TrustConfigError(f"{where}: {full}: {error}") from None
