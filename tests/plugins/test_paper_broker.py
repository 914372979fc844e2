"""Broker ``paper`` on the broker contract (issue 9): fills from market data, slippage against the
order on the instrument's tick grid, fees in basis points, order types, time in force, volume
caps in whole lots, amend/withdraw/status_of, and a book that survives a restart (SYS-006).

The broker is started as the runner starts it (``await broker.run(sink, clock)``) with a
recording sink in place of the runner's inbox and a clock the test sets; its rules come from
``use_instruments``, orders go in with ``place`` and are worked with ``on_bar``.
"""

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lts.domain.commands import ModifyOrder
from lts.domain.instruments import Instrument
from lts.domain.market import Bar
from lts.domain.orders import (
    Fill,
    Order,
    OrderStatus,
    OrderStatusReport,
    OrderType,
    Side,
    TimeInForce,
)
from lts.errors import VenueRejected
from lts.plugins.broker import ExecutionReport, ReportSink
from lts.plugins.broker.paper import PaperBroker

from ._support import DAY, HOUR, MINUTE, T0, SettableClock, make_bar, make_order

pytestmark = pytest.mark.anyio

S = OrderStatus
ACCEPTED, CANCELED, EXPIRED = S.ACCEPTED, S.CANCELED, S.EXPIRED
LIMIT, STOP, STOP_LIMIT = OrderType.LIMIT, OrderType.STOP, OrderType.STOP_LIMIT

#: The grid the old paper params defaulted to (price 0.0001, quantity 0.00000001).
AAA = Instrument("AAA", Decimal("0.0001"), Decimal("0.00000001"))
#: A coin worth a fraction of a cent: prices below the old fixed 0.0001 step.
PEPE = Instrument("PEPE", Decimal("0.0000001"), Decimal(1))
#: An FX pair: five decimals, lots of 1,000.
EURUSD = Instrument("EURUSD", Decimal("0.00001"), Decimal(1000))


@dataclass
class RecordingSink:
    """A :class:`~lts.plugins.broker.ReportSink`: keeps every report, in order."""

    reports: list[ExecutionReport] = field(default_factory=list)
    from_threads: int = 0

    def __call__(self, report: ExecutionReport) -> None:
        self.reports.append(report)

    def threadsafe(self, report: ExecutionReport) -> None:
        self.from_threads += 1
        self.reports.append(report)

    @property
    def fills(self) -> list[Fill]:
        return [r for r in self.reports if isinstance(r, Fill)]

    @property
    def statuses(self) -> list[tuple[str, OrderStatus, int, str]]:
        return [(r.client_order_id, r.status, r.ts_event, r.reason) for r in self.reports
                if isinstance(r, OrderStatusReport)]

    def status_codes(self) -> list[OrderStatus]:
        return [s for _, s, _, _ in self.statuses]


@dataclass
class Venue:
    broker: PaperBroker
    sink: RecordingSink
    clock: SettableClock


async def make_venue(instruments: dict[str, Instrument] | None = None, **params: Any) -> Venue:
    broker = PaperBroker(**params)
    venue = Venue(broker, RecordingSink(), SettableClock())
    sink: ReportSink = venue.sink
    await broker.run(sink, venue.clock)
    broker.use_instruments({"AAA": AAA} if instruments is None else instruments)
    return venue


def make_fill(quantity: str, price: str, fee: str = "0", *, trade: str | None = None,
              side: Side = Side.BUY, ts: int = T0 + MINUTE, coid: str = "1-1",
              symbol: str = "AAA") -> Fill:
    """A paper fill; its trade id is ``<coid>-<filled quantity after it>`` (default: the
    fill's own quantity, as for a first fill)."""
    return Fill(1, coid, "paper", f"{coid}@{trade or quantity}", symbol, side,
                Decimal(quantity), Decimal(price), Decimal(fee), ts)


def bar_at(minutes: int, open: float, high: float | None = None, low: float | None = None,
           **kw: Any) -> Bar:
    return make_bar(open, high, low, ts=T0 + minutes * MINUTE, **kw)


def journaled(order: Order, status: OrderStatus, *, filled: str | None = None,
              ts_init: int = 0) -> Order:
    """``order`` as the journal holds it after a restart: its status, what it filled so far."""
    return msgspec.structs.replace(order, status=status, ts_init=ts_init,
                                   filled_quantity=Decimal(filled or 0))


# -- the contract ---------------------------------------------------------------------------------

async def test_paper_declares_a_simulated_venue_that_can_modify() -> None:
    v = await make_venue()
    caps = v.broker.capabilities
    assert (caps.simulated, caps.modify, caps.client_order_ids) == (True, True, True)
    assert caps.order_types == frozenset(OrderType)
    assert caps.time_in_force == frozenset(TimeInForce)
    assert v.broker.name == "paper"
    assert await v.broker.instruments(["AAA"]) == {}  # no rules of its own: the assets'


