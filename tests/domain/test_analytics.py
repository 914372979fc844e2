"""Portfolio analytics from fills (SYS-002 analyze portfolios, SYS-006 P&L)."""

from decimal import Decimal as D

from lts.domain.analytics import analyze
from lts.domain.orders import Fill, Side


def fill(symbol: str, side: Side, qty: str, price: str, fee: str = "0", n: int = 0) -> Fill:
    return Fill(1, f"1-{n}", "paper", f"t{n}-{symbol}-{side.value}-{qty}-{price}", symbol, side,
                D(qty), D(price), D(fee), n)


def test_round_trips_equity_drawdown_and_per_asset_pnl() -> None:
    fills = [
        fill("A", Side.BUY, "10", "10", "1", 1),
        fill("A", Side.SELL, "10", "12", "1", 2),   # a winning trade: +20 - 2 fees
        fill("B", Side.BUY, "5", "20", "0", 3),
        fill("A", Side.BUY, "1", "12", "0", 4),
        fill("A", Side.SELL, "1", "11", "0", 5),    # a losing trade: -1
    ]
    result = analyze(D(1000), fills, {"B": D(18)})
    assert result.equity == D(1000) - 2 + 20 - 1 - 10  # B marked at 18: -10 unrealized
    assert result.trades == 2
    assert result.win_rate == 0.5
    by_symbol = {a.symbol: a for a in result.assets}
    assert by_symbol["A"].pnl == D(17)
    assert by_symbol["B"].unrealized_pnl == D(-10)
    assert (result.best_asset, result.worst_asset) == ("A", "B")
    assert result.max_drawdown == D(11)  # peak 1018 after the first trade, 1007 at the end
    assert result.total_return == float(D(1007) / D(1000) - 1)


def test_a_reversal_closes_one_trade_and_opens_the_next() -> None:
    """Issue 11: a strategy reversing long <-> short made no trades at all."""
    fills = [
        fill("A", Side.BUY, "5", "100", "1", 1),     # long 5
        fill("A", Side.SELL, "10", "110", "2", 2),   # +50, 3 in fees: a win; short 5 opens
        fill("A", Side.BUY, "5", "120", "0", 3),     # -50 on the short: a loss
    ]
    result = analyze(D(10_000), fills, {})
    assert result.trades == 2
    assert result.win_rate == 0.5
    assert result.equity == D(10_000) + 50 - 50 - 3


def test_no_fills_means_nothing_happened() -> None:
    result = analyze(D(500), [], {})
    assert (result.equity, result.trades, result.win_rate, result.sharpe) == (D(500), 0, None,
                                                                             None)
    assert result.best_asset is None
