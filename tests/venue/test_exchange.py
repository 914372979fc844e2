"""The local exchange's matching and accounts (lts.venue.exchange), without its protocol front.

Prices and quantities are Binance-like (BTCUSDT: tick 0.01, step 0.00001, notional >= 5). Bars
are the tape: liquidity per bar is its volume x participation (0.1 here).
"""

from decimal import Decimal as D

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lts.venue.exchange import (
    CANCEL_REJECTED,
    FILTER_FAILURE,
    NEW_ORDER_REJECTED,
    NO_SUCH_ORDER,
    CancelReplaceFailed,
    Exchange,
    ExecutionReport,
    ExecutionType,
    Market,
    OrderType,
    Side,
    Status,
    TimeInForce,
    VenueError,
)

BTC = Market("BTCUSDT", "BTC", "USDT")
GTC, IOC, FOK = TimeInForce.GTC, TimeInForce.IOC, TimeInForce.FOK
BUY, SELL = Side.BUY, Side.SELL
LIMIT, MARKET = OrderType.LIMIT, OrderType.MARKET


def venue(usdt: str = "100000", btc: str = "1") -> tuple[Exchange, list[object]]:
    ex = Exchange([BTC], clock=lambda: 1_700_000_000_000)
    ex.add_account("k", {"USDT": D(usdt), "BTC": D(btc)})
    reports: list[object] = []
    ex.listeners.append(reports.append)
    ex.on_bar("BTCUSDT", high=D(30_100), low=D(29_900), close=D(30_000), volume=D(10))
    return ex, reports


def kinds(reports: list[object]) -> list[str]:
    return [f"{r.execution_type}:{r.order.status}" for r in reports
            if isinstance(r, ExecutionReport)]


def refused(code: int, msg: str, call: object) -> None:
    with pytest.raises(VenueError) as info:
        call()  # type: ignore[operator]
    assert (info.value.code, info.value.msg) == (code, msg)


def test_the_filters_refuse_off_grid_prices_and_quantities_and_small_notional() -> None:
    ex, _ = venue()
    refused(FILTER_FAILURE, "Filter failure: PRICE_FILTER",
            lambda: ex.place("k", "BTCUSDT", BUY, LIMIT, D("0.001"), price=D("29000.005"),
                             time_in_force=GTC))
    refused(FILTER_FAILURE, "Filter failure: LOT_SIZE",
            lambda: ex.place("k", "BTCUSDT", BUY, LIMIT, D("0.000015"), price=D(29_000),
                             time_in_force=GTC))
    refused(FILTER_FAILURE, "Filter failure: NOTIONAL",
            lambda: ex.place("k", "BTCUSDT", BUY, MARKET, D("0.0001")))  # $3 at 30,000
    refused(-1121, "Invalid symbol.", lambda: ex.place("k", "XYZ", BUY, MARKET, D(1)))
    assert ex.orders == {}


def test_a_resting_limit_fills_at_its_price_in_parts_as_bars_trade_through_it() -> None:
    ex, reports = venue()
    order = ex.place("k", "BTCUSDT", BUY, LIMIT, D("1.5"), price=D(29_500), time_in_force=GTC,
                     client_order_id="lts-1")
    assert order.status is Status.NEW
    assert ex.balances("k")["USDT"].locked == D("44250.0")  # 1.5 x 29,500
    ex.on_bar("BTCUSDT", high=D(30_000), low=D(29_600), close=D(29_700), volume=D(50))
    assert order.executed_qty == 0  # not reached
    ex.on_bar("BTCUSDT", high=D(29_700), low=D(29_400), close=D(29_450), volume=D(10))
    assert (order.status, order.executed_qty) == (Status.PARTIALLY_FILLED, D(1))  # 10 x 0.1
    ex.on_bar("BTCUSDT", high=D(29_600), low=D(29_000), close=D(29_100), volume=D(10))
    assert (order.status, order.executed_qty) == (Status.FILLED, D("1.5"))
    assert {t.price for t in ex.my_trades("k", "BTCUSDT")} == {D(29_500)}  # maker, at its price
    assert all(t.maker for t in ex.my_trades("k", "BTCUSDT"))
    usdt, btc = ex.balances("k")["USDT"], ex.balances("k")["BTC"]
    assert (usdt.free, usdt.locked) == (D(100_000) - D("44250.0"), 0)
    assert btc.free == D(1) + D("1.5") * (1 - D("0.001"))  # commission in the asset received
    assert kinds(reports) == ["NEW:NEW", "TRADE:PARTIALLY_FILLED", "TRADE:FILLED"]
    assert ex.order("k", "BTCUSDT", client_order_id="lts-1").order_id == order.order_id


