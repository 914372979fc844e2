"""The strategies of one portfolio: made, bound, warmed up, told what happened, stopped.

Where it sits: owned by the portfolio's runner (:mod:`lts.engine.runner`) and called only from
its task. The runner calls each symbol's strategy per bar itself (the hot path); the host does
the rest:

- **build**: one instance per asset, or one per (plugin, params) for a ``multi_symbol``
  strategy, shared by the assets naming it (pairs, rotation);
- **attach**: after recovery, each trading strategy gets its context
  (:mod:`lts.engine.strategy_context`) and the contingent orders are tied together again from
  the open orders' tags (:mod:`lts.engine.contingent`); then ``on_start``;
- **warm up**: history (a feed's backfill, or the bars the feed hub kept) goes to ``on_bar``
  while ``ctx.warming_up``: indicators warm, nothing is ordered;
- **deliver**: every event of the portfolio's orders, in order, to the contingent orders and
  then to the strategy of its symbol (``on_order``; ``on_fill`` for a fill); what a callback
  orders is delivered in the same pass;
- **timers** (:mod:`lts.engine.timers`) fire on the engine's clock; **stop** calls ``on_stop``.
"""

import heapq
import json
import logging
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import anyio

from lts.domain.clock import Clock
from lts.domain.events import OrderEvent, OrderFilled
from lts.domain.market import Bar, Quote, TradeTick
from lts.domain.orders import Order
from lts.domain.portfolio_spec import AssetSpec
from lts.domain.signals import Signal
from lts.engine.contingent import Contingencies
from lts.engine.ledger import Ledger
from lts.engine.order_manager import OrderManager
from lts.engine.outcomes import TIMERS_DUE
from lts.engine.strategy_context import PortfolioContext
from lts.engine.timers import Timers
from lts.errors import PluginError
from lts.plugins.registry import Registry
from lts.plugins.strategy import Strategy
from lts.plugins.strategy.base import TradingStrategy

__all__ = ["StrategyHost"]

log = logging.getLogger("lts.strategy")

#: Events one delivery may go through (and timers one instant may fire): a strategy that
#: orders on every event of its orders without end is a bug, reported as one, not a hang. Every
#: event is journaled live (a denied order too), so the bound is also what such a bug may
#: write before it is stopped: a bar's decisions on hundreds of symbols stay far below it.
_MAX_CHAIN = 10_000


