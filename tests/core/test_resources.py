from datetime import date
from decimal import Decimal

import pytest

from cds_service.core.resources import (
    MAX_LABEL_CHARS,
    MAX_SHORT_CHARS,
    CodeableConcept,
    Coding,
    ReadCounts,
    iter_raw_resources,
    read_resource,
    read_resources,
)

RX = "http://www.nlm.nih.gov/research/umls/rxnorm"


def read(resource_type, raw):
    counts = ReadCounts()
    return read_resource(resource_type, {"resourceType": resource_type, **raw}, counts), counts.as_log()


# (resource type, element, raw value, attribute read, expected value, expected counts)
CASES = [
    # A single object where R4 has an array: repaired.
    (
        "MedicationRequest",
        "reasonCode",
        {"text": "Klatskin"},
        "reasonCode",
        (CodeableConcept((), "Klatskin"),),
        {"repaired": 1},
    ),
    (
        "MedicationRequest",
        "category",
        {"coding": [{"code": "community"}]},
        "category",
        (CodeableConcept((Coding(None, "community"),)),),
        {"repaired": 1},
    ),
    (
        "Observation",
        "code",
        {"coding": {"code": "2469-5"}},
        "code",
        CodeableConcept((Coding(None, "2469-5"),)),
        {"repaired": 1},
    ),
    # An array of one where R4 has a single object: repaired.
    ("Observation", "code", [{"text": "IgG4"}], "code", CodeableConcept((), "IgG4"), {"repaired": 1}),
    # Numbers as strings, codes as numbers: repaired.
    (
        "Observation",
        "valueQuantity",
        {"value": "2.43", "unit": "g/L"},
        "valueQuantity.value",
        Decimal("2.43"),
        {"repaired": 1},
    ),
    (
        "Observation",
        "code",
        {"coding": [{"code": 24695}]},
        "code",
        CodeableConcept((Coding(None, "24695"),)),
        {"repaired": 1},
    ),
    # Elements that cannot be read cost that element only.
    ("Observation", "valueQuantity", {"value": "two"}, "valueQuantity.value", None, {"skipped_elements": 1}),
    ("Observation", "valueQuantity", {"value": True}, "valueQuantity.value", None, {"skipped_elements": 1}),
    (
        "Observation",
        "valueQuantity",
        {"value": "1e999999"},
        "valueQuantity.value",
        None,
        {"skipped_elements": 1},
    ),
    (
        "Observation",
        "valueQuantity",
        {"value": float("nan")},
        "valueQuantity.value",
        None,
        {"skipped_elements": 1},
    ),
    ("Observation", "effectiveDateTime", "yesterday", "effectiveDateTime", None, {"skipped_elements": 1}),
    ("Observation", "effectiveDateTime", "2026-02", "effectiveDateTime", date(2026, 2, 1), {}),
    ("Observation", "status", {"code": "final"}, "status", None, {"skipped_elements": 1}),
    ("Observation", "status", "x" * (MAX_SHORT_CHARS + 1), "status", None, {"skipped_elements": 1}),
    ("Observation", "interpretation", "H", "interpretation", (), {"repaired": 1, "skipped_elements": 1}),
    (
        "Condition",
        "code",
        {"text": "y" * (MAX_LABEL_CHARS + 5)},
        "code.text",
        "y" * MAX_LABEL_CHARS,
        {"repaired": 1},
    ),
]


def _get(obj, path):
    for name in path.split("."):
        obj = getattr(obj, name)
    return obj


@pytest.mark.parametrize(("resource_type", "element", "raw", "path", "value", "events"), CASES)
def test_element_repairs_and_skips(resource_type, element, raw, path, value, events):
    required = {"Observation": {"status": "final", "code": {"text": "x"}}, "MedicationRequest": {}}
    base = {**required.get(resource_type, {}), "subject": {"reference": "Patient/p"}, "intent": "order"}
    if resource_type == "MedicationRequest":
        base["status"] = "draft"
        base["medicationCodeableConcept"] = {"text": "capecitabine"}
    resource, counts = read(resource_type, {**base, element: raw})
    assert _get(resource, path) == value
    assert {event: sum(by_type.values()) for event, by_type in counts.items()} == events
    assert all(set(by_type) == {resource_type} for by_type in counts.values())


