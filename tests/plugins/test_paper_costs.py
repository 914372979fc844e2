"""Trading costs of the paper venue (issue 11): maker and taker fees, a fixed fee and a minimum per
order, fees rounded up, slippage rounded against the order and bounded by the bar (SYS-006: the
fills' fees and prices are what P&L is computed from; SYS-005: the params are validated).

Each expectation is worked out by hand in the test, from the rules in ``docs/costs.md``; the
venue is the real ``paper`` broker driven as the runner drives it (``place``, ``on_bar``).
"""

from decimal import ROUND_CEILING, Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lts.domain.instruments import Instrument
from lts.domain.orders import OrderStatus, OrderType, Side, TimeInForce
from lts.errors import InvalidParams
from lts.plugins.broker.paper import PaperBroker
from lts.plugins.broker.paper_costs import FEE_STEP, PaperCosts

from ._support import MINUTE, T0, make_bar, make_order
from .test_paper_broker import Venue, bar_at, journaled, make_venue

pytestmark = pytest.mark.anyio

LIMIT, STOP, STOP_LIMIT = OrderType.LIMIT, OrderType.STOP, OrderType.STOP_LIMIT
BUY, SELL = Side.BUY, Side.SELL
PEPE = Instrument("PEPE", Decimal("0.0000001"), Decimal(1))

D = Decimal


def fees(v: Venue) -> list[Decimal]:
    return [f.fee for f in v.sink.fills]


def prices(v: Venue) -> list[Decimal]:
    return [f.price for f in v.sink.fills]


# -- params ---------------------------------------------------------------------------------------

@pytest.mark.parametrize(("params", "field", "says"), [
    ({"fees_bps": "5", "taker_bps": "10"}, "taker_bps", "give fees_bps or taker_bps/maker_bps"),
    ({"fees_bps": "5", "taker_bps": "10", "maker_bps": "2"}, "taker_bps", "not both"),
    ({"fees_bps": "0", "maker_bps": "2"}, "maker_bps", "not both"),
    ({"maker_bps": "2"}, "maker_bps", "give taker_bps too"),
    ({"taker_bps": "-1"}, "taker_bps", "greater than or equal to 0"),
    ({"fee_per_order": "-0.5"}, "fee_per_order", "greater than or equal to 0"),
    ({"min_fee_per_order": "lots"}, "min_fee_per_order", "decimal"),
    ({"commission": "0.001"}, "commission", "unknown param"),
])
def test_ambiguous_or_bad_fee_params_are_refused_in_one_line_naming_the_field(
        params: dict[str, Any], field: str, says: str) -> None:
    with pytest.raises(InvalidParams) as err:
        PaperBroker(**params)
    assert err.value.field == field
    assert str(err.value).startswith(f"paper: param {field!r}: ")
    assert says in str(err.value)
    assert "\n" not in str(err.value)


async def test_fees_bps_is_the_rate_of_maker_and_taker_fills_alike() -> None:
    """The params of issue 9 (``fees_bps`` alone) charge every fill as before."""
    v = await make_venue(fees_bps=D(5))
    v.broker.place(make_order(10, order_type=LIMIT, limit="99", coid="1-1"))  # a maker fill
    v.broker.place(make_order(10, coid="1-2"))  # a taker fill
    v.broker.on_bar(bar_at(1, 100.0, 101.0, 98.0))
    # maker: 99 x 10 x 5 bps = 0.495; taker: 100 x 10 x 5 bps = 0.5
    assert sorted((f.price, f.fee) for f in v.sink.fills) == [(D(99), D("0.495")),
                                                              (D(100), D("0.5"))]


async def test_taker_bps_alone_is_the_maker_rate_too() -> None:
    v = await make_venue(taker_bps=D(7))
    v.broker.place(make_order(10, order_type=LIMIT, limit="99"))
    v.broker.on_bar(bar_at(1, 100.0, 101.0, 98.0))  # touched: a maker fill at 99
    assert fees(v) == [D("0.693")]  # 99 x 10 x 7 bps


async def test_set_params_moves_from_one_rate_to_two_when_fees_bps_is_cleared() -> None:
    v = await make_venue(fees_bps=D(5))
    with pytest.raises(InvalidParams) as err:
        v.broker.set_params(taker_bps=D(10), maker_bps=D(2))  # fees_bps 5 still stands
    assert err.value.field == "taker_bps"
    v.broker.set_params(fees_bps=None, taker_bps=D(10), maker_bps=D(2))
    v.broker.place(make_order(10, order_type=LIMIT, limit="99"))
    v.broker.on_bar(bar_at(1, 100.0, 101.0, 98.0))
    assert fees(v) == [D("0.198")]  # 99 x 10 x 2 bps: the new maker rate


