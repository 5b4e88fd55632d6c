"""Hypothesis fuzzing of hook and feedback bodies, mutated from the fixture requests and spec examples.

Every mutated body is POSTed in-process to the service for its hook (sometimes to another one). The
rule under test: never a 5xx, never a stack trace, never a hang; the body is JSON; every 4xx is a FHIR
OperationOutcome; every 200 validates against the CDS Hooks 2.0.1 response schema, and no card summary or
detail carries a raw ``<`` that opens markup (record text is injected with tags).

The mutations: drop keys at any depth, replace values with other JSON types, nest deeper, enlarge
strings and lists (under the body limit), duplicate entries, swap resourceTypes, put OperationOutcomes
in prefetch, invalid dates, decimals and units, huge numbers, unicode and markup in strings.

Bounded (``MAX_EXAMPLES`` per test) and reproducible (derandomized, no example database). The FHIR
fetcher is a stub that never touches the network: a request that names a ``fhirServer`` gets "unreachable".
"""

from __future__ import annotations

import copy
import json
import os
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cds_service.fixtures.catalog import list_fixtures
from cds_service.hooks.discovery import SERVICE_FOR_HOOK, SERVICES
from cds_service.settings import Settings
from cds_service.web.app import create_app
from tests.conftest import EVALUATION_DATE, REFERENCE

MAX_EXAMPLES = int(os.environ.get("IGG4_FUZZ_MAX_EXAMPLES", "150"))
HOOK_STATUSES = {200, 400, 404, 412, 413}
FEEDBACK_STATUSES = {200, 400, 404, 413}
HTML_TAG = re.compile(r"<[A-Za-z/!?]")
"""A raw ``<`` opening markup: record text is escaped, the service's own "(< 20)" is not markup."""
SLOW_CALL_S = 20.0
"""A call slower than this counts as a hang (the hook time budget is 2.5 s; evaluation is local)."""

FUZZ = settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)

SERVICE_IDS = [s.id for s in SERVICES]
FIXTURES = list_fixtures()
FIXTURE_NAMES = [f.name for f in FIXTURES]
FEEDBACK_EXAMPLES = sorted((REFERENCE / "examples" / "spec-2.0.1").glob("feedback-*.json"))

Json = Any
Path_ = tuple[str | int, ...]

# ------------------------------------------------------------------ values

OPERATION_OUTCOME = {
    "resourceType": "OperationOutcome",
    "issue": [{"severity": "error", "code": "not-found", "diagnostics": "<b>no such resource</b>"}],
}
RESOURCE_TYPES = [
    "OperationOutcome",
    "Bundle",
    "Patient",
    "Observation",
    "Condition",
    "DiagnosticReport",
    "ServiceRequest",
    "MedicationRequest",
    "MedicationStatement",
    "Procedure",
    "Encounter",
    "Binary",
    "",
    "observation",
    "Unknown<script>",
]
BAD_DATES = [
    "",
    "2026-13-45",
    "2026-02-30",
    "not a date",
    "0000-00-00",
    "9999-12-31T99:99:99Z",
    "2026",
    "2026-11",
    "-0001-01-01",
    "2026-11-25T10:00:00+25:00",
    "2026-11-25T10:00:00",
    "1900-01-01",
    "3000-01-01",
    "2026-11-25T24:00:00Z",
    "２０２６-１１-２５",
    20261125,
    None,
]
NUMBERS = [
    0,
    -0.0,
    -1,
    1e308,
    -1e308,
    1e-320,
    5e-324,
    2**63,
    -(2**63) - 1,
    10**30,
    123456789.123456789,
    0.000001,
    "1.2.3",
    "2.43",
    "NaN",
    "",
    True,
]
UNITS = [
    "g/L",
    "mg/dL",
    "mg/L",
    "mg/mL",
    "µg/mL",
    "ug/mL",
    "mmol/L",
    "%",
    "10*3/uL",
    "[iU]/mL",
    "furlongs/fortnight",
    "",
    "g/L<script>",
    "/",
    "g//L",
    "1e400 g/L",
    "kg",
    "g.L-1",
]
STRINGS = [
    "",
    " ",
    "<script>alert(1)</script>",
    "<img src=x onerror=alert(1)>",
    "**bold** [link](javascript:alert(1)) `code` # heading",
    'IgG4 < 1.35 & > 0 "quoted"',
    "\u202e\u200b\ufeff zero-width and bidi",
    "💥🧪 emoji",
    "日本語のテキスト",
    "null",
    "\x00\x01\x1f control",
    "a\nb\r\nc\td",
    "../../etc/passwd",
    "Patient/",
    "Patient/../../x",
    "http://127.0.0.1:9/fhir",
    "%00%ff",
]
TEXT = st.text(alphabet=st.characters(exclude_categories=("Cs",)), max_size=40)
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**64 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    TEXT,
    st.sampled_from(STRINGS),
)
JSON_VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TEXT, inner, max_size=4),
    max_leaves=12,
)
INTERESTING_KEYS = {
    "resourceType",
    "value",
    "valueQuantity",
    "valueString",
    "valueCodeableConcept",
    "unit",
    "code",
    "system",
    "coding",
    "text",
    "div",
    "conclusion",
    "presentedForm",
    "data",
    "status",
    "reference",
    "subject",
    "entry",
    "resource",
    "referenceRange",
    "low",
    "high",
    "interpretation",
    "effectiveDateTime",
    "effectivePeriod",
    "issued",
    "authoredOn",
    "recordedDate",
    "onsetDateTime",
    "birthDate",
    "verificationStatus",
    "clinicalStatus",
    "category",
    "dosageInstruction",
    "medicationCodeableConcept",
    "hook",
    "hookInstance",
    "context",
    "prefetch",
    "patientId",
    "userId",
    "encounterId",
    "draftOrders",
    "selections",
    "fhirServer",
    "fhirAuthorization",
    "feedback",
    "card",
    "outcome",
    "outcomeTimestamp",
    "acceptedSuggestions",
    "overrideReason",
    "reason",
    "userComment",
    "id",
}
DATE_KEYS = {k for k in INTERESTING_KEYS if "Date" in k or k in {"issued", "authoredOn", "outcomeTimestamp"}}