async def test_place_answers_the_venue_id_and_reports_nothing_yet() -> None:
    v = await make_venue()
    assert v.broker.place(make_order(10)) == "paper-1-1"
    assert v.sink.reports == []  # the runner accepts the order on the answer itself
    assert v.broker.working_orders == 1


@pytest.mark.parametrize(("kind", "limit", "stop", "missing"), [
    (LIMIT, None, None, "limit price required"),
    (STOP, None, None, "stop price required"),
    (STOP_LIMIT, None, "105", "limit price required"),
    (STOP_LIMIT, "106", None, "stop price required"),
])
async def test_an_order_without_its_price_is_rejected(kind: OrderType, limit: str | None,
                                                      stop: str | None, missing: str) -> None:
    v = await make_venue()
    with pytest.raises(VenueRejected) as err:
        v.broker.place(make_order(1, order_type=kind, limit=limit, stop=stop))
    assert err.value.reason == missing
    assert v.broker.working_orders == 0
    assert v.sink.reports == []


# -- market orders --------------------------------------------------------------------------------

async def test_market_buy_fills_at_the_next_open_with_slippage_and_fees() -> None:
    v = await make_venue(fees_bps=Decimal(5), slippage_bps=Decimal(10))
    v.broker.place(make_order(10))
    assert v.sink.fills == []

    v.broker.on_bar(bar_at(1, 100.0))
    # 100 * (1 + 10 bps) = 100.1; fee 100.1 * 10 * 5 bps = 0.5005
    assert v.sink.fills == [make_fill("10", "100.1", "0.5005")]
    assert (str(v.sink.fills[0].price), str(v.sink.fills[0].fee)) == ("100.1000", "0.50050000")
    assert v.broker.working_orders == 0
    v.broker.on_bar(bar_at(2, 101.0))
    assert len(v.sink.fills) == 1


async def test_market_sell_slips_down_onto_the_tick_grid() -> None:
    v = await make_venue(fees_bps=Decimal(3), slippage_bps=Decimal(7))
    v.broker.place(make_order(3, Side.SELL))
    v.broker.on_bar(bar_at(1, 123.45))
    # 123.45 * (1 - 7 bps) = 123.363585 -> 123.3635 (down: against a sell, never the nearest
    # tick 123.3636); fee 123.3635 * 3 * 3 bps = 0.11102715
    [fill] = v.sink.fills
    assert (fill.side, str(fill.price), str(fill.fee)) == (Side.SELL, "123.3635", "0.11102715")


async def test_no_fees_no_slippage_is_the_open_itself() -> None:
    v = await make_venue()
    v.broker.place(make_order(2))
    v.broker.on_bar(bar_at(1, 99.5))
    assert v.sink.fills == [make_fill("2", "99.5")]
    assert v.sink.fills[0].fee == 0


async def test_fill_at_close_fills_at_once_at_the_last_close() -> None:
    v = await make_venue(fill_at="close", slippage_bps=Decimal(10))
    v.broker.on_bar(make_bar(100.0, close=101.0, ts=T0 + MINUTE))
    v.clock.now = T0 + 2 * MINUTE
    assert v.broker.place(make_order(5)) == "paper-1-1"
    # 101 * 1.001 = 101.101, stamped with the clock (the signal's time)
    assert v.sink.reports == [make_fill("5", "101.101", ts=T0 + 2 * MINUTE)]
    assert v.broker.working_orders == 0


async def test_fill_at_close_without_a_close_yet_waits_for_the_next_open() -> None:
    v = await make_venue(fill_at="close")
    v.broker.place(make_order(5))
    assert v.sink.fills == []
    v.broker.on_bar(bar_at(1, 98.0))
    assert v.sink.fills == [make_fill("5", "98")]


# -- limit, stop, stop-limit ----------------------------------------------------------------------

@pytest.mark.parametrize(("side", "limit", "bar", "price"), [
    # open below the limit: a taker fill at the open, slipped 50 bps but never past the
    # limit: 98.5 * 1.005 = 98.9925 (under 99)
    (Side.BUY, "99", (98.5, 99.5, 98.0), "98.9925"),
    (Side.BUY, "99", (100.0, 101.0, 98.9), "99"),      # low touches: the limit, never slipped
    (Side.BUY, "99", (100.0, 101.0, 99.1), None),      # never reaches it
    # 101.5 * 0.995 = 100.9925, through the limit 101: the limit
    (Side.SELL, "101", (101.5, 102.0, 100.0), "101"),
    (Side.SELL, "101", (100.0, 101.2, 99.0), "101"),
    (Side.SELL, "101", (100.0, 100.9, 99.0), None),
])
async def test_limit_orders(side: Side, limit: str, bar: tuple[float, float, float],
                            price: str | None) -> None:
    v = await make_venue(slippage_bps=Decimal(50))
    v.broker.place(make_order(4, side, order_type=LIMIT, limit=limit))
    v.broker.on_bar(bar_at(1, *bar))
    if price is None:
        assert v.sink.fills == []
        assert v.broker.working_orders == 1
    else:
        assert v.sink.fills == [make_fill("4", price, side=side)]
        assert v.broker.working_orders == 0


