"""Strategy ``sma_crossover``: long when the fast simple moving average crosses above the slow one.

A cross above is ``fast[t] > slow[t]`` when the last bar whose means differed had
``fast < slow``; it signals LONG. The cross below signals FLAT (or SHORT with
``long_only=false``). So a touch and go through exactly equal means is a cross, on the bar that
leaves the tie (backtrader's ``CrossOver`` reads it so; backtesting.py's float means fall on one
side of the tie or the other by their rounding), and a touch and back is none.

Means are kept as running sums over the last ``fast`` and ``slow`` closes, so each bar costs
O(1). The sums are integers (closes in units of 1e-12: exact for prices below 9,000 with up to
12 decimals, a coin at 0.0000000868 included) and the means are compared as
``fast_sum * slow - slow_sum * fast``: exact, so equal means never read as a cross the way
drifting float sums would make them.
"""

from collections import deque
from decimal import Decimal

from pydantic import Field, model_validator

from lts.domain.market import Bar
from lts.domain.signals import Signal, Target
from lts.plugins.base import PluginBase, PluginParams

SCALE = 10**12  # closes are compared exactly, in units of 1e-12


class SmaParams(PluginParams):
    fast: int = Field(10, ge=1, description="bars in the fast mean")
    slow: int = Field(30, ge=2, description="bars in the slow mean")
    quantity: Decimal | None = Field(None, gt=0, description="fixed size; else the portfolio sizes")
    long_only: bool = Field(True, description="FLAT instead of SHORT on the cross below")

    @model_validator(mode="after")
    def _fast_below_slow(self) -> "SmaParams":
        if self.fast >= self.slow:
            raise ValueError("fast must be smaller than slow")
        return self


class SmaCrossover(PluginBase):
    Params = SmaParams
    plugin_name = "sma_crossover"
    plugin_debug_vars = ["bars_seen", "signals", "last_diff"]

    def __init__(self, **params: object) -> None:
        super().__init__(**params)
        self.params_changed()

    def params_changed(self) -> None:
        """(Re)start from the params: new windows start empty and warm up again."""
        p: SmaParams = self.params
        self._fast_n = p.fast
        self._slow_n = p.slow
        self._window: deque[int] = deque(maxlen=p.slow)  # the last ``slow`` closes, scaled
        self._fast_sum = 0
        self._slow_sum = 0
        self._down = Target.FLAT if p.long_only else Target.SHORT
        self._quantity = p.quantity
        self._last_cross: int | None = None  # fast_sum * slow - slow_sum * fast, last non-zero
        self.bars_seen = getattr(self, "bars_seen", 0)
        self.signals = getattr(self, "signals", 0)

    @property
    def last_diff(self) -> float | None:
        """Fast mean minus slow mean at the last bar (debug information)."""
        if self._last_cross is None:
            return None
        return self._last_cross / (self._fast_n * self._slow_n * SCALE)

    def on_bar(self, bar: Bar) -> Signal | None:
        close = round(bar.close * SCALE)
        window = self._window
        held = len(window)
        fast_sum = self._fast_sum + close
        slow_sum = self._slow_sum + close
        if held >= self._fast_n:
            fast_sum -= window[-self._fast_n]  # the close leaving the fast window
        if held == self._slow_n:
            slow_sum -= window[0]  # the close leaving the slow window
        window.append(close)
        self._fast_sum = fast_sum
        self._slow_sum = slow_sum
        self.bars_seen += 1
        if held + 1 < self._slow_n:
            return None
        diff = fast_sum * self._slow_n - slow_sum * self._fast_n
        prev = self._last_cross
        if diff:  # a tie keeps the side the means were on before it
            self._last_cross = diff
        if prev is None:
            return None
        if prev < 0 < diff:
            target = Target.LONG
        elif prev > 0 > diff:
            target = self._down
        else:
            return None
        self.signals += 1
        return Signal(bar.symbol, target, bar.ts_event, self._quantity, "sma cross")