# ------------------------------------------------------------------ the JSON tree


def paths(root: Json) -> list[Path_]:
    """Every path to a value inside ``root`` (not the root itself); iterative, so deep nests are fine."""
    found: list[Path_] = []
    stack: list[tuple[Json, Path_]] = [(root, ())]
    while stack:
        node, prefix = stack.pop()
        items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
        for key, value in items:
            found.append((*prefix, key))
            stack.append((value, (*prefix, key)))
    return found


def get_at(root: Json, path: Path_) -> Json:
    for step in path:
        root = root[step]
    return root


def parent_of(root: Json, path: Path_) -> tuple[Json, str | int]:
    return get_at(root, path[:-1]), path[-1]


def nest(value: Json, depth: int) -> Json:
    for level in range(depth):
        value = [value] if level % 2 else {"value": value}
    return value


def apply_mutation(data: st.DataObject, body: Json) -> Json:
    """Apply one drawn mutation to ``body`` in place (or return a replaced root)."""
    all_paths = paths(body)
    if not all_paths:
        return data.draw(JSON_VALUES, label="replaced root")
    interesting = [p for p in all_paths if isinstance(p[-1], str) and p[-1] in INTERESTING_KEYS]
    if interesting and data.draw(st.integers(0, 4), label="everywhere") == 0:
        # The same key replaced at every depth: type confusion reaches every parser at once.
        key = data.draw(st.sampled_from(sorted({p[-1] for p in interesting})), label="key everywhere")
        value = data.draw(
            JSON_VALUES | st.sampled_from(BAD_DATES + NUMBERS + UNITS), label="value everywhere"
        )
        for node in dicts_in(body):
            if key in node:
                node[key] = copy.deepcopy(value)
        return body
    pool = interesting if interesting and data.draw(st.booleans(), label="interesting") else all_paths
    path = data.draw(st.sampled_from(pool), label="path")
    parent, key = parent_of(body, path)
    value = parent[key]
    kind = data.draw(
        st.sampled_from(
            [
                "delete",
                "replace",
                "nest",
                "enlarge",
                "duplicate",
                "resource_type",
                "outcome",
                "date",
                "number",
                "unit",
                "string",
            ]
        ),
        label="mutation",
    )
    if kind == "delete":
        del parent[key]
    elif kind == "replace":
        parent[key] = data.draw(JSON_VALUES, label="value")
    elif kind == "nest":
        parent[key] = nest(value, data.draw(st.sampled_from([1, 2, 8, 64, 300]), label="depth"))
    elif kind == "enlarge":
        if isinstance(value, str):
            parent[key] = (value or "x") * data.draw(st.integers(2, 2000), label="times")
        elif isinstance(value, list) and value:
            parent[key] = value * data.draw(st.integers(2, 40), label="times")
        elif isinstance(value, dict):
            extra = data.draw(st.integers(1, 500), label="keys")
            parent[key] = {**value, **{f"extra{i}": i for i in range(extra)}}
        else:
            parent[key] = [value] * data.draw(st.integers(2, 200), label="times")
    elif kind == "duplicate":
        if isinstance(parent, list):
            parent.insert(key, copy.deepcopy(value))
        elif isinstance(value, list) and value:
            value.append(copy.deepcopy(value[data.draw(st.integers(0, len(value) - 1), label="item")]))
        else:
            parent[key] = [value, copy.deepcopy(value)]
    elif kind == "resource_type":
        resource_type = data.draw(st.sampled_from(RESOURCE_TYPES), label="resourceType")
        if isinstance(value, dict):
            value["resourceType"] = resource_type
        elif isinstance(parent, dict):
            parent["resourceType"] = resource_type
        else:
            parent[key] = {"resourceType": resource_type, "id": "swapped"}
    elif kind == "outcome":
        parent[key] = copy.deepcopy(OPERATION_OUTCOME)
    elif kind == "date":
        parent[key] = data.draw(st.sampled_from(BAD_DATES), label="date")
    elif kind == "number":
        parent[key] = data.draw(st.sampled_from(NUMBERS), label="number")
    elif kind == "unit":
        parent[key] = data.draw(st.sampled_from(UNITS), label="unit")
    else:
        parent[key] = data.draw(st.sampled_from(STRINGS) | TEXT, label="string")
    return body


