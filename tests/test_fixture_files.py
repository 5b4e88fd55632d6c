"""The synthetic patients in fhir_fixtures/: valid FHIR, loadable twice, requests in step with bundles."""

from __future__ import annotations

import base64
import json
import re
import sys
from collections import Counter
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:  # the package is not installed: plain `pytest` must still import it
    sys.path.insert(0, str(REPO_ROOT))

# ruff: noqa: E402
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.medicationrequest import MedicationRequest
from fhir.resources.R4B.servicerequest import ServiceRequest

from cds_service.core import codes
from cds_service.fixtures.catalog import (
    FIXTURES_DIR,
    Fixture,
    build_request,
    dump_json,
    list_fixtures,
    load_fixture,
    prefetch_from_bundle,
    request_for_dir,
)
from cds_service.hooks.queries import QUERIES

SCHEMA_PATH = REPO_ROOT.parent / "shared" / "reference" / "cds-hooks" / "cds-hooks-2.0.1.schema.json"

FIXTURES = list_fixtures()
IDS = [f.name for f in FIXTURES]
FHIR_ID = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")
UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
UCUM = "http://unitsofmeasure.org"

DOMAIN_IDS = {
    "histopathology",
    "immunostaining",
    "serum-igg4",
    "glands",
    "chest",
    "pancreas-biliary",
    "kidney",
    "retroperitoneum",
}
DOMAIN_POINTS = {
    "histopathology": {4, 6, 13},
    "immunostaining": {7, 14, 16},
    "serum-igg4": {4, 6, 11},
    "glands": {6, 14},
    "chest": {4, 10},
    "pancreas-biliary": {8, 11, 19},
    "kidney": {6, 8, 10},
    "retroperitoneum": {4, 8},
}
EXCLUSION_IDS = {
    "fever",
    "no-steroid-response",
    "cytopenias",
    "eosinophilia",
    "anca",
    "ssa-ssb",
    "dsdna-rnp-sm",
    "other-autoantibody",
    "cryoglobulinemia",
    "suspicious-radiology",
    "rapid-progression",
    "erdheim-chester",
    "splenomegaly",
    "suspicious-pathology",
    "pathology-other",
    "castleman",
    "ibd-pancreatobiliary-only",
    "hashimoto-thyroid-only",
}
CLASSIFICATIONS = {"meets", "excluded", "indeterminate", "does-not-meet"}
SUGGESTABLE_LOINC = {codes.IGG4, codes.IGG1, codes.IGG_TOTAL, codes.C3, codes.C4}
HOOKS = {"order-sign", "order-select", "patient-view"}


def _fixture_param() -> pytest.MarkDecorator:
    return pytest.mark.parametrize("fixture", FIXTURES, ids=IDS)


def test_at_least_ten_fixtures_covering_each_hook() -> None:
    assert len(FIXTURES) >= 10, f"only {len(FIXTURES)} fixtures under {FIXTURES_DIR}"
    hooks = Counter(f.request.get("hook") for f in FIXTURES)
    assert hooks["order-sign"] >= 1
    assert hooks["order-select"] >= 1
    assert hooks["patient-view"] >= 1


def test_fixture_directory_names() -> None:
    for fixture in FIXTURES:
        assert re.fullmatch(r"\d{2}-[a-z0-9-]+", fixture.name), fixture.name


def test_load_fixture_by_name_prefix_and_path() -> None:
    first = FIXTURES[0]
    assert load_fixture(first.name).bundle == first.bundle
    assert load_fixture(first.name.split("-", 1)[0]).name == first.name
    assert load_fixture(first.path).request == first.request
    with pytest.raises(FileNotFoundError):
        load_fixture("no-such-fixture")


