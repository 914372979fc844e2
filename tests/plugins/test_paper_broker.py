"""Broker ``paper``: fills from market data, slippage against the order, fees in basis points,
order types, time in force, volume caps, cancel and reconciliation (SYS-006).

The broker is bound to a recording reports object and a clock the test sets.
"""

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pytest

from lts.domain.market import Bar
from lts.domain.orders import (
    Fill,
    OrderStatus,
    OrderStatusReport,
    OrderType,
    Side,
    TimeInForce,
)
from lts.plugins.broker.paper import PaperBroker

from ._support import DAY, HOUR, MINUTE, T0, RecordingReports, SettableClock, make_bar, make_order

ACCEPTED, CANCELED, EXPIRED = OrderStatus.ACCEPTED, OrderStatus.CANCELED, OrderStatus.EXPIRED
LIMIT, STOP, STOP_LIMIT = OrderType.LIMIT, OrderType.STOP, OrderType.STOP_LIMIT


@dataclass
class Venue:
    broker: PaperBroker
    reports: RecordingReports
    clock: SettableClock


def make_venue(**params: Any) -> Venue:
    broker = PaperBroker(**params)
    venue = Venue(broker, RecordingReports(), SettableClock())
    broker.bind(venue.reports, venue.clock)
    return venue


def make_fill(quantity: str, price: str, fee: str = "0", *, trade: int = 1, side: Side = Side.BUY,
              ts: int = T0 + MINUTE, coid: str = "1-1") -> Fill:
    return Fill(1, coid, "paper", f"{coid}-{trade}", "AAA", side, Decimal(quantity),
                Decimal(price), Decimal(fee), ts)


def bar_at(minutes: int, open: float, high: float | None = None, low: float | None = None,
           **kw: Any) -> Bar:
    return make_bar(open, high, low, ts=T0 + minutes * MINUTE, **kw)


# -- market orders --------------------------------------------------------------------------------

def test_market_buy_fills_at_the_next_open_with_slippage_and_fees() -> None:
    v = make_venue(fees_bps=Decimal(5), slippage_bps=Decimal(10))
    v.broker.submit(make_order(10))
    assert v.reports.statuses == [("1-1", ACCEPTED, T0, "")]
    assert v.reports.fills == []

    v.broker.on_bar(bar_at(1, 100.0))
    # 100 * (1 + 10 bps) = 100.1; fee 100.1 * 10 * 5 bps = 0.5005
    assert v.reports.fills == [make_fill("10", "100.1", "0.5005")]
    assert (str(v.reports.fills[0].price), str(v.reports.fills[0].fee)) == (
        "100.1000", "0.50050000")
    assert v.broker.working_orders == 0
    v.broker.on_bar(bar_at(2, 101.0))
    assert len(v.reports.fills) == 1


def test_market_sell_slips_down_and_rounds_to_the_price_increment() -> None:
    v = make_venue(fees_bps=Decimal(3), slippage_bps=Decimal(7))
    v.broker.submit(make_order(3, Side.SELL))
    v.broker.on_bar(bar_at(1, 123.45))
    # 123.45 * (1 - 7 bps) = 123.363585 -> 123.3636; fee 123.3636 * 3 * 3 bps = 0.11102724
    [fill] = v.reports.fills
    assert (fill.side, str(fill.price), str(fill.fee)) == (Side.SELL, "123.3636", "0.11102724")


def test_no_fees_no_slippage_is_the_open_itself() -> None:
    v = make_venue()
    v.broker.submit(make_order(2))
    v.broker.on_bar(bar_at(1, 99.5))
    assert v.reports.fills == [make_fill("2", "99.5")]
    assert v.reports.fills[0].fee == 0


def test_fill_at_close_fills_at_once_at_the_last_close() -> None:
    v = make_venue(fill_at="close", slippage_bps=Decimal(10))
    v.broker.on_bar(make_bar(100.0, close=101.0, ts=T0 + MINUTE))
    v.clock.now = T0 + 2 * MINUTE
    v.broker.submit(make_order(5))
    # 101 * 1.001 = 101.101, stamped with the clock (the signal's time)
    assert v.reports.statuses == [("1-1", ACCEPTED, T0 + 2 * MINUTE, "")]
    assert v.reports.fills == [make_fill("5", "101.101", ts=T0 + 2 * MINUTE)]
    assert v.broker.working_orders == 0


def test_fill_at_close_without_a_close_yet_waits_for_the_next_open() -> None:
    v = make_venue(fill_at="close")
    v.broker.submit(make_order(5))
    assert v.reports.fills == []
    v.broker.on_bar(bar_at(1, 98.0))
    assert v.reports.fills == [make_fill("5", "98")]


# -- limit, stop, stop-limit ----------------------------------------------------------------------

