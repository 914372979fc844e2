"""Strategy ``rsi_reversion``: buy when the RSI falls through ``lower``, sell it back at ``exit``.

A signal strategy: its rules are targets (long, flat, short) and nothing in them needs an order
type, so it states the target and the portfolio plugin sizes it (or ``quantity``), the same way
``sma_crossover`` does; it composes with any allocator.

Rules, at the close of bar t with ``r[t]`` the RSI (a level is *crossed below* when
``r[t-1] >= level > r[t]`` and *crossed above* when ``r[t-1] <= level < r[t]``):

- LONG when ``lower`` is crossed below;
- from LONG, FLAT when ``exit`` is crossed above;
- with ``long_only=false``: SHORT when ``upper`` is crossed above, and from SHORT, FLAT when
  ``exit`` is crossed below.

An entry wins over an exit on the same bar (a jump from below ``lower`` to above ``upper`` goes
from LONG to SHORT at once). The strategy remembers the target it signaled last and signals only
a change.

Indicator: talipp's ``RSI`` (:class:`~lts.plugins.strategy.indicators.Rsi`): Wilder's averages of
gains and losses, streaming; ``r = 100 - 100 / (1 + avg_gain / avg_loss)``, 100 without losses,
50 when the price did not move at all over the averages (talipp says 100: that would read a dead
market as overbought and short it).

Warm-up: the RSI needs ``period`` changes (``period + 1`` closes) and a cross needs it on two
bars, so the first decision is on bar ``period + 2``: :meth:`RsiReversion.warmup_bars` is
``period + 1``.
"""

from decimal import Decimal

from pydantic import Field, ValidationInfo, field_validator

from lts.domain.market import Bar
from lts.domain.signals import Signal, Target
from lts.plugins.base import PluginBase, PluginParams
from lts.plugins.strategy.indicators import Rsi

__all__ = ["RsiParams", "RsiReversion"]


class RsiParams(PluginParams):
    period: int = Field(14, ge=2, description="bars in the RSI's averages")
    lower: float = Field(30.0, gt=0, lt=100, description="oversold: crossed below, go long")
    exit: float = Field(50.0, gt=0, lt=100, description="back through it: flat")
    upper: float = Field(70.0, gt=0, lt=100, description="overbought: crossed above, go short")
    quantity: Decimal | None = Field(None, gt=0, description="fixed size; else the portfolio sizes")
    long_only: bool = Field(True, description="no short at upper")

    @field_validator("exit", "upper")
    @classmethod
    def _levels_in_order(cls, level: float, info: ValidationInfo) -> float:
        below = "lower" if info.field_name == "exit" else "exit"
        under = info.data.get(below)
        if under is not None and level <= under:
            raise ValueError(f"must be above {below} ({under})")
        return level


class RsiReversion(PluginBase):
    Params = RsiParams
    plugin_name = "rsi_reversion"
    plugin_debug_vars = ["bars_seen", "signals", "last_rsi", "target"]

    def __init__(self, **params: object) -> None:
        super().__init__(**params)
        self.bars_seen = 0
        self.signals = 0
        self.params_changed()

    def params_changed(self) -> None:
        """(Re)start from the params: a new RSI warms up again; the target is kept."""
        p: RsiParams = self.params
        self._rsi = Rsi(p.period)
        self.last_rsi: float | None = None
        self._target = getattr(self, "_target", Target.FLAT)

    @property
    def target(self) -> str:
        """The target signaled last (debug information)."""
        value: str = self._target.value
        return value

    def warmup_bars(self) -> int:
        """Bars before the first one that can signal."""
        p: RsiParams = self.params
        return p.period + 1

    def on_bar(self, bar: Bar) -> Signal | None:
        self.bars_seen += 1
        now = self._rsi.add(bar.close)
        if now is None:
            return None
        prev, self.last_rsi = self.last_rsi, now
        if prev is None:
            return None
        p: RsiParams = self.params
        target = self._target
        back_long = target is Target.LONG and prev <= p.exit < now
        back_short = target is Target.SHORT and prev >= p.exit > now
        if back_long or back_short:
            target = Target.FLAT
        if prev >= p.lower > now:
            target = Target.LONG
        elif not p.long_only and prev <= p.upper < now:
            target = Target.SHORT
        if target is self._target:
            return None
        self._target = target
        self.signals += 1
        return Signal(bar.symbol, target, bar.ts_event, p.quantity, "rsi reversion")
