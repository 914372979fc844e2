"""Backtest statistics (issue 11, SYS-002 analyze portfolios), checked against backtesting.py
as an independent reference: a real ``backtesting.Backtest`` runs on its bundled data, its
trades become LTS fills, and LTS's round trips and statistics of its equity curve must agree
with what backtesting.py computed, statistic by statistic."""

import math
import warnings
from datetime import timedelta
from decimal import Decimal as D
from typing import Any

import msgspec
import numpy as np
import pandas as pd
import pytest
from backtesting import Backtest, Strategy
from backtesting._util import _indicator_warmup_nbars
from backtesting.lib import crossover
from backtesting.test import BTCUSD, EURUSD, GOOG, SMA
from hypothesis import given, settings
from hypothesis import strategies as st

from lts.domain.orders import Fill, Side
from lts.domain.performance import EquityCurve, Statistics, compute_statistics
from lts.domain.statistics_text import to_console
from lts.domain.trades import Trade, round_trips

DAY = 86_400 * 10**9
T0 = 1_704_067_200 * 10**9  # 2024-01-01, a Monday


class SmaCross(Strategy):
    fast = 10
    slow = 20

    def init(self) -> None:
        self.a = self.I(SMA, self.data.Close, self.fast)
        self.b = self.I(SMA, self.data.Close, self.slow)

    def next(self) -> None:  # always in the market: every cross reverses
        if crossover(self.a, self.b):
            self.position.close()
            self.buy()
        elif crossover(self.b, self.a):
            self.position.close()
            self.sell()


_OHLC = {"Open": "first", "High": "max", "Low": "min", "Close": "last", "Volume": "sum"}
#: name -> (data, cash, fast, slow, expected periods per year)
CASES: dict[str, tuple[pd.DataFrame, float, int, int, float]] = {
    "daily": (GOOG, 10_000, 10, 20, 252),
    "hourly": (EURUSD, 10_000, 10, 20, 252),
    "weekly": (GOOG.resample("W").agg(_OHLC).dropna(), 10_000, 5, 10, 52),
    "monthly": (BTCUSD, 10_000_000, 3, 6, 12),
}
COMMISSION = 0.002


def _ns(t: Any) -> int:
    return int(pd.Timestamp(t).value)


def backtesting_run(data: pd.DataFrame, cash: float, fast: int, slow: int) -> Any:
    with warnings.catch_warnings():  # backtesting.py calls a pandas API deprecated in pandas 3
        warnings.simplefilter("ignore", category=pd.errors.Pandas4Warning)
        return Backtest(data, SmaCross, cash=cash, commission=COMMISSION,
                        finalize_trades=True).run(fast=fast, slow=slow)


def fills_of(trades: pd.DataFrame) -> list[Fill]:
    """backtesting.py's trades as the fills of a broker: an entry and an exit each, with the
    commission it charged on each side; at one time, exits before entries (a reversal is a
    close and a new order there)."""
    rows = []
    for i, t in enumerate(trades.itertuples()):
        size = int(t.Size)
        entry_side, exit_side = (Side.BUY, Side.SELL) if size > 0 else (Side.SELL, Side.BUY)
        for order, (ts, side, price) in enumerate(((_ns(t.ExitTime), exit_side, t.ExitPrice),
                                                   (_ns(t.EntryTime), entry_side, t.EntryPrice))):
            fee = D(repr(COMMISSION * abs(size) * price))
            rows.append((ts, order, Fill(1, f"1-{i}-{order}", "bt", f"{i}-{order}", "X", side,
                                         D(abs(size)), D(repr(price)), fee, ts)))
    return [f for _, _, f in sorted(rows, key=lambda r: (r[0], r[1]))]


#: LTS field -> backtesting.py's label
PAIRS = {
    "equity_final": "Equity Final [$]", "equity_peak": "Equity Peak [$]",
    "commissions": "Commissions [$]", "exposure_time_pct": "Exposure Time [%]",
    "return_pct": "Return [%]", "buy_hold_return_pct": "Buy & Hold Return [%]",
    "return_ann_pct": "Return (Ann.) [%]", "volatility_ann_pct": "Volatility (Ann.) [%]",
    "cagr_pct": "CAGR [%]", "sharpe": "Sharpe Ratio", "sortino": "Sortino Ratio",
    "calmar": "Calmar Ratio", "max_drawdown_pct": "Max. Drawdown [%]",
    "avg_drawdown_pct": "Avg. Drawdown [%]", "max_drawdown_duration": "Max. Drawdown Duration",
    "avg_drawdown_duration": "Avg. Drawdown Duration", "trades": "# Trades",
    "win_rate_pct": "Win Rate [%]", "best_trade_pct": "Best Trade [%]",
    "worst_trade_pct": "Worst Trade [%]", "avg_trade_pct": "Avg. Trade [%]",
    "max_trade_duration": "Max. Trade Duration", "avg_trade_duration": "Avg. Trade Duration",
    "profit_factor": "Profit Factor", "expectancy_pct": "Expectancy [%]", "sqn": "SQN",
    "start": "Start", "end": "End", "duration": "Duration",
}