def mutate_top(data: st.DataObject, body: Json) -> Json:
    """Mutations aimed at the request envelope: hook, context, prefetch keys, fhirServer."""
    kind = data.draw(
        st.sampled_from(
            ["prefetch_outcome", "prefetch_value", "drop_prefetch", "context_value", "hook", "fhir_server"]
        ),
        label="top mutation",
    )
    prefetch = body.get("prefetch") if isinstance(body.get("prefetch"), dict) else {}
    prefetch_key = data.draw(st.sampled_from(sorted(prefetch) or ["patient"]), label="prefetch key")
    if kind == "prefetch_outcome" and prefetch:
        prefetch[prefetch_key] = copy.deepcopy(OPERATION_OUTCOME)
    elif kind == "prefetch_value" and prefetch:
        prefetch[prefetch_key] = data.draw(JSON_VALUES, label="prefetch value")
    elif kind == "drop_prefetch" and prefetch:
        prefetch.pop(prefetch_key)
    elif kind == "context_value" and isinstance(body.get("context"), dict):
        context = body["context"]
        key = data.draw(st.sampled_from([*sorted(context), "selections", "encounterId"]), label="context key")
        context[key] = data.draw(JSON_VALUES | st.sampled_from(STRINGS), label="context value")
    elif kind == "hook":
        body["hook"] = data.draw(
            st.sampled_from([*SERVICE_FOR_HOOK, "medication-prescribe", "", "ORDER-SIGN"]) | TEXT,
            label="hook",
        )
    elif kind == "fhir_server":
        body["fhirServer"] = data.draw(st.sampled_from(STRINGS) | JSON_VALUES, label="fhirServer")
    return body


def dicts_in(root: Json) -> Iterator[dict]:
    stack = [root]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            yield node
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)


# ------------------------------------------------------------------ the app


class NoNetworkFetcher:
    """Answers every fetch as unreachable: the fuzz run never leaves the process."""

    def fetch_missing(self, request, keys, deadline, allowed_bases=()):
        return {}, dict.fromkeys(keys, "unreachable")


@pytest.fixture(scope="module")
def fuzz_client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    tmp: Path = tmp_path_factory.mktemp("fuzz-requests")
    app = create_app(
        Settings(dev_mode=True, database_url=f"sqlite:///{tmp}/fb.sqlite3", log_level="ERROR"),
        fetcher=NoNetworkFetcher(),
        today=lambda: EVALUATION_DATE,
    )
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