@pytest.mark.parametrize(("side", "stop", "bar", "price"), [
    (Side.BUY, "105", (100.0, 104.9, 99.0), None),     # high below the stop
    (Side.BUY, "105", (100.0, 106.0, 99.0), "105"),    # high crosses: the stop
    (Side.BUY, "105", (107.0, 108.0, 106.5), "107"),   # gaps through: the open
    (Side.SELL, "95", (100.0, 101.0, 95.1), None),
    (Side.SELL, "95", (100.0, 101.0, 94.0), "95"),
    (Side.SELL, "95", (93.0, 94.0, 92.0), "93"),
])
async def test_stop_orders(side: Side, stop: str, bar: tuple[float, float, float],
                           price: str | None) -> None:
    v = await make_venue()
    v.broker.place(make_order(4, side, order_type=STOP, stop=stop))
    v.broker.on_bar(bar_at(1, *bar))
    assert v.sink.fills == ([] if price is None else [make_fill("4", price, side=side)])


async def test_a_triggered_stop_slips_against_the_order() -> None:
    v = await make_venue(slippage_bps=Decimal(10))
    v.broker.place(make_order(1, order_type=STOP, stop="105"))
    v.broker.on_bar(bar_at(1, 100.0, 106.0, 99.0))
    assert v.sink.fills == [make_fill("1", "105.105")]


async def test_a_triggered_stop_partly_filled_works_on_as_a_market_order() -> None:
    """Triggered once, a stop is a market order: what the volume cap left fills at the next
    opens, whether or not the price is still through the stop."""
    v = await make_venue(volume_cap=0.1)
    v.broker.place(make_order(8, order_type=STOP, stop="105"))
    v.broker.on_bar(bar_at(1, 100.0, 106.0, 99.0, volume=50.0))  # triggers; cap 5
    v.broker.on_bar(bar_at(2, 103.0, 104.0, 102.0, volume=50.0))  # back below the stop
    assert v.sink.fills == [make_fill("5", "105"),
                            make_fill("3", "103", trade="8", ts=T0 + 2 * MINUTE)]
    assert v.broker.working_orders == 0


async def test_stop_limit_fills_at_the_stop_when_the_limit_allows() -> None:
    v = await make_venue()
    v.broker.place(make_order(2, order_type=STOP_LIMIT, stop="105", limit="106"))
    v.broker.on_bar(bar_at(1, 100.0, 104.0, 99.0))
    assert v.sink.fills == []
    v.broker.on_bar(bar_at(2, 100.0, 106.0, 99.0))
    assert v.sink.fills == [make_fill("2", "105", ts=T0 + 2 * MINUTE)]


async def test_stop_limit_below_its_stop_works_as_a_limit_once_triggered() -> None:
    v = await make_venue()
    v.broker.place(make_order(2, order_type=STOP_LIMIT, stop="105", limit="104"))
    v.broker.on_bar(bar_at(1, 100.0, 106.0, 99.0))  # triggers; no fill on the trigger bar
    assert v.sink.fills == []
    v.broker.on_bar(bar_at(2, 105.0, 106.0, 104.5))  # limit 104 not reached
    assert v.sink.fills == []
    v.broker.on_bar(bar_at(3, 103.5, 104.0, 103.0))  # open below the limit
    assert v.sink.fills == [make_fill("2", "103.5", ts=T0 + 3 * MINUTE)]


async def test_stop_limit_gapping_through_the_stop_works_the_limit_on_the_same_bar() -> None:
    v = await make_venue()
    v.broker.place(make_order(2, order_type=STOP_LIMIT, stop="105", limit="106"))
    v.broker.on_bar(bar_at(1, 107.0, 108.0, 105.5))
    assert v.sink.fills == [make_fill("2", "106")]


# -- time in force --------------------------------------------------------------------------------

async def test_ioc_cancels_what_the_first_bar_did_not_fill() -> None:
    v = await make_venue(volume_cap=0.1)
    v.broker.place(make_order(8, time_in_force=TimeInForce.IOC))
    v.broker.on_bar(bar_at(1, 100.0, volume=50.0))  # cap: 10% of 50 = 5
    assert v.sink.fills == [make_fill("5", "100")]
    assert v.sink.statuses == [("1-1", CANCELED, T0 + MINUTE, "ioc: not filled on first bar")]
    assert v.broker.working_orders == 0
    v.broker.on_bar(bar_at(2, 100.0, volume=50.0))
    assert len(v.sink.fills) == 1


