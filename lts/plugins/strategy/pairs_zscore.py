"""Strategy ``pairs_zscore``: trade the spread of two symbols when it strays from its mean.

A trading strategy with ``multi_symbol = True``: one instance for the two assets of a portfolio
that name it with the same params. Legs: A and B are ``legs`` when given (they must be the
strategy's two symbols), else its symbols in the portfolio's order.

Each symbol's bars arrive separately; the strategy acts when both have a bar of the same time
(an *aligned* bar), at the second of the two. On aligned bars it keeps the last ``lookback``
pairs ``(a, b) = (log A, log B)`` and computes

- the hedge ratio ``beta``: the param, or the ordinary least squares slope of a on b over the
  window (``cov(a, b) / var(b)``);
- the spread ``s = a - beta * b`` over the window and its z-score at the newest bar,
  ``z = (s[t] - mean(s)) / std(s)`` (population deviation).

Position, a target in {short spread, flat, long spread}: ``z > entry`` short the spread (sell A,
buy B), ``z < -entry`` long it (buy A, sell B), ``|z| < exit`` flat (both legs closed); between
the bands the target stays. A new target moves both legs at once: each leg's target is
``percent`` of equity at its last price (dollar-neutral, not beta-weighted), through
:meth:`~lts.plugins.strategy.StrategyContext.order_target_percent`; flat is
:meth:`~lts.plugins.strategy.StrategyContext.order_target` 0 (the short leg needs
``allow_short`` in the portfolio's risk limits).

Indicator: none from talipp, which has no rolling covariance or regression. The window's sums
are taken afresh on every aligned bar, centred on the window's means (two passes, O(lookback)):
no running sum drifts, and a window that does not move (``var(b)`` or ``var(s)`` at most
``1e-12`` of the level) decides nothing rather than divide by a rounding error.

Warm-up: the z-score needs ``lookback`` aligned bars, so the first decision is on the
``lookback``-th: :meth:`PairsZScore.warmup_bars` is ``lookback - 1`` (per symbol).
"""

import math
from collections import deque
from decimal import Decimal

from pydantic import Field, ValidationInfo, field_validator

from lts.domain.market import Bar
from lts.errors import InvalidParams
from lts.plugins.base import PluginParams
from lts.plugins.strategy.base import TradingStrategy

__all__ = ["PairsParams", "PairsZScore"]

#: Variances at most this fraction of the squared level are no variance (a window that is flat).
_FLAT = 1e-12


class PairsParams(PluginParams):
    legs: list[str] | None = Field(None, description="[A, B]: the spread is log A - beta log B")
    lookback: int = Field(60, ge=3, description="aligned bars in the regression and z-score")
    beta: float | None = Field(None, description="fixed hedge ratio; else the rolling OLS slope")
    entry: float = Field(2.0, gt=0, description="|z| beyond this: enter")
    exit: float = Field(0.5, ge=0, description="|z| within this: close both legs")
    percent: Decimal = Field(Decimal(10), gt=0, le=100, description="each leg, % of equity")

    @field_validator("legs")
    @classmethod
    def _two_legs(cls, legs: list[str] | None) -> list[str] | None:
        if legs is not None and (len(legs) != 2 or legs[0] == legs[1]):
            raise ValueError("exactly two different symbols")
        return legs

    @field_validator("exit")
    @classmethod
    def _exit_inside_entry(cls, exit_: float, info: ValidationInfo) -> float:
        entry = info.data.get("entry")
        if entry is not None and exit_ >= entry:
            raise ValueError(f"must be smaller than entry ({entry})")
        return exit_


class PairsZScore(TradingStrategy):
    Params = PairsParams
    plugin_name = "pairs_zscore"
    multi_symbol = True
    plugin_debug_vars = ["aligned", "last_beta", "last_z", "spread", "trades"]

    def __init__(self, **params: object) -> None:
        super().__init__(**params)
        self.aligned = 0
        self.trades = 0
        self.spread = 0  # the target: -1 short the spread, 0 flat, +1 long
        self.params_changed()

    def params_changed(self) -> None:
        p: PairsParams = self.params
        self._window: deque[tuple[float, float]] = deque(maxlen=p.lookback)
        self._last: dict[str, tuple[int, float]] = {}  # symbol -> (time, close) of its last bar
        self._done_ts: int | None = None
        self.last_beta: float | None = None
        self.last_z: float | None = None

    def warmup_bars(self) -> int:
        p: PairsParams = self.params
        return p.lookback - 1

    def on_start(self) -> None:
        p: PairsParams = self.params
        symbols = tuple(self.ctx.symbols)
        if len(symbols) != 2:
            raise InvalidParams(self.plugin_name, "legs",
                                f"needs exactly two symbols, has {len(symbols)}: "
                                f"{', '.join(symbols)}")
        if p.legs is not None and set(p.legs) != set(symbols):
            raise InvalidParams(self.plugin_name, "legs",
                                f"{p.legs} are not the strategy's symbols {list(symbols)}")
        self._a, self._b = p.legs if p.legs is not None else symbols
        # after a restart the legs held say where the spread stands
        a_held = self.ctx.position(self._a)
        self.spread = 0 if a_held == 0 else (1 if a_held > 0 else -1)

    def on_bar(self, bar: Bar) -> None:
        ts = bar.ts_event
        self._last[bar.symbol] = (ts, bar.close)
        a, b = self._last.get(self._a), self._last.get(self._b)
        if a is None or b is None or a[0] != ts or b[0] != ts or self._done_ts == ts:
            return
        self._done_ts = ts
        self.aligned += 1
        if a[1] <= 0 or b[1] <= 0:
            return  # no logarithm: a bad bar (the data checks report it)
        self._window.append((math.log(a[1]), math.log(b[1])))
        z = self._zscore()
        if z is None:
            return
        p: PairsParams = self.params
        target = self.spread
        if z > p.entry:
            target = -1
        elif z < -p.entry:
            target = 1
        elif abs(z) < p.exit:
            target = 0
        if target != self.spread:
            self._move(target)

    def _zscore(self) -> float | None:
        window = self._window
        n = len(window)
        p: PairsParams = self.params
        if n < p.lookback:
            return None
        mean_a = math.fsum(x for x, _ in window) / n
        mean_b = math.fsum(y for _, y in window) / n
        da = [x - mean_a for x, _ in window]
        db = [y - mean_b for _, y in window]
        var_b = math.fsum(d * d for d in db) / n
        beta = p.beta
        if beta is None:
            if var_b <= _FLAT * max(1.0, mean_b * mean_b):
                return None
            beta = math.fsum(x * y for x, y in zip(da, db, strict=True)) / n / var_b
        self.last_beta = beta
        ds = [x - beta * y for x, y in zip(da, db, strict=True)]  # the spread, centred
        var_s = math.fsum(d * d for d in ds) / n
        if var_s <= _FLAT * max(1.0, mean_a * mean_a):
            return None
        z = self.last_z = ds[-1] / math.sqrt(var_s)
        return z

    def _move(self, target: int) -> None:
        ctx = self.ctx
        if ctx.warming_up:
            return  # history: nothing is ordered, so the legs stay as they are
        self.spread = target
        self.trades += 1
        if target == 0:
            ctx.order_target(self._a, 0)
            ctx.order_target(self._b, 0)
            return
        pct = self.params.percent
        ctx.order_target_percent(self._a, pct * target)
        ctx.order_target_percent(self._b, -pct * target)
