"""Performance statistics of an equity curve and its trades: what a quant reads first.

Flow: a backtest (or the API's analytics) samples the portfolio's equity once per bar, after
that bar's fills (an :class:`EquityCurve`), and groups its fills into round trips
(:mod:`lts.domain.trades`); :func:`compute_statistics` turns both into :class:`Statistics`, the
report and the API show them, :func:`lts.domain.statistics_text.to_console` prints them.

The definitions are backtesting.py's (0.6.6, ``backtesting/_stats.py::compute_stats``), so the
figures can be checked against it; where LTS differs it says so here.

- **Drawdown** is measured at every sample: ``equity / peak - 1`` where ``peak`` is the highest
  equity so far, the initial cash included (backtesting.py starts from its first sample, which
  is its initial cash too). Drawdowns are negative percentages (or currency), as backtesting.py
  prints them. A drawdown period runs from the last peak sample to the sample that makes a new
  peak (or the last sample); its duration is the time between the two. backtesting.py ignores a
  drawdown that starts on the very last sample; LTS counts it.
- **Annualisation** follows the data's bar spacing, taken as the median spacing of the last 100
  samples (backtesting.py's ``_data_period``). The equity is bucketed by calendar period (UTC)
  and the last equity of each bucket gives the periodic returns:

  ======================  ==============  ========================================
  spacing                  bucket          periods per year
  ======================  ==============  ========================================
  under 2 days             calendar day    365 if weekend days are over 60 % of
                                           their share of a week (crypto), else 252
  7 days                   week (Mon-Sun)  52
  28 to 31 days            month           12
  89 to 92 days            quarter         4
  365 or 366 days          year            1
  any other spacing        each sample     365.25 days / spacing
  ======================  ==============  ========================================

  backtesting.py does the same for daily and intraday data and for 7, 31 and 365 days; for a
  monthly spacing whose median is not 31 days, and for other spacings, it falls back to daily
  buckets and 252 or 365 days a year, which mis-states a coarser curve's risk.
  With ``g`` the geometric mean periodic return and ``N`` the periods per year: annual return
  ``(1 + g)^N - 1``; annual volatility ``sqrt((var + (1 + g)^2)^N - (1 + g)^(2N))`` (sample
  variance); Sharpe ``(annual return - risk free) / volatility``; Sortino the annual return over
  the downside deviation ``sqrt(mean(min(r, 0)^2) * N)``; Calmar the annual return over the
  maximum drawdown; CAGR over calendar time (365.25-day years).
- **Exposure time** is the share of samples during which a trade was open: from the sample
  holding its entry to the one holding its exit, both included (a fill at time ``t`` belongs
  to the last sample at or before ``t``: samples are stamped like bars, at their open time).
  Open trades count up to the last sample; backtesting.py counts closed trades only.
- **Trade statistics** cover the closed trades (as backtesting.py, whose open trades are left
  out of the statistics): win rate (P&L after fees above zero), best, worst, geometric mean
  ("Avg. Trade") and arithmetic mean ("Expectancy") of the trades' returns, profit factor (the
  sum of the winning returns over the sum of the losing ones: returns, as backtesting.py, not
  currency), SQN ``sqrt(n) * mean(pnl) / std(pnl)``. Durations are rounded up to the
  resolution of the bar spacing (days for daily bars, minutes for minute bars).
- **Return** is measured from the initial cash; **buy and hold** is the mean over the symbols
  of ``last close / first close - 1`` (equal weights).

A statistic that is undefined (no trades, a single sample, zero variance) is None, never NaN or
infinity. The arithmetic is vectorised with numpy: a million samples take a few tens of ms.
"""

import math
from array import array
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, TypeVar

import msgspec
import numpy as np
import numpy.typing as npt

from lts.domain.trades import Trade

__all__ = ["EquityCurve", "Statistics", "compute_statistics", "ns_to_datetime"]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
_A = TypeVar("_A", bound=np.ndarray[Any, Any])

_DAY = 86_400 * 10**9
_YEAR_DAYS = 365.25
#: Units a duration is rounded up to: the coarsest that divides the bar spacing.
_UNITS = (_DAY, 3_600 * 10**9, 60 * 10**9, 10**9, 10**6, 10**3, 1)


