"""The base of a trading strategy: callbacks from the engine, orders through its context.

Where it sits: a strategy plugin (entry point ``lts.plugins.strategy``, or a file given to
``replay --strategy path/to/file.py:Class``) runs inside its portfolio's runner task. The engine
creates it with its validated params, binds its :class:`~lts.plugins.strategy.StrategyContext`
and calls, in the runner's task and never concurrently:

``on_start`` once bound (after a restart too; history follows as ``on_bar`` calls while
``ctx.warming_up``), ``on_bar`` per bar of its symbols, ``on_quote`` and ``on_trade`` per quote
and public trade where the feed gives them (the ``ccxt`` pipeline's ``ticks``), ``on_order``
per change of one of its orders, ``on_fill`` per fill of one, ``on_timer`` when a timer it set
is due, ``on_stop`` when the portfolio stops.

One instance per asset by default; a class with ``multi_symbol = True`` gets one instance for
every asset of the portfolio naming it with the same params (pairs, rotation), and
``ctx.symbols`` lists them. ``warmup_bars`` says how much history the engine must feed it at
start and after every restart, so a restart never silently resets it.
"""

from typing import ClassVar

from lts.domain.events import OrderEvent
from lts.domain.market import Bar, Quote, TradeTick
from lts.domain.orders import Fill
from lts.plugins.base import PluginBase
from lts.plugins.strategy import StrategyContext

__all__ = ["TradingStrategy"]


class TradingStrategy(PluginBase):
    """Subclass it, declare ``Params`` (a :class:`~lts.plugins.base.PluginParams`) and
    override the callbacks you need."""

    multi_symbol: ClassVar[bool] = False
    ctx: StrategyContext

    def bind(self, ctx: StrategyContext) -> None:
        """The engine hands over the context (before ``on_start``)."""
        self.ctx = ctx

    def warmup_bars(self) -> int:
        """Bars of history this strategy needs before it can decide (read from its params)."""
        return 0

    def on_start(self) -> None:
        """Bound and about to receive data (at every start and restart)."""

    def on_bar(self, bar: Bar) -> None:
        """A closed bar of one of ``ctx.symbols``."""

    def on_quote(self, quote: Quote) -> None:
        """The best bid and ask of one of ``ctx.symbols`` changed (feeds that give quotes)."""

    def on_trade(self, trade: TradeTick) -> None:
        """A public trade of one of ``ctx.symbols`` (feeds that give trades)."""

    def on_order(self, event: OrderEvent) -> None:
        """One of this strategy's orders changed (``event.status`` is its new state)."""

    def on_fill(self, fill: Fill) -> None:
        """One of this strategy's orders traded (the position has moved already)."""

    def on_timer(self, name: str, ts_ns: int) -> None:
        """A timer set with ``ctx.set_timer`` is due."""

    def on_stop(self) -> None:
        """The portfolio stops (nothing sent from here on reaches a venue)."""
