"""Strategy ``ema_crossover``: long when the fast exponential moving average crosses above the slow.

A signal strategy (the portfolio plugin sizes it, unless ``quantity`` is given), the
exponential twin of ``sma_crossover``: a cross above is ``fast[t-1] < slow[t-1]`` and
``fast[t] > slow[t]`` and signals LONG; the cross below signals FLAT (SHORT with
``long_only=false``).

Indicator: talipp's ``EMA`` (:class:`~lts.plugins.strategy.indicators.Ema`), streaming, one
multiply-add per bar: ``ema[t] = a * close[t] + (1 - a) * ema[t-1]``, ``a = 2 / (n + 1)``,
seeded with the mean of the first n closes (the usual convention: backtrader, TA-Lib).

Robust comparison: the two averages are floats reached by different paths; once they have
converged (a market that stopped moving) they still differ in their last bits, and the sign of
such a difference is noise. A difference within ``1e-9`` of the slow average (relative) counts
as equal, and equal is no cross (as in ``sma_crossover``, whose exact means tie at 0).

Warm-up: the slow average exists from bar ``slow`` (1-based) and a cross needs it on two bars,
so the first decision is on bar ``slow + 1``: :meth:`EmaCrossover.warmup_bars` is ``slow``.
An average is seeded from the first bars it sees, so after a restart that fed only the warm-up
its values differ from an unbroken run's until the seed has faded (by ``(1 - a)`` per bar).
"""

from decimal import Decimal

from pydantic import Field, ValidationInfo, field_validator

from lts.domain.market import Bar
from lts.domain.signals import Signal, Target
from lts.plugins.base import PluginBase, PluginParams
from lts.plugins.strategy.indicators import Ema

__all__ = ["EmaCrossover", "EmaParams"]

#: Averages within this fraction of the slow one are equal (no cross).
TIE = 1e-9


class EmaParams(PluginParams):
    fast: int = Field(12, ge=1, description="bars in the fast average (its period)")
    slow: int = Field(26, ge=2, description="bars in the slow average (its period)")
    quantity: Decimal | None = Field(None, gt=0, description="fixed size; else the portfolio sizes")
    long_only: bool = Field(True, description="FLAT instead of SHORT on the cross below")

    @field_validator("slow")
    @classmethod
    def _slow_above_fast(cls, slow: int, info: ValidationInfo) -> int:
        fast = info.data.get("fast")
        if fast is not None and slow <= fast:
            raise ValueError(f"must be greater than fast ({fast})")
        return slow


class EmaCrossover(PluginBase):
    Params = EmaParams
    plugin_name = "ema_crossover"
    plugin_debug_vars = ["bars_seen", "signals", "last_diff"]

    def __init__(self, **params: object) -> None:
        super().__init__(**params)
        self.bars_seen = 0
        self.signals = 0
        self.params_changed()

    def params_changed(self) -> None:
        """(Re)start from the params: new averages warm up again."""
        p: EmaParams = self.params
        self._fast = Ema(p.fast)
        self._slow = Ema(p.slow)
        self._down = Target.FLAT if p.long_only else Target.SHORT
        self.last_diff: float | None = None  # fast - slow at the last bar (0.0: a tie)

    def warmup_bars(self) -> int:
        """Bars before the first one that can signal."""
        p: EmaParams = self.params
        return p.slow

    def on_bar(self, bar: Bar) -> Signal | None:
        self.bars_seen += 1
        fast = self._fast.add(bar.close)
        slow = self._slow.add(bar.close)
        if fast is None or slow is None:
            return None
        diff = fast - slow
        if abs(diff) <= TIE * abs(slow):
            diff = 0.0
        prev, self.last_diff = self.last_diff, diff
        if prev is None:
            return None
        if prev < 0 < diff:
            target = Target.LONG
        elif prev > 0 > diff:
            target = self._down
        else:
            return None
        self.signals += 1
        p: EmaParams = self.params
        return Signal(bar.symbol, target, bar.ts_event, p.quantity, "ema cross")
