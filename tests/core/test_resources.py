"""core/resources.py on its own: lenient, resource-by-resource parsing with a validation cache."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from cds_service.core import resources
from cds_service.core.resources import clear_cache, iter_raw_resources, parse_resources
from cds_service.errors import SkippedResources
from tests.builders import bundle, condition, observation

SECRET = "Jane Roe MRN 4411"


@pytest.fixture(autouse=True)
def _empty_cache() -> None:
    clear_cache()


def test_iter_raw_resources_reads_bundles_and_bare_resources_and_ignores_garbage() -> None:
    cond = condition("312104005")
    garbage_entries: list[Any] = [None, 1, {}, {"resource": "x"}, {"resource": {"id": "no-type"}}]
    messy = {"resourceType": "Bundle", "entry": [*garbage_entries, {"resource": cond}]}
    assert list(iter_raw_resources(messy)) == [cond]
    assert list(iter_raw_resources(cond)) == [cond]
    for value in (None, "Bundle", [cond], {"resourceType": "Bundle", "entry": {"resource": cond}}, {"id": 1}):
        assert list(iter_raw_resources(value)) == []


def test_only_the_requested_type_is_validated() -> None:
    data = bundle(condition("312104005"), observation("16372-0", 2.4))
    skipped = SkippedResources()
    [parsed] = parse_resources(data, "Observation", skipped)
    assert parsed.get_resource_type() == "Observation"
    assert skipped.total == 0


def test_keep_filters_on_raw_json_before_validation() -> None:
    wanted, unwanted = observation("16372-0", 2.4), observation("1234-5", 1.0)
    unwanted["status"] = 42  # invalid: it would be skipped and counted if it were validated
    skipped = SkippedResources()
    parsed = parse_resources(
        bundle(wanted, unwanted),
        "Observation",
        skipped,
        keep=lambda raw: raw["code"]["coding"][0]["code"] == "16372-0",
    )
    assert [p.id for p in parsed] == [wanted["id"]]
    assert skipped.total == 0


def test_an_invalid_resource_is_skipped_counted_and_logged_without_its_values(
    caplog: pytest.LogCaptureFixture,
) -> None:
    bad = {**condition("312104005"), "clinicalStatus": SECRET}
    good = condition("312104005")
    skipped = SkippedResources()
    with caplog.at_level(logging.INFO, logger=resources.__name__):
        parsed = parse_resources(bundle(bad, good), "Condition", skipped)
    assert [p.id for p in parsed] == [good["id"]]
    assert skipped.by_type == {"Condition": 1}
    [record] = [r for r in caplog.records if r.getMessage() == "skipped invalid resource"]
    assert record.resource_type == "Condition"  # type: ignore[attr-defined]
    assert "clinicalStatus" in record.fields  # type: ignore[attr-defined]
    assert SECRET not in repr(record.__dict__)


def test_validated_models_are_cached_by_content_and_forgotten_on_clear() -> None:
    raw = condition("312104005")
    skipped = SkippedResources()
    [first] = parse_resources(raw, "Condition", skipped)
    [again] = parse_resources(dict(raw), "Condition", skipped)
    assert again is first
    changed = {**raw, "id": "other"}
    [other] = parse_resources(changed, "Condition", skipped)
    assert other is not first and other.id == "other"
    clear_cache()
    [fresh] = parse_resources(raw, "Condition", skipped)
    assert fresh is not first and fresh == first


def test_an_invalid_resource_stays_invalid_when_cached() -> None:
    bad = {**condition("312104005"), "clinicalStatus": "active"}
    skipped = SkippedResources()
    assert parse_resources(bad, "Condition", skipped) == []
    assert parse_resources(bad, "Condition", skipped) == []
    assert skipped.total == 2
