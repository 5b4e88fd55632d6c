"""The one URL policy: normalisation, prefix matching, allow-list entries and FHIR bases."""

from __future__ import annotations

import pytest

from cds_service.fhir.urls import check_allow_url, is_allowed_base, normalise, url_under

# ---------------------------------------------------------------------------------------------------------------
# is_allowed_base
# ---------------------------------------------------------------------------------------------------------------

ALLOWED = ["https://ehr.example/fhir", "https://other.example:8443/r4/"]


@pytest.mark.parametrize(
    ("url", "dev_mode", "expected"),
    [
        ("https://ehr.example/fhir", False, True),
        ("https://ehr.example/fhir/", False, True),
        ("https://EHR.example/fhir", False, True),
        ("https://ehr.example:443/fhir", False, True),
        ("https://ehr.example/fhir/r4", False, True),
        ("https://ehr.example/fhirx", False, False),
        ("https://ehr.example/fhi", False, False),
        ("https://ehr.example/", False, False),
        ("https://ehr.example.evil.com/fhir", False, False),
        ("https://evil.com/ehr.example/fhir", False, False),
        ("https://ehr.example@evil.com/fhir", False, False),
        ("https://user:pw@ehr.example/fhir", False, False),
        ("http://ehr.example/fhir", False, False),
        ("https://ehr.example:8443/fhir", False, False),
        ("https://ehr.example/fhir/../admin", False, False),
        ("https://ehr.example/fhir/%2e%2e/admin", False, False),
        ("https://ehr.example/fhir%2f..%2fadmin", False, False),
        ("https://ehr.example/fhir?x=1", False, False),
        ("https://other.example:8443/r4", False, True),
        ("https://other.example:8443/r4/Patient", False, True),
        ("https://other.example/r4", False, False),
        ("ftp://ehr.example/fhir", False, False),
        ("not a url", False, False),
        ("", False, False),
        ("http://127.0.0.1:8090/fhir", False, False),
        ("http://127.0.0.1:8090/fhir", True, True),
        ("http://127.8.9.10/fhir", True, True),
        ("http://localhost:8090/fhir", True, True),
        ("http://[::1]:8090/fhir", True, True),
        ("http://10.0.0.1/fhir", True, False),
        ("http://localhost.evil.com/fhir", True, False),
        ("https://ehr.example.evil.com/fhir", True, False),
    ],
)
def test_is_allowed_base(url: str, dev_mode: bool, expected: bool) -> None:
    assert is_allowed_base(url, ALLOWED, dev_mode) is expected


def test_plain_http_is_refused_even_when_listed() -> None:
    assert not is_allowed_base("http://plain.example/fhir", ["http://plain.example/fhir"], False)
    assert not is_allowed_base("http://plain.example/fhir", ["http://plain.example/fhir"], True)
    assert is_allowed_base("https://plain.example/fhir", ["https://plain.example/fhir"], False)
    # A listed loopback base (a sidecar on the same host) may be plain http.
    assert is_allowed_base("http://127.0.0.1:8090/fhir", ["http://127.0.0.1:8090/fhir"], False)


def test_is_allowed_base_root_entry_allows_whole_origin_only() -> None:
    assert is_allowed_base("https://ehr.example/any/path", ["https://ehr.example"], False)
    assert not is_allowed_base("https://ehr.example.com/any", ["https://ehr.example"], False)
    assert not is_allowed_base("https://ehr.example/fhir", ["garbage", ""], False)


@pytest.mark.parametrize(
    ("url", "prefix", "expected"),
    [
        ("https://a.org/fhir", "https://a.org/fhir", True),
        ("https://a.org/fhir/", "https://a.org/fhir", True),
        ("https://a.org/fhir/Patient/1", "https://a.org/fhir", True),
        ("https://a.org/fhir/Patient", "https://a.org/fhir/", True),
        ("https://A.ORG:443/fhir", "https://a.org/fhir", True),
        ("https://a.org/fhir-evil", "https://a.org/fhir", False),
        ("https://a.org.evil.com/fhir", "https://a.org", False),
        ("https://a.org@evil.com/fhir", "https://a.org", False),
        ("https://evil.com/fhir", "https://a.org/fhir", False),
        ("http://a.org/fhir", "https://a.org/fhir", False),
        ("https://a.org:8443/fhir", "https://a.org/fhir", False),
        ("https://a.org/fhir/../admin", "https://a.org/fhir", False),
        ("https://a.org/fhir/%2E%2E/admin", "https://a.org/fhir", False),
        ("https://a.org/fhir?x=1", "https://a.org/fhir", False),
        ("https://a.org:bad/fhir", "https://a.org/fhir", False),
    ],
)
def test_url_under(url: str, prefix: str, expected: bool) -> None:
    assert url_under(url, prefix) is expected


def test_check_allow_url_accepts_loopback_http() -> None:
    assert check_allow_url("http://127.0.0.1:8000/jwks.json") == "http://127.0.0.1:8000/jwks.json"


def test_loopback_names_are_one_host_only_when_asked() -> None:
    local, numeric, other = (
        normalise(u)
        for u in ("http://localhost:8090/fhir", "http://127.0.0.1:8090/fhir/x", "http://127.0.0.1:8091/fhir")
    )
    assert local is not None and numeric is not None and other is not None
    assert not local.contains(numeric)
    assert local.contains(numeric, loopback_as_one=True)
    assert not local.contains(other, loopback_as_one=True)  # the port still counts
    public = normalise("https://ehr.example/fhir")
    assert public is not None and not public.contains(
        normalise("https://127.0.0.1/fhir"), loopback_as_one=True
    )
