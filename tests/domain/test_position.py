"""``Position``: signed quantity, average cost, realized P&L and fees (SYS-006, SYS-013).

Long is positive. Examples use exact numbers; the property tests check the accounting identity
against an independent cash ledger (``cash -= signed_qty * price + fee``).
"""

from decimal import Decimal, Inexact, localcontext

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lts.domain.orders import Side
from lts.domain.position import Position

D = Decimal
BUY, SELL = Side.BUY, Side.SELL


def pos(*fills: tuple[Side, str, str] | tuple[Side, str, str, str]) -> Position:
    p = Position(symbol="AAPL")
    for side, qty, price, *fee in fills:
        p.apply_fill(side, D(qty), D(price), D(fee[0]) if fee else D(0))
    return p


# --- examples ------------------------------------------------------------------------------

def test_new_position_is_flat() -> None:
    p = Position(symbol="AAPL")
    assert (p.quantity, p.avg_price, p.realized_pnl, p.fees) == (0, 0, 0, 0)
    assert p.unrealized_pnl(D("123.45")) == 0
    assert p.market_value(D("123.45")) == 0


def test_open_long() -> None:
    p = Position(symbol="AAPL")
    assert p.apply_fill(BUY, D(10), D("100.00")) == 0
    assert p.quantity == D(10)
    assert p.avg_price == D("100.00")
    assert p.realized_pnl == 0
    assert p.unrealized_pnl(D("110.00")) == D("100.00")
    assert p.unrealized_pnl(D("95.50")) == D("-45.00")
    assert p.market_value(D("110.00")) == D("1100.00")


def test_open_short() -> None:
    p = Position(symbol="AAPL")
    assert p.apply_fill(SELL, D(5), D("50.00")) == 0
    assert p.quantity == D(-5)
    assert p.avg_price == D("50.00")
    assert p.unrealized_pnl(D("45.00")) == D("25.00")  # a short gains when the price falls
    assert p.unrealized_pnl(D("55.00")) == D("-25.00")
    assert p.market_value(D("45.00")) == D("-225.00")


def test_add_to_long_moves_average_cost() -> None:
    p = pos((BUY, "10", "100.00"))
    assert p.apply_fill(BUY, D(30), D("104.00")) == 0
    assert p.quantity == D(40)
    assert p.avg_price == D("103.00")  # (1000 + 3120) / 40
    assert p.realized_pnl == 0
    assert p.unrealized_pnl(D("105.00")) == D("80.00")


def test_add_to_short_moves_average_cost() -> None:
    p = pos((SELL, "2", "10.00"))
    assert p.apply_fill(SELL, D(2), D("12.00")) == 0
    assert p.quantity == D(-4)
    assert p.avg_price == D("11.00")
    assert p.unrealized_pnl(D("10.00")) == D("4.00")


def test_reduce_long_realizes_against_average_cost() -> None:
    p = pos((BUY, "10", "100.00"))
    assert p.apply_fill(SELL, D(4), D("110.00")) == D("40.00")
    assert p.quantity == D(6)
    assert p.avg_price == D("100.00")  # reducing does not move the average cost
    assert p.realized_pnl == D("40.00")
    assert p.unrealized_pnl(D("110.00")) == D("60.00")


def test_reduce_short_realizes_against_average_cost() -> None:
    p = pos((SELL, "10", "50.00"))
    assert p.apply_fill(BUY, D(4), D("45.00")) == D("20.00")
    assert p.quantity == D(-6)
    assert p.avg_price == D("50.00")
    assert p.realized_pnl == D("20.00")
    assert p.apply_fill(BUY, D(1), D("52.00")) == D("-2.00")
    assert p.realized_pnl == D("18.00")


def test_close_long_at_a_loss() -> None:
    p = pos((BUY, "10", "100.00"))
    assert p.apply_fill(SELL, D(10), D("95.00")) == D("-50.00")
    assert p.quantity == 0
    assert p.avg_price == 0
    assert p.realized_pnl == D("-50.00")
    assert p.unrealized_pnl(D("1000.00")) == 0


def test_close_short() -> None:
    p = pos((SELL, "3", "20.00"), (SELL, "1", "24.00"))  # avg 21
    assert p.apply_fill(BUY, D(4), D("19.50")) == D("6.00")  # (21 - 19.5) * 4
    assert (p.quantity, p.avg_price, p.realized_pnl) == (0, 0, D("6.00"))


def test_reopen_after_close_starts_from_the_new_price() -> None:
    p = pos((BUY, "10", "100.00"), (SELL, "10", "101.00"))
    p.apply_fill(BUY, D(2), D("90.00"))
    assert (p.quantity, p.avg_price, p.realized_pnl) == (D(2), D("90.00"), D("10.00"))


def test_flip_long_to_short_through_zero() -> None:
    """Crossing zero closes the old side at the fill price and opens the rest there."""
    p = pos((BUY, "5", "10.00"))
    assert p.apply_fill(SELL, D(8), D("12.00")) == D("10.00")  # (12 - 10) * 5
    assert p.quantity == D(-3)
    assert p.avg_price == D("12.00")
    assert p.realized_pnl == D("10.00")
    assert p.unrealized_pnl(D("11.00")) == D("3.00")


def test_flip_short_to_long_through_zero() -> None:
    p = pos((SELL, "4", "20.00"))
    assert p.apply_fill(BUY, D(10), D("18.00")) == D("8.00")  # (20 - 18) * 4
    assert p.quantity == D(6)
    assert p.avg_price == D("18.00")
    assert p.realized_pnl == D("8.00")
    assert p.unrealized_pnl(D("18.50")) == D("3.00")


