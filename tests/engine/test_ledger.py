"""The ledger of one portfolio: exact cash, positions and equity after fills (SYS-006, SYS-013),
the float equity mirror used per bar, the rebuild from fills that recovery runs, and what the
open orders commit and add to exposure (the figures the risk check reads)."""

from decimal import Decimal

from lts.domain.orders import Order, OrderStatus, OrderType, Side

from ._support import by_coid, make_fill, make_instrument, make_ledger, make_order, make_request

BUY, SELL = Side.BUY, Side.SELL
LIMIT = OrderType.LIMIT


def test_a_new_ledger_holds_only_cash() -> None:
    ledger = make_ledger("10000")
    assert ledger.cash == Decimal(10000)
    assert ledger.equity() == Decimal(10000)
    assert ledger.position("AAA") == 0
    assert ledger.position("ZZZ") == 0  # unknown symbols hold nothing
    assert ledger.gross_exposure() == 0
    assert ledger.committed_cash() == 0
    assert ledger.last_price("AAA") is None
    assert ledger.lot_size("AAA") == Decimal(1)


def test_cash_position_and_equity_after_a_buy_and_a_partial_sell() -> None:
    ledger = make_ledger("10000")
    ledger.mark("AAA", 110.0)
    pos = ledger.apply_fill(make_fill(10, "100", fee="1", trade_id="T1"))
    assert (pos.quantity, pos.avg_price, pos.realized_pnl, pos.fees) == (
        Decimal(10), Decimal(100), Decimal(0), Decimal(1))
    assert ledger.cash == Decimal("8999")
    assert ledger.equity() == Decimal("10099")  # 8999 + 10 * 110
    assert ledger.gross_exposure() == Decimal("1100")

    pos = ledger.apply_fill(make_fill(4, "120", side=Side.SELL, fee="0.5", trade_id="T2"))
    assert (pos.quantity, pos.realized_pnl, pos.fees) == (Decimal(6), Decimal(80), Decimal("1.5"))
    assert ledger.cash == Decimal("9478.5")  # 8999 + 480 - 0.5
    assert ledger.equity() == Decimal("10138.5")  # 9478.5 + 6 * 110
    assert ledger.realized_pnl() == Decimal(80)
    assert ledger.fees() == Decimal("1.5")
    assert (ledger.fills, ledger.round_trips) == (2, 0)


def test_closing_counts_a_round_trip_and_short_positions_are_negative() -> None:
    ledger = make_ledger("10000")
    ledger.mark("AAA", 100.0)
    ledger.apply_fill(make_fill(5, "100", trade_id="T1"))
    ledger.apply_fill(make_fill(5, "90", side=Side.SELL, trade_id="T2"))
    assert ledger.position("AAA") == 0
    assert ledger.round_trips == 1
    assert ledger.cash == Decimal("9950")
    ledger.apply_fill(make_fill(3, "90", side=Side.SELL, trade_id="T3"))
    assert ledger.position("AAA") == Decimal(-3)
    assert ledger.cash == Decimal("10220")
    assert ledger.equity() == Decimal("9920")  # 10220 - 3 * 100
    assert ledger.gross_exposure() == Decimal("300")


def test_a_reversal_through_zero_ends_one_round_trip_and_opens_the_next() -> None:
    """Issue 11: round trips were 0 for a strategy reversing long <-> short."""
    ledger = make_ledger("10000")
    ledger.apply_fill(make_fill(5, "100", trade_id="T1"))  # long 5
    ledger.apply_fill(make_fill(10, "110", side=Side.SELL, trade_id="T2"))  # short 5
    assert (ledger.position("AAA"), ledger.round_trips) == (Decimal(-5), 1)
    ledger.apply_fill(make_fill(10, "100", trade_id="T3"))  # long 5 again
    assert (ledger.position("AAA"), ledger.round_trips) == (Decimal(5), 2)
    ledger.apply_fill(make_fill(5, "105", side=Side.SELL, trade_id="T4"))  # flat
    assert (ledger.position("AAA"), ledger.round_trips) == (Decimal(0), 3)


def test_equity_marks_at_the_average_price_until_a_price_is_known() -> None:
    ledger = make_ledger("10000")
    ledger.apply_fill(make_fill(10, "100", trade_id="T1"))
    assert ledger.equity() == Decimal("10000")
    assert ledger.gross_exposure() == Decimal("1000")