class StrategyHost:
    def __init__(self, portfolio_id: int, clock: Clock,
                 set_time: Callable[[int], None] | None = None) -> None:
        self.portfolio_id = portfolio_id
        self.clock = clock
        self._set_time = set_time  # a backtest's clock: timers fire at their own time
        #: the strategy the runner calls per symbol (while a multi-symbol strategy waits for
        #: its history, a gate that hands it over before its first live bar)
        self.by_symbol: dict[str, Strategy] = {}
        self._owner: dict[str, Strategy] = {}  # the strategy of each symbol
        self.trading: list[TradingStrategy] = []
        self.contexts: list[PortfolioContext] = []
        self.timers = Timers()
        self.contingent: Contingencies | None = None
        self._notices: list[OrderEvent] | None = None
        self.on_timers_changed: Callable[[], None] | None = None
        self._symbols: dict[int, tuple[str, ...]] = {}
        self._pending: dict[int, dict[str, Sequence[Bar]]] = {}  # histories to merge

    # -- making them -----------------------------------------------------------------------------
    def build(self, registry: Registry, assets: Sequence[AssetSpec]) -> dict[str, Strategy]:
        shared: dict[tuple[str, str], Any] = {}
        symbols: dict[int, list[str]] = {}
        for asset in assets:
            cls = registry.get("strategy", asset.strategy_plugin)
            key = (asset.strategy_plugin,
                   json.dumps(asset.strategy_params, sort_keys=True, default=str))
            if getattr(cls, "multi_symbol", False) and key in shared:
                strategy = shared[key]
            else:
                strategy = registry.create("strategy", asset.strategy_plugin,
                                           asset.strategy_params)
                shared[key] = strategy
                if isinstance(strategy, TradingStrategy):
                    self.trading.append(strategy)
            self.by_symbol[asset.symbol] = self._owner[asset.symbol] = strategy
            symbols.setdefault(id(strategy), []).append(asset.symbol)
        self._symbols = {id(s): tuple(symbols[id(s)]) for s in self.trading}
        return self.by_symbol

    def history_needed(self, symbol: str) -> int:
        """Bars of history the strategy of ``symbol`` needs (its declared warm-up: a trading
        strategy's, or a signal strategy's that declares one, as ema_crossover does)."""
        declared = getattr(self._owner.get(symbol), "warmup_bars", None)
        return max(0, int(declared())) if callable(declared) else 0

    def attach(self, orders: OrderManager, ledger: Ledger, instruments: dict[str, Any],
               linked: Sequence[Order] = ()) -> None:
        """Bind every trading strategy to its context, rebuild the contingent orders from the
        open orders and the journal's ``linked`` ones, then ``on_start``."""
        if not self.trading:
            return
        self.contingent = Contingencies(orders, instruments)
        self._notices = orders.book.notices = []
        for slot, strategy in enumerate(self.trading):
            ctx = PortfolioContext(
                slot, self._symbols[id(strategy)], orders=orders, contingent=self.contingent,
                ledger=ledger, instruments=instruments, clock=self.clock,
                set_timer=self._set_timer, cancel_timer=self._cancel_timer,
                name=f"portfolio {self.portfolio_id} {strategy.plugin_name}")
            self.contexts.append(ctx)
            strategy.bind(ctx)
        self.contingent.rebuild(orders.open.values(), linked)
        for strategy in self.trading:
            strategy.on_start()
        self.deliver()

    # -- what happens ----------------------------------------------------------------------------
    def warm_up(self, symbol: str, bars: Sequence[Bar]) -> int:
        """History for the strategy of ``symbol``: taken in, nothing ordered; the latest
        ``warmup_bars()`` of it when the strategy declares how many it needs. A multi-symbol
        strategy takes the history of all its symbols at once, merged in time order, when
        every one of them has given its own (or at its first live bar)."""
        strategy = self._owner.get(symbol)
        if strategy is None:
            return 0
        needed = self.history_needed(symbol)
        if needed:  # what it declared it needs: the latest of the history
            bars = bars[-needed:]
        symbols = self._symbols.get(id(strategy), (symbol,))
        if len(symbols) > 1:
            pending = self._pending.setdefault(id(strategy), {})
            more = [*pending.get(symbol, ()), *bars]
            pending[symbol] = more[-needed:] if needed else more
            if len(pending) < len(symbols):
                gate = _HistoryFirst(self, strategy)
                for s in symbols:  # its first live bar must not overtake this history
                    self.by_symbol[s] = gate
                return 0
            return self._flush(strategy)
        return self._feed_history(strategy, bars)

    def _flush(self, strategy: Strategy) -> int:
        """A multi-symbol strategy's pending histories, merged in time order."""
        for s in self._symbols.get(id(strategy), ()):
            self.by_symbol[s] = strategy
        pending = self._pending.pop(id(strategy), {})
        merged = heapq.merge(*pending.values(), key=lambda b: b.ts_event)
        return self._feed_history(strategy, merged)

    def _feed_history(self, strategy: Strategy, bars: Iterable[Bar]) -> int:
        contexts = [c for c in self.contexts
                    if c.symbols == self._symbols.get(id(strategy))]
        for ctx in contexts:
            ctx.warming = True
        taken = 0
        try:
            for bar in bars:
                strategy.on_bar(bar)  # a signal from the past is no order either
                taken += 1
        finally:
            for ctx in contexts:
                ctx.warming = False
        return taken

    def deliver(self) -> None:
        """Hand every event made since the last delivery to the contingent orders and to the
        strategy of its symbol; events their callbacks cause go in the same pass."""
        notices = self._notices
        if not notices:
            return
        contingent, by_symbol = self.contingent, self._owner
        assert contingent is not None
        handled = 0
        while notices:
            batch = notices[:]
            notices.clear()
            for event in batch:
                contingent.on_event(event)
                strategy = by_symbol.get(event.symbol)
                if isinstance(strategy, TradingStrategy):
                    strategy.on_order(event)
                    if type(event) is OrderFilled and event.fill is not None:
                        strategy.on_fill(event.fill)
            handled += len(batch)
            if handled > _MAX_CHAIN:
                notices.clear()
                raise PluginError(f"portfolio {self.portfolio_id}: strategies made "
                                  f"{handled} order events in one pass (a loop?)")

    def on_tick(self, tick: Quote | TradeTick) -> None:
        """A quote or a public trade: to the trading strategy of its symbol."""
        strategy = self.by_symbol.get(tick.symbol)
        if not isinstance(strategy, TradingStrategy):
            return
        if isinstance(tick, Quote):
            strategy.on_quote(tick)
        else:
            strategy.on_trade(tick)
        self.deliver()

    def on_bar_done(self, bar: Bar) -> None:
        """After a bar's decisions: its events are delivered (the contingent orders settle
        what its fills did), then trailing stops move."""
        self.deliver()
        contingent = self.contingent
        if contingent is not None and bar.symbol in contingent.trailing_symbols:
            contingent.on_bar(bar)
            self.deliver()

    def fire_timers(self, now: int) -> None:
        """Every timer due at ``now`` or before, at its own time on a backtest's clock."""
        timers, fired_count = self.timers, 0
        while (fired := timers.pop_next(now)) is not None:
            slot, name, due = fired
            fired_count += 1
            if fired_count > _MAX_CHAIN:
                raise PluginError(f"portfolio {self.portfolio_id}: strategies set {fired_count} "
                                  "timers due at once (a timer that sets itself again for now?)")
            if self._set_time is not None:
                self._set_time(max(due, self.clock.now_ns()))
            self.trading[slot].on_timer(name, due)
            self.deliver()
        if self._set_time is not None:
            self._set_time(now)

    def stop(self) -> None:
        for strategy in self.trading:
            strategy.on_stop()
        if self.contingent is not None:
            self.deliver()

    # -- timers ----------------------------------------------------------------------------------
    async def wake_for_timers(self, post: Callable[[Any], None]) -> None:
        """Live: tell the runner (``post``: its inbox) when a timer is due, as no bar may come
        to fire it; a timer set or changed wakes this up to look again."""
        changed = anyio.Event()

        def wake() -> None:
            changed.set()

        self.on_timers_changed = wake
        while True:
            due = self.timers.next_due
            wait = None if due is None else (due - self.clock.now_ns()) / 1e9
            if wait is not None and wait <= 0:
                post(TIMERS_DUE)
                wait = 0.05  # the runner takes it; look again shortly
            with anyio.move_on_after(wait if wait is not None else 3600):
                await changed.wait()
            changed = anyio.Event()

    def _set_timer(self, slot: int, name: str, at_ns: int | None, every_ns: int | None) -> None:
        self.timers.set(slot, name, now=self.clock.now_ns(), at_ns=at_ns, every_ns=every_ns)
        if self.on_timers_changed is not None:
            self.on_timers_changed()

    def _cancel_timer(self, slot: int, name: str) -> None:
        self.timers.cancel(slot, name)

    @property
    def unsized(self) -> int:
        return sum(c.unsized for c in self.contexts)


class _HistoryFirst:
    """Stands for a multi-symbol strategy while some of its symbols' histories have not come
    (a feed without history, or one still fetching it): the first live bar of any of its
    symbols hands it what came first, merged in time order, then the bar."""

    def __init__(self, host: StrategyHost, strategy: Strategy) -> None:
        self._host = host
        self._strategy = strategy

    def on_bar(self, bar: Bar) -> Signal | None:
        self._host._flush(self._strategy)
        return self._strategy.on_bar(bar)

    def __getattr__(self, name: str) -> Any:  # set_params, get_debug_info, ...
        return getattr(self._strategy, name)
