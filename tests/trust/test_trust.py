"""Trust file loading: valid files, refused files (with the field named), URL prefix matching."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from cds_service.trust.config import (
    KeySetError,
    TrustConfigError,
    load_trust_config,
    parse_jwks,
)
from tests.paths import REPO

REFERENCE = REPO.parent / "shared" / "reference" / "cds-hooks" / "examples"
SANDBOX_JWKS = REFERENCE / "sandbox" / "sandbox-public-jwks.json"
INFERNO_JWKS = REFERENCE / "inferno-crd" / "crd_jwks__public-only.json"
SPEC = REFERENCE / "spec-2.0.1"

needs_reference = pytest.mark.skipif(not SANDBOX_JWKS.exists(), reason="shared/reference not present")


def _jwks(path: Path) -> dict[str, Any]:
    return dict(json.loads(path.read_text()))


def _write(tmp_path: Path, doc: object, name: str = "trust.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(doc))
    return path


def _issuer(**fields: Any) -> dict[str, Any]:
    entry: dict[str, Any] = {"iss": "https://ehr.example.org", "jku_allow": ["https://ehr.example.org/jwks"]}
    entry.update(fields)
    return entry


def test_example_file_loads() -> None:
    config = load_trust_config(REPO / "trust.example.json")
    sandbox = config.lookup("https://sandbox.cds-hooks.org", None)
    assert sandbox is not None
    assert sandbox.jku_allowed("https://sandbox.cds-hooks.org/.well-known/jwks.json")
    assert "44823f3d-0b01-4a6c-a80e-b9d3e8a7226f" in sandbox.static_keys
    ehr = config.lookup("https://ehr.example.org", "example-hospital")
    assert ehr is not None
    assert ehr.algorithms == {"ES384", "RS384"}
    assert config.lookup("https://ehr.example.org", "someone-else") is None


@needs_reference
@pytest.mark.parametrize(
    "path", [SANDBOX_JWKS, INFERNO_JWKS, SPEC / "jwks-public.json"], ids=lambda p: p.name
)
def test_reference_key_sets_import(path: Path) -> None:
    assert parse_jwks(_jwks(path))


def test_defaults_and_jwks_file_relative_to_trust_file(tmp_path: Path) -> None:
    (tmp_path / "keys").mkdir()
    (tmp_path / "keys" / "ehr.json").write_text(SANDBOX_JWKS.read_text())
    path = _write(tmp_path, {"issuers": [{"iss": "https://ehr.example.org", "jwks_file": "keys/ehr.json"}]})
    (issuer,) = load_trust_config(path).issuers
    assert issuer.algorithms == {"ES384", "RS384"}
    assert issuer.tenant is None
    assert issuer.jku_allow == ()
    assert len(issuer.static_keys) == 1


def test_toml(tmp_path: Path) -> None:
    path = tmp_path / "trust.toml"
    path.write_text(
        '[[issuers]]\niss = "https://ehr.example.org"\ntenant = "t1"\n'
        'jku_allow = ["https://ehr.example.org/jwks"]\nallowed_fhir_bases = ["https://ehr.example.org/fhir"]\n'
    )
    (issuer,) = load_trust_config(path).issuers
    assert issuer.tenant == "t1"
    assert issuer.allowed_fhir_bases == ("https://ehr.example.org/fhir",)


def test_tenant_specific_entry_wins_over_generic(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        {"issuers": [_issuer(allowed_fhir_bases=["https://a.org/fhir"]), _issuer(tenant="t1")]},
    )
    config = load_trust_config(path)
    assert config.lookup("https://ehr.example.org", "t1").tenant == "t1"  # type: ignore[union-attr]
    assert config.lookup("https://ehr.example.org", "t2").tenant is None  # type: ignore[union-attr]
    assert config.lookup("https://ehr.example.org", None).tenant is None  # type: ignore[union-attr]


PRIVATE_JWK = {
    "kty": "EC",
    "d": "SeFXUXda8UomZ8GFUl7HH_Oi15rIbfMcsWj9ecIsDR8kLbqsEz2CGNgwy_IcILxy",
    "crv": "P-384",
    "kid": "example-kid",
    "x": "46SDH7Znh821wblCBglA61sNE9ZrHYKKt3qRtRTmSXyOI_FIGBLWrWa0GPUkDCEk",
    "y": "XMcRuuoGW7CXjQdy-F5i3FeBE0x9hPLdeFdSoDd3ELmx404tLX0VRRcqzAsPhXcI",
}
PUBLIC_JWK = {k: v for k, v in PRIVATE_JWK.items() if k != "d"}

BAD_FILES: list[tuple[str, object, str]] = [
    ("alg none", {"issuers": [_issuer(algorithms=["none"])]}, "issuers[0].algorithms"),
    ("alg HS256", {"issuers": [_issuer(algorithms=["ES384", "HS256"])]}, "symmetric"),
    ("alg unknown", {"issuers": [_issuer(algorithms=["ES999"])]}, "issuers[0].algorithms"),
    ("alg empty", {"issuers": [_issuer(algorithms=[])]}, "issuers[0].algorithms"),
    (
        "no key source",
        {"issuers": [{"iss": "https://ehr.example.org"}]},
        "'jwks', 'jwks_file' or 'jku_allow'",
    ),
    (
        "jwks and jwks_file",
        {"issuers": [_issuer(jwks={"keys": [PUBLIC_JWK]}, jwks_file="x.json")]},
        "not both",
    ),
    ("private key", {"issuers": [_issuer(jwks={"keys": [PRIVATE_JWK]})]}, "private key material"),
    ("oct key", {"issuers": [_issuer(jwks={"keys": [{"kty": "oct", "k": "c2VjcmV0", "kid": "s"}]})]}, "kty"),
    ("missing kid", {"issuers": [_issuer(jwks={"keys": [{**PUBLIC_JWK, "kid": ""}]})]}, "kid"),
    ("duplicate kid", {"issuers": [_issuer(jwks={"keys": [PUBLIC_JWK, PUBLIC_JWK]})]}, "duplicate kid"),
    ("enc key", {"issuers": [_issuer(jwks={"keys": [{**PUBLIC_JWK, "use": "enc"}]})]}, "signature key"),
    (
        "broken key",
        {"issuers": [_issuer(jwks={"keys": [{**PUBLIC_JWK, "x": "AAAA"}]})]},
        "cannot be imported",
    ),
    ("jwks not a set", {"issuers": [_issuer(jwks={"kty": "EC"})]}, "issuers[0].jwks"),
    ("http jku", {"issuers": [_issuer(jku_allow=["http://ehr.example.org/jwks"])]}, "issuers[0].jku_allow"),
    ("jku with query", {"issuers": [_issuer(jku_allow=["https://e.org/jwks?x=1"])]}, "query"),
    ("relative fhir base", {"issuers": [_issuer(allowed_fhir_bases=["/fhir"])]}, "allowed_fhir_bases"),
    ("dot segments", {"issuers": [_issuer(allowed_fhir_bases=["https://e.org/a/%2e%2e/b"])]}, "'..'"),
    ("duplicate issuer", {"issuers": [_issuer(), _issuer()]}, "listed twice"),
    ("typo field", {"issuers": [_issuer(jku_alow=["https://e.org/"])]}, "issuers[0].jku_alow"),
    ("empty iss", {"issuers": [_issuer(iss="")]}, "issuers[0].iss"),
    ("no issuers", {"issuers": []}, "issuers"),
    ("not an object", [1, 2], "(top level)"),
]


@pytest.mark.parametrize(
    ("doc", "expected"), [(d, e) for _, d, e in BAD_FILES], ids=[i for i, _, _ in BAD_FILES]
)
def test_bad_files_are_refused_naming_the_problem(tmp_path: Path, doc: object, expected: str) -> None:
    path = _write(tmp_path, doc)
    with pytest.raises(TrustConfigError) as caught:
        load_trust_config(path)
    assert expected in str(caught.value)
    assert str(path) in str(caught.value)


def test_missing_file_and_bad_json(tmp_path: Path) -> None:
    with pytest.raises(TrustConfigError, match="cannot read"):
        load_trust_config(tmp_path / "absent.json")
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(TrustConfigError, match="not valid json"):
        load_trust_config(tmp_path / "bad.json")


def test_missing_jwks_file_names_the_field(tmp_path: Path) -> None:
    path = _write(tmp_path, {"issuers": [{"iss": "https://e.org", "jwks_file": "nope.json"}]})
    with pytest.raises(TrustConfigError, match=r"issuers\[0\]\.jwks_file"):
        load_trust_config(path)


def test_fetched_sets_skip_bad_keys() -> None:
    keys = parse_jwks(
        {"keys": [PRIVATE_JWK, {"kty": "oct", "k": "AA", "kid": "s"}, PUBLIC_JWK]}, strict=False
    )
    assert list(keys) == ["example-kid"]
    with pytest.raises(KeySetError):
        parse_jwks({"keys": "nope"}, strict=False)