async def test_ioc_limit_not_reached_is_canceled_without_a_fill() -> None:
    v = await make_venue()
    v.broker.place(make_order(8, order_type=LIMIT, limit="90", time_in_force=TimeInForce.IOC))
    v.broker.on_bar(bar_at(1, 100.0))
    assert v.sink.fills == []
    assert v.sink.status_codes() == [CANCELED]


@pytest.mark.parametrize(("quantity", "filled"), [("5", True), ("8", False)])
async def test_fok_fills_whole_or_cancels(quantity: str, filled: bool) -> None:
    v = await make_venue(volume_cap=0.1)
    v.broker.place(make_order(quantity, time_in_force=TimeInForce.FOK))
    v.broker.on_bar(bar_at(1, 100.0, volume=50.0))  # cap 5
    if filled:
        assert v.sink.reports == [make_fill(quantity, "100")]
    else:
        assert v.sink.reports == [OrderStatusReport(
            "1-1", CANCELED, reason="fok: not filled on first bar", ts_event=T0 + MINUTE)]
    assert v.broker.working_orders == 0


async def test_day_order_expires_when_the_utc_day_changes() -> None:
    v = await make_venue()
    v.clock.now = T0 + 10 * HOUR
    v.broker.place(make_order(3, order_type=LIMIT, limit="99", time_in_force=TimeInForce.DAY))
    late_same_day = T0 + DAY - MINUTE
    v.broker.on_bar(make_bar(100.0, 101.0, 99.5, ts=late_same_day))
    assert v.sink.reports == []
    next_day = T0 + DAY
    v.broker.on_bar(make_bar(98.0, 99.0, 97.0, ts=next_day))  # would fill, but the day is over
    assert v.sink.fills == []
    assert v.sink.statuses == [("1-1", EXPIRED, next_day, "day order expired")]
    assert v.broker.working_orders == 0


async def test_gtc_limit_works_across_days() -> None:
    v = await make_venue()
    v.broker.place(make_order(3, order_type=LIMIT, limit="99"))
    v.broker.on_bar(make_bar(100.0, 101.0, 99.5, ts=T0 + MINUTE))
    v.broker.on_bar(make_bar(98.0, 99.0, 97.0, ts=T0 + 3 * DAY))
    assert v.sink.fills == [make_fill("3", "98", ts=T0 + 3 * DAY)]


# -- volume cap -----------------------------------------------------------------------------------

async def test_volume_cap_fills_partially_across_bars_with_unique_trade_ids() -> None:
    v = await make_venue(volume_cap=0.1)
    v.broker.place(make_order(12))
    for minute, open_ in [(1, 100.0), (2, 101.0), (3, 102.0), (4, 103.0)]:
        v.broker.on_bar(bar_at(minute, open_, volume=50.0))
    assert v.sink.fills == [
        make_fill("5", "100", trade="5", ts=T0 + MINUTE),
        make_fill("5", "101", trade="10", ts=T0 + 2 * MINUTE),
        make_fill("2", "102", trade="12", ts=T0 + 3 * MINUTE),
    ]
    # the lot grid makes the cap 5.00000000: the trade ids carry the plain number
    assert [f.trade_id for f in v.sink.fills] == ["1-1@5", "1-1@10", "1-1@12"]
    assert sum(f.quantity for f in v.sink.fills) == 12
    assert v.broker.working_orders == 0


async def test_a_bar_with_no_volume_under_a_cap_fills_nothing() -> None:
    v = await make_venue(volume_cap=0.5)
    v.broker.place(make_order(1))
    v.broker.on_bar(bar_at(1, 100.0, volume=0.0))
    assert v.sink.fills == []
    assert v.broker.working_orders == 1


async def test_a_volume_cap_fills_whole_lots_of_the_instrument() -> None:
    v = await make_venue({"EURUSD": EURUSD}, volume_cap=0.1)
    v.broker.place(make_order(5000, symbol="EURUSD"))
    for minute in (1, 2, 3):
        v.broker.on_bar(bar_at(minute, 1.08437, volume=25_000.0, symbol="EURUSD"))  # cap 2,500
    assert [(f.quantity, f.trade_id) for f in v.sink.fills] == [
        (2000, "1-1@2000"), (2000, "1-1@4000"), (1000, "1-1@5000")]


# -- the instrument's price grid (issue 9) --------------------------------------------------------

async def test_a_coin_priced_below_the_old_step_fills_at_its_price_not_zero() -> None:
    """Before issue 9 every fill was rounded to 0.0001: this coin filled at 0."""
    v = await make_venue({"PEPE": PEPE})
    v.broker.place(make_order(1_000_000, symbol="PEPE"))
    v.broker.on_bar(bar_at(1, 0.0000123, symbol="PEPE"))
    [fill] = v.sink.fills
    assert fill.price == Decimal("0.0000123")
    assert fill.price != 0