@pytest.mark.parametrize(("side", "limit", "bar", "price"), [
    (Side.BUY, "99", (98.5, 99.5, 98.0), "98.5"),      # open below the limit: the open
    (Side.BUY, "99", (100.0, 101.0, 98.9), "99"),      # low touches: the limit
    (Side.BUY, "99", (100.0, 101.0, 99.1), None),      # never reaches it
    (Side.SELL, "101", (101.5, 102.0, 100.0), "101.5"),
    (Side.SELL, "101", (100.0, 101.2, 99.0), "101"),
    (Side.SELL, "101", (100.0, 100.9, 99.0), None),
])
def test_limit_orders(side: Side, limit: str, bar: tuple[float, float, float],
                      price: str | None) -> None:
    v = make_venue(slippage_bps=Decimal(50))  # a limit price is never slipped
    v.broker.submit(make_order(4, side, order_type=LIMIT, limit=limit))
    v.broker.on_bar(bar_at(1, *bar))
    if price is None:
        assert v.reports.fills == []
        assert v.broker.working_orders == 1
    else:
        assert v.reports.fills == [make_fill("4", price, side=side)]
        assert v.broker.working_orders == 0


@pytest.mark.parametrize(("side", "stop", "bar", "price"), [
    (Side.BUY, "105", (100.0, 104.9, 99.0), None),     # high below the stop
    (Side.BUY, "105", (100.0, 106.0, 99.0), "105"),    # high crosses: the stop
    (Side.BUY, "105", (107.0, 108.0, 106.5), "107"),   # gaps through: the open
    (Side.SELL, "95", (100.0, 101.0, 95.1), None),
    (Side.SELL, "95", (100.0, 101.0, 94.0), "95"),
    (Side.SELL, "95", (93.0, 94.0, 92.0), "93"),
])
def test_stop_orders(side: Side, stop: str, bar: tuple[float, float, float],
                     price: str | None) -> None:
    v = make_venue()
    v.broker.submit(make_order(4, side, order_type=STOP, stop=stop))
    v.broker.on_bar(bar_at(1, *bar))
    assert v.reports.fills == ([] if price is None else [make_fill("4", price, side=side)])


def test_a_triggered_stop_slips_against_the_order() -> None:
    v = make_venue(slippage_bps=Decimal(10))
    v.broker.submit(make_order(1, order_type=STOP, stop="105"))
    v.broker.on_bar(bar_at(1, 100.0, 106.0, 99.0))
    assert v.reports.fills == [make_fill("1", "105.105")]


def test_stop_limit_fills_at_the_stop_when_the_limit_allows() -> None:
    v = make_venue()
    v.broker.submit(make_order(2, order_type=STOP_LIMIT, stop="105", limit="106"))
    v.broker.on_bar(bar_at(1, 100.0, 104.0, 99.0))
    assert v.reports.fills == []
    v.broker.on_bar(bar_at(2, 100.0, 106.0, 99.0))
    assert v.reports.fills == [make_fill("2", "105", ts=T0 + 2 * MINUTE)]


def test_stop_limit_below_its_stop_works_as_a_limit_once_triggered() -> None:
    v = make_venue()
    v.broker.submit(make_order(2, order_type=STOP_LIMIT, stop="105", limit="104"))
    v.broker.on_bar(bar_at(1, 100.0, 106.0, 99.0))  # triggers; no fill on the trigger bar
    assert v.reports.fills == []
    v.broker.on_bar(bar_at(2, 105.0, 106.0, 104.5))  # limit 104 not reached
    assert v.reports.fills == []
    v.broker.on_bar(bar_at(3, 103.5, 104.0, 103.0))  # open below the limit
    assert v.reports.fills == [make_fill("2", "103.5", ts=T0 + 3 * MINUTE)]


def test_stop_limit_gapping_through_the_stop_works_the_limit_on_the_same_bar() -> None:
    v = make_venue()
    v.broker.submit(make_order(2, order_type=STOP_LIMIT, stop="105", limit="106"))
    v.broker.on_bar(bar_at(1, 107.0, 108.0, 105.5))
    assert v.reports.fills == [make_fill("2", "106")]


# -- time in force --------------------------------------------------------------------------------

def test_ioc_cancels_what_the_first_bar_did_not_fill() -> None:
    v = make_venue(volume_cap=0.1)
    v.broker.submit(make_order(8, time_in_force=TimeInForce.IOC))
    v.broker.on_bar(bar_at(1, 100.0, volume=50.0))  # cap: 10% of 50 = 5
    assert v.reports.fills == [make_fill("5", "100")]
    assert v.reports.statuses[-1] == ("1-1", CANCELED, T0 + MINUTE, "ioc: not filled on first bar")
    assert v.broker.working_orders == 0
    v.broker.on_bar(bar_at(2, 100.0, volume=50.0))
    assert len(v.reports.fills) == 1


def test_ioc_limit_not_reached_is_canceled_without_a_fill() -> None:
    v = make_venue()
    v.broker.submit(make_order(8, order_type=LIMIT, limit="90", time_in_force=TimeInForce.IOC))
    v.broker.on_bar(bar_at(1, 100.0))
    assert v.reports.fills == []
    assert v.reports.status_codes() == [ACCEPTED, CANCELED]


