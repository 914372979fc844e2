"""The ledger of one portfolio: exact cash, positions and equity after fills (SYS-006, SYS-013),
the float equity mirror used per bar, and the rebuild from fills that recovery runs."""

from decimal import Decimal

from lts.domain.orders import Order, OrderStatus, Side

from ._support import make_fill, make_ledger


def test_a_new_ledger_holds_only_cash() -> None:
    ledger = make_ledger("10000")
    assert ledger.cash == Decimal(10000)
    assert ledger.equity() == Decimal(10000)
    assert ledger.position("AAA") == 0
    assert ledger.position("ZZZ") == 0  # unknown symbols hold nothing
    assert ledger.gross_exposure() == 0
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