# -- maker and taker ------------------------------------------------------------------------------

TERMS = {"taker_bps": D(10), "maker_bps": D(2), "slippage_bps": D(20)}


@pytest.mark.parametrize(("bar", "price", "fee"), [
    # the bar opens through the limit: marketable on arrival, a taker fill at the open slipped
    # 20 bps: 98.5 x 1.002 = 98.697 (under the limit 99 and the high 99.5);
    # fee 98.697 x 10 x 10 bps = 0.98697
    ((98.5, 99.5, 98.0), "98.697", "0.98697"),
    # the open is above the limit, the low comes down to it: it rested on the book, a maker
    # fill at its limit, not slipped; fee 99 x 10 x 2 bps = 0.198
    ((100.0, 101.0, 98.9), "99", "0.198"),
])
async def test_one_limit_is_a_taker_through_the_open_and_a_maker_at_its_limit(
        bar: tuple[float, float, float], price: str, fee: str) -> None:
    v = await make_venue(**TERMS)
    v.broker.place(make_order(10, order_type=LIMIT, limit="99"))
    v.broker.on_bar(bar_at(1, *bar))
    assert (prices(v), fees(v)) == ([D(price)], [D(fee)])


async def test_a_limit_resting_several_bars_then_touched_is_a_maker_fill() -> None:
    v = await make_venue(**TERMS)
    v.broker.place(make_order(10, SELL, order_type=LIMIT, limit="103"))
    v.broker.on_bar(bar_at(1, 100.0, 101.0, 99.0))
    v.broker.on_bar(bar_at(2, 101.0, 102.0, 100.0))
    v.broker.on_bar(bar_at(3, 102.0, 103.5, 101.0))
    # 103 x 10 x 2 bps = 0.206
    assert (prices(v), fees(v)) == ([D(103)], [D("0.206")])


async def test_an_ioc_limit_never_rests_so_it_pays_the_taker_rate_at_its_limit() -> None:
    v = await make_venue(**TERMS)
    v.broker.place(make_order(10, order_type=LIMIT, limit="99",
                              time_in_force=TimeInForce.IOC))
    v.broker.on_bar(bar_at(1, 100.0, 101.0, 98.9))
    # at its limit (no slippage past it); 99 x 10 x 10 bps = 0.99
    assert (prices(v), fees(v)) == ([D(99)], [D("0.99")])


async def test_market_and_stop_orders_are_taker_fills() -> None:
    v = await make_venue(**TERMS)
    v.broker.place(make_order(10, coid="1-1"))
    v.broker.place(make_order(10, order_type=STOP, stop="100.5", coid="1-2"))
    v.broker.on_bar(bar_at(1, 100.0, 101.0, 99.0))
    # market: 100 x 1.002 = 100.2, fee 100.2 x 10 x 10 bps = 1.002
    # stop: 100.5 x 1.002 = 100.701, fee 100.701 x 10 x 10 bps = 1.00701
    assert (prices(v), fees(v)) == ([D("100.2"), D("100.701")], [D("1.002"), D("1.00701")])


async def test_a_stop_limit_is_a_taker_at_its_trigger_and_a_maker_once_it_rested() -> None:
    v = await make_venue(**TERMS)
    # triggered within the bar with its limit above the stop: marketable at the stop, slipped
    # 105 x 1.002 = 105.21, under the limit 106 and the high 105.5; 105.21 x 2 x 10 bps
    v.broker.place(make_order(2, order_type=STOP_LIMIT, stop="105", limit="106", coid="1-1"))
    # triggered with its limit below the stop: it rests, then the low comes to 104
    v.broker.place(make_order(2, order_type=STOP_LIMIT, stop="105", limit="104", coid="1-2"))
    v.broker.on_bar(bar_at(1, 100.0, 105.5, 99.0))
    v.broker.on_bar(bar_at(2, 105.0, 106.0, 103.5))
    assert [(f.client_order_id, f.price, f.fee) for f in v.sink.fills] == [
        ("1-1", D("105.21"), D("0.21042")),
        ("1-2", D(104), D("0.0416")),  # 104 x 2 x 2 bps
    ]


# -- the fixed fee and the minimum, per order -----------------------------------------------------

