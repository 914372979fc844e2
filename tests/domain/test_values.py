"""``lts.domain.values``: the one place a float or text becomes a price or a size (SYS-013)."""

from decimal import ROUND_DOWN, Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lts.domain.values import ZERO, floor_to_step, to_decimal

TICK = Decimal("0.01")
LOT_1 = Decimal("1")
LOT_MILLI = Decimal("0.001")


def test_zero_is_a_decimal_zero() -> None:
    assert isinstance(ZERO, Decimal)
    assert ZERO == 0


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (0.1, Decimal("0.1")),
        (0.3, Decimal("0.3")),
        (1.0, Decimal("1.0")),
        (123.456, Decimal("123.456")),
        (-2.5, Decimal("-2.5")),
        (1e-7, Decimal("1E-7")),
        (0.1 + 0.2, Decimal("0.30000000000000004")),
    ],
)
def test_float_becomes_the_decimal_it_is_written_as(value: float, expected: Decimal) -> None:
    """A float goes through ``repr``: ``0.1`` is ``Decimal('0.1')``, not its binary expansion."""
    result = to_decimal(value)
    assert isinstance(result, Decimal)
    assert result == expected
    assert str(result) == str(expected)


def test_float_is_not_its_binary_expansion() -> None:
    assert Decimal.from_float(0.1) != Decimal("0.1")  # what the naive conversion would give
    assert to_decimal(0.1) == Decimal("0.1")


@pytest.mark.parametrize(("value", "expected"), [(0, Decimal(0)), (7, Decimal(7)),
                                                 (-3, Decimal(-3)), (10**20, Decimal(10**20))])
def test_int_is_exact(value: int, expected: Decimal) -> None:
    result = to_decimal(value)
    assert isinstance(result, Decimal)
    assert result == expected


@pytest.mark.parametrize("text", ["0.1", "100.25", "-0.0001", "1E+3", "12345678901234567890.5"])
def test_string_is_exact(text: str) -> None:
    assert to_decimal(text) == Decimal(text)
    assert str(to_decimal(text)) == str(Decimal(text))


def test_decimal_passes_through_unchanged() -> None:
    d = Decimal("1.23456789")
    assert to_decimal(d) is d


@pytest.mark.parametrize("step", [None, Decimal(0)])
def test_no_step_or_zero_step_does_not_quantize(step: Decimal | None) -> None:
    assert str(to_decimal("1.23456", step)) == "1.23456"


@pytest.mark.parametrize(
    ("value", "step", "expected"),
    [
        # tick 0.01, default ROUND_HALF_EVEN
        (0.1, TICK, "0.10"),
        (0.1 + 0.2, TICK, "0.30"),
        ("1.2345", TICK, "1.23"),
        ("1.235", TICK, "1.24"),  # half to even: 123.5 -> 124
        ("1.225", TICK, "1.22"),  # half to even: 122.5 -> 122
        ("1.2251", TICK, "1.23"),
        (101.999, TICK, "102.00"),
        (5, TICK, "5.00"),
        # lot 1
        ("7.4", LOT_1, "7"),
        ("7.6", LOT_1, "8"),
        ("2.5", LOT_1, "2"),
        ("3.5", LOT_1, "4"),
        (12, LOT_1, "12"),
        # lot 0.001
        ("0.0004", LOT_MILLI, "0.000"),
        ("0.12345", LOT_MILLI, "0.123"),
        ("0.12351", LOT_MILLI, "0.124"),
        (0.001, LOT_MILLI, "0.001"),
        (2, LOT_MILLI, "2.000"),
    ],
)
def test_quantize_to_step(value: float | int | str, step: Decimal, expected: str) -> None:
    """With a step the result is a whole multiple of it, carrying the step's exponent."""
    result = to_decimal(value, step)
    assert str(result) == expected
    assert result % step == 0
    assert result.as_tuple().exponent == step.as_tuple().exponent


@pytest.mark.parametrize(
    ("value", "step", "expected"),
    [
        (Decimal("1.239"), TICK, "1.23"),
        (Decimal("1.2399999"), TICK, "1.23"),
        (Decimal("1.23"), TICK, "1.23"),
        (Decimal("7.99"), LOT_1, "7"),
        (Decimal("0.999"), LOT_1, "0"),
        (Decimal("8"), LOT_1, "8"),
        (Decimal("0.12399"), LOT_MILLI, "0.123"),
        (Decimal("0.0009"), LOT_MILLI, "0.000"),
        (Decimal("5.0005"), LOT_MILLI, "5.000"),
    ],
)
def test_floor_to_step_rounds_down(value: Decimal, step: Decimal, expected: str) -> None:
    """Sizes are rounded down to the lot: never over-allocate."""
    assert str(floor_to_step(value, step)) == expected


def test_explicit_rounding_mode_is_honoured() -> None:
    assert str(to_decimal("1.239", TICK, ROUND_DOWN)) == "1.23"
    assert str(to_decimal(0.999, LOT_1, ROUND_DOWN)) == "0"


# A non-negative size with up to 6 decimals, up to 10^7.
sizes = st.decimals(min_value=0, max_value=10**7, places=6, allow_nan=False,
                    allow_infinity=False)


@settings(max_examples=200)
@given(value=sizes, step=st.sampled_from([TICK, LOT_1, LOT_MILLI]))
def test_floor_to_step_properties(value: Decimal, step: Decimal) -> None:
    """The floor is a multiple of the step, never above the value, and less than a step below."""
    result = floor_to_step(value, step)
    assert result % step == 0
    assert result <= value
    assert value - result < step
    assert result.as_tuple().exponent == step.as_tuple().exponent


@settings(max_examples=200)
@given(value=sizes, step=st.sampled_from([TICK, LOT_1, LOT_MILLI]))
def test_quantize_is_nearest_multiple(value: Decimal, step: Decimal) -> None:
    """Half-even quantization lands on a multiple of the step within half a step."""
    result = to_decimal(value, step)
    assert result % step == 0
    assert abs(value - result) <= step / 2
    assert floor_to_step(value, step) <= result <= floor_to_step(value, step) + step


@settings(max_examples=200)
@given(cents=st.integers(min_value=-10**9, max_value=10**9))
def test_float_of_a_price_round_trips_to_the_tick(cents: int) -> None:
    """A price that was written with 2 decimals and became a float comes back exactly."""
    price = Decimal(cents).scaleb(-2)
    assert to_decimal(float(price), TICK) == price
