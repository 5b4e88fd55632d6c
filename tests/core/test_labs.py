from datetime import date
from decimal import Decimal

import pytest

from cds_service.core.evidence import UlnSource
from cds_service.core.labs import extract_labs, parse_range_text, wanted_observation
from cds_service.core.resources import read_resource
from tests.builders import observation

START = date(2023, 11, 25)
DEFAULT_ULN = Decimal("1.35")


def labs(*raws):
    reading = extract_labs([read_resource("Observation", r) for r in raws], START, DEFAULT_ULN)
    return reading.results, reading.unit_errors


@pytest.mark.parametrize(
    ("raw", "value", "high", "source"),
    [
        (
            observation("2469-5", 2.43, "g/L", high=0.864, low=0.039),
            "2.43",
            "0.864",
            UlnSource.REFERENCE_HIGH,
        ),
        (observation("2469-5", 243, "mg/dL", high=86.4), "2.43", "0.864", UlnSource.REFERENCE_HIGH),
        (observation("2469-5", 2430, "mg/L", high=864), "2.430", "0.864", UlnSource.REFERENCE_HIGH),
        (
            observation("2469-5", 486, "mg/dL", range_text="4.8-105 mg/dL"),
            "4.86",
            "1.05",
            UlnSource.REFERENCE_TEXT,
        ),
        (observation("2469-5", 2.5, "g/L", range_text="<2.01 g/L"), "2.5", "2.01", UlnSource.REFERENCE_TEXT),
        (
            observation("2469-5", 2.5, "g/L", range_text="0.039 – 0.864"),
            "2.5",
            "0.864",
            UlnSource.REFERENCE_TEXT,
        ),
        (observation("2469-5", 2900, "mg/L"), "2.900", "1.35", UlnSource.DEFAULT),
        # A range in another unit than the value is converted before comparison.
        (
            observation("2469-5", 2.43, "g/L", high=86.4, range_unit="mg/dL"),
            "2.43",
            "0.864",
            UlnSource.REFERENCE_HIGH,
        ),
    ],
)
def test_igg4_value_and_uln_in_one_unit(raw, value, high, source):
    results, _ = labs(raw)
    [result] = results["2469-5"]
    assert result.value == Decimal(value)
    assert result.high == Decimal(high)
    assert result.uln_source is source
    assert result.unit == "g/L"


@pytest.mark.parametrize(
    ("status", "kept"),
    [
        ("final", True),
        ("amended", True),
        ("corrected", True),
        ("preliminary", True),
        ("entered-in-error", False),
        ("cancelled", False),
        ("registered", False),
    ],
)
def test_status_filter(status, kept):
    results, _ = labs(observation("2469-5", 2.0, high=1.35, status=status))
    assert bool(results.get("2469-5")) is kept


@pytest.mark.parametrize(
    ("when", "kept"), [("2023-11-25", True), ("2023-11-24", False), ("2026-01-01", True)]
)
def test_lookback_window(when, kept):
    results, _ = labs(observation("2469-5", 2.0, high=1.35, when=when))
    assert bool(results.get("2469-5")) is kept


def test_unknown_unit_is_counted_not_raised():
    results, errors = labs(
        observation("2469-5", 2.0, "mmol/L", high=1.35), observation("2469-5", 2.0, high=1.35)
    )
    assert errors == 1
    assert len(results["2469-5"]) == 1


@pytest.mark.parametrize(
    ("raw", "positive"),
    [
        (observation("46266-3", 35, "U/mL", high=20), True),
        (observation("46266-3", 5, "U/mL", high=20), False),
        (observation("33569-5", interpretation="POS"), True),
        (observation("33569-5", interpretation="NEG"), False),
        (observation("5117-7", value_string="Cryoglobulins detected"), True),
        (observation("5117-7", value_string="Not detected"), False),
    ],
)
def test_serology_polarity(raw, positive):
    results, _ = labs(raw)
    [result] = next(iter(results.values()))
    assert result.positive is positive


def test_results_sorted_newest_first():
    results, _ = labs(
        observation("2469-5", 1.0, high=1.35, when="2025-01-01"),
        observation("2469-5", 3.0, high=1.35, when="2026-05-01"),
    )
    assert [r.effective for r in results["2469-5"]] == [date(2026, 5, 1), date(2025, 1, 1)]


@pytest.mark.parametrize(
    ("text", "low", "high"),
    [
        ("4.8-105 mg/dL", "0.048", "1.05"),
        ("<2.01 g/L", None, "2.01"),
        ("up to 135 mg/dL", None, "1.35"),
        ("normal", None, None),
    ],
)
def test_range_text(text, low, high):
    parsed = parse_range_text(text, "g/L", "g/L")
    assert parsed == (Decimal(low) if low else None, Decimal(high) if high else None)


def test_raw_prefilter_keeps_only_known_loinc_codes():
    assert wanted_observation(observation("2469-5", 1.0))
    assert not wanted_observation(observation("4548-4", 7.0, "%"))
    assert not wanted_observation({"resourceType": "Observation", "code": "garbage"})
    # An unhashable code (a list where a string belongs) is not wanted, and does not raise.
    assert not wanted_observation({"code": {"coding": [{"system": "http://loinc.org", "code": ["2469-5"]}]}})