class EquityCurve:
    """The portfolio sampled once per bar after that bar's fills: times (ns since the epoch,
    non-decreasing), cash and equity (cash plus the positions at the bar's close), from
    ``initial_cash``. The arrays are copies, read-only."""

    __slots__ = ("_peak", "cash", "equity", "initial_cash", "ts_ns")

    def __init__(self, ts_ns: Sequence[int] | IntArray, cash: Sequence[float] | FloatArray,
                 equity: Sequence[float] | FloatArray, *, initial_cash: float | Decimal
                 ) -> None:
        self.ts_ns: IntArray = _frozen(_shared(ts_ns, np.int64))
        self.cash: FloatArray = _frozen(_shared(cash, np.float64))
        self.equity: FloatArray = _frozen(_shared(equity, np.float64))
        self.initial_cash = float(initial_cash)
        if not self.ts_ns.ndim == self.cash.ndim == self.equity.ndim == 1:
            raise ValueError("an equity curve is one-dimensional")
        if not len(self.ts_ns) == len(self.cash) == len(self.equity):
            raise ValueError("times, cash and equity must have the same length")
        if len(self.ts_ns) > 1 and bool(np.any(np.diff(self.ts_ns) < 0)):
            raise ValueError("equity curve times must not go back")
        if not self.initial_cash > 0:
            raise ValueError("initial cash must be positive")
        self._peak: FloatArray | None = None

    def __len__(self) -> int:
        return len(self.ts_ns)

    @property
    def position_value(self) -> FloatArray:
        """What the positions are worth at each sample (equity less cash)."""
        return self.equity - self.cash

    @property
    def peak(self) -> FloatArray:
        """The highest equity up to each sample, the initial cash included."""
        if self._peak is None:
            peak = np.maximum.accumulate(self.equity) if len(self) else self.equity
            self._peak = _frozen(np.maximum(peak, self.initial_cash))
        return self._peak

    @property
    def drawdown_pct(self) -> FloatArray:
        """How far below its peak the equity is at each sample, in percent (0 or negative)."""
        return (self.equity / self.peak - 1.0) * 100.0


class Statistics(msgspec.Struct, frozen=True, kw_only=True):
    """backtesting.py's statistics block (see the module docstring for each definition).

    Percentages are percent (12.5 is 12.5 %); drawdowns are 0 or negative; money is in the
    portfolio's currency. None: undefined for this curve (no trades, no variance...).
    """

    start: datetime
    end: datetime
    duration: timedelta
    exposure_time_pct: float
    equity_final: float
    equity_peak: float
    commissions: float
    return_pct: float
    buy_hold_return_pct: float | None
    return_ann_pct: float | None
    volatility_ann_pct: float | None
    cagr_pct: float | None
    sharpe: float | None
    sortino: float | None
    calmar: float | None
    max_drawdown_pct: float
    max_drawdown: float
    avg_drawdown_pct: float | None
    max_drawdown_duration: timedelta | None
    avg_drawdown_duration: timedelta | None
    trades: int
    open_trades: int
    win_rate_pct: float | None
    best_trade_pct: float | None
    worst_trade_pct: float | None
    avg_trade_pct: float | None
    max_trade_duration: timedelta | None
    avg_trade_duration: timedelta | None
    profit_factor: float | None
    expectancy_pct: float | None
    sqn: float | None
    periods_per_year: float | None