def test_a_market_order_takes_the_last_price_and_expires_what_the_bar_cannot_give() -> None:
    ex, reports = venue()
    order = ex.place("k", "BTCUSDT", SELL, MARKET, D("1"))  # the bar has 1 (10 x 0.1)
    assert (order.status, order.executed_qty) == (Status.FILLED, D(1))
    assert ex.my_trades("k", "BTCUSDT")[0].price == D(30_000)
    assert not ex.my_trades("k", "BTCUSDT")[0].maker
    ex.balances("k")["BTC"].free = D(5)
    more = ex.place("k", "BTCUSDT", SELL, MARKET, D(2))  # nothing left in this bar
    assert (more.status, more.executed_qty) == (Status.EXPIRED, 0)
    assert ex.balances("k")["BTC"] .locked == 0
    assert kinds(reports)[-2:] == ["NEW:NEW", "EXPIRED:EXPIRED"]


def test_time_in_force_ioc_fills_what_it_can_and_fok_whole_or_nothing() -> None:
    ex, _ = venue(btc="0")
    fok = ex.place("k", "BTCUSDT", BUY, LIMIT, D(2), price=D(30_500), time_in_force=FOK)
    assert (fok.status, fok.executed_qty) == (Status.EXPIRED, 0)
    ioc = ex.place("k", "BTCUSDT", BUY, LIMIT, D(2), price=D(30_500), time_in_force=IOC)
    assert (ioc.status, ioc.executed_qty) == (Status.EXPIRED, D(1))
    assert ex.my_trades("k", "BTCUSDT")[0].price == D(30_000)  # taker, at the last price
    usdt = ex.balances("k")["USDT"]
    assert (usdt.free, usdt.locked) == (D(100_000) - D(30_000), 0)  # the limit's excess back


def test_a_limit_maker_that_would_take_and_a_stop_that_would_trigger_are_rejected() -> None:
    ex, _ = venue()
    refused(NEW_ORDER_REJECTED, "Order would immediately match and take.",
            lambda: ex.place("k", "BTCUSDT", BUY, OrderType.LIMIT_MAKER, D("0.1"),
                             price=D(30_100)))
    refused(NEW_ORDER_REJECTED, "Stop price would trigger immediately.",
            lambda: ex.place("k", "BTCUSDT", SELL, OrderType.STOP_LOSS_LIMIT, D("0.1"),
                             price=D(29_000), stop_price=D(30_500), time_in_force=GTC))