async def test_an_fx_pair_fills_at_its_five_decimals_exactly() -> None:
    v = await make_venue({"EURUSD": EURUSD})
    v.broker.place(make_order(10_000, symbol="EURUSD"))
    v.broker.on_bar(bar_at(1, 1.08437, symbol="EURUSD"))
    [fill] = v.sink.fills
    assert str(fill.price) == "1.08437"


@pytest.mark.parametrize(("instrument", "open_", "slip", "buy", "sell"), [
    # 1.08437 * 1.00005 = 1.0844242185: nearest 1.08442, up 1.08443
    # 1.08437 * 0.99995 = 1.0843157815: nearest 1.08432, down 1.08431
    (EURUSD, 1.08437, "0.5", "1.08443", "1.08431"),
    # 0.0000123 * 1.001 = 0.0000123123 (nearest 0.0000123); * 0.999 = 0.0000122877 (nearest too)
    (PEPE, 0.0000123, "10", "0.0000124", "0.0000122"),
])
async def test_slippage_rounds_against_the_order_on_the_grid(
        instrument: Instrument, open_: float, slip: str, buy: str, sell: str) -> None:
    v = await make_venue({instrument.symbol: instrument}, slippage_bps=Decimal(slip))
    v.broker.place(make_order(1000, Side.BUY, coid="1-1", symbol=instrument.symbol))
    v.broker.place(make_order(1000, Side.SELL, coid="1-2", symbol=instrument.symbol))
    v.broker.on_bar(bar_at(1, open_, symbol=instrument.symbol))
    prices = {f.side: str(f.price) for f in v.sink.fills}
    assert prices == {Side.BUY: buy, Side.SELL: sell}
    assert all(instrument.price_conforms(f.price) for f in v.sink.fills)


async def test_a_market_price_goes_to_the_nearest_tick() -> None:
    v = await make_venue({"AAA": Instrument("AAA", Decimal("0.05"), Decimal(1))})
    v.broker.place(make_order(1))
    v.broker.on_bar(bar_at(1, 100.03))
    assert [str(f.price) for f in v.sink.fills] == ["100.05"]


async def test_new_rules_take_effect_at_the_next_fill() -> None:
    v = await make_venue({"AAA": Instrument("AAA", Decimal("0.01"), Decimal(1))})
    v.broker.place(make_order(1, coid="1-1"))
    v.broker.on_bar(bar_at(1, 100.37))
    v.broker.use_instruments({"AAA": Instrument("AAA", Decimal("0.5"), Decimal(1))})
    v.broker.place(make_order(1, coid="1-2"))
    v.broker.on_bar(bar_at(2, 100.37))
    assert [str(f.price) for f in v.sink.fills] == ["100.37", "100.5"]


# -- withdraw, amend, status_of, other symbols ----------------------------------------------------

async def test_withdraw_takes_a_working_order_off_the_book() -> None:
    v = await make_venue()
    order = make_order(3, order_type=LIMIT, limit="90")
    v.broker.place(order)
    v.broker.withdraw(order)
    assert v.sink.reports == []  # the runner cancels the order on the answer itself
    assert v.broker.working_orders == 0
    assert v.broker.status_of(order) is None
    v.broker.on_bar(bar_at(6, 80.0))
    assert v.sink.fills == []


async def test_withdrawing_an_order_the_book_does_not_hold_is_done_all_the_same() -> None:
    v = await make_venue()
    v.broker.withdraw(make_order(3, coid="9-9"))
    assert v.sink.reports == []


async def test_status_of_answers_accepted_partially_filled_and_none() -> None:
    v = await make_venue(volume_cap=0.1)
    order = make_order(8, order_type=LIMIT, limit="101")
    assert v.broker.status_of(order) is None
    v.broker.place(order)
    assert v.broker.status_of(order) == OrderStatusReport("1-1", ACCEPTED,
                                                          broker_order_id="paper-1-1")
    v.broker.on_bar(bar_at(1, 100.0, volume=50.0))  # 5 of 8
    assert v.broker.status_of(order) == OrderStatusReport("1-1", S.PARTIALLY_FILLED,
                                                          broker_order_id="paper-1-1")
    v.broker.on_bar(bar_at(2, 100.0, volume=50.0))  # the rest
    assert v.broker.status_of(order) is None


async def test_amend_changes_a_working_orders_quantity() -> None:
    v = await make_venue()
    order = make_order(10, order_type=LIMIT, limit="90")
    v.broker.place(order)
    v.broker.amend(order, ModifyOrder("1-1", quantity=Decimal(15)))
    v.broker.on_bar(bar_at(1, 95.0, 96.0, 89.0))
    assert v.sink.fills == [make_fill("15", "90")]