def compute_statistics(curve: EquityCurve, trades: Sequence[Trade], *,
                       buy_hold: Mapping[str, tuple[float, float]] | None = None,
                       risk_free_rate: float = 0.0) -> Statistics:
    """The statistics of ``curve`` and its ``trades`` (closed and open, from
    :func:`lts.domain.trades.round_trips`). ``buy_hold`` maps each symbol to its first and last
    close; ``risk_free_rate`` is annual (0.02 is 2 %)."""
    if not len(curve):
        raise ValueError("an equity curve needs at least one sample")
    ts, equity, initial = curve.ts_ns, curve.equity, curve.initial_cash
    spacing = float(np.median(np.diff(ts[-100:]))) if len(ts) > 1 else None
    unit = _duration_unit(spacing)
    closed = [t for t in trades if not t.open]

    returns, per_year = _periodic_returns(ts, equity, spacing)
    growth = _geometric_mean(returns)
    annual = _power(1 + growth, per_year) - 1 if per_year else math.nan
    volatility = math.nan
    if per_year and len(returns) > 1:
        variance = float(np.var(returns, ddof=1))
        spread = (_power(variance + (1 + growth) ** 2, per_year)
                  - _power(1 + growth, 2 * per_year))
        volatility = math.sqrt(spread) if spread > 0 else 0.0 if spread <= 0 else math.nan
    downside = math.nan
    if per_year and len(returns):
        downside = math.sqrt(float(np.mean(np.minimum(returns, 0.0) ** 2)) * per_year)

    drawdown = 1.0 - equity / curve.peak  # 0 at a peak, positive below it
    max_dd = float(np.max(drawdown))
    dd_depths, dd_durations = _drawdown_periods(ts, drawdown)
    duration_ns = int(ts[-1] - ts[0])
    years = duration_ns / _DAY / _YEAR_DAYS
    ratio = float(equity[-1]) / initial

    pnl = np.array([float(t.pnl) for t in closed], dtype=np.float64)
    trade_returns = np.array([t.return_pct / 100 for t in closed], dtype=np.float64)
    trade_durations = np.array([t.duration_ns for t in closed], dtype=np.float64)
    wins, losses = trade_returns[trade_returns > 0], trade_returns[trade_returns < 0]
    n = len(closed)
    return Statistics(
        start=ns_to_datetime(int(ts[0])), end=ns_to_datetime(int(ts[-1])),
        duration=_timedelta(duration_ns),
        exposure_time_pct=_exposure(ts, trades) * 100,
        equity_final=float(equity[-1]), equity_peak=max(float(np.max(equity)), initial),
        commissions=float(sum((t.fees for t in trades), Decimal(0))),
        return_pct=(ratio - 1) * 100,
        buy_hold_return_pct=_buy_and_hold(buy_hold or {}),
        return_ann_pct=_finite(annual * 100),
        volatility_ann_pct=_finite(volatility * 100),
        cagr_pct=_finite((_power(ratio, 1 / years) - 1) * 100) if years and ratio >= 0 else None,
        sharpe=_ratio(annual - risk_free_rate, volatility),
        sortino=_ratio(annual - risk_free_rate, downside),
        calmar=_ratio(annual, max_dd),
        max_drawdown_pct=-max_dd * 100 + 0.0,
        max_drawdown=float(np.min(equity - curve.peak)) + 0.0,
        avg_drawdown_pct=-float(np.mean(dd_depths)) * 100 if len(dd_depths) else None,
        max_drawdown_duration=_longest(dd_durations, unit),
        avg_drawdown_duration=_average(dd_durations, unit),
        trades=n, open_trades=len(trades) - n,
        win_rate_pct=float(np.mean(pnl > 0)) * 100 if n else None,
        best_trade_pct=float(np.max(trade_returns)) * 100 if n else None,
        worst_trade_pct=float(np.min(trade_returns)) * 100 if n else None,
        avg_trade_pct=_finite(_geometric_mean(trade_returns) * 100),
        max_trade_duration=_longest(trade_durations, unit),
        avg_trade_duration=_average(trade_durations, unit),
        profit_factor=_ratio(float(np.sum(wins)), abs(float(np.sum(losses)))),
        # a mean lies between the extremes; float summation may leave it an ulp outside
        expectancy_pct=float(np.clip(np.mean(trade_returns), np.min(trade_returns),
                                     np.max(trade_returns))) * 100 if n else None,
        sqn=_ratio(math.sqrt(n) * float(np.mean(pnl)), float(np.std(pnl, ddof=1)))
        if n > 1 else None,
        periods_per_year=per_year or None)


def ns_to_datetime(ns: int) -> datetime:
    """An aware UTC datetime from ns since the epoch (to the microsecond)."""
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=ns // 1000)


def _shared(values: Any, dtype: Any) -> Any:
    """``values`` as an array of ``dtype``: a typed ``array.array`` of that kind is read in
    place (a backtest's curve is a million samples: 24 MB not copied), anything else copied."""
    if isinstance(values, array) and values.itemsize == np.dtype(dtype).itemsize and \
            values.typecode in ("q", "d"):
        return np.frombuffer(values, dtype=dtype) if len(values) else np.empty(0, dtype)
    return np.array(values, dtype=dtype)


def _frozen(array: _A) -> _A:
    array.setflags(write=False)
    return array