def test_a_stop_limit_waits_for_its_stop_then_works_as_a_limit() -> None:
    ex, _ = venue()
    loss = ex.place("k", "BTCUSDT", SELL, OrderType.STOP_LOSS_LIMIT, D("0.5"), price=D(29_000),
                    stop_price=D(29_500), time_in_force=GTC)
    high = ex.place("k", "BTCUSDT", SELL, OrderType.STOP_LOSS_LIMIT, D("0.2"), price=D(29_600),
                    stop_price=D(29_500), time_in_force=GTC)
    ex.on_bar("BTCUSDT", high=D(30_000), low=D(29_600), close=D(29_800), volume=D(10))
    assert not loss.triggered
    assert loss.executed_qty == 0
    ex.on_bar("BTCUSDT", high=D(29_550), low=D(29_400), close=D(29_450), volume=D(10))
    # both triggered: the one whose limit (29,000) is through the stop took at the stop price;
    # the other rests as a limit at 29,600, above the bar
    assert (loss.status, high.status) == (Status.FILLED, Status.NEW)
    assert high.triggered
    ex.on_bar("BTCUSDT", high=D(29_700), low=D(29_450), close=D(29_650), volume=D(10))
    trades = [(t.order_id, t.price, t.maker) for t in ex.my_trades("k", "BTCUSDT")]
    assert trades == [(loss.order_id, D(29_500), False), (high.order_id, D(29_600), True)]


def test_funds_duplicates_and_unknown_orders_answer_binances_errors() -> None:
    ex, _ = venue(usdt="1000")
    refused(NEW_ORDER_REJECTED, "Account has insufficient balance for requested action.",
            lambda: ex.place("k", "BTCUSDT", BUY, LIMIT, D(1), price=D(29_000),
                             time_in_force=GTC))
    ex.place("k", "BTCUSDT", BUY, LIMIT, D("0.01"), price=D(29_000), time_in_force=GTC,
             client_order_id="c1")
    refused(NEW_ORDER_REJECTED, "Duplicate order sent.",
            lambda: ex.place("k", "BTCUSDT", BUY, LIMIT, D("0.01"), price=D(29_000),
                             time_in_force=GTC, client_order_id="c1"))
    canceled = ex.cancel("k", "BTCUSDT", client_order_id="c1")
    assert canceled.status is Status.CANCELED
    assert ex.balances("k")["USDT"].free == D(1000)
    refused(CANCEL_REJECTED, "Unknown order sent.",
            lambda: ex.cancel("k", "BTCUSDT", client_order_id="c1"))
    refused(NO_SUCH_ORDER, "Order does not exist.",
            lambda: ex.order("k", "BTCUSDT", client_order_id="nope"))
    again = ex.place("k", "BTCUSDT", BUY, LIMIT, D("0.01"), price=D(29_000), time_in_force=GTC,
                     client_order_id="c1")  # a closed order's id may be used again
    assert ex.order("k", "BTCUSDT", client_order_id="c1") is again
    assert ex.open_orders("k") == [again]


def test_cancel_replace_closes_the_order_and_places_the_new_one_under_its_client_id() -> None:
    ex, reports = venue()
    old = ex.place("k", "BTCUSDT", BUY, LIMIT, D("0.5"), price=D(29_000), time_in_force=GTC,
                   client_order_id="c1")
    ex.on_bar("BTCUSDT", high=D(29_100), low=D(28_950), close=D(29_050), volume=D(2))
    assert old.executed_qty == D("0.2")  # 0.2 filled: 0.3 left
    del reports[:]
    canceled, new = ex.cancel_replace("k", "BTCUSDT", BUY, LIMIT, D("0.3"), price=D(28_500),
                                      time_in_force=GTC, client_order_id="c1",
                                      cancel_client_order_id="c1")
    assert canceled is old
    assert old.status is Status.CANCELED
    assert (new.client_order_id, new.price, new.orig_qty, new.status) == \
        ("c1", D(28_500), D("0.3"), Status.NEW)
    kinds = [(r.execution_type, r.order.order_id) for r in reports
             if isinstance(r, ExecutionReport)]
    assert kinds == [(ExecutionType.CANCELED, old.order_id), (ExecutionType.NEW, new.order_id)]
    assert ex.order("k", "BTCUSDT", client_order_id="c1") is new
    assert ex.balances("k")["USDT"].locked == D("0.3") * D(28_500)
    # the canceled order cannot be replaced again; the filters come first
    with pytest.raises(CancelReplaceFailed) as failed:
        ex.cancel_replace("k", "BTCUSDT", BUY, LIMIT, D("0.3"), price=D(28_600),
                          time_in_force=GTC, cancel_order_id=old.order_id)
    assert (failed.value.code, failed.value.cancel_error and failed.value.cancel_error.code,
            failed.value.canceled, failed.value.placed) == (-2022, CANCEL_REJECTED, None, None)
    refused(FILTER_FAILURE, "Filter failure: PRICE_FILTER",
            lambda: ex.cancel_replace("k", "BTCUSDT", BUY, LIMIT, D("0.3"),
                                      price=D("28600.001"), time_in_force=GTC,
                                      cancel_client_order_id="c1"))
    assert new.is_open