async def test_amend_changes_a_working_orders_limit() -> None:
    v = await make_venue()
    order = make_order(10, order_type=LIMIT, limit="90")
    v.broker.place(order)
    v.broker.on_bar(bar_at(1, 96.0, 97.0, 94.0))  # the old limit is not reached
    assert v.sink.fills == []
    v.broker.amend(order, ModifyOrder("1-1", limit_price=Decimal(95)))
    v.broker.on_bar(bar_at(2, 96.0, 97.0, 94.0))
    assert v.sink.fills == [make_fill("10", "95", ts=T0 + 2 * MINUTE)]


async def test_amend_changes_a_stop_price() -> None:
    v = await make_venue()
    order = make_order(2, order_type=STOP, stop="110")
    v.broker.place(order)
    v.broker.amend(order, ModifyOrder("1-1", stop_price=Decimal(105)))
    v.broker.on_bar(bar_at(1, 100.0, 106.0, 99.0))
    assert v.sink.fills == [make_fill("2", "105")]


async def test_amend_of_a_partly_filled_order_keeps_what_it_filled() -> None:
    v = await make_venue(volume_cap=0.1)
    order = make_order(8, order_type=LIMIT, limit="101")
    v.broker.place(order)
    v.broker.on_bar(bar_at(1, 100.0, volume=50.0))  # 5 of 8
    v.broker.amend(order, ModifyOrder("1-1", quantity=Decimal(6)))
    v.broker.on_bar(bar_at(2, 100.0, volume=50.0))
    assert [(f.quantity, f.trade_id) for f in v.sink.fills] == [(5, "1-1@5"), (1, "1-1@6")]
    assert v.broker.working_orders == 0


@pytest.mark.parametrize(("quantity", "reason"), [
    ("5", "quantity below the filled quantity"),   # all it filled: nothing left to work
    ("4", "quantity below the filled quantity"),
])
async def test_amend_below_the_filled_quantity_is_rejected(quantity: str, reason: str) -> None:
    v = await make_venue(volume_cap=0.1)
    order = make_order(8, order_type=LIMIT, limit="101")
    v.broker.place(order)
    v.broker.on_bar(bar_at(1, 100.0, volume=50.0))  # 5 of 8
    with pytest.raises(VenueRejected) as err:
        v.broker.amend(order, ModifyOrder("1-1", quantity=Decimal(quantity)))
    assert err.value.reason == reason
    assert v.broker.status_of(order) == OrderStatusReport("1-1", S.PARTIALLY_FILLED,
                                                          broker_order_id="paper-1-1")


async def test_amend_of_an_order_the_book_does_not_hold_is_rejected() -> None:
    v = await make_venue()
    with pytest.raises(VenueRejected, match="unknown order"):
        v.broker.amend(make_order(1, coid="9-9"), ModifyOrder("9-9", quantity=Decimal(2)))


async def test_bars_of_another_symbol_do_not_work_the_order() -> None:
    v = await make_venue()
    v.broker.place(make_order(1))
    v.broker.on_bar(bar_at(1, 50.0, symbol="BBB"))
    assert v.sink.fills == []
    v.broker.on_bar(bar_at(2, 100.0))
    assert v.sink.fills == [make_fill("1", "100", ts=T0 + 2 * MINUTE)]


async def test_the_async_broker_calls_work_the_same_book() -> None:
    """What a real venue answers with I/O, the paper venue answers from its book."""
    v = await make_venue()
    order = make_order(3, order_type=LIMIT, limit="90", coid="1-1")
    assert await v.broker.submit(order) == "paper-1-1"
    await v.broker.submit(make_order(1, Side.SELL, order_type=LIMIT, limit="120", coid="1-2"))
    await v.broker.modify(order, ModifyOrder("1-1", limit_price=Decimal(91)))
    assert await v.broker.query_order(order) == OrderStatusReport(
        "1-1", ACCEPTED, broker_order_id="paper-1-1")
    assert {r.client_order_id for r in await v.broker.open_orders()} == {"1-1", "1-2"}
    await v.broker.cancel(order)
    assert await v.broker.query_order(order) is None
    assert [r.client_order_id for r in await v.broker.open_orders()] == ["1-2"]
    assert await v.broker.fills(0) == []
    assert (await v.broker.balances(), await v.broker.positions()) == ({}, {})


# -- a book that survives a restart (issue 9) -----------------------------------------------------