# Lab values as text, undated results, flagged complement, prefixed ranges, negative words (issue 7).


@pytest.mark.parametrize(
    ("text", "value", "high", "original"),
    [
        ("2.43 g/L", "2.43", "0.864", "2.43 g/L"),
        ("> 1.4 g/L", "1.4", "0.864", "> 1.4 g/L"),
        (">1.4g/L", "1.4", "0.864", ">1.4g/L"),
        ("243 mg/dL", "2.43", "0.864", "243 mg/dL"),
        ("2,43 g/L", "2.43", "0.864", "2,43 g/L"),
    ],
)
def test_igg4_as_value_string_is_read(text, value, high, original):
    results, _ = labs(observation("2469-5", value_string=text, high=0.864))
    [result] = results["2469-5"]
    assert (result.value, result.high, result.original) == (Decimal(value), Decimal(high), original)
    assert result.above_high


@pytest.mark.parametrize("text", ["elevated", "2.43 g/L and 3.1 g/L", "1" * 100, "see note", ""])
def test_value_strings_that_are_not_one_number_give_no_value(text):
    # (A number with no unit is read, but cannot be put in g/L: a unit error, as for valueQuantity.)
    results, _ = labs(observation("2469-5", value_string=text, high=0.864))
    assert results.get("2469-5", []) == []


def test_a_result_without_a_date_is_not_used_and_counted():
    undated = observation("2469-5", 2.43, high=0.864)
    del undated["effectiveDateTime"]
    reading = extract_labs([read_resource("Observation", undated)], START, DEFAULT_ULN)
    assert reading.results == {} and reading.undated == 1
    undated["issued"] = "2026-10-02T08:00:00Z"  # issued dates it
    reading = extract_labs([read_resource("Observation", undated)], START, DEFAULT_ULN)
    assert reading.undated == 0 and len(reading.results["2469-5"]) == 1


@pytest.mark.parametrize(
    ("raw", "low"),
    [
        (observation("4485-9", 0.6, interpretation="L"), True),
        (observation("4498-2", 0.05, interpretation="LL"), True),
        (observation("4485-9", 0.6, interpretation="N"), False),
        (observation("4485-9", 0.6), False),
        # A range given wins over the flag.
        (observation("4485-9", 1.0, low=0.9, interpretation="L"), False),
        (observation("4485-9", 0.8, low=0.9), True),
        # Only complement: a flagged low WBC without a range is not low.
        (observation("6690-2", 2.0, "10*9/L", interpretation="L"), False),
    ],
)
def test_complement_flagged_low_without_a_range(raw, low):
    results, _ = labs(raw)
    [result] = next(iter(results.values()))
    assert result.below_low is low


@pytest.mark.parametrize(
    ("text", "low", "high"),
    [
        ("Adults 18-60 y: 0.039-0.864 g/L", "0.039", "0.864"),
        ("Adults 18-60: 0.039-0.864", "0.039", "0.864"),
        ("0.039-0.864 g/L (adults 18-60 y)", "0.039", "0.864"),
        ("Ref. range 3.9 to 86.4 mg/dL", "0.039", "0.864"),
        ("Adults: < 2.01 g/L", None, "2.01"),
        ("18-60 y", None, None),
    ],
)
def test_range_text_with_a_prefix(text, low, high):
    assert parse_range_text(text, "g/L", "g/L") == (
        Decimal(low) if low else None,
        Decimal(high) if high else None,
    )


def test_prefixed_range_text_replaces_the_default_uln():
    results, _ = labs(observation("2469-5", 1.0, range_text="Adults 18-60 y: 0.039-0.864 g/L"))
    [result] = results["2469-5"]
    assert (result.high, result.uln_source) == (Decimal("0.864"), UlnSource.REFERENCE_TEXT)


NEGATIVE_WORDS = [
    "None detected",
    "Not detected",
    "Not present",
    "No antibody detected",
    "Negative",
    "NEGATIVE",
]


@pytest.mark.parametrize("words", NEGATIVE_WORDS)
def test_negative_serology_in_words_is_negative(words):
    for raw in (
        observation("33569-5", value_string=words),
        observation("33569-5", value_string=words, interpretation="POS"),
        {**observation("33569-5"), "interpretation": [{"text": words}]},
        {**observation("33569-5"), "valueCodeableConcept": {"text": words}},
    ):
        results, _ = labs(raw)
        [result] = results["33569-5"]
        assert result.positive is False, raw


@pytest.mark.parametrize("words", ["Positive", "Detected", "Antibody present", "Reactive 1:160"])
def test_positive_serology_in_words(words):
    results, _ = labs(observation("33569-5", value_string=words))
    assert results["33569-5"][0].positive is True


def test_raw_prefilter_is_tolerant_like_the_reader():
    assert wanted_observation({"code": {"coding": {"system": "http://loinc.org", "code": "2469-5"}}})
    assert wanted_observation({"code": [{"coding": [{"system": "http://loinc.org", "code": "2469-5"}]}]})