@pytest.mark.parametrize("case", list(CASES))
def test_statistics_agree_with_backtesting_py(case: str) -> None:
    data, cash, fast, slow, per_year = CASES[case]
    reference = backtesting_run(data, cash, fast, slow)
    assert len(reference._trades) > 10  # a run with real trades, reversals among them

    trades = round_trips(fills_of(reference._trades))
    curve = reference._equity_curve
    first = _indicator_warmup_nbars(reference._strategy)  # its buy & hold starts there
    close = data.Close.to_numpy()
    ours = compute_statistics(
        EquityCurve([_ns(t) for t in curve.index], curve.Equity.to_numpy(),
                    curve.Equity.to_numpy(), initial_cash=cash),
        trades, buy_hold={"X": (float(close[first]), float(close[-1]))})

    assert ours.periods_per_year == per_year
    for name, label in PAIRS.items():
        mine, theirs = getattr(ours, name), reference[label]
        if isinstance(theirs, pd.Timestamp):
            assert mine.replace(tzinfo=None) == theirs.to_pydatetime(), name
        elif isinstance(theirs, pd.Timedelta):
            assert mine == theirs.to_pytimedelta(), name
        else:
            assert mine == pytest.approx(float(theirs), rel=1e-9, abs=1e-9), name
    # the trades themselves: P&L and return of each
    theirs = reference._trades.sort_values("EntryTime", kind="stable")
    assert [float(t.pnl) for t in trades] == pytest.approx(theirs.PnL.tolist(), rel=1e-9)
    assert [t.return_pct / 100 for t in trades] == pytest.approx(theirs.ReturnPct.tolist(),
                                                                 rel=1e-9)


def curve_of(equity: list[float], spacing: int = DAY, start: int = T0,
             initial: float | None = None) -> EquityCurve:
    ts = [start + i * spacing for i in range(len(equity))]
    return EquityCurve(ts, equity, equity, initial_cash=initial or equity[0])


def trade(entry: int, exit_: int | None, pnl: str = "1", ret: float = 1.0) -> Trade:
    return Trade(trade_id=1, symbol="X", side="long", quantity=D(1), entry_ts=entry,
                 exit_ts=exit_, entry_price=D(100), exit_price=None, pnl=D(pnl),
                 return_pct=ret, fees=D(0), open=exit_ is None)


def test_drawdowns_by_hand() -> None:
    stats = compute_statistics(curve_of([100, 120, 90, 130, 110, 110]), [])
    assert stats.max_drawdown_pct == pytest.approx(-25.0)  # 120 -> 90
    assert stats.max_drawdown == pytest.approx(-30.0)
    # two periods: 120 -> 90 -> 130 (2 days, 25 %) and 130 -> 110 unrecovered (2 days)
    assert stats.avg_drawdown_pct == pytest.approx(-(25 + 20 / 130 * 100) / 2)
    assert stats.max_drawdown_duration == stats.avg_drawdown_duration == timedelta(days=2)


def test_a_drawdown_on_the_last_sample_counts() -> None:
    """backtesting.py leaves out a drawdown that starts on the last sample; LTS does not."""
    stats = compute_statistics(curve_of([100, 110, 99]), [])
    assert stats.max_drawdown_pct == pytest.approx(-10.0)
    assert stats.avg_drawdown_pct == pytest.approx(-10.0)
    assert stats.max_drawdown_duration == timedelta(days=1)


def test_the_initial_cash_is_the_first_peak() -> None:
    stats = compute_statistics(curve_of([95, 97, 101], initial=100.0), [])
    assert stats.max_drawdown_pct == pytest.approx(-5.0)
    assert stats.max_drawdown_duration == timedelta(days=2)  # from the start to the recovery
    assert stats.return_pct == pytest.approx(1.0)