async def test_a_restored_gtc_limit_keeps_working_and_fills_when_crossed() -> None:
    """Before issue 9 a restart canceled it as "unknown to the paper venue"."""
    before = await make_venue()
    order = make_order(3, order_type=LIMIT, limit="95")
    before.broker.place(order)
    before.broker.on_bar(bar_at(1, 100.0, 101.0, 99.0))
    assert before.sink.reports == []

    after = await make_venue()  # a new runner, a new venue: the book comes from the journal
    after.clock.now = T0 + 2 * MINUTE
    reports = after.broker.restore([journaled(order, ACCEPTED)])
    assert reports == [OrderStatusReport("1-1", ACCEPTED, ts_event=T0 + 2 * MINUTE,
                                         broker_order_id="paper-1-1")]
    assert after.broker.working_orders == 1
    after.broker.on_bar(bar_at(3, 97.0, 98.0, 96.0))
    assert after.sink.reports == []
    after.broker.on_bar(bar_at(4, 97.0, 98.0, 94.0))
    assert after.sink.reports == [make_fill("3", "95", ts=T0 + 4 * MINUTE)]
    assert after.broker.working_orders == 0


@pytest.mark.parametrize("stored", ["4", "4.000000000000000000", "4.0"])
async def test_a_restored_order_numbers_its_trades_on(stored: str) -> None:
    """Trade ids are ``<coid>-<filled after the fill>``: a restored order goes on from what the
    journal says it filled, so no id repeats one made before the restart (whatever the store's
    representation of the filled quantity)."""
    before = await make_venue(volume_cap=0.1)
    order = make_order(10, order_type=LIMIT, limit="101")
    before.broker.place(order)
    before.broker.on_bar(bar_at(1, 100.0, volume=40.0))  # 4 of 10
    assert [f.trade_id for f in before.sink.fills] == ["1-1@4"]

    after = await make_venue(volume_cap=0.1)
    [report] = after.broker.restore([journaled(order, S.PARTIALLY_FILLED, filled=stored)])
    assert report.status is S.PARTIALLY_FILLED
    after.broker.on_bar(bar_at(2, 100.0, volume=40.0))
    after.broker.on_bar(bar_at(3, 100.0, volume=40.0))
    assert [(f.quantity, f.trade_id) for f in after.sink.fills] == [(4, "1-1@8"),
                                                                    (2, "1-1@10")]
    trade_ids = [f.trade_id for f in before.sink.fills + after.sink.fills]
    assert len(set(trade_ids)) == len(trade_ids)
    assert sum(f.quantity for f in before.sink.fills + after.sink.fills) == 10


async def test_an_order_restored_while_its_cancel_was_pending_is_reported_canceled() -> None:
    v = await make_venue()
    v.clock.now = T0 + 5 * MINUTE
    order = make_order(3, order_type=LIMIT, limit="95")
    reports = v.broker.restore([journaled(order, S.PENDING_CANCEL)])
    assert reports == [OrderStatusReport("1-1", CANCELED, ts_event=T0 + 5 * MINUTE,
                                         reason="canceled at restart")]
    assert v.broker.working_orders == 0
    v.broker.on_bar(bar_at(6, 90.0))
    assert v.sink.reports == []


async def test_restore_reports_every_order_and_keeps_the_working_ones() -> None:
    v = await make_venue()
    working = journaled(make_order(1, order_type=LIMIT, limit="95", coid="1-1"), ACCEPTED)
    sent = journaled(make_order(1, order_type=LIMIT, limit="95", coid="1-2"), S.SUBMITTED)
    canceling = journaled(make_order(1, order_type=LIMIT, limit="95", coid="1-3"),
                          S.PENDING_CANCEL)
    reports = v.broker.restore([working, sent, canceling])
    assert [(r.client_order_id, r.status) for r in reports] == [
        ("1-1", ACCEPTED), ("1-2", ACCEPTED), ("1-3", CANCELED)]
    assert v.broker.working_orders == 2
    assert {r.client_order_id for r in await v.broker.open_orders()} == {"1-1", "1-2"}


async def test_a_restored_day_order_still_expires_with_the_day_it_was_placed() -> None:
    v = await make_venue()
    v.clock.now = T0 + DAY + HOUR  # restarted the next day
    order = make_order(3, order_type=LIMIT, limit="99", time_in_force=TimeInForce.DAY)
    v.broker.restore([journaled(order, ACCEPTED, ts_init=T0 + 10 * HOUR)])
    v.broker.on_bar(make_bar(98.0, 99.0, 97.0, ts=T0 + DAY + 2 * HOUR))
    assert v.sink.fills == []
    assert v.sink.statuses == [("1-1", EXPIRED, T0 + DAY + 2 * HOUR, "day order expired")]


async def test_a_restored_stop_that_had_filled_in_part_is_still_triggered() -> None:
    """A fill means the stop was triggered: the rest works on at the open."""
    v = await make_venue()
    order = make_order(8, order_type=STOP, stop="105")
    v.broker.restore([journaled(order, S.PARTIALLY_FILLED, filled="5")])
    v.broker.on_bar(bar_at(1, 103.0, 104.0, 102.0))  # below the stop
    assert v.sink.fills == [make_fill("3", "103", trade="8")]


