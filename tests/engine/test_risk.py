"""Pre-trade risk: every reason code, the kill switch and reducing orders (architecture §6;
SYS-006 orders and positions, SYS-013 integrity: nothing unstorable or unfunded gets through).

A denial is a returned reason code, never an exception. The view is a real Ledger holding real
Orders in its open-order map; instruments are real ``Instrument`` values.
"""

from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lts.domain.commands import Reason, TradingState
from lts.domain.instruments import Instrument
from lts.domain.orders import Order, OrderRequest, OrderType, Side
from lts.engine.ledger import Ledger
from lts.engine.risk import RiskCheck, RiskLimits

from ._support import (
    SECOND,
    T0,
    by_coid,
    make_fill,
    make_instrument,
    make_ledger,
    make_order,
    make_request,
)

BUY, SELL = Side.BUY, Side.SELL
LIMIT, STOP, STOP_LIMIT = OrderType.LIMIT, OrderType.STOP, OrderType.STOP_LIMIT


def make_risk(state: TradingState = TradingState.ACTIVE, **limits: Any) -> RiskCheck:
    base: dict[str, Any] = {"max_open_orders": None, "max_orders_per_second": None}
    return RiskCheck(RiskLimits(**{**base, **limits}), state)


def long_ledger(quantity: str = "10", price: float = 100.0, *, cash: str = "100000",
                open_orders: dict[str, Order] | None = None) -> Ledger:
    ledger = make_ledger(cash, prices={"AAA": price, "BBB": 50.0}, open_orders=open_orders)
    ledger.apply_fill(make_fill(quantity, "100"))
    return ledger


def check(risk: RiskCheck, ledger: Ledger, quantity: str | int = 10, side: Side = BUY, *,
          instrument: Instrument | None = None, open_orders: int = 0, now: int = T0,
          **kw: Any) -> Reason | None:
    request = make_request(quantity, side, **kw)
    return risk.check(request, ledger, instrument or make_instrument(request.symbol),
                      open_orders, now)


# -- limits as before ----------------------------------------------------------------------------

def test_an_order_within_every_limit_is_approved() -> None:
    risk = make_risk(max_order_notional=Decimal(5000), max_position=Decimal(100),
                     max_gross_exposure=Decimal(10000), max_open_orders=5,
                     max_orders_per_second=5, max_daily_loss=Decimal(1000))
    assert check(risk, long_ledger(), 10, open_orders=4) is None
    assert risk.denials == 0


def test_halted_denies_everything_even_reducing() -> None:
    risk = make_risk(TradingState.HALTED)
    assert check(risk, long_ledger(), 5, SELL) is Reason.TRADING_HALTED
    assert check(risk, long_ledger(), 5, BUY) is Reason.TRADING_HALTED
    assert risk.denials == 2


def test_reducing_only_lets_orders_through_that_shrink_the_position() -> None:
    risk = make_risk(TradingState.REDUCING, max_order_notional=Decimal(1),
                     max_position=Decimal(1), max_gross_exposure=Decimal(1))
    ledger = long_ledger("10")
    assert check(risk, ledger, 1, BUY) is Reason.REDUCING_ONLY
    assert check(risk, ledger, 5, SELL) is None  # exposure limits never refuse a reduction
    assert check(risk, ledger, 10, SELL) is None  # to flat
    assert check(risk, ledger, 30, SELL) is Reason.REDUCING_ONLY
    assert check(risk, make_ledger(prices={"AAA": 100.0}), 1, SELL) is Reason.REDUCING_ONLY


def test_reducing_counts_what_open_orders_will_do() -> None:
    """From +10 with an open sell of 5, a sell of 6 could end short: REDUCING_ONLY (SYS-006)."""
    risk = make_risk(TradingState.REDUCING)
    ledger = long_ledger("10", open_orders=by_coid(make_order(5, SELL)))
    assert check(risk, ledger, 6, SELL) is Reason.REDUCING_ONLY
    assert check(risk, ledger, 5, SELL) is None


def test_reducing_does_not_count_on_open_buys_that_may_never_fill() -> None:
    """Short 10 with an open buy of 8: only 2 more may be bought back without risking a flip."""
    risk = make_risk(TradingState.REDUCING)
    ledger = make_ledger(prices={"AAA": 100.0}, open_orders=by_coid(make_order(8, BUY)))
    ledger.apply_fill(make_fill(10, 100, side=SELL))
    assert check(risk, ledger, 3, BUY) is Reason.REDUCING_ONLY
    assert check(risk, ledger, 2, BUY) is None