@pytest.mark.parametrize(("quantity", "filled"), [("5", True), ("8", False)])
def test_fok_fills_whole_or_cancels(quantity: str, filled: bool) -> None:
    v = make_venue(volume_cap=0.1)
    v.broker.submit(make_order(quantity, time_in_force=TimeInForce.FOK))
    v.broker.on_bar(bar_at(1, 100.0, volume=50.0))  # cap 5
    if filled:
        assert v.reports.fills == [make_fill(quantity, "100")]
        assert v.reports.status_codes() == [ACCEPTED]
    else:
        assert v.reports.fills == []
        assert v.reports.statuses[-1] == ("1-1", CANCELED, T0 + MINUTE,
                                          "fok: not filled on first bar")
    assert v.broker.working_orders == 0


def test_day_order_expires_when_the_utc_day_changes() -> None:
    v = make_venue()
    v.clock.now = T0 + 10 * HOUR
    v.broker.submit(make_order(3, order_type=LIMIT, limit="99", time_in_force=TimeInForce.DAY))
    late_same_day = T0 + DAY - MINUTE
    v.broker.on_bar(make_bar(100.0, 101.0, 99.5, ts=late_same_day))
    assert v.reports.status_codes() == [ACCEPTED]
    next_day = T0 + DAY
    v.broker.on_bar(make_bar(98.0, 99.0, 97.0, ts=next_day))  # would fill, but the day is over
    assert v.reports.fills == []
    assert v.reports.statuses[-1] == ("1-1", EXPIRED, next_day, "day order expired")
    assert v.broker.working_orders == 0


def test_gtc_limit_works_across_days() -> None:
    v = make_venue()
    v.broker.submit(make_order(3, order_type=LIMIT, limit="99"))
    v.broker.on_bar(make_bar(100.0, 101.0, 99.5, ts=T0 + MINUTE))
    v.broker.on_bar(make_bar(98.0, 99.0, 97.0, ts=T0 + 3 * DAY))
    assert v.reports.fills == [make_fill("3", "98", ts=T0 + 3 * DAY)]


# -- volume cap -----------------------------------------------------------------------------------

def test_volume_cap_fills_partially_across_bars_with_unique_trade_ids() -> None:
    v = make_venue(volume_cap=0.1)
    v.broker.submit(make_order(12))
    for minute, open_ in [(1, 100.0), (2, 101.0), (3, 102.0), (4, 103.0)]:
        v.broker.on_bar(bar_at(minute, open_, volume=50.0))
    assert v.reports.fills == [
        make_fill("5", "100", trade=1, ts=T0 + MINUTE),
        make_fill("5", "101", trade=2, ts=T0 + 2 * MINUTE),
        make_fill("2", "102", trade=3, ts=T0 + 3 * MINUTE),
    ]
    assert len({f.trade_id for f in v.reports.fills}) == 3
    assert sum(f.quantity for f in v.reports.fills) == 12
    assert v.broker.working_orders == 0


def test_a_bar_with_no_volume_under_a_cap_fills_nothing() -> None:
    v = make_venue(volume_cap=0.5)
    v.broker.submit(make_order(1))
    v.broker.on_bar(bar_at(1, 100.0, volume=0.0))
    assert v.reports.fills == []
    assert v.broker.working_orders == 1


# -- cancel, other symbols, reconcile -------------------------------------------------------------

def test_cancel_takes_a_working_order_off_the_book() -> None:
    v = make_venue()
    v.broker.submit(make_order(3, order_type=LIMIT, limit="90"))
    v.clock.now = T0 + 5 * MINUTE
    v.broker.cancel("1-1")
    assert v.reports.statuses[-1] == ("1-1", CANCELED, T0 + 5 * MINUTE, "")
    assert v.broker.working_orders == 0
    v.broker.on_bar(bar_at(6, 80.0))
    assert v.reports.fills == []


def test_cancel_of_an_order_the_venue_does_not_hold_reports_it_canceled() -> None:
    v = make_venue()
    v.broker.cancel("9-9")
    assert v.reports.statuses == [("9-9", CANCELED, T0, "not working at the venue")]


def test_bars_of_another_symbol_do_not_work_the_order() -> None:
    v = make_venue()
    v.broker.submit(make_order(1))
    v.broker.on_bar(bar_at(1, 50.0, symbol="BBB"))
    assert v.reports.fills == []
    v.broker.on_bar(bar_at(2, 100.0))
    assert v.reports.fills == [make_fill("1", "100", ts=T0 + 2 * MINUTE)]


@pytest.mark.anyio
async def test_reconcile_reports_unknown_orders_canceled() -> None:
    v = make_venue()
    working = make_order(3, order_type=LIMIT, limit="90", coid="1-1")
    v.broker.submit(working)
    working.transition(ACCEPTED, T0)
    forgotten = make_order(3, coid="1-2", status=ACCEPTED)  # sent before a restart

    reports = await v.broker.reconcile([working, forgotten])
    assert reports == [
        OrderStatusReport("1-1", ACCEPTED),
        OrderStatusReport("1-2", CANCELED, reason="unknown to the paper venue"),
    ]
