"""Pre-trade risk: every reason code, the kill switch, and reducing orders (architecture §6).

A denial is a returned reason code, never an exception. The view is a real Ledger.
"""

from decimal import Decimal
from typing import Any

import pytest

from lts.domain.orders import Order, OrderType, Side
from lts.engine.ledger import Ledger
from lts.engine.risk import Reason, RiskCheck, RiskLimits, TradingState

from ._support import SECOND, T0, make_fill, make_ledger, make_request


def make_risk(state: TradingState = TradingState.ACTIVE, **limits: Any) -> RiskCheck:
    base: dict[str, Any] = {"max_open_orders": None, "max_orders_per_second": None}
    return RiskCheck(RiskLimits(**{**base, **limits}), state)


def long_ledger(quantity: str = "10", price: float = 100.0) -> Ledger:
    ledger = make_ledger(prices={"AAA": price, "BBB": 50.0})
    ledger.apply_fill(make_fill(quantity, "100"))
    return ledger


def check(risk: RiskCheck, ledger: Ledger, quantity: str | int = 10, side: Side = Side.BUY, *,
          open_orders: int = 0, now: int = T0, **kw: Any) -> Reason | None:
    return risk.check(make_request(quantity, side, **kw), ledger, open_orders, now)


def test_an_order_within_every_limit_is_approved() -> None:
    risk = make_risk(max_order_notional=Decimal(5000), max_position=Decimal(100),
                     max_gross_exposure=Decimal(10000), max_open_orders=5,
                     max_orders_per_second=5, max_daily_loss=Decimal(1000))
    assert check(risk, long_ledger(), 10, open_orders=4) is None
    assert risk.denials == 0


@pytest.mark.parametrize("quantity", ["0", "-5"])
def test_invalid_quantity(quantity: str) -> None:
    assert check(make_risk(), long_ledger(), quantity) is Reason.INVALID_QUANTITY


def test_halted_denies_everything_even_reducing() -> None:
    risk = make_risk(TradingState.HALTED)
    assert check(risk, long_ledger(), 5, Side.SELL) is Reason.TRADING_HALTED
    assert check(risk, long_ledger(), 5, Side.BUY) is Reason.TRADING_HALTED
    assert risk.denials == 2


def test_reducing_only_lets_orders_through_that_shrink_the_position() -> None:
    risk = make_risk(TradingState.REDUCING, max_order_notional=Decimal(1),
                     max_position=Decimal(1), max_gross_exposure=Decimal(1))
    ledger = long_ledger("10")
    assert check(risk, ledger, 1, Side.BUY) is Reason.REDUCING_ONLY
    assert check(risk, ledger, 5, Side.SELL) is None  # exposure limits never refuse a reduction
    assert check(risk, ledger, 10, Side.SELL) is None
    assert check(risk, ledger, 30, Side.SELL) is Reason.REDUCING_ONLY  # -20 is bigger than +10
    assert check(risk, make_ledger(prices={"AAA": 100.0}), 1, Side.SELL) is Reason.REDUCING_ONLY


def test_reducing_counts_pending_orders() -> None:
    sell = Order(client_order_id="1-9", portfolio_id=1, symbol="AAA", side=Side.SELL,
                 quantity=Decimal(8))
    ledger = make_ledger(open_orders={"1-9": sell}, prices={"AAA": 100.0})
    ledger.apply_fill(make_fill("10", "100"))
    risk = make_risk(TradingState.REDUCING)
    # held 10, pending -8: net 2; selling 5 would make it -3
    assert check(risk, ledger, 5, Side.SELL) is Reason.REDUCING_ONLY
    assert check(risk, ledger, 2, Side.SELL) is None


def test_no_price_for_a_market_order() -> None:
    ledger = make_ledger()
    assert check(make_risk(), ledger, 1) is Reason.NO_PRICE
    assert check(make_risk(), ledger, 1, limit="10", order_type=OrderType.LIMIT) \
        is None


def test_max_order_notional() -> None:
    risk = make_risk(max_order_notional=Decimal(1000))
    ledger = make_ledger(prices={"AAA": 100.0})
    assert check(risk, ledger, 10) is None  # 1000 is not above 1000
    assert check(risk, ledger, 11) is Reason.MAX_ORDER_NOTIONAL
    # a limit order is valued at its limit
    assert check(risk, ledger, 10, limit="101", order_type=OrderType.LIMIT) \
        is Reason.MAX_ORDER_NOTIONAL


def test_max_position() -> None:
    risk = make_risk(max_position=Decimal(15))
    ledger = long_ledger("10")
    assert check(risk, ledger, 5) is None
    assert check(risk, ledger, 6) is Reason.MAX_POSITION
    assert check(risk, ledger, 26, Side.SELL) is Reason.MAX_POSITION  # -16 short


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
    assert check(risk, ledger, 1, Side.SELL, now=T0 + SECOND - 1) is Reason.MAX_ORDER_RATE
    assert check(risk, ledger, 1, now=T0 + SECOND) is None  # the first one left the window
    assert risk.denials == 2


def test_max_daily_loss_from_the_equity_at_the_first_check_of_the_day() -> None:
    risk = make_risk(max_daily_loss=Decimal(500))
    ledger = long_ledger("10", price=100.0)
    assert check(risk, ledger, 1, now=T0) is None  # the day starts at this equity
    ledger.mark("AAA", 50.0)  # 10 * -50 = -500: not above the limit
    assert check(risk, ledger, 1, now=T0 + SECOND) is None
    ledger.mark("AAA", 49.0)
    assert check(risk, ledger, 1, now=T0 + 2 * SECOND) is Reason.MAX_DAILY_LOSS
    assert check(risk, ledger, 1, Side.SELL, now=T0 + 3 * SECOND) is None  # reducing is allowed
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