def test_no_price_for_a_market_order_that_adds_risk() -> None:
    ledger = make_ledger()
    assert check(make_risk(), ledger, 1) is Reason.NO_PRICE
    assert check(make_risk(), ledger, 1, limit="10", order_type=LIMIT) is None


def test_max_order_notional() -> None:
    risk = make_risk(max_order_notional=Decimal(1000))
    ledger = make_ledger(prices={"AAA": 100.0})
    assert check(risk, ledger, 10) is None  # 1000 is not above 1000
    assert check(risk, ledger, 11) is Reason.MAX_ORDER_NOTIONAL
    # a limit order is valued at its limit
    assert check(risk, ledger, 10, limit="101", order_type=LIMIT) is Reason.MAX_ORDER_NOTIONAL


def test_max_position() -> None:
    risk = make_risk(max_position=Decimal(15), allow_short=True)
    ledger = long_ledger("10")
    assert check(risk, ledger, 5) is None
    assert check(risk, ledger, 6) is Reason.MAX_POSITION
    assert check(risk, ledger, 25, SELL) is None  # -15 short
    assert check(risk, ledger, 26, SELL) is Reason.MAX_POSITION  # -16 short


def test_max_position_counts_the_worse_side_of_the_open_orders() -> None:
    """Flat with an open buy of 10 and an open sell of 10: the next buy could make it 11."""
    risk = make_risk(max_position=Decimal(10), allow_short=True)
    ledger = make_ledger(prices={"AAA": 100.0}, open_orders=by_coid(
        make_order(10, BUY, coid="1-1"), make_order(10, SELL, coid="1-2")))
    assert check(risk, ledger, 1, BUY) is Reason.MAX_POSITION
    assert check(risk, ledger, 1, SELL) is Reason.MAX_POSITION


def test_max_gross_exposure() -> None:
    risk = make_risk(max_gross_exposure=Decimal(2000))
    ledger = long_ledger("10")  # 10 AAA at 100: gross 1000
    assert check(risk, ledger, 20, symbol="BBB") is None  # + 20 * 50 = 2000
    assert check(risk, ledger, 21, symbol="BBB") is Reason.MAX_GROSS_EXPOSURE
    assert check(risk, ledger, 11) is Reason.MAX_GROSS_EXPOSURE


def test_max_open_orders() -> None:
    risk = make_risk(max_open_orders=3)
    assert check(risk, long_ledger(), 1, open_orders=2) is None
    assert check(risk, long_ledger(), 1, open_orders=3) is Reason.MAX_OPEN_ORDERS