@pytest.mark.parametrize(("spacing", "count", "weekends", "per_year"), [
    (60 * 10**9, 30_000, True, 365.0),    # minute bars around the clock (3 weeks): crypto
    (DAY, 400, True, 365.0),
    (DAY, 400, False, 252.0),             # weekdays only: an exchange's trading days
    (7 * DAY, 400, True, 52.0),
    (30 * DAY, 400, True, 12.0),          # backtesting.py: daily buckets, 365 a year
    (91 * DAY, 200, True, 4.0),
    (365 * DAY, 100, True, 1.0),
    (3 * DAY, 400, True, 365.25 / 3),     # each sample is a period
])
def test_annualisation_follows_the_bar_spacing(spacing: int, count: int, weekends: bool,
                                               per_year: float) -> None:
    ts = [T0 + i * spacing for i in range(count)]
    if not weekends:
        ts = [t for t in ts if (t // DAY + 3) % 7 < 5]
    rng = np.random.default_rng(7)
    days = spacing / DAY
    equity = 1000 * np.cumprod(1 + rng.normal(0.0005 * days, 0.01 * days**0.5, len(ts)))
    stats = compute_statistics(EquityCurve(ts, equity, equity, initial_cash=1000), [])
    assert stats.periods_per_year == pytest.approx(per_year)
    assert stats.sharpe is not None
    assert stats.volatility_ann_pct is not None


def test_sample_returns_annualise_like_backtesting_py() -> None:
    """Weekly bars of +1 % then -0.5 %: geometric mean g, 52 periods, backtesting.py's
    compounded volatility."""
    equity = [1000.0]
    for i in range(60):
        equity.append(equity[-1] * (1.01 if i % 2 == 0 else 0.995))
    stats = compute_statistics(curve_of(equity, spacing=7 * DAY), [])
    returns = np.diff(equity) / equity[:-1]
    g = math.exp(np.log1p(returns).mean()) - 1
    var = returns.var(ddof=1)
    annual = (1 + g) ** 52 - 1
    vol = math.sqrt((var + (1 + g) ** 2) ** 52 - (1 + g) ** 104)
    assert stats.return_ann_pct == pytest.approx(annual * 100)
    assert stats.volatility_ann_pct == pytest.approx(vol * 100)
    assert stats.sharpe == pytest.approx(annual / vol)
    downside = math.sqrt(np.mean(np.minimum(returns, 0) ** 2) * 52)
    assert stats.sortino == pytest.approx(annual / downside)


def test_exposure_counts_the_bars_a_trade_is_open_including_an_open_one() -> None:
    curve = curve_of([100.0] * 10)
    trades = [trade(T0 + 1 * DAY, T0 + 3 * DAY),          # bars 1..3
              trade(T0 + 3 * DAY + 5, T0 + 4 * DAY),       # inside bar 3, to bar 4
              trade(T0 + 8 * DAY, None)]                   # open: bars 8..9
    stats = compute_statistics(curve, trades)
    assert stats.exposure_time_pct == pytest.approx(60.0)
    assert (stats.trades, stats.open_trades) == (2, 1)


def test_undefined_statistics_are_none() -> None:
    one = compute_statistics(curve_of([100.0]), [])
    assert (one.sharpe, one.sortino, one.return_ann_pct, one.volatility_ann_pct,
            one.cagr_pct, one.avg_drawdown_pct, one.win_rate_pct, one.profit_factor,
            one.sqn, one.avg_trade_pct) == (None,) * 10
    assert (one.max_drawdown_pct, one.trades, one.exposure_time_pct) == (0.0, 0, 0.0)
    flat = compute_statistics(curve_of([100.0] * 30), [trade(T0, T0 + DAY)])
    assert flat.sharpe is None  # no variance
    assert flat.profit_factor is None  # no losing trade
    assert flat.sqn is None  # one trade


def test_the_console_block_reads_like_backtesting_py() -> None:
    stats = compute_statistics(curve_of([100, 120, 90, 130]),
                               [trade(T0, T0 + DAY, "5", 5.0), trade(T0, T0 + 2 * DAY)])
    text = to_console(stats)
    lines = text.splitlines()
    assert len({len(line) for line in lines}) == 1  # aligned
    assert lines[0].split() == ["Start", "2024-01-01T00:00:00+00:00"]
    assert lines[2].split() == ["Duration", "3", "days", "00:00:00"]
    assert "Max. Drawdown [%]" in text
    assert "-25" in text
    by_label = {line[:24].strip(): line[24:].strip() for line in lines}
    assert by_label["# Trades"] == "2"
    assert by_label["Profit Factor"] == "--"
    assert by_label["Win Rate [%]"] == "100"


_equity = st.lists(st.floats(1.0, 1e6, allow_nan=False), min_size=1, max_size=200)
_gaps = st.lists(st.integers(0, 3 * DAY), min_size=199, max_size=199)
_returns = st.lists(st.floats(-99.0, 500.0), max_size=30)


@settings(max_examples=200, deadline=None)
@given(_equity, _gaps, _returns)
def test_statistics_are_finite_and_consistent(equity: list[float], gaps: list[int],
                                              returns: list[float]) -> None:
    ts = list(np.cumsum([T0, *gaps[: len(equity) - 1]]))
    curve = EquityCurve(ts, equity, equity, initial_cash=equity[0])
    trades = [trade(int(ts[0]), int(ts[-1]), str(r), r) for r in returns]
    stats = compute_statistics(curve, trades)
    for name in stats.__struct_fields__:
        value = getattr(stats, name)
        assert not (isinstance(value, float) and not math.isfinite(value)), name
    assert stats.max_drawdown_pct <= (stats.avg_drawdown_pct or 0.0) <= 0.0
    assert stats.max_drawdown <= 0.0
    assert stats.equity_peak >= max(stats.equity_final, equity[0])
    assert 0.0 <= stats.exposure_time_pct <= 100.0
    assert stats.trades == len(returns)
    if returns:
        assert stats.worst_trade_pct is not None
        assert stats.best_trade_pct is not None
        assert stats.worst_trade_pct <= (stats.expectancy_pct or 0) <= stats.best_trade_pct
    msgspec.json.decode(msgspec.json.encode(stats), type=Statistics)  # JSON, no NaN
