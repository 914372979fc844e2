"""Round trips from fills (issue 11: the trades a backtest report and its statistics count;
SYS-006 P&L)."""

from decimal import Decimal as D

from hypothesis import given, settings
from hypothesis import strategies as st

from lts.domain.orders import Fill, Side
from lts.domain.position import Position
from lts.domain.trades import TradeBook, round_trips

BUY, SELL = Side.BUY, Side.SELL


def fill(symbol: str, side: Side, qty: str, price: str, fee: str = "0", ts: int = 0,
         commission: str = "0") -> Fill:
    return Fill(1, f"1-{ts}", "paper", f"t{ts}-{symbol}", symbol, side, D(qty), D(price), D(fee),
                ts, D(commission))


def test_a_long_round_trip_with_fees() -> None:
    trades = round_trips([fill("A", BUY, "10", "100", "1", ts=5),
                          fill("A", SELL, "10", "110", "1.2", ts=9)])
    assert len(trades) == 1
    t = trades[0]
    assert (t.side, t.quantity, t.entry_price, t.exit_price) == ("long", D(10), D(100), D(110))
    assert (t.entry_ts, t.exit_ts, t.duration_ns, t.open) == (5, 9, 4, False)
    assert t.fees == D("2.2")
    assert t.pnl == D(100) - D("2.2")
    # backtesting.py's Trade.pl_pct: sign * (exit / entry - 1) less commissions / entry value
    assert t.return_pct == float((D(110) / D(100) - 1) * 100 - D("2.2") / D(1000) * 100)


def test_a_short_round_trip_gains_when_the_price_falls() -> None:
    [t] = round_trips([fill("A", SELL, "4", "50", ts=1), fill("A", BUY, "4", "40", ts=2)])
    assert (t.side, t.pnl, t.return_pct) == ("short", D(40), 20.0)


def test_scaling_in_and_out_stays_one_trade_with_weighted_prices() -> None:
    trades = round_trips([
        fill("A", BUY, "10", "100", ts=1),
        fill("A", BUY, "10", "110", ts=2),   # 20 held, entry average 105
        fill("A", SELL, "5", "120", ts=3),   # partial exit
        fill("A", BUY, "5", "90", ts=4),     # scale in again: 20 held
        fill("A", SELL, "20", "100", ts=5),  # flat
    ])
    assert len(trades) == 1
    t = trades[0]
    assert t.quantity == D(20)  # the most held
    assert t.entry_price == (D(1000) + D(1100) + D(450)) / 25
    assert t.exit_price == (D(600) + D(2000)) / 25
    assert t.pnl == D(2600) - D(2550)
    assert (t.entry_ts, t.exit_ts) == (1, 5)


def test_partial_fills_of_one_order_make_one_trade() -> None:
    trades = round_trips([fill("A", BUY, "3", "10", "0.03", ts=1),
                          fill("A", BUY, "7", "10.5", "0.07", ts=1),
                          fill("A", SELL, "6", "11", "0.06", ts=2),
                          fill("A", SELL, "4", "11", "0.04", ts=3)])
    assert len(trades) == 1
    assert trades[0].fees == D("0.2")
    assert trades[0].pnl == D(110) - D("103.5") - D("0.2")


def test_a_reversal_closes_one_trade_and_opens_the_next_sharing_its_fee() -> None:
    book = TradeBook()
    assert book.apply(fill("A", BUY, "5", "100", "1", ts=1)) == (1,)
    assert book.apply(fill("A", SELL, "15", "110", "3", ts=2)) == (1, 2)  # long 5 -> short 10
    assert book.apply(fill("A", BUY, "10", "105", ts=3)) == (2,)
    first, second = book.trades()
    assert (first.side, first.quantity, first.exit_ts, first.open) == ("long", D(5), 2, False)
    assert first.fees == D(2)  # its own 1 and 5/15 of the reversal's 3
    assert first.pnl == D(50) - D(2)
    assert (second.side, second.quantity, second.entry_ts, second.entry_price) == (
        "short", D(10), 2, D(110))
    assert second.fees == D(2)  # 10/15 of 3
    assert second.pnl == D(50) - D(2)