def test_a_fill_of_a_symbol_not_configured_opens_a_position() -> None:
    ledger = make_ledger("10000", symbols=("AAA",))
    ledger.apply_fill(make_fill(2, "50", symbol="NEW", trade_id="T1"))
    assert ledger.position("NEW") == Decimal(2)
    assert ledger.cash == Decimal("9900")


def test_pending_is_the_signed_leaves_of_open_orders_per_symbol() -> None:
    buy = Order(client_order_id="1-1", portfolio_id=1, symbol="AAA", side=Side.BUY,
                quantity=Decimal(10), status=OrderStatus.ACCEPTED)
    sell = Order(client_order_id="1-2", portfolio_id=1, symbol="AAA", side=Side.SELL,
                 quantity=Decimal(4))
    other = Order(client_order_id="1-3", portfolio_id=1, symbol="BBB", side=Side.BUY,
                  quantity=Decimal(7))
    ledger = make_ledger(open_orders={"1-1": buy, "1-2": sell, "1-3": other})
    assert ledger.pending("AAA") == Decimal(6)
    buy.apply_fill(Decimal(3), Decimal(100), 1)
    assert ledger.pending("AAA") == Decimal(3)
    assert ledger.pending("BBB") == Decimal(7)


def test_the_float_equity_mirror_follows_marks_and_fills() -> None:
    ledger = make_ledger("10000")
    assert ledger.mark("AAA", 110.0) == 10000.0
    ledger.apply_fill(make_fill(10, "100", fee="1", trade_id="T1"))
    assert ledger.mark("AAA", 120.0) == 10199.0  # 8999 + 10 * 120
    assert ledger.mark("BBB", 50.0) == 10199.0
    ledger.apply_fill(make_fill(4, "120", side=Side.SELL, trade_id="T2"))
    assert ledger.mark("AAA", 100.0) == float(ledger.equity()) == 10079.0  # 9479 + 6 * 100


def test_rebuild_replays_fills_from_the_initial_cash() -> None:
    fills = [make_fill(10, "100", fee="1", trade_id="T1"),
             make_fill(4, "120", side=Side.SELL, fee="0.5", trade_id="T2"),
             make_fill(3, "10", symbol="BBB", trade_id="T3")]
    live = make_ledger("10000")
    for fill in fills:
        live.apply_fill(fill)
    rebuilt = make_ledger("10000")
    rebuilt.apply_fill(make_fill(99, "1", trade_id="stale"))  # state before the rebuild
    rebuilt.rebuild(fills)
    assert rebuilt.cash == live.cash == Decimal("9448.5")
    assert rebuilt.positions == live.positions
    assert (rebuilt.fills, rebuilt.round_trips) == (3, 0)


def test_float_equity_after_a_rebuild_includes_the_positions() -> None:
    """Recovery rebuilds positions before any price is known; the first mark must value them.
    (Was a bug in ``Ledger.mark``: a first mark added nothing for a held position.)"""
    ledger = make_ledger("10000")
    ledger.rebuild([make_fill(10, "100", fee="1", trade_id="T1")])
    assert ledger.mark("AAA", 110.0) == float(ledger.equity()) == 10099.0
    assert ledger.mark("AAA", 100.0) == 9999.0


def test_float_equity_counts_a_fill_made_before_the_first_mark() -> None:
    ledger = make_ledger("10000")
    ledger.apply_fill(make_fill(10, "100", fee="1", trade_id="T1"))
    assert ledger.mark("AAA", 110.0) == float(ledger.equity()) == 10099.0


# -- open orders: what they commit and the exposure they may add ---------------------------------