def post_raw(client: TestClient, url: str, body: Json) -> tuple[Any, bytes]:
    raw = json.dumps(body, ensure_ascii=False).encode("utf-8", "surrogatepass")
    started = time.perf_counter()
    response = client.post(url, content=raw, headers={"Content-Type": "application/json"})
    elapsed = time.perf_counter() - started
    assert elapsed < SLOW_CALL_S, f"{url} took {elapsed:.1f} s"
    return response, raw


def assert_answer(response, raw: bytes, allowed: set[int], validate) -> Json:
    status = response.status_code
    text = response.text
    assert status in allowed, f"{status}: {text[:600]}"
    assert "Traceback" not in text and 'File "' not in text
    if not response.content:
        assert status == 200, f"{status} with an empty body"
        return None
    body = json.loads(response.content)
    if status >= 400:
        assert body.get("resourceType") == "OperationOutcome", body
        assert body.get("issue"), body
        assert response.headers["content-type"].startswith("application/fhir+json")
        if status == 413:
            assert len(raw) > Settings().max_body_bytes
    return body


def assert_hook_answer(response, raw: bytes, validate) -> Json:
    body = assert_answer(response, raw, HOOK_STATUSES, validate)
    if response.status_code == 200:
        validate(body, "response")
        for card in body["cards"]:
            for field in ("summary", "detail"):
                assert not HTML_TAG.search(card.get(field, "")), card[field]
    return body


# ------------------------------------------------------------------ the tests


@FUZZ
@given(data=st.data())
def test_mutated_fixture_requests(fuzz_client, validate, data) -> None:
    fixture = FIXTURES[data.draw(st.integers(0, len(FIXTURES) - 1), label="fixture")]
    body = copy.deepcopy(fixture.request)
    for _ in range(data.draw(st.integers(1, 4), label="mutations")):
        body = apply_mutation(data, body)
    hook = fixture.request["hook"]
    service = SERVICE_FOR_HOOK[hook]
    if data.draw(st.integers(0, 9), label="other service") == 0:
        service = data.draw(st.sampled_from(SERVICE_IDS), label="service")
    response, raw = post_raw(fuzz_client, f"/cds-services/{service}", body)
    assert_hook_answer(response, raw, validate)


@FUZZ
@given(data=st.data())
def test_mutated_request_envelopes(fuzz_client, validate, data) -> None:
    fixture = FIXTURES[data.draw(st.integers(0, len(FIXTURES) - 1), label="fixture")]
    body = copy.deepcopy(fixture.request)
    for _ in range(data.draw(st.integers(1, 3), label="mutations")):
        body = mutate_top(data, body)
    if data.draw(st.booleans(), label="also deep"):
        body = apply_mutation(data, body)
    service = SERVICE_FOR_HOOK[fixture.request["hook"]]
    response, raw = post_raw(fuzz_client, f"/cds-services/{service}", body)
    assert_hook_answer(response, raw, validate)


@FUZZ
@given(data=st.data())
def test_mutated_feedback(fuzz_client, validate, data) -> None:
    assert FEEDBACK_EXAMPLES, f"no feedback examples under {REFERENCE}"
    path = data.draw(st.sampled_from(FEEDBACK_EXAMPLES), label="example")
    body = json.loads(path.read_text())
    if data.draw(st.booleans(), label="several items"):
        body["feedback"] = body["feedback"] * data.draw(st.integers(2, 50), label="items")
    for _ in range(data.draw(st.integers(0, 4), label="mutations")):
        body = apply_mutation(data, body)
    service = data.draw(st.sampled_from([*SERVICE_IDS, "no-such-service"]), label="service")
    response, raw = post_raw(fuzz_client, f"/cds-services/{service}/feedback", body)
    assert_answer(response, raw, FEEDBACK_STATUSES, validate)


# ------------------------------------------------------------------ exhaustive, not random


@pytest.mark.parametrize("fixture", FIXTURES, ids=FIXTURE_NAMES)
def test_every_fixture_answers_200_with_valid_cards(fuzz_client, validate, fixture) -> None:
    service = SERVICE_FOR_HOOK[fixture.request["hook"]]
    response, raw = post_raw(fuzz_client, f"/cds-services/{service}", fixture.request)
    assert response.status_code == 200, response.text[:600]
    assert_hook_answer(response, raw, validate)