def test_a_reversal_fee_that_does_not_divide_evenly_still_adds_up() -> None:
    fills = [fill("A", BUY, "1", "10", ts=1), fill("A", SELL, "3", "10", "1", ts=2),
             fill("A", BUY, "2", "10", ts=3)]
    first, second = round_trips(fills)
    assert first.fees + second.fees == D(1)
    assert first.fees == D("0.333333333333")


def test_symbols_are_independent_and_ids_follow_the_openings() -> None:
    trades = round_trips([
        fill("A", BUY, "1", "10", ts=1), fill("B", SELL, "2", "20", ts=2),
        fill("A", SELL, "1", "12", ts=3), fill("A", BUY, "1", "11", ts=4),
        fill("B", BUY, "2", "19", ts=5), fill("A", SELL, "1", "10", ts=6)])
    assert [(t.trade_id, t.symbol, t.side, t.pnl) for t in trades] == [
        (1, "A", "long", D(2)), (2, "B", "short", D(2)), (3, "A", "long", D(-1))]


def test_an_open_trade_is_marked_or_held_at_its_entry() -> None:
    fills = [fill("A", BUY, "10", "100", "1", ts=1), fill("A", SELL, "4", "110", "0", ts=2)]
    [marked] = round_trips(fills, {"A": D(120)})
    assert (marked.open, marked.exit_ts) == (True, None)
    assert marked.pnl == D(40) + D(120) - D(1)  # 4 sold at +10, 6 held at +20, fee 1
    assert marked.exit_price == (D(440) + D(720)) / 10
    [unmarked] = round_trips(fills)
    assert unmarked.pnl == D(40) - D(1)  # what is held counts at the entry price
    assert unmarked.exit_price == D(110)


def test_a_commission_taken_in_the_asset_is_a_fee_and_shrinks_the_position() -> None:
    # Binance takes 0.005 of the 5 bought: 4.995 are held, and selling them closes the trade
    trades = round_trips([fill("A", BUY, "5", "100", commission="0.005", ts=1),
                          fill("A", SELL, "4.995", "110", ts=2)])
    [t] = trades
    assert (t.open, t.quantity, t.fees) == (False, D("4.995"), D("0.5"))
    assert t.pnl == D("4.995") * 10 - D("0.5")


_fills = st.lists(st.tuples(st.sampled_from(["A", "B"]), st.sampled_from([BUY, SELL]),
                            st.integers(1, 9), st.integers(50, 150),
                            st.sampled_from(["0", "0.5", "1", "0.07"])),
                  max_size=40)


@settings(max_examples=300, deadline=None)
@given(_fills)
def test_the_trades_account_for_every_unit_of_pnl_and_fee(rows: list[tuple[str, Side, int,
                                                                           int, str]]) -> None:
    """Whatever the fills: the trades' P&L (open ones marked) adds up to the change in equity
    exactly, their fees to the fills' fees, and a trade closes where the position is flat."""
    fills = [fill(s, side, str(q), str(p), fee, ts=i) for i, (s, side, q, p, fee)
             in enumerate(rows)]
    marks = {"A": D(97), "B": D(103)}
    trades = round_trips(fills, marks)
    cash = D(0)
    positions: dict[str, Position] = {}
    for f in fills:
        positions.setdefault(f.symbol, Position(symbol=f.symbol)).apply_fill(
            f.side, f.quantity, f.price, f.fee)
        cash -= f.side.sign * f.quantity * f.price + f.fee
    equity = cash + sum((p.quantity * marks[s] for s, p in positions.items()), D(0))
    assert sum((t.pnl for t in trades), D(0)) == equity
    assert sum((t.fees for t in trades), D(0)) == sum((f.fee for f in fills), D(0))
    still_open = {s for s, p in positions.items() if p.quantity}
    assert {t.symbol for t in trades if t.open} == still_open
    assert sorted(t.trade_id for t in trades) == list(range(1, len(trades) + 1))
    for t in trades:
        assert t.quantity > 0
        assert t.open or (t.exit_ts is not None and t.exit_ts >= t.entry_ts)