def test_open_quantities_are_the_leaves_of_open_orders_per_side() -> None:
    """A partly filled order counts with what is left; an overfilled order (the venue traded
    more than asked) and a closed order count nothing."""
    partly = make_order(10, BUY, coid="1-1", filled=4)
    overfilled = make_order(5, BUY, coid="1-2")
    overfilled.apply_fill(Decimal(7), Decimal(100), 1)
    closed = make_order(9, SELL, coid="1-3", status=OrderStatus.CANCELED)
    ledger = make_ledger(open_orders=by_coid(
        partly, overfilled, closed, make_order(3, SELL, coid="1-4"),
        make_order(2, SELL, symbol="BBB", coid="1-5")))
    assert ledger.open_quantities("AAA") == (Decimal(6), Decimal(3))
    assert ledger.pending("AAA") == Decimal(3)
    assert ledger.open_quantities("BBB") == (Decimal(0), Decimal(2))
    assert ledger.open_quantities("ZZZ") == (Decimal(0), Decimal(0))


def test_open_buys_commit_cash_at_the_price_they_will_pay() -> None:
    """A limit buy at its limit, a market buy at the last price, a buy stop at the higher of its
    stop and the last price; sells commit nothing."""
    orders = by_coid(
        make_order(10, BUY, order_type=LIMIT, limit="90", coid="1-1", filled=4),  # 6 * 90
        make_order(2, BUY, coid="1-2"),  # 2 * 100
        make_order(1, BUY, order_type=OrderType.STOP, stop="120", coid="1-3"),  # 120
        make_order(1, BUY, order_type=OrderType.STOP, stop="80", coid="1-4"),  # 100
        make_order(50, SELL, order_type=LIMIT, limit="100", coid="1-5"))
    ledger = make_ledger(prices={"AAA": 100.0}, open_orders=orders)
    assert ledger.committed_cash() == Decimal(540 + 200 + 120 + 100)
    ledger.mark("AAA", 110.0)
    assert ledger.committed_cash() == Decimal(540 + 220 + 120 + 110)


def test_a_new_open_order_is_seen_at_once() -> None:
    """The ledger reads the runner's own open-order map."""
    orders: dict[str, Order] = {}
    ledger = make_ledger(prices={"AAA": 100.0}, open_orders=orders)
    orders["1-1"] = make_order(3, BUY)
    assert ledger.committed_cash() == Decimal(300)
    assert ledger.pending("AAA") == Decimal(3)


def test_gross_exposure_is_the_worse_side_of_the_open_orders_per_symbol() -> None:
    """Long 10 AAA at 100 with an open buy of 5 and an open sell of 30: all buys fill -> 15,
    all sells fill -> -20; the worse is 20 * 100. Plus BBB, flat with an open buy of 4 at 50."""
    orders = by_coid(make_order(5, BUY, coid="1-1"), make_order(30, SELL, coid="1-2"),
                     make_order(4, BUY, symbol="BBB", coid="1-3"))
    ledger = make_ledger(prices={"AAA": 100.0, "BBB": 50.0}, open_orders=orders)
    ledger.apply_fill(make_fill(10, 100))
    assert ledger.gross_exposure() == Decimal(2000 + 200)
    # a prospective order counts as one more open order
    assert ledger.gross_exposure(with_order=make_request(20, BUY)) == Decimal(3500 + 200)
    assert ledger.gross_exposure(with_order=make_request(5, SELL)) == Decimal(2500 + 200)
    assert ledger.gross_exposure(with_order=make_request(1, BUY, symbol="CCC", limit="7",
                                                         order_type=LIMIT)) == Decimal(2207)


def test_gross_exposure_of_a_symbol_never_priced_counts_its_orders_at_their_own_prices() -> None:
    ledger = make_ledger(open_orders=by_coid(
        make_order(10, BUY, order_type=LIMIT, limit="20", coid="1-1"),
        make_order(3, SELL, order_type=LIMIT, limit="25", coid="1-2")))
    assert ledger.gross_exposure() == Decimal(200)
    ledger.apply_fill(make_fill(1, 30, trade_id="T9"))  # now held: marked at the average price
    assert ledger.gross_exposure() == Decimal(11 * 30)


def test_the_lot_size_comes_from_the_instrument_and_follows_its_changes() -> None:
    instruments = {"AAA": make_instrument(lot="0.001")}
    ledger = make_ledger(instruments=instruments)
    assert ledger.lot_size("AAA") == Decimal("0.001")
    instruments["AAA"] = make_instrument(lot="0.1")  # an asset update in the runner
    assert ledger.lot_size("AAA") == Decimal("0.1")
    assert ledger.lot_size("ZZZ") == Decimal(1)  # not configured: whole units
