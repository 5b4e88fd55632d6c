from datetime import UTC, datetime

from joserfc import jwt
from joserfc.jwk import RSAKey

from cds_service.audit.bulk import MAX_WAIT_S, BackendServices, BulkClient, retry_after_seconds


def test_retry_after_in_seconds_or_as_a_date():
    now = datetime(2026, 12, 1, 4, 0, 0, tzinfo=UTC)
    assert retry_after_seconds("3", now) == 3
    assert retry_after_seconds("Tue, 01 Dec 2026 04:00:07 GMT", now) == 7
    assert retry_after_seconds("Tue, 01 Dec 2026 03:00:00 GMT", now) == 0
    assert retry_after_seconds("100000", now) == MAX_WAIT_S
    assert retry_after_seconds(None, now, default=1.5) == 1.5
    assert retry_after_seconds("soon", now, default=1.5) == 1.5


def test_the_client_assertion_is_what_backend_services_requires():
    key = RSAKey.generate_key(2048)
    pem = key.as_pem(private=True)
    client = BackendServices(
        "audit-client", pem, token_url="https://ehr.example/token", clock=lambda: 1_800_000_000
    )
    token = jwt.decode(client.assertion(), key, algorithms=["RS384"])
    assert token.header["alg"] == "RS384" and token.header["kid"] == key.thumbprint()
    claims = token.claims
    assert claims["iss"] == claims["sub"] == "audit-client"
    assert claims["aud"] == "https://ehr.example/token"
    assert claims["exp"] - 1_800_000_000 == 300
    assert len(claims["jti"]) == 32 and client.assertion() != client.assertion()


def test_kickoff_urls_by_level():
    assert BulkClient("http://h/fhir/").kickoff_url() == "http://h/fhir/$export"
    assert BulkClient("http://h/fhir", level="patient").kickoff_url() == "http://h/fhir/Patient/$export"
    assert BulkClient("http://h/fhir", group="g1").kickoff_url() == "http://h/fhir/Group/g1/$export"