def test_max_order_rate_over_a_sliding_second() -> None:
    risk = make_risk(max_orders_per_second=2)
    ledger = long_ledger()
    assert check(risk, ledger, 1, now=T0) is None
    assert check(risk, ledger, 1, now=T0 + SECOND // 2) is None
    assert check(risk, ledger, 1, now=T0 + SECOND - 1) is Reason.MAX_ORDER_RATE
    assert check(risk, ledger, 1, SELL, now=T0 + SECOND - 1) is Reason.MAX_ORDER_RATE
    assert check(risk, ledger, 1, now=T0 + SECOND) is None  # the first one left the window
    assert risk.denials == 2


def test_max_daily_loss_from_the_equity_at_the_first_check_of_the_day() -> None:
    risk = make_risk(max_daily_loss=Decimal(500), price_band=None)
    ledger = long_ledger("10", price=100.0)
    assert check(risk, ledger, 1, now=T0) is None  # the day starts at this equity
    ledger.mark("AAA", 50.0)  # 10 * -50 = -500: not above the limit
    assert check(risk, ledger, 1, now=T0 + SECOND) is None
    ledger.mark("AAA", 49.0)
    assert check(risk, ledger, 1, now=T0 + 2 * SECOND) is Reason.MAX_DAILY_LOSS
    assert check(risk, ledger, 1, SELL, now=T0 + 3 * SECOND) is None  # reducing is allowed
    next_day = T0 + 86_400 * SECOND
    assert check(risk, ledger, 1, now=next_day) is None  # a new day, a new start


def test_a_loss_before_the_first_check_of_the_day_counts_once_equity_was_observed() -> None:
    """The live runner shows the risk check the equity every second, so a loss taken before the
    day's first order still counts against the daily limit."""
    risk = RiskCheck(RiskLimits(max_daily_loss=Decimal(500)))
    ledger = make_ledger(prices={"AAA": 100.0})
    ledger.apply_fill(make_fill(10, 100))
    risk.observe_equity(T0, ledger.equity())  # start of the day: 100,000
    ledger.mark("AAA", 49.0)  # -510 before any order was checked
    assert check(risk, ledger, 1, now=T0 + SECOND) is Reason.MAX_DAILY_LOSS


# -- the review's defects ------------------------------------------------------------------------

def test_a_buy_beyond_the_cash_is_denied() -> None:
    """Defect: no buying-power check; a manual buy of $94M in a $50k portfolio was accepted and
    filled, and cash went negative (SYS-013)."""
    risk = RiskCheck(RiskLimits())  # the engine's defaults
    ledger = make_ledger("50000", prices={"AAA": 100.0})
    assert check(risk, ledger, 940_000) is Reason.BUYING_POWER  # $94M
    assert check(risk, ledger, 501) is Reason.BUYING_POWER
    assert check(risk, ledger, 334, limit="150", order_type=LIMIT) is Reason.BUYING_POWER
    assert check(risk, ledger, 500) is None  # all of it
    ledger.apply_fill(make_fill(500, 100))
    assert ledger.cash == 0


def test_cash_committed_to_open_buys_is_not_spent_twice() -> None:
    """Buying power is the cash minus what open buys commit: a limit buy at its limit price,
    a market buy at the last price; open sells commit nothing."""
    ledger = make_ledger("50000", prices={"AAA": 100.0}, open_orders=by_coid(
        make_order(300, BUY, order_type=LIMIT, limit="90", coid="1-1"),  # 27,000
        make_order(100, BUY, coid="1-2"),  # 10,000 at the last price
        make_order(50, SELL, symbol="BBB", coid="1-3")))
    risk = make_risk()
    assert check(risk, ledger, 130) is None  # 13,000 left
    assert check(risk, ledger, 131) is Reason.BUYING_POWER


def test_a_buy_stop_commits_cash_at_its_stop_price() -> None:
    """A buy stop fills at or above its stop: it is valued there, not at the lower last price."""
    ledger = make_ledger("12000", prices={"AAA": 100.0})
    risk = make_risk()
    assert check(risk, ledger, 100, stop="120", order_type=STOP) is None
    assert check(risk, ledger, 101, stop="120", order_type=STOP) is Reason.BUYING_POWER


def test_buying_power_can_be_switched_off() -> None:
    ledger = make_ledger("50000", prices={"AAA": 100.0})
    assert check(make_risk(buying_power=False), ledger, 940_000) is None


def test_covering_a_short_is_never_refused_for_cash() -> None:
    """Reducing risk comes first: buying back a short that went against the portfolio is
    allowed even when the cash does not cover it."""
    ledger = make_ledger("0", prices={"AAA": 100.0})
    ledger.apply_fill(make_fill(10, 100, side=SELL))  # cash 1,000
    ledger.mark("AAA", 200.0)
    assert check(make_risk(price_band=None), ledger, 10, BUY) is None  # 2,000


@pytest.mark.parametrize(("quantity", "lot"), [("1.5", "1"), ("0.15", "0.1"), ("7", "5")])
def test_a_quantity_off_the_lot_grid_is_denied(quantity: str, lot: str) -> None:
    """Defect: a quantity that is not a multiple of the asset's lot size was accepted."""
    ledger = make_ledger(prices={"AAA": 100.0})
    instrument = make_instrument(lot=lot)
    assert check(make_risk(), ledger, quantity, instrument=instrument) is Reason.LOT_SIZE
    on_grid = Decimal(quantity) - Decimal(quantity) % Decimal(lot) + Decimal(lot)
    assert check(make_risk(), ledger, str(on_grid), instrument=instrument) is None


def test_reducing_never_lets_a_sell_flip_a_long_into_a_short() -> None:
    """Defect: in REDUCING, a sell of 15 from +10 (ending at -5) counted as reducing and
    skipped every limit (SYS-006)."""
    ledger = long_ledger("10")
    assert check(make_risk(TradingState.REDUCING), ledger, 15, SELL) is Reason.REDUCING_ONLY
    # ACTIVE: it no longer skips the limits either
    assert check(make_risk(), ledger, 15, SELL) is Reason.SHORT_NOT_ALLOWED
    assert check(make_risk(allow_short=True, max_position=Decimal(4)), ledger, 15, SELL) \
        is Reason.MAX_POSITION  # +10 if it never fills
    risk = make_risk(allow_short=True, max_position=Decimal(10))
    assert check(risk, ledger, 15, SELL) is None
    assert check(risk, ledger, 21, SELL) is Reason.MAX_POSITION  # -11


def test_gross_exposure_counts_open_orders_in_every_check() -> None:
    """Defect: gross exposure mixed pending orders and positions inconsistently (the position
    check added pending, the exposure check did not). Held 10 AAA at 100 with an open buy of
    10 more: the exposure is 2,000 whichever symbol the next order is for."""
    ledger = long_ledger("10", open_orders=by_coid(make_order(10, BUY)))
    risk = make_risk(max_gross_exposure=Decimal(2500))
    assert check(risk, ledger, 10, symbol="BBB") is None  # 2000 + 10 * 50
    assert check(risk, ledger, 11, symbol="BBB") is Reason.MAX_GROSS_EXPOSURE
    assert check(risk, ledger, 5) is None  # (10 + 10 + 5) * 100
    assert check(risk, ledger, 6) is Reason.MAX_GROSS_EXPOSURE


@pytest.mark.parametrize("price", [
    "1e400", "1e-400", "1e20", "0.0000000000000000001", "NaN", "sNaN", "Infinity", "-Infinity",
    "0", "-1"])
@pytest.mark.parametrize(("order_type", "field"), [
    (LIMIT, "limit"), (STOP, "stop"), (STOP_LIMIT, "limit"), (STOP_LIMIT, "stop")])
def test_limit_and_stop_prices_must_be_positive_finite_and_storable(
        price: str, order_type: OrderType, field: str) -> None:
    """Defect: limit and stop prices were not range-checked: 1e400 was stored on SQLite, a 500
    on PostgreSQL, and 1e-400 was stored as 0 (SYS-013: NUMERIC(38, 18) keeps it exactly or
    the order is denied)."""
    taken = {LIMIT: ("limit",), STOP: ("stop",), STOP_LIMIT: ("limit", "stop")}[order_type]
    valid: dict[str, Any] = dict.fromkeys(taken, "100")
    ledger = make_ledger(prices={"AAA": 100.0})
    risk = make_risk()
    assert check(risk, ledger, 1, order_type=order_type, **valid) is None
    assert check(risk, ledger, 1, order_type=order_type, **valid | {field: price}) \
        is Reason.INVALID_PRICE


@pytest.mark.parametrize(("order_type", "kw"), [
    (LIMIT, {}), (STOP, {}), (STOP_LIMIT, {"limit": "100"}), (STOP_LIMIT, {"stop": "100"}),
    (OrderType.MARKET, {"limit": "100"}), (OrderType.MARKET, {"stop": "100"}),
    (LIMIT, {"limit": "100", "stop": "100"})])
def test_an_order_needs_exactly_the_prices_its_type_takes(
        order_type: OrderType, kw: dict[str, Any]) -> None:
    ledger = make_ledger(prices={"AAA": 100.0})
    assert check(make_risk(), ledger, 1, order_type=order_type, **kw) is Reason.INVALID_PRICE


@pytest.mark.parametrize("quantity", [
    "0", "-5", "NaN", "sNaN", "Infinity", "1e400", "1e20", "1e-400", "0.0000000000000000001"])
def test_a_quantity_must_be_positive_finite_and_storable(quantity: str) -> None:
    instrument = make_instrument(lot="0")  # no lot grid: the value itself is refused
    ledger = make_ledger(prices={"AAA": 100.0})
    assert check(make_risk(), ledger, quantity, instrument=instrument) \
        is Reason.INVALID_QUANTITY


# -- instrument conformance and the price band -----------------------------------------------------

def test_a_quantity_below_the_minimum_is_denied() -> None:
    instrument = make_instrument(min_quantity="5")
    ledger = make_ledger(prices={"AAA": 100.0})
    assert check(make_risk(), ledger, 4, instrument=instrument) is Reason.MIN_QUANTITY
    assert check(make_risk(), ledger, 5, instrument=instrument) is None


@pytest.mark.parametrize(("order_type", "kw"), [
    (LIMIT, {"limit": "100.005"}), (STOP, {"stop": "100.005"}),
    (STOP_LIMIT, {"limit": "100", "stop": "100.005"})])
def test_a_price_off_the_tick_grid_is_denied(order_type: OrderType, kw: dict[str, Any]) -> None:
    ledger = make_ledger(prices={"AAA": 100.0})
    assert check(make_risk(), ledger, 1, order_type=order_type, **kw) is Reason.TICK_SIZE


def test_an_order_below_the_minimum_notional_is_denied() -> None:
    """At the limit price, or at the last price for a market order."""
    instrument = make_instrument(min_notional="100")
    ledger = make_ledger(prices={"AAA": 10.0})
    risk = make_risk()
    assert check(risk, ledger, 10, instrument=instrument) is None  # 10 * 10
    assert check(risk, ledger, 9, instrument=instrument) is Reason.MIN_NOTIONAL
    assert check(risk, ledger, 10, instrument=instrument, order_type=LIMIT, limit="9.99") \
        is Reason.MIN_NOTIONAL


@pytest.mark.parametrize(("order_type", "field"), [(LIMIT, "limit"), (STOP, "stop")])
def test_limit_and_stop_prices_stay_within_the_band_around_the_last_price(
        order_type: OrderType, field: str) -> None:
    priced = make_ledger(prices={"AAA": 100.0})

    def at(price: str, risk: RiskCheck, ledger: Ledger = priced) -> Reason | None:
        kw: dict[str, Any] = {field: price}
        return check(risk, ledger, 1, order_type=order_type, **kw)

    default = make_risk()  # a band of 50%
    assert at("150", default) is None
    assert at("50", default) is None
    assert at("150.01", default) is Reason.PRICE_BAND
    assert at("49.99", default) is Reason.PRICE_BAND
    assert at("150.01", make_risk(price_band=Decimal("0.6"))) is None
    assert at("400", make_risk(price_band=None)) is None
    assert at("400", default, make_ledger()) is None  # no last price: no band


# -- short sales and leverage ---------------------------------------------------------------------

def test_a_sale_beyond_the_long_position_is_a_short_sale() -> None:
    """Long 10 with an open sell of 4: a sell of 6 closes it, a sell of 7 goes short."""
    ledger = long_ledger("10", open_orders=by_coid(make_order(4, SELL)))
    assert check(make_risk(), ledger, 6, SELL) is None
    assert check(make_risk(), ledger, 7, SELL) is Reason.SHORT_NOT_ALLOWED
    assert check(make_risk(), make_ledger(prices={"AAA": 100.0}), 1, SELL) \
        is Reason.SHORT_NOT_ALLOWED
    assert check(make_risk(allow_short=True), ledger, 7, SELL) is None


def test_shorts_are_capped_by_leverage_on_equity() -> None:
    ledger = make_ledger("100000", prices={"AAA": 100.0})
    risk = make_risk(allow_short=True)  # max_leverage 1
    assert check(risk, ledger, 1000, SELL) is None  # 100,000 of 100,000
    assert check(risk, ledger, 1001, SELL) is Reason.MAX_LEVERAGE
    assert check(make_risk(allow_short=True, max_leverage=Decimal(2)), ledger, 2000, SELL) \
        is None


def test_short_sale_proceeds_do_not_buy_beyond_the_leverage() -> None:
    """Short 100,000 of AAA in a 100,000 portfolio: the cash is 200,000, but buying anything
    more would take gross exposure above equity."""
    ledger = make_ledger("100000", prices={"AAA": 100.0, "BBB": 50.0})
    ledger.apply_fill(make_fill(1000, 100, side=SELL))
    risk = make_risk(allow_short=True)
    assert check(risk, ledger, 1, symbol="BBB") is Reason.MAX_LEVERAGE
    assert check(risk, ledger, 1) is None  # buying back AAA reduces


# -- properties ------------------------------------------------------------------------------------

_quantities = st.integers(min_value=1, max_value=50)
_open_order = st.tuples(st.sampled_from([BUY, SELL]), _quantities,
                        st.integers(min_value=0, max_value=50))


def _open_orders(specs: list[tuple[Side, int, int]]) -> dict[str, Order]:
    """Open market orders, each partially filled by up to its quantity minus one."""
    return by_coid(*(make_order(quantity, side, coid=f"1-{n}", filled=filled % quantity)
                     for n, (side, quantity, filled) in enumerate(specs)))


@settings(max_examples=300, deadline=None)
@given(held=st.integers(min_value=-40, max_value=40),
       specs=st.lists(_open_order, max_size=4),
       side=st.sampled_from([BUY, SELL]), quantity=_quantities)
def test_reducing_approves_exactly_the_orders_that_can_neither_flip_nor_grow_a_position(
        held: int, specs: list[tuple[Side, int, int]], side: Side, quantity: int) -> None:
    """Whatever the open orders do (none, some or all of them fill), an order REDUCING lets
    through leaves the position smaller and on the same side (or flat); and every such order
    is let through (SYS-006)."""
    ledger = make_ledger(prices={"AAA": 100.0}, open_orders=_open_orders(specs))
    if held:
        ledger.apply_fill(make_fill(abs(held), 100, side=BUY if held > 0 else SELL))
    buys = sum(q - f % q for s, q, f in specs if s is BUY)
    sells = sum(q - f % q for s, q, f in specs if s is SELL)
    signed = quantity * side.sign
    # the position before this order ranges over [held - sells, held + buys]
    safe = all(before != 0 and before * (before + signed) >= 0
               and abs(before + signed) < abs(before)
               for before in (held - sells, held + buys))
    verdict = check(make_risk(TradingState.REDUCING), ledger, quantity, side)
    assert (verdict is None) == safe
    assert verdict in (None, Reason.REDUCING_ONLY)


_cents = st.integers(min_value=1, max_value=20_000).map(lambda n: Decimal(n).scaleb(-2))
_open_buy = st.tuples(_quantities, st.one_of(st.none(), _cents))


@settings(max_examples=300, deadline=None)
@given(cash=st.integers(min_value=0, max_value=20_000), held=st.integers(0, 20),
       last=_cents, buys=st.lists(_open_buy, max_size=3), quantity=_quantities,
       limit=st.one_of(st.none(), _cents))
def test_an_approved_buy_never_takes_cash_below_zero(
        cash: int, held: int, last: Decimal, buys: list[tuple[int, Decimal | None]],
        quantity: int, limit: Decimal | None) -> None:
    """With the default limits (shorts off), a buy the check approves leaves cash at zero or
    more when it fills at its price, even after every open buy fills at its own (SYS-013)."""
    open_buys = by_coid(*(
        make_order(q, BUY, coid=f"1-{n}", order_type=OrderType.MARKET if p is None else LIMIT,
                   limit=None if p is None else str(p))
        for n, (q, p) in enumerate(buys)))
    ledger = make_ledger(str(cash), prices={"AAA": float(last)}, open_orders=open_buys)
    if held:
        ledger.apply_fill(make_fill(held, "1", trade_id="held"))
    kw: dict[str, Any] = {} if limit is None else {"order_type": LIMIT, "limit": str(limit)}
    if check(make_risk(price_band=None), ledger, quantity, **kw) is not None:
        return
    fills = [(quantity, limit or last)] + [(q, p or last) for q, p in buys]
    for n, (fill_quantity, price) in enumerate(fills):
        ledger.apply_fill(make_fill(fill_quantity, str(price), trade_id=f"F{n}"))
    assert ledger.cash >= 0


_wild_decimals = st.one_of(
    st.decimals(allow_nan=True, allow_infinity=True),
    st.sampled_from([Decimal(v) for v in ("1e400", "-1e400", "1e-400", "sNaN", "1e99999")]))
_wild = st.one_of(_wild_decimals, st.none())


@settings(max_examples=300, deadline=None)
@given(quantity=_wild_decimals,
       order_type=st.sampled_from(list(OrderType)), limit=_wild, stop=_wild,
       side=st.sampled_from([BUY, SELL]))
def test_the_check_never_raises_whatever_the_request_carries(
        quantity: Decimal, order_type: OrderType, limit: Decimal | None,
        stop: Decimal | None, side: Side) -> None:
    request = OrderRequest("AAA", side, quantity, order_type, limit_price=limit,
                           stop_price=stop)
    ledger = long_ledger("10", open_orders=by_coid(make_order(3, BUY, order_type=LIMIT,
                                                              limit="99")))
    risk = make_risk(max_gross_exposure=Decimal(10**6), max_position=Decimal(10**6),
                     max_order_notional=Decimal(10**6), max_daily_loss=Decimal(1000),
                     allow_short=True)
    verdict = risk.check(request, ledger, make_instrument(lot="0.001"), 0, T0)
    assert verdict is None or isinstance(verdict, Reason)