async def test_restore_does_not_reset_an_order_the_book_already_works() -> None:
    """A stop-limit triggered in this book stays triggered when the same order is restored."""
    v = await make_venue()
    order = make_order(2, order_type=STOP_LIMIT, stop="105", limit="104")
    v.broker.place(order)
    v.broker.on_bar(bar_at(1, 100.0, 106.0, 99.0))  # triggered; the limit not reached
    [report] = v.broker.restore([journaled(order, ACCEPTED)])
    assert report.status is ACCEPTED
    assert v.broker.working_orders == 1
    v.broker.on_bar(bar_at(2, 103.5, 104.0, 103.0))  # under the stop, through the limit
    assert v.sink.fills == [make_fill("2", "103.5", ts=T0 + 2 * MINUTE)]


async def test_an_order_the_journal_holds_as_not_yet_sent_is_taken_as_placed() -> None:
    """A crash between the write-ahead commit and the row marked sent: the paper venue's book is
    the journal, so the order works (as a real venue that got it would)."""
    v = await make_venue()
    order = make_order(2, order_type=LIMIT, limit="95")
    [report] = v.broker.restore([journaled(order, S.PENDING_SUBMIT)])
    assert report.status is ACCEPTED
    v.broker.on_bar(bar_at(1, 96.0, 97.0, 94.0))
    assert v.sink.fills == [make_fill("2", "95")]


async def test_a_restored_order_with_nothing_left_is_not_worked() -> None:
    v = await make_venue()
    order = make_order(2, order_type=LIMIT, limit="95")
    [report] = v.broker.restore([journaled(order, S.PARTIALLY_FILLED, filled="2")])
    assert report.status is S.FILLED
    assert v.broker.working_orders == 0
    v.broker.on_bar(bar_at(1, 90.0))
    assert v.sink.reports == []


# -- a property: whatever the bars, caps and restarts ----------------------------------------------

bars = st.lists(st.tuples(st.integers(9_000, 11_000), st.integers(0, 300),
                          st.integers(0, 300), st.integers(0, 60)), min_size=1, max_size=30)


@settings(max_examples=100, deadline=None)
@given(script=bars, kind=st.sampled_from([OrderType.MARKET, LIMIT, STOP, STOP_LIMIT]),
       side=st.sampled_from(list(Side)), quantity=st.integers(1, 40),
       cap=st.sampled_from([0.0, 0.1, 0.5]), restart_at=st.integers(0, 30),
       slip=st.sampled_from(["0", "3", "25"]))
async def test_fills_never_exceed_the_order_and_trade_ids_count_the_filled_quantity(
        script: list[tuple[int, int, int, int]], kind: OrderType, side: Side, quantity: int,
        cap: float, restart_at: int, slip: str) -> None:
    """Bars at random (prices in cents on a 0.01 grid), a restart at a random bar (the journal's
    view of the order restored into a new venue): the fills never add up to more than the
    order, each fill's trade id is ``<coid>-<filled so far>`` (so none repeats), each price is on
    the grid, and a limit is never filled through."""
    grid = {"AAA": Instrument("AAA", Decimal("0.01"), Decimal(1))}
    params = {"volume_cap": cap, "slippage_bps": Decimal(slip)}
    limit = stop = None
    if kind in (LIMIT, STOP_LIMIT):
        limit = "100.00"
    if kind in (STOP, STOP_LIMIT):
        stop = "100.50" if side is Side.BUY else "99.50"
        limit = None if kind is STOP else ("100.70" if side is Side.BUY else "99.30")
    order = make_order(quantity, side, order_type=kind, limit=limit, stop=stop)
    v = await make_venue(grid, **params)
    v.broker.place(order)
    fills: list[Fill] = []
    for i, (open_cents, up, down, volume) in enumerate(script):
        if i == restart_at:
            fills += v.sink.fills
            filled = sum((f.quantity for f in fills), Decimal(0))
            status = S.PARTIALLY_FILLED if filled else ACCEPTED
            v = await make_venue(grid, **params)
            v.broker.restore([journaled(order, status, filled=str(filled))]
                             if filled < quantity else [])
        open_ = open_cents / 100
        v.broker.on_bar(bar_at(i + 1, open_, open_ + up / 100, open_ - down / 100,
                               volume=float(volume)))
    fills += v.sink.fills
    total = Decimal(0)
    for fill in fills:
        total += fill.quantity
        assert fill.trade_id == f"1-1@{total}"
        assert grid["AAA"].price_conforms(fill.price)
        if limit is not None and kind is LIMIT:
            assert fill.price <= Decimal(limit) if side is Side.BUY \
                else fill.price >= Decimal(limit)
    assert total <= quantity
    assert len({f.trade_id for f in fills}) == len(fills)
