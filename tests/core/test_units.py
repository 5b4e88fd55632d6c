from decimal import Decimal

import pytest

from cds_service.core.units import UnitError, conversion_factor, convert


@pytest.mark.parametrize(
    ("value", "unit", "target", "expected"),
    [
        ("2.43", "g/L", "g/L", "2.43"),
        ("2430", "mg/L", "g/L", "2.43"),
        ("243", "mg/dL", "g/L", "2.43"),
        ("0.864", "g/L", "mg/dL", "86.4"),
        ("3.5", "10*9/L", "10*9/L", "3.5"),
        ("3500", "/uL", "10*9/L", "3.5"),
        ("3500", "{cells}/uL", "10*9/L", "3.5"),
        ("3.5", "10*3/uL", "10*9/L", "3.5"),
        ("3.5", "K/uL", "10*9/L", "3.5"),
        ("3500", "/mm3", "10*9/L", "3.5"),
        ("3500", "µL-1", "10*9/L", "3.5"),
    ],
)
def test_conversions_are_exact(value, unit, target, expected):
    assert convert(Decimal(value), unit, target) == Decimal(expected)


@pytest.mark.parametrize("unit", ["mmol/L", "banana", "", "U/L", "g", "%"])
def test_unconvertible_units_raise_unit_error(unit):
    with pytest.raises(UnitError) as info:
        conversion_factor(unit, "g/L")
    assert info.value.unit == unit


def test_powers_of_ten_keep_decimal_exactness():
    # 2 x ULN exactly must stay exactly 2 after conversion (no binary floating point noise).
    assert convert(Decimal("270"), "mg/dL", "g/L") == 2 * Decimal("1.35")


@pytest.mark.parametrize(
    "garbage", ["/", "*", "g/", "(", "1/0", "g//L", "1/0.0", "**", "__import__", "e" * 80]
)
def test_garbage_units_are_unit_errors_not_crashes(garbage):
    with pytest.raises(UnitError):
        conversion_factor(garbage, "g/L")
