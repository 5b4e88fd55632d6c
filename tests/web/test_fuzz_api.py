"""Schemathesis against the app's own OpenAPI document, in-process (ASGI, no network).

The app runs in dev mode (no authentication) with a throwaway SQLite feedback store in ``tmp_path``.
Every generated call, schema-conforming or not, must get a non-5xx answer whose body (when there is
one) is JSON, with no stack trace; every non-2xx answer other than 401 must be a FHIR OperationOutcome.

The hook endpoint's body is read raw and is not declared in the OpenAPI document, so schemathesis
exercises paths, service ids, query strings and headers here; ``test_fuzz_requests.py`` drives the
bodies. Bounded and reproducible: a fixed number of examples per operation, derandomized, no example
database.
"""

from __future__ import annotations

import json

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from starlette.testclient import TestClient

from cds_service.hooks.discovery import SERVICES
from cds_service.settings import Settings
from cds_service.web.app import create_app
from tests.conftest import EVALUATION_DATE

MAX_EXAMPLES = 100
FUZZ_SETTINGS = settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)

DISCOVERY = ("/cds-services", "GET")
HOOK = ("/cds-services/{service_id}", "POST")
FEEDBACK = ("/cds-services/{service_id}/feedback", "POST")
KNOWN_ID = SERVICES[0].id

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=20,
)
RAW_BODIES = st.one_of(
    st.binary(max_size=256),
    st.text(max_size=256).map(str.encode),
    JSON_VALUES.map(lambda v: json.dumps(v).encode()),
    st.just(b""),
    st.just(b"\xff\xfe{"),
    st.just(b'{"hook": "order-sign"'),
)
CONTENT_TYPES = st.sampled_from(
    ["application/json", "application/fhir+json", "text/plain", "application/x-www-form-urlencoded", ""]
)

CASES = [
    pytest.param(DISCOVERY, GenerationMode.POSITIVE, None, id="discovery"),
    pytest.param(HOOK, GenerationMode.POSITIVE, None, id="hook-any-id"),
    pytest.param(HOOK, GenerationMode.POSITIVE, KNOWN_ID, id="hook-raw-body"),
    pytest.param(HOOK, GenerationMode.POSITIVE, KNOWN_ID, id="hook-known-id"),
    pytest.param(FEEDBACK, GenerationMode.POSITIVE, None, id="feedback-any-id"),
    pytest.param(FEEDBACK, GenerationMode.POSITIVE, KNOWN_ID, id="feedback-raw-body"),
    pytest.param(FEEDBACK, GenerationMode.POSITIVE, KNOWN_ID, id="feedback-known-id"),
]


@pytest.fixture(scope="module")
def api_schema(tmp_path_factory: pytest.TempPathFactory):
    tmp = tmp_path_factory.mktemp("fuzz-api")
    app = create_app(
        Settings(dev_mode=True, database_url=f"sqlite:///{tmp}/fb.sqlite3", log_level="WARNING"),
        today=lambda: EVALUATION_DATE,
    )
    return schemathesis.openapi.from_asgi("/openapi.json", app)


def check_response(response) -> None:
    """No 5xx, no stack trace, JSON bodies, OperationOutcome for every non-2xx except 401."""
    status = response.status_code
    text = response.text
    assert status < 500, f"{status}: {text[:500]}"
    assert "Traceback" not in text
    if not response.content:
        assert status in (200, 401), f"{status} with an empty body"
        return
    body = json.loads(response.content)
    if status >= 400 and status != 401:
        assert isinstance(body, dict), body
        assert body.get("resourceType") == "OperationOutcome", body
        assert body.get("issue"), body


def test_openapi_lists_the_three_operations(api_schema) -> None:
    operations = {(op.path, op.method.upper()) for op in (r.ok() for r in api_schema.get_all_operations())}
    assert operations == {DISCOVERY, HOOK, FEEDBACK}


@pytest.mark.parametrize(("operation", "mode", "service_id"), CASES)
def test_no_server_error_and_json_bodies(request, api_schema, operation, mode, service_id) -> None:
    path, method = operation
    path_parameters = {"service_id": service_id} if service_id else None
    strategy = api_schema[path][method].as_strategy(mode, path_parameters=path_parameters)
    raw = request.node.callspec.id.endswith("raw-body")
    bodies = RAW_BODIES if raw else st.none()

    @FUZZ_SETTINGS
    @given(
        case=strategy,
        query=st.dictionaries(st.text(max_size=8), st.text(max_size=16), max_size=2),
        body=bodies,
        content_type=CONTENT_TYPES,
    )
    def run(case, query, body, content_type) -> None:
        if query and not case.query:
            case.query = query
        kwargs = {}
        if body is not None:
            kwargs = {"data": body, "headers": {"Content-Type": content_type}}
        response = case.call_and_validate(checks=[not_a_server_error], **kwargs)
        check_response(response)

    run()


# ------------------------------------------------------------------ outside the OpenAPI document


@pytest.fixture(scope="module")
def raw_client(api_schema) -> TestClient:
    return TestClient(api_schema.app, raise_server_exceptions=False)


ODD_CALLS = [
    ("PUT", "/cds-services"),
    ("DELETE", f"/cds-services/{KNOWN_ID}"),
    ("GET", f"/cds-services/{KNOWN_ID}"),
    ("PATCH", f"/cds-services/{KNOWN_ID}/feedback"),
    ("HEAD", "/cds-services"),
    ("OPTIONS", "/cds-services"),
    ("GET", "/nope"),
    ("POST", f"/cds-services/{KNOWN_ID}/feedback/extra"),
    ("POST", "/cds-services/%ff%fe"),
    ("POST", "/cds-services/..%2f..%2fetc%2fpasswd"),
    ("POST", "/cds-services/" + "x" * 5000),
    ("GET", "/cds-services?" + "a=1&" * 500),
]


@pytest.mark.parametrize(("method", "path"), ODD_CALLS, ids=[f"{m} {p[:40]}" for m, p in ODD_CALLS])
def test_calls_outside_the_document(raw_client, method, path) -> None:
    response = raw_client.request(method, path, content=b"{}", follow_redirects=False)
    if method == "HEAD":
        assert response.status_code < 500
        return
    check_response(response)


def test_trailing_slash_is_never_a_bare_redirect(raw_client) -> None:
    """No silent redirects (a JWT's ``aud`` names the exact URL). Discovery, which no JWT guards, answers at
    ``/cds-services/`` itself (issue 11); a hook URL with a trailing slash is a 404 OperationOutcome."""
    response = raw_client.get("/cds-services/", follow_redirects=False)
    assert response.status_code == 200 and response.json()["services"]
    response = raw_client.post("/cds-services/igg4rd-order-sign/", json={}, follow_redirects=False)
    assert response.status_code == 404
    check_response(response)


@pytest.mark.parametrize(
    "headers",
    [
        {"Access-Control-Request-Method": "DELETE"},
        {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "X-Evil"},
    ],
    ids=["method", "header"],
)
def test_cors_preflight_refusal_is_an_operation_outcome(raw_client, headers) -> None:
    response = raw_client.options(
        f"/cds-services/{KNOWN_ID}", headers={"Origin": "https://ehr.example", **headers}
    )
    check_response(response)