_ACTIONS = st.lists(st.one_of(
    st.tuples(st.just("place"), st.sampled_from([BUY, SELL]),
              st.sampled_from([LIMIT, MARKET, OrderType.STOP_LOSS_LIMIT]),
              st.integers(1, 200), st.integers(-300, 300), st.sampled_from([GTC, IOC, FOK])),
    st.tuples(st.just("cancel"), st.integers(1, 40)),
    st.tuples(st.just("bar"), st.integers(-400, 400), st.integers(0, 300), st.integers(0, 40)),
), max_size=40)


@settings(max_examples=150, deadline=None)
@given(actions=_ACTIONS)
def test_funds_are_conserved_and_locks_match_open_orders(actions: list[tuple]) -> None:
    """Whatever is placed, canceled and traded: locked funds are exactly what open orders hold,
    nothing is negative, and each asset's total moved only by trades and their commissions."""
    ex, reports = venue(usdt="50000", btc="2")
    price = D(30_000)
    for action in actions:
        try:
            if action[0] == "place":
                _, side, kind, qty, offset, tif = action
                limit = price + offset * 10
                if kind is MARKET:
                    ex.place("k", "BTCUSDT", side, kind, D(qty) / 100)
                elif kind is OrderType.STOP_LOSS_LIMIT:
                    ex.place("k", "BTCUSDT", side, kind, D(qty) / 100, price=limit,
                             stop_price=limit, time_in_force=GTC)
                else:
                    ex.place("k", "BTCUSDT", side, kind, D(qty) / 100, price=limit,
                             time_in_force=tif)
            elif action[0] == "cancel":
                ex.cancel("k", "BTCUSDT", order_id=action[1])
            else:
                _, move, spread, volume = action
                price = max(D(1000), price + move * 10)
                ex.on_bar("BTCUSDT", high=price + spread * 10, low=price - spread * 10,
                          close=price, volume=D(volume))
        except VenueError:
            pass
    balances = ex.balances("k")
    for asset in ("USDT", "BTC"):
        assert balances[asset].free >= 0
        assert balances[asset].locked >= 0
    open_orders = ex.open_orders("k")
    assert balances["USDT"].locked == sum(
        (o.remaining * o.reserve_price for o in open_orders if o.side is BUY), D(0))
    assert balances["BTC"].locked == sum((o.remaining for o in open_orders if o.side is SELL),
                                         D(0))
    btc, usdt = D(2), D(50_000)
    for t in ex.my_trades("k", "BTCUSDT"):
        btc += t.qty - t.commission if t.side is BUY else -t.qty
        usdt += -t.quote_qty if t.side is BUY else t.quote_qty - t.commission
    assert balances["BTC"].free + balances["BTC"].locked == btc
    assert balances["USDT"].free + balances["USDT"].locked == usdt
    for o in ex.orders.values():
        assert 0 <= o.executed_qty <= o.orig_qty
        assert o.executed_qty == sum((t.qty for t in ex.trades if t.order_id == o.order_id),
                                     D(0))
    opened = {r.order.order_id for r in reports
              if isinstance(r, ExecutionReport) and r.execution_type is ExecutionType.NEW}
    assert opened == set(ex.orders)  # every order accepted was reported