def _timedelta(ns: float) -> timedelta:
    return timedelta(microseconds=int(ns) // 1000)


def _rounded(ns: float, unit: int | None) -> timedelta:
    """A duration rounded up to ``unit`` ns, like backtesting.py's ``_round_timedelta``."""
    if unit is None:
        return _timedelta(ns)
    return _timedelta(math.ceil(ns / unit) * unit)


def _longest(durations: FloatArray, unit: int | None) -> timedelta | None:
    return _rounded(float(np.max(durations)), unit) if len(durations) else None


def _average(durations: FloatArray, unit: int | None) -> timedelta | None:
    return _rounded(float(np.mean(durations)), unit) if len(durations) else None


def _duration_unit(spacing: float | None) -> int | None:
    """The coarsest unit (day, hour, minute, second, ...) that divides the bar spacing."""
    if spacing is None or spacing <= 0:
        return _DAY if spacing == 0 else None
    whole = round(spacing)
    return next(u for u in _UNITS if whole % u == 0)


def _power(base: float, exponent: float) -> float:
    """``base ** exponent`` for a base >= 0; infinity where it overflows (never raises)."""
    try:
        return float(base**exponent)
    except OverflowError:
        return math.inf


def _finite(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


def _ratio(numerator: float, denominator: float) -> float | None:
    if not denominator or not math.isfinite(denominator):
        return None
    return _finite(numerator / denominator)


def _geometric_mean(returns: FloatArray) -> float:
    """backtesting.py's: 0 when any return loses everything, NaN without returns."""
    if not len(returns):
        return math.nan
    growth = returns + 1.0
    if bool(np.any(growth <= 0)):
        return 0.0
    return math.exp(float(np.sum(np.log(growth))) / len(growth)) - 1


def _buy_and_hold(closes: Mapping[str, tuple[float, float]]) -> float | None:
    returns = [(last / first - 1) * 100 for first, last in closes.values() if first > 0]
    return _finite(sum(returns) / len(returns)) if returns else None


def _periodic_returns(ts: IntArray, equity: FloatArray, spacing: float | None
                      ) -> tuple[FloatArray, float]:
    """The returns between the last samples of consecutive calendar buckets, and how many
    buckets a year has (the table in the module docstring)."""
    if spacing is None:
        return np.empty(0), 0.0
    days = int(spacing // _DAY)
    day = ts // _DAY
    per_year: float
    if days <= 1:
        key, weekend = day, (day + 3) % 7 >= 5  # 1970-01-01 was a Thursday
        per_year = 365.0 if float(np.mean(weekend)) > 2 / 7 * 0.6 else 252.0
    elif days == 7:
        key, per_year = (day + 3) // 7, 52.0  # weeks from Monday
    elif 28 <= days <= 31 or 89 <= days <= 92:
        key = ts.astype("datetime64[ns]").astype("datetime64[M]").astype(np.int64)
        key, per_year = (key, 12.0) if days <= 31 else (key // 3, 4.0)
    elif days in (365, 366):
        key = ts.astype("datetime64[ns]").astype("datetime64[Y]").astype(np.int64)
        per_year = 1.0
    else:
        key, per_year = np.arange(len(ts)), _YEAR_DAYS * _DAY / spacing
    last = np.append(np.flatnonzero(key[1:] != key[:-1]), len(key) - 1)
    values = equity[last]
    with np.errstate(divide="ignore", invalid="ignore"):
        returns = values[1:] / values[:-1] - 1.0
    return returns[~np.isnan(returns)], per_year


def _drawdown_periods(ts: IntArray, drawdown: FloatArray) -> tuple[FloatArray, FloatArray]:
    """The depth (a fraction) and duration (ns) of every drawdown period: a run of samples
    below the peak, from the peak sample before it to the sample that recovers (or the last)."""
    below = np.concatenate(([0], (drawdown > 0).view(np.int8), [0]))
    edges = np.diff(below)
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    if not len(starts):
        return np.empty(0), np.empty(0)
    depths = np.maximum.reduceat(drawdown, starts)
    begin = ts[np.maximum(starts - 1, 0)]
    finish = ts[np.minimum(ends, len(ts) - 1)]
    return depths, (finish - begin).astype(np.float64)


def _exposure(ts: IntArray, trades: Sequence[Trade]) -> float:
    """The share of samples with a trade open (entry to exit sample, both included): the
    trades' sample intervals merged, counted without an array per sample."""
    if not trades:
        return 0.0
    entries = np.array([t.entry_ts for t in trades], dtype=np.int64)
    exits = np.array([t.exit_ts if t.exit_ts is not None else ts[-1] for t in trades],
                     dtype=np.int64)
    first = np.maximum(np.searchsorted(ts, entries, side="right") - 1, 0)
    last = np.maximum(np.searchsorted(ts, exits, side="right") - 1, 0)
    covered, end = 0, -1
    for a, b in sorted(zip(first.tolist(), last.tolist(), strict=True)):
        if b <= end:
            continue
        covered += b - max(a, end + 1) + 1
        end = b
    return covered / len(ts)