@_fixture_param()
def test_bundle_is_an_idempotent_transaction(fixture: Fixture) -> None:
    bundle = Bundle.model_validate(fixture.bundle)
    assert bundle.type == "transaction"
    assert bundle.entry
    for entry in fixture.bundle["entry"]:
        resource = entry["resource"]
        rid = resource["id"]
        assert FHIR_ID.fullmatch(rid), rid
        assert entry["request"] == {"method": "PUT", "url": f"{resource['resourceType']}/{rid}"}
    types = Counter(e["resource"]["resourceType"] for e in fixture.bundle["entry"])
    assert types["Patient"] == 1


def test_resource_ids_unique_across_all_fixtures() -> None:
    seen: Counter[str] = Counter()
    for fixture in FIXTURES:
        for entry in fixture.bundle["entry"]:
            seen[entry["resource"]["id"]] += 1
        for entry in (fixture.hook_metadata.get("draftOrders") or {}).get("entry", []):
            seen[entry["resource"]["id"]] += 1
    duplicates = sorted(rid for rid, n in seen.items() if n > 1)
    assert not duplicates, duplicates


@_fixture_param()
def test_resources_follow_the_fixture_conventions(fixture: Fixture) -> None:
    patient_ref = f"Patient/{fixture.request['context']['patientId']}"
    for entry in fixture.bundle["entry"]:
        resource = entry["resource"]
        kind = resource["resourceType"]
        if kind == "Patient":
            continue
        assert (resource.get("subject") or resource.get("patient"))["reference"] == patient_ref
        if kind == "Observation":
            assert resource["status"] in {"final", "amended", "corrected", "preliminary", "entered-in-error"}
            assert any(c["system"] == codes.LOINC for c in resource["code"]["coding"])
            quantity = resource["valueQuantity"]
            assert quantity["system"] == UCUM and quantity["unit"] and quantity["code"]
            assert "effectiveDateTime" in resource
        if kind == "DiagnosticReport":
            assert resource["status"] == "final"
            categories = {(c["system"], c["code"]) for cat in resource["category"] for c in cat["coding"]}
            assert categories & set(codes.REPORT_CATEGORIES)
            assert any(c["system"] == codes.LOINC for c in resource["code"]["coding"])
            assert resource["conclusion"] and resource["effectiveDateTime"]
            for form in resource.get("presentedForm", []):
                assert form["contentType"] == "text/plain"
                text = base64.b64decode(form["data"]).decode("utf-8")
                assert "FINDINGS" in text or "MICROSCOPIC" in text


@_fixture_param()
def test_request_is_generated_from_the_bundle(fixture: Fixture) -> None:
    meta = fixture.hook_metadata
    patient_id = meta["patientId"]
    assert fixture.request["prefetch"] == prefetch_from_bundle(fixture.bundle, patient_id)
    assert fixture.request == request_for_dir(fixture.path)
    assert (fixture.path / "request.json").read_text(encoding="utf-8") == dump_json(fixture.request), (
        "request.json drifted: run python fhir_fixtures/build_requests.py"
    )


@_fixture_param()
def test_request_shape(fixture: Fixture) -> None:
    request = fixture.request
    assert request["hook"] in HOOKS
    assert UUID.fullmatch(request["hookInstance"])
    assert "fhirServer" not in request and "fhirAuthorization" not in request
    context = request["context"]
    patient_id = context["patientId"]
    assert re.fullmatch(r"(Practitioner|PractitionerRole)/[A-Za-z0-9\-.]+", context["userId"])
    assert set(request["prefetch"]) == {q.key for q in QUERIES}
    assert request["prefetch"]["patient"]["resourceType"] == "Patient"
    assert request["prefetch"]["patient"]["id"] == patient_id
    for query in QUERIES:
        if query.key == "patient":
            continue
        searchset = Bundle.model_validate(request["prefetch"][query.key])
        assert searchset.type == "searchset"
        assert searchset.total == len(searchset.entry or [])
    if request["hook"] == "patient-view":
        assert "draftOrders" not in context
        return
    drafts = context["draftOrders"]
    assert drafts["resourceType"] == "Bundle" and drafts["entry"]
    refs = set()
    for entry in drafts["entry"]:
        resource = entry["resource"]
        model = {"ServiceRequest": ServiceRequest, "MedicationRequest": MedicationRequest}[
            resource["resourceType"]
        ]
        model.model_validate(resource)
        assert resource["status"] == "draft"
        assert resource["intent"] in {"order", "proposal", "plan"}
        assert resource["subject"]["reference"] == f"Patient/{patient_id}"
        refs.add(f"{resource['resourceType']}/{resource['id']}")
    if request["hook"] == "order-select":
        assert context["selections"] and set(context["selections"]) <= refs