def test_missing_required_elements_are_counted_not_fatal():
    # The sandbox's draft before a drug is chosen: no intent, no medication.
    order, counts = read("MedicationRequest", {"id": "request-123", "status": "draft"})
    assert order.id == "request-123" and order.intent is None
    assert counts == {"missing": {"MedicationRequest": 3}}  # intent, subject, medication[x]


def test_contained_medication_and_reference():
    order, counts = read(
        "MedicationRequest",
        {
            "status": "active",
            "intent": "order",
            "subject": {"reference": "Patient/p"},
            "contained": {
                "resourceType": "Medication",
                "id": "m",
                "code": {"coding": [{"system": RX, "code": "194000"}]},
            },
            "medicationReference": {"reference": "#m"},
            "reasonReference": {"reference": "Condition/c1"},
        },
    )
    assert order.contained[0].get_resource_type() == "Medication"
    assert order.contained[0].code.coding[0].code == "194000"
    assert order.reasonReference[0].reference == "Condition/c1"
    assert counts == {"repaired": {"MedicationRequest": 2}}


def test_garbage_never_raises_and_only_the_asked_type_is_read():
    counts = ReadCounts()
    bundle = {
        "resourceType": "Bundle",
        "entry": [
            None,
            1,
            {"resource": "x"},
            {"resource": {"resourceType": "Condition", "code": 5}},
            {"resource": {"resourceType": "Observation", "status": "final"}},
        ],
    }
    [condition] = read_resources(bundle, "Condition", counts)
    assert condition.code is None
    assert counts.as_log() == {"missing": {"Condition": 1}, "skipped_elements": {"Condition": 1}}
    assert counts.unreadable == 1


def test_a_bundle_with_a_single_entry_object_is_read():
    bundle = {"resourceType": "Bundle", "entry": {"resource": {"resourceType": "Condition", "id": "c"}}}
    assert [c.id for c in read_resources(bundle, "Condition", ReadCounts())] == ["c"]


def test_keep_filters_on_raw_json_before_reading():
    bundle = {
        "resourceType": "Bundle",
        "entry": [{"resource": {"resourceType": "Condition", "id": i}} for i in "ab"],
    }
    kept = read_resources(bundle, "Condition", ReadCounts(), keep=lambda raw: raw["id"] == "b")
    assert [c.id for c in kept] == ["b"]


def test_counts_merge_per_type():
    a, b = ReadCounts(), ReadCounts()
    a.add("repaired", "Observation")
    b.add("repaired", "Observation", 2)
    b.add("missing", "Condition")
    assert a.merge(b).as_log() == {"missing": {"Condition": 1}, "repaired": {"Observation": 3}}


def test_iter_raw_resources_reads_bundles_and_bare_resources_and_ignores_garbage():
    cond = {"resourceType": "Condition", "id": "c"}
    garbage_entries = [None, 1, {}, {"resource": "x"}, {"resource": {"id": "no-type"}}]
    messy = {"resourceType": "Bundle", "entry": [*garbage_entries, {"resource": cond}]}
    assert list(iter_raw_resources(messy)) == [cond]
    assert list(iter_raw_resources(cond)) == [cond]
    for value in (None, "Bundle", [cond], {"id": 1}):
        assert list(iter_raw_resources(value)) == []


def test_counts_never_hold_record_values():
    secret = "Jane Roe MRN 4411"
    counts = ReadCounts()
    raw = {"resourceType": "Condition", "clinicalStatus": secret, "code": {"text": 7, "coding": secret}}
    read_resources(raw, "Condition", counts)
    assert secret not in repr(counts.as_log())
    assert counts.total("skipped_elements") >= 2