async def test_the_fixed_fee_is_charged_once_per_order_across_its_partial_fills() -> None:
    v = await make_venue(taker_bps=D(10), fee_per_order=D("1.25"), volume_cap=0.1)
    v.broker.place(make_order(12, coid="1-1"))
    for minute, open_ in [(1, 100.0), (2, 101.0), (3, 102.0)]:
        v.broker.on_bar(bar_at(minute, open_, volume=50.0))  # cap 5 a bar
    v.broker.place(make_order(1, coid="1-2"))
    v.broker.on_bar(bar_at(4, 103.0, volume=50.0))
    assert [(f.client_order_id, f.quantity, f.fee) for f in v.sink.fills] == [
        ("1-1", 5, D("1.75")),   # 5 x 100 x 10 bps = 0.5, plus the fixed 1.25
        ("1-1", 5, D("0.505")),  # 5 x 101 x 10 bps
        ("1-1", 2, D("0.204")),  # 2 x 102 x 10 bps
        ("1-2", 1, D("1.353")),  # another order: 1 x 103 x 10 bps = 0.103, plus 1.25
    ]


async def test_the_minimum_holds_on_the_orders_total_so_far() -> None:
    """After each fill the order has paid max(minimum, fixed + its fills' rate parts): the first
    fill tops up to the minimum, a later fill pays only what the total grew beyond it."""
    v = await make_venue(taker_bps=D(10), min_fee_per_order=D(1), volume_cap=0.1)
    v.broker.place(make_order(12))
    for minute, open_ in [(1, 100.0), (2, 101.0), (3, 102.0)]:
        v.broker.on_bar(bar_at(minute, open_, volume=50.0))
    # rate parts 0.5, 0.505, 0.204: totals 0.5, 1.005, 1.209 -> paid 1, 1.005, 1.209
    assert fees(v) == [D(1), D("0.005"), D("0.204")]
    assert sum(fees(v)) == max(D(1), D("0.5") + D("0.505") + D("0.204"))


async def test_an_order_whose_fees_stay_under_the_minimum_pays_the_minimum_once() -> None:
    v = await make_venue(taker_bps=D(10), fee_per_order=D("0.2"), min_fee_per_order=D(2),
                         volume_cap=0.1)
    v.broker.place(make_order(8))
    v.broker.on_bar(bar_at(1, 100.0, volume=50.0))
    v.broker.on_bar(bar_at(2, 100.0, volume=50.0))
    # 0.2 + 0.5 = 0.7 -> 2; then 0.7 + 0.3 = 1.0, still under 2 -> nothing more
    assert fees(v) == [D(2), D(0)]


async def test_an_order_canceled_after_a_partial_fill_has_paid_the_minimum() -> None:
    v = await make_venue(taker_bps=D(10), min_fee_per_order=D(2), volume_cap=0.1)
    v.broker.place(make_order(8, time_in_force=TimeInForce.IOC))
    v.broker.on_bar(bar_at(1, 100.0, volume=50.0))  # 5 fill, 3 canceled
    assert fees(v) == [D(2)]  # 5 x 100 x 10 bps = 0.5, under the minimum
    assert v.sink.status_codes() == [OrderStatus.CANCELED]


async def test_a_partly_filled_order_restored_pays_its_rate_in_full_and_no_fixed_fee() -> None:
    """The journal keeps fills' fees, not the order's accrual: a restored order is taken as
    having paid its fixed fee and minimum already."""
    v = await make_venue(taker_bps=D(10), fee_per_order=D(5), min_fee_per_order=D(10))
    order = make_order(10, order_type=LIMIT, limit="101")
    v.broker.restore([journaled(order, OrderStatus.PARTIALLY_FILLED, filled="4")])
    v.broker.on_bar(bar_at(1, 100.0))
    assert fees(v) == [D("0.6")]  # 6 x 100 x 10 bps, nothing else


# -- rounding up ----------------------------------------------------------------------------------

async def test_a_fee_is_rounded_up_to_the_fee_step() -> None:
    v = await make_venue({"PEPE": PEPE}, taker_bps=D(7))
    v.broker.place(make_order(7, symbol="PEPE"))
    v.broker.on_bar(bar_at(1, 0.0000123, symbol="PEPE"))
    exact = D("0.0000123") * 7 * D(7) / 10_000
    assert exact == D("0.00000006027")  # the nearest step would be 0.00000006
    assert fees(v) == [D("0.00000007")]
    assert fees(v)[0] == exact.quantize(FEE_STEP, rounding=ROUND_CEILING)


