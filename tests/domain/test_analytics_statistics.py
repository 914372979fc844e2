"""The portfolio analytics share the backtest's round trips and statistics (issue 11; SYS-002
analyze portfolios): a Sharpe ratio annualised from the fills' times, a reversal's fee shared
between the trade it closes and the one it opens."""

import math
from decimal import Decimal as D

import numpy as np
import pytest

from lts.domain.analytics import analyze
from lts.domain.orders import Fill, Side

DAY = 86_400 * 10**9
MONDAY = 1_704_067_200 * 10**9  # 2024-01-01


def fill(side: Side, qty: str, price: str, fee: str = "0", ts: int = 0) -> Fill:
    return Fill(1, f"1-{ts}", "paper", f"t{ts}", "A", side, D(qty), D(price), D(fee), ts)


def test_a_reversal_fee_is_shared_so_a_small_win_stays_a_win() -> None:
    fills = [fill(Side.BUY, "5", "100", ts=MONDAY),
             fill(Side.SELL, "10", "101", "6", ts=MONDAY + DAY),  # +5 gross, 3 of the 6 fee
             fill(Side.BUY, "5", "101", ts=MONDAY + 2 * DAY)]     # the short: -3 (its fee)
    result = analyze(D(10_000), fills, {})
    assert result.trades == 2
    assert result.win_rate == 0.5
    assert [t.pnl for t in result.round_trips] == [D(2), D(-3)]
    assert result.fees == D(6)


def test_sharpe_is_annualised_from_the_fill_times() -> None:
    """One fill a weekday: the curve's last value each day gives daily returns; a year has
    252 of them (no weekend in the data)."""
    prices = ["100", "104", "101", "107", "103"]
    fills = [fill(Side.BUY, "10", prices[0], ts=MONDAY)]
    fills += [fill(Side.BUY, "1", p, ts=MONDAY + i * DAY) for i, p in enumerate(prices[1:], 1)]
    result = analyze(D(2_000), fills, {}, as_of_ns=MONDAY + 4 * DAY)
    held = np.cumsum([10, 1, 1, 1, 1])
    spent = np.cumsum([10 * 100, 104, 101, 107, 103])
    daily = 2_000 - spent + held * np.array([100, 104, 101, 107, 103], dtype=float)
    returns = np.diff(daily) / daily[:-1]
    g = math.exp(np.log1p(returns).mean()) - 1
    annual = (1 + g) ** 252 - 1
    vol = math.sqrt((returns.var(ddof=1) + (1 + g) ** 2) ** 252 - (1 + g) ** 504)
    assert result.sharpe == pytest.approx(annual / vol)
    assert result.statistics.periods_per_year == 252
    assert result.statistics.end == result.statistics.start.replace(day=5)
    assert result.equity == D(2_000) - (1_000 + 104 + 101 + 107 + 103) + 14 * 103


def test_the_drawdown_counts_the_initial_cash_as_a_peak_and_stays_exact() -> None:
    fills = [fill(Side.BUY, "3", "10", "0.01", ts=MONDAY),
             fill(Side.SELL, "3", "9.7", "0.01", ts=MONDAY + DAY)]
    result = analyze(D(100), fills, {})
    assert result.max_drawdown == D("0.92")  # 0.9 lost and two fees of 0.01
    assert result.max_drawdown_pct == pytest.approx(0.0092)
    assert result.statistics.max_drawdown_pct == pytest.approx(-0.92)