@pytest.mark.parametrize("fixture", FIXTURES[:3], ids=FIXTURE_NAMES[:3])
def test_each_top_level_and_prefetch_key_dropped_or_outcome(fuzz_client, validate, fixture) -> None:
    service = SERVICE_FOR_HOOK[fixture.request["hook"]]
    variants = []
    for key in fixture.request:
        body = copy.deepcopy(fixture.request)
        del body[key]
        variants.append(body)
    for key in fixture.request["prefetch"]:
        for replacement in (None, copy.deepcopy(OPERATION_OUTCOME), [], "", 0, {"resourceType": "Bundle"}):
            body = copy.deepcopy(fixture.request)
            body["prefetch"][key] = replacement
            variants.append(body)
    for key in fixture.request["context"]:
        body = copy.deepcopy(fixture.request)
        del body["context"][key]
        variants.append(body)
    for body in variants:
        response, raw = post_raw(fuzz_client, f"/cds-services/{service}", body)
        assert_hook_answer(response, raw, validate)


def nested_text(depth: int) -> str:
    """``{"value": [{"value": [... "x" ...]}]}`` as JSON text, built without a recursive encoder."""
    opens = "".join('{"value":' if level % 2 == 0 else "[" for level in range(depth))
    closes = "".join("}" if level % 2 == 0 else "]" for level in reversed(range(depth)))
    return f'{opens}"x"{closes}'


def post_text(client: TestClient, url: str, text: str):
    started = time.perf_counter()
    response = client.post(url, content=text.encode(), headers={"Content-Type": "application/json"})
    assert time.perf_counter() - started < SLOW_CALL_S
    return response, text.encode()


@pytest.mark.parametrize("depth", [100, 500, 900, 1000, 1100, 5000])
def test_deeply_nested_bodies(fuzz_client, validate, depth) -> None:
    fixture = FIXTURES[0]
    url = f"/cds-services/{SERVICE_FOR_HOOK[fixture.request['hook']]}"
    marker = "__NESTED__"
    for where in ("context", "prefetch", "resource"):
        body = copy.deepcopy(fixture.request)
        if where == "resource":
            body["prefetch"]["conditions"]["entry"][0]["resource"]["code"] = marker
        else:
            body[where]["nested"] = marker
        text = json.dumps(body).replace(f'"{marker}"', nested_text(depth))
        response, raw = post_text(fuzz_client, url, text)
        assert_hook_answer(response, raw, validate)
    response, raw = post_text(fuzz_client, f"{url}/feedback", nested_text(depth))
    assert_answer(response, raw, FEEDBACK_STATUSES, validate)


def test_body_over_the_limit_is_413(fuzz_client) -> None:
    limit = Settings().max_body_bytes
    body = copy.deepcopy(FIXTURES[0].request)
    body["padding"] = "x" * (limit + 1)
    response, _ = post_raw(fuzz_client, f"/cds-services/{SERVICE_IDS[0]}", body)
    assert response.status_code == 413
    assert response.json()["resourceType"] == "OperationOutcome"


# ------------------------------------------------------------------ reproductions of server errors


@pytest.mark.parametrize("code", [["2469-5"], {"value": "2469-5"}], ids=["list", "object"])
def test_bug1_loinc_code_not_a_string_is_not_a_500(fuzz_client, validate, code) -> None:
    """Found by this fuzzer (labs.wanted_observation hashed a list); fixed, kept as a regression test."""
    body = copy.deepcopy(FIXTURES[0].request)
    coding = body["prefetch"]["observations"]["entry"][0]["resource"]["code"]["coding"][0]
    assert coding["system"] == "http://loinc.org"
    coding["code"] = code
    response, raw = post_raw(fuzz_client, f"/cds-services/{SERVICE_FOR_HOOK[body['hook']]}", body)
    assert_hook_answer(response, raw, validate)


@pytest.mark.parametrize("code", ["/", "*", "g/", "(", "1/0"])
def test_bug2_unparsable_ucum_code_is_not_a_500(fuzz_client, validate, code) -> None:
    """Found by this fuzzer (pint raised AssertionError, TokenError, ZeroDivisionError); fixed, kept."""
    body = copy.deepcopy(FIXTURES[0].request)
    quantity = body["prefetch"]["observations"]["entry"][0]["resource"]["valueQuantity"]
    assert quantity["code"] == "g/L"
    quantity["code"] = code
    response, raw = post_raw(fuzz_client, f"/cds-services/{SERVICE_FOR_HOOK[body['hook']]}", body)
    assert_hook_answer(response, raw, validate)