def test_fees_accumulate_apart_from_realized_pnl() -> None:
    p = Position(symbol="AAPL")
    assert p.apply_fill(BUY, D(1), D("10.00"), fee=D("0.50")) == 0
    assert p.apply_fill(SELL, D(1), D("11.00"), fee=D("0.25")) == D("1.00")
    assert p.realized_pnl == D("1.00")
    assert p.fees == D("0.75")


@pytest.mark.parametrize("quantity", ["0", "-0", "-2", "-0.001"])
@pytest.mark.parametrize("start", [(), ((BUY, "3", "10.00"),), ((SELL, "3", "10.00"),)])
def test_non_positive_fill_quantity_is_refused(
        quantity: str, start: tuple[tuple[Side, str, str], ...]) -> None:
    """SYS-013: the side carries the sign; a zero or negative size is an error, not a silent
    corruption (a BUY of -2 @ 10 used to give quantity -2 with avg_price -10)."""
    p = pos(*start)
    before = Position(symbol=p.symbol, quantity=p.quantity, cost=p.cost,
                      realized_pnl=p.realized_pnl, fees=p.fees)
    for side in Side:
        with pytest.raises(ValueError, match="positive"):
            p.apply_fill(side, D(quantity), D("10.00"), D("1.00"))
        assert p == before


def test_fractional_lots() -> None:
    p = pos((BUY, "0.125", "64000.00"), (BUY, "0.375", "64400.00"))
    assert p.quantity == D("0.500")
    assert p.avg_price == D("64300.00")  # (8000 + 24150) / 0.5
    assert p.apply_fill(SELL, D("0.2"), D("64500.00")) == D("40.00")
    assert p.quantity == D("0.300")


# --- properties ----------------------------------------------------------------------------

prices = st.integers(min_value=0, max_value=100_000).map(lambda n: D(n).scaleb(-2))  # 0.01 grid
quantities = st.integers(min_value=1, max_value=1_000).map(D)
fees = st.integers(min_value=0, max_value=500).map(lambda n: D(n).scaleb(-2))
fills = st.lists(st.tuples(st.sampled_from(Side), quantities, prices, fees), max_size=30)

START_CASH = D("1000000.00")


@settings(max_examples=200)
@given(fills=fills)
def test_quantity_is_the_signed_sum_of_fills(
        fills: list[tuple[Side, Decimal, Decimal, Decimal]]) -> None:
    """SYS-006 (a): position.quantity == signed sum of fill quantities, after every fill."""
    p = Position(symbol="X")
    total = D(0)
    for side, qty, price, fee in fills:
        p.apply_fill(side, qty, price, fee)
        total += qty if side is Side.BUY else -qty
        assert p.quantity == total


@settings(max_examples=200)
@given(fills=fills)
def test_average_price_is_zero_when_flat(
        fills: list[tuple[Side, Decimal, Decimal, Decimal]]) -> None:
    """(c) a flat position carries no average cost; an open one has a non-negative cost."""
    p = Position(symbol="X")
    for side, qty, price, fee in fills:
        p.apply_fill(side, qty, price, fee)
        if p.quantity == 0:
            assert p.avg_price == 0
        else:
            assert p.avg_price >= 0


@settings(max_examples=200)
@given(fills=fills)
def test_fees_are_the_sum_of_fill_fees_and_realized_is_the_sum_of_returns(
        fills: list[tuple[Side, Decimal, Decimal, Decimal]]) -> None:
    p = Position(symbol="X")
    returned = D(0)
    for side, qty, price, fee in fills:
        returned += p.apply_fill(side, qty, price, fee)
    assert p.fees == sum((f for *_, f in fills), D(0))
    assert p.realized_pnl == returned


def _run_ledger(fills: list[tuple[Side, Decimal, Decimal, Decimal]]
                ) -> tuple[Position, Decimal, bool]:
    """Apply ``fills`` to a position and to a cash ledger; say whether any Decimal rounded."""
    p = Position(symbol="X")
    cash = START_CASH
    with localcontext() as ctx:
        ctx.clear_flags()
        for side, qty, price, fee in fills:
            signed = qty if side is Side.BUY else -qty
            p.apply_fill(side, qty, price, fee)
            cash -= signed * price + fee
        rounded = bool(ctx.flags[Inexact])
    return p, cash, rounded


@settings(max_examples=200)
@given(fills=fills, mark=prices)
def test_pnl_equals_change_in_equity(fills: list[tuple[Side, Decimal, Decimal, Decimal]],
                                     mark: Decimal) -> None:
    """SYS-013 (b): realized + unrealized(mark) - fees == (cash + quantity*mark) - starting cash,
    exactly, even when an average cost does not terminate (the cost basis is kept exact)."""
    p, cash, _ = _run_ledger(fills)
    pnl = p.realized_pnl + p.unrealized_pnl(mark) - p.fees
    equity_change = (cash + p.quantity * mark) - START_CASH
    assert pnl == equity_change


def test_round_trip_realized_pnl_is_exact() -> None:
    """SYS-013: once flat, realized P&L - fees must equal the cash result, exactly.

    Buy 1 @ 0.01, buy 2 @ 0.00 (average cost 0.00333...), sell 3 @ 0.00: the true realized
    P&L is -0.01, but the rounded average makes it -0.009999999999999999999999999999.
    """
    fills = [(BUY, D(1), D("0.01"), D(0)), (BUY, D(2), D("0.00"), D(0)),
             (SELL, D(3), D("0.00"), D(0))]
    p, cash, _ = _run_ledger(fills)
    assert p.quantity == 0
    assert p.realized_pnl - p.fees == cash - START_CASH == D("-0.01")
