"""Portfolio ``fixed_fraction``: a target sized at a fraction of equity, floored to the lot size,
reached through one order request that counts what is held and what is still pending.

The view is the engine's real :class:`~lts.engine.ledger.Ledger`.
"""

from decimal import Decimal

import pytest

from lts.domain.instruments import Instrument
from lts.domain.orders import Fill, Order, OrderRequest, OrderStatus, Side
from lts.domain.signals import Signal, Target
from lts.engine.ledger import Ledger
from lts.plugins.portfolio.fixed_fraction import FixedFraction

from ._support import T0, make_order


def make_ledger(cash: str = "10000", lot: str = "1", price: float | None = 33.0,
                open_orders: dict[str, Order] | None = None) -> Ledger:
    ledger = Ledger(Decimal(cash), {"AAA": Instrument("AAA", Decimal("0.01"), Decimal(lot))},
                    {} if open_orders is None else open_orders)
    if price is not None:
        ledger.mark("AAA", price)
    return ledger


def make_signal(target: Target = Target.LONG, quantity: str | None = None,
                reason: str = "sma cross") -> Signal:
    return Signal("AAA", target, T0, None if quantity is None else Decimal(quantity), reason)


def hold(ledger: Ledger, quantity: str, price: str = "33", side: Side = Side.BUY) -> None:
    ledger.apply_fill(Fill(1, "1-0", "paper", f"t{quantity}{side.value}", "AAA", side,
                           Decimal(quantity), Decimal(price), Decimal(0), T0))


def request(side: Side, quantity: str, tag: str = "sma cross") -> OrderRequest:
    return OrderRequest("AAA", side, Decimal(quantity), tag=tag)


def test_long_is_a_fraction_of_equity_floored_to_the_lot() -> None:
    # 10% of 10000 = 1000; 1000 / 33 = 30.30... -> 30 whole lots
    assert FixedFraction().allocate(make_signal(), make_ledger()) == [request(Side.BUY, "30")]


def test_fractional_lots_floor_never_round_up() -> None:
    # 25% of 10000 = 2500; 2500 / 33 = 75.7575... -> 75.75 in lots of 0.25
    allocator = FixedFraction(fraction=Decimal("0.25"))
    assert allocator.allocate(make_signal(), make_ledger(lot="0.25")) == [
        request(Side.BUY, "75.75")]


def test_a_signal_quantity_is_taken_as_it_is() -> None:
    assert FixedFraction().allocate(make_signal(quantity="7"), make_ledger()) == [
        request(Side.BUY, "7")]


def test_flat_closes_the_position() -> None:
    ledger = make_ledger()
    hold(ledger, "30")
    assert FixedFraction().allocate(make_signal(Target.FLAT), ledger) == [
        request(Side.SELL, "30")]


def test_short_goes_through_zero_to_minus_size() -> None:
    ledger = make_ledger()
    hold(ledger, "30")
    # equity 10000 (bought at the mark) -> size 30; from +30 to -30
    assert FixedFraction().allocate(make_signal(Target.SHORT), ledger) == [
        request(Side.SELL, "60")]


def test_nothing_when_already_at_target() -> None:
    ledger = make_ledger()
    hold(ledger, "30")
    allocator = FixedFraction()
    assert allocator.allocate(make_signal(), ledger) == []
    assert allocator.allocate(make_signal(Target.FLAT, reason="x"), make_ledger()) == []
    assert allocator.requests == 0


def test_while_an_order_of_the_symbol_is_open_signals_wait() -> None:
    """An order on its way to the last target: a new signal is left out (a FLAT against a buy
    that has not filled would sell what is not held: a short sale), until it settles."""
    working = make_order(30, coid="1-1", status=OrderStatus.ACCEPTED)
    open_orders = {"1-1": working}
    ledger = make_ledger(open_orders=open_orders)
    allocator = FixedFraction()
    assert allocator.allocate(make_signal(), ledger) == []
    assert allocator.allocate(make_signal(Target.FLAT), ledger) == []

    working.apply_fill(Decimal(12), Decimal(33), T0)  # partially filled: 18 still pending
    hold(ledger, "12")
    assert allocator.allocate(make_signal(Target.FLAT), ledger) == []
    assert allocator.waited == 3

    working.apply_fill(Decimal(18), Decimal(33), T0)  # filled: nothing pending any more
    del open_orders["1-1"]
    hold(ledger, "18")
    assert allocator.allocate(make_signal(Target.FLAT), ledger) == [request(Side.SELL, "30")]


def test_no_price_sizes_nothing() -> None:
    allocator = FixedFraction()
    assert allocator.allocate(make_signal(), make_ledger(price=None)) == []


def test_a_long_signal_never_sells_a_long_position() -> None:
    ledger = make_ledger(price=None)  # e.g. positions rebuilt from fills, no bar seen yet
    hold(ledger, "30")
    assert FixedFraction().allocate(make_signal(), ledger) == []


@pytest.mark.parametrize(("fraction", "expected"), [("0.1", "30"), ("0.5", "151"), ("1", "303")])
def test_size_scales_with_the_fraction(fraction: str, expected: str) -> None:
    allocator = FixedFraction(fraction=Decimal(fraction))
    assert allocator.allocate(make_signal(), make_ledger()) == [request(Side.BUY, expected)]
    assert allocator.requests == 1