async def test_the_fixed_and_minimum_amounts_are_rounded_up_to_the_fee_step() -> None:
    v = await make_venue(fee_per_order=D("0.123456781"))
    v.broker.place(make_order(1))
    v.broker.on_bar(bar_at(1, 100.0))
    assert fees(v) == [D("0.12345679")]


# -- slippage: bounded by the bar, rounded against the order --------------------------------------

async def test_slippage_stops_at_the_bars_high_for_a_buy_and_low_for_a_sell() -> None:
    v = await make_venue(slippage_bps=D(100))
    v.broker.place(make_order(1, BUY, coid="1-1"))
    v.broker.place(make_order(1, SELL, coid="1-2"))
    v.broker.on_bar(bar_at(1, 100.0, 100.4, 99.7))
    # 100 x 1.01 = 101 > the high 100.4; 100 x 0.99 = 99 < the low 99.7
    assert prices(v) == [D("100.4"), D("99.7")]


async def test_a_stops_slippage_stops_at_the_bars_high() -> None:
    v = await make_venue(slippage_bps=D(50))
    v.broker.place(make_order(1, order_type=STOP, stop="105"))
    v.broker.on_bar(bar_at(1, 100.0, 105.2, 99.0))
    assert prices(v) == [D("105.2")]  # 105 x 1.005 = 105.525 > 105.2


async def test_fill_at_close_slips_within_the_bar_of_that_close() -> None:
    v = await make_venue(fill_at="close", slippage_bps=D(100))
    v.broker.on_bar(make_bar(100.0, 101.05, 99.0, close=101.0, ts=T0 + MINUTE))
    v.broker.place(make_order(1, coid="1-1"))
    v.broker.place(make_order(1, SELL, coid="1-2"))
    # 101 x 1.01 = 102.01 > 101.05; 101 x 0.99 = 99.99 is within the bar
    assert prices(v) == [D("101.05"), D("99.99")]


@pytest.mark.parametrize(("slip", "buy", "sell"), [
    # 0.0000123 x 1.0003 = 0.00001230369 (nearest 0.0000123): up 0.0000124
    # 0.0000123 x 0.9997 = 0.00001229631 (nearest 0.0000123): down 0.0000122
    ("3", "0.0000124", "0.0000122"),
    ("0", "0.0000123", "0.0000123"),
])
async def test_a_slipped_price_of_many_decimals_is_rounded_against_the_order(
        slip: str, buy: str, sell: str) -> None:
    v = await make_venue({"PEPE": PEPE}, slippage_bps=D(slip))
    v.broker.place(make_order(1000, BUY, coid="1-1", symbol="PEPE"))
    v.broker.place(make_order(1000, SELL, coid="1-2", symbol="PEPE"))
    v.broker.on_bar(bar_at(1, 0.0000123, 0.0000130, 0.0000110, symbol="PEPE"))
    assert prices(v) == [D(buy), D(sell)]


@pytest.mark.parametrize(("open_", "buy", "sell"), [
    # between two ticks: the nearest (half-even) tick would favour one side; each side gets
    # the tick against it
    (0.00001225, "0.0000123", "0.0000122"),  # half-even: 0.0000122, a buy's gain
    (0.00001235, "0.0000124", "0.0000123"),  # half-even: 0.0000124, a sell's gain
])
async def test_an_open_between_ticks_fills_on_the_tick_against_the_order(
        open_: float, buy: str, sell: str) -> None:
    v = await make_venue({"PEPE": PEPE})
    v.broker.place(make_order(1000, BUY, coid="1-1", symbol="PEPE"))
    v.broker.place(make_order(1000, SELL, coid="1-2", symbol="PEPE"))
    v.broker.on_bar(bar_at(1, open_, 0.0000130, 0.0000110, symbol="PEPE"))
    assert prices(v) == [D(buy), D(sell)]


# -- properties -----------------------------------------------------------------------------------

ticks = st.builds(lambda m, e: D(m).scaleb(-e), st.sampled_from([1, 2, 5, 25]),
                  st.integers(0, 8))
slips = st.integers(0, 2_000).map(lambda n: D(n) / 10)  # 0 to 200 bps, a tenth at a time


@settings(max_examples=300, deadline=None)
@given(tick=ticks, slip=slips, side=st.sampled_from([BUY, SELL]),
       ticks_of=st.tuples(st.integers(1, 10**6), st.integers(0, 10**4), st.integers(0, 10**4)),
       kind=st.sampled_from(["market", "close", "stop", "limit"]))