@_fixture_param()
def test_request_validates_against_cds_hooks_schema(fixture: Fixture) -> None:
    if not SCHEMA_PATH.is_file():
        pytest.skip(
            f"CDS Hooks schema not found at {SCHEMA_PATH} (expected ../shared/reference from the repo)"
        )
    jsonschema = pytest.importorskip("jsonschema")
    schema = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    request_schema = {**schema, "$ref": "#/$defs/request"}
    validator = jsonschema.Draft202012Validator(request_schema)
    errors = sorted(validator.iter_errors(fixture.request), key=lambda e: list(e.path))
    assert not errors, [f"{list(e.path)}: {e.message}" for e in errors]


@_fixture_param()
def test_expected_file(fixture: Fixture) -> None:
    expected = fixture.expected
    assert {"title", "description", "hook", "expected"} <= set(expected)
    assert expected["title"].strip() and len(expected["description"]) > 40
    assert expected["hook"] == fixture.request["hook"]
    outcome = expected["expected"]
    assert set(outcome) == {"card", "classification", "total", "domains", "exclusions", "suggestedLoinc"}
    assert outcome["card"] in {"warning", "info", "none"}
    if outcome["card"] == "none":
        assert outcome["classification"] is None and outcome["total"] is None
        assert outcome["domains"] == {} and outcome["exclusions"] == {} and outcome["suggestedLoinc"] == []
        return
    assert outcome["classification"] in CLASSIFICATIONS
    domains = outcome["domains"]
    assert set(domains) <= DOMAIN_IDS
    for domain, points in domains.items():
        assert points in DOMAIN_POINTS[domain], (domain, points)
    assert outcome["total"] == sum(domains.values())
    exclusions = outcome["exclusions"]
    assert set(exclusions) <= EXCLUSION_IDS
    assert set(exclusions.values()) <= {"present", "unresolved"}
    any_present = "present" in exclusions.values()
    assert (outcome["classification"] == "excluded") == any_present
    if outcome["classification"] == "meets":
        assert outcome["total"] >= 20 and outcome["card"] == "warning"
    if outcome["classification"] in {"indeterminate", "does-not-meet"}:
        assert outcome["total"] < 20
    assert set(outcome["suggestedLoinc"]) <= SUGGESTABLE_LOINC
    assert len(outcome["suggestedLoinc"]) == len(set(outcome["suggestedLoinc"]))


def test_builder_on_an_empty_record() -> None:
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "resource": {"resourceType": "Patient", "id": "x1"},
                "request": {"method": "PUT", "url": "Patient/x1"},
            }
        ],
    }
    request = build_request(
        bundle, "patient-view", "d6f1f1d2-1111-4111-8111-111111111111", "x1", "Practitioner/a"
    )
    assert request["context"] == {"userId": "Practitioner/a", "patientId": "x1"}
    prefetch = request["prefetch"]
    assert prefetch["patient"] == {"resourceType": "Patient", "id": "x1"}
    for query in QUERIES:
        if query.key != "patient":
            assert prefetch[query.key] == {
                "resourceType": "Bundle",
                "type": "searchset",
                "total": 0,
                "entry": [],
            }
    assert prefetch_from_bundle(bundle, "other")["patient"] is None
