"""Streaming indicators for the shipped strategies: talipp's, typed and with bounded memory.

Where it sits: inside a strategy plugin, fed one bar at a time from its ``on_bar``. talipp
(``talipp.indicators``) computes each value incrementally from the previous one, which is what a
strategy that sees one bar at a time needs; it has no type information (mypy sees ``Any``) and
keeps every input and output it was ever given. These wrappers give each indicator a typed
``add`` that returns the newest value (``None`` until the indicator has enough data) and drop
the oldest values now and then, so a strategy running for months holds a few windows, not its
whole history. The values are talipp's own; nothing here changes a formula except where a
wrapper says so (:class:`Rsi` on a market that does not move).

Warm-up (bars until the first value, 1-based): ``Ema(n)`` n (seeded with the mean of the first
n values), ``Rsi(n)`` n + 1 (Wilder's averages seeded with the mean of the first n changes),
``Bands(n, k)`` n (mean and population standard deviation of the last n), ``Atr(n)`` n (the
first true range is the first bar's high - low; Wilder's average seeded with the mean of n).
"""

from typing import Any

from talipp.indicators import ATR, BB, EMA, RSI  # type: ignore[import-untyped]
from talipp.ohlcv import OHLCV  # type: ignore[import-untyped]

__all__ = ["Atr", "Bands", "Ema", "Rsi"]


class _Bounded:
    """One talipp indicator, trimmed to ``keep`` inputs once it holds twice as many.

    ``keep`` is the period plus two: talipp recognizes its seeding step by the input list
    being exactly as long as the window, so a trimmed list must stay longer than that."""

    def __init__(self, indicator: Any, period: int) -> None:
        self._ind = indicator
        self._keep = period + 2
        self._held = 0

    def _push(self, value: Any) -> Any:
        ind = self._ind
        ind.add(value)
        self._held += 1
        if self._held >= 2 * self._keep:
            ind.purge_oldest(self._held - self._keep)
            self._held = self._keep
        return ind.output_values[-1]


class Ema(_Bounded):
    """Exponential moving average: ``a * x + (1 - a) * previous``, ``a = 2 / (n + 1)``."""

    def __init__(self, period: int) -> None:
        super().__init__(EMA(period), period)

    def add(self, value: float) -> float | None:
        out = self._push(value)
        return None if out is None else float(out)


class Rsi(_Bounded):
    """Relative strength index (Wilder), 0..100. A window in which the price never moved
    (average gain and average loss both zero) reads 50, not talipp's 100: a market that does
    not move is neither overbought nor oversold."""

    def __init__(self, period: int) -> None:
        super().__init__(RSI(period), period + 1)

    def add(self, value: float) -> float | None:
        out = self._push(value)
        if out is None:
            return None
        ind = self._ind
        if ind.avg_gain[-1] == 0 and ind.avg_loss[-1] == 0:
            return 50.0
        return float(out)


class Bands(_Bounded):
    """Bollinger bands: the mean of the last n closes plus and minus k population standard
    deviations. ``add`` returns (lower, middle, upper)."""

    def __init__(self, period: int, k: float) -> None:
        super().__init__(BB(period, k), period)

    def add(self, value: float) -> tuple[float, float, float] | None:
        out = self._push(value)
        if out is None:
            return None
        return float(out.lb), float(out.cb), float(out.ub)


class Atr(_Bounded):
    """Average true range (Wilder's smoothing of max(high - low, |high - previous close|,
    |low - previous close|))."""

    def __init__(self, period: int) -> None:
        super().__init__(ATR(period), period)

    def add(self, high: float, low: float, close: float) -> float | None:
        out = self._push(OHLCV(None, high, low, close))
        return None if out is None else float(out)