async def test_a_taker_fill_is_never_better_than_unslipped_nor_outside_the_bar(
        tick: Decimal, slip: Decimal, side: Side, ticks_of: tuple[int, int, int],
        kind: str) -> None:
    """For random ticks, slips and bars (on the tick grid, as a venue's are), a buy fills at or
    above its unslipped price and at or under the bar's high, a sell at or under its unslipped
    price and at or above the bar's low, always on the grid, never through a limit."""
    open_units, up, down = ticks_of
    open_ = open_units * tick
    high, low = open_ + up * tick, max(open_ - down * tick, tick)
    bar_prices = (float(open_), float(high), float(low))
    assert tuple(D(repr(p)) for p in bar_prices) == (open_, high, low)  # floats carry them
    rules = Instrument("AAA", tick, D(1))
    buy = side is BUY
    v = await make_venue({"AAA": rules}, slippage_bps=slip,
                         fill_at="close" if kind == "close" else "next_open")
    limit = None
    if kind == "close":
        v.broker.on_bar(make_bar(bar_prices[2], *bar_prices[1:], close=bar_prices[0]))
        unslipped = open_  # the close
        v.broker.place(make_order(1, side))
    else:
        order_type = {"market": OrderType.MARKET, "stop": STOP, "limit": LIMIT}[kind]
        stop = str(open_) if kind == "stop" else None  # triggered at the open
        limit = str(open_ + (2 * tick if buy else -2 * tick)) if kind == "limit" else None
        v.broker.place(make_order(1, side, order_type=order_type, stop=stop, limit=limit))
        v.broker.on_bar(bar_at(1, *bar_prices))
        unslipped = open_
    [fill] = v.sink.fills
    assert rules.price_conforms(fill.price)
    if buy:
        assert unslipped <= fill.price <= high
        assert limit is None or fill.price <= D(limit)
    else:
        assert low <= fill.price <= unslipped
        assert limit is None or fill.price >= D(limit)


@settings(max_examples=300, deadline=None)
@given(tick=ticks, slip=slips, side=st.sampled_from([BUY, SELL]),
       units=st.integers(1, 10**6), high_above=st.decimals(0, 100, places=10),
       low_below=st.decimals(0, 100, places=10))
def test_taker_price_stays_in_a_bar_whose_extremes_are_off_the_grid(
        tick: Decimal, slip: Decimal, side: Side, units: int, high_above: Decimal,
        low_below: Decimal) -> None:
    """The cost model alone: a bar's high and low with more decimals than the tick. The fill
    stays inside the bar (on the last tick within it), on the grid, never better than the
    unslipped price."""
    costs = PaperCosts(slippage=slip / 10_000)
    rules = Instrument("AAA", tick, D(1))
    price = units * tick
    high, low = price + high_above * tick, price - low_below * tick
    filled = costs.taker_price(price, side, rules, high=high, low=low)
    assert rules.price_conforms(filled)
    assert (price <= filled <= high) if side is BUY else (low <= filled <= price)


@settings(max_examples=200, deadline=None)
@given(volumes=st.lists(st.integers(0, 40), min_size=1, max_size=12),
       opens=st.lists(st.integers(9_000, 11_000), min_size=12, max_size=12),
       taker=st.integers(0, 50), fixed=st.integers(0, 300), minimum=st.integers(0, 800),
       quantity=st.integers(1, 60))
async def test_an_orders_fees_add_up_to_its_minimum_or_its_rates_plus_the_fixed_fee(
        volumes: list[int], opens: list[int], taker: int, fixed: int, minimum: int,
        quantity: int) -> None:
    """Whatever the partial fills: every fee is on the fee step and never negative, and once
    anything filled the order has paid max(minimum, fixed + each fill's rate part rounded up),
    written out here fill by fill."""
    v = await make_venue({"AAA": Instrument("AAA", D("0.01"), D(1))}, taker_bps=D(taker),
                         fee_per_order=D(fixed) / 100, min_fee_per_order=D(minimum) / 100,
                         volume_cap=0.5)
    v.broker.place(make_order(quantity))
    for i, volume in enumerate(volumes):
        v.broker.on_bar(bar_at(i + 1, opens[i] / 100, volume=float(volume)))
    fills = v.sink.fills
    if not fills:
        return
    parts = sum(((f.price * f.quantity * taker / 10_000).quantize(FEE_STEP, ROUND_CEILING)
                 for f in fills), D(0))
    assert sum(f.fee for f in fills) == max(D(minimum) / 100, D(fixed) / 100 + parts)
    assert all(f.fee >= 0 and f.fee == f.fee.quantize(FEE_STEP) for f in fills)
