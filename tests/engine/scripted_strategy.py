"""Trading strategies the strategy-API tests script: user code, written as a user writes it.

:class:`Scripted` is a :class:`~lts.plugins.strategy.base.TradingStrategy` whose decisions are
the test's (a :class:`Script` found by the ``script`` param, as the engine tests' venue finds its
world) and which records everything the engine tells it: each bar with ``ctx.warming_up`` and
``ctx.now_ns()``, each order event, each fill, each timer, each start and stop.
:class:`ScriptedPair` is the same with ``multi_symbol = True``. Nothing of LTS is faked: the
engine builds them from the registry, binds their context and calls them.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from lts.backtest.replay import ReplayOptions, ReplayResult, run_replay
from lts.domain.events import OrderEvent
from lts.domain.market import Bar
from lts.domain.orders import Fill
from lts.plugins.base import PluginParams
from lts.plugins.registry import Registry
from lts.plugins.strategy.base import TradingStrategy
from lts.settings import RiskLimits

__all__ = ["MINUTE", "SCRIPTS", "T0", "Heard", "Script", "Scripted", "ScriptedPair", "backtest",
           "bars", "fills_of", "flat", "scripted_registry"]

T0 = 1_704_153_600_000_000_000  # 2024-01-02 00:00 UTC, ns
MINUTE = 60_000_000_000

BarHook = Callable[["Scripted", Bar, int], None]
EventHook = Callable[["Scripted", OrderEvent], None]
FillHook = Callable[["Scripted", Fill], None]
TimerHook = Callable[["Scripted", str, int], None]
StartHook = Callable[["Scripted"], None]


@dataclass
class Heard:
    """One bar as the strategy saw it."""

    bar: Bar
    warming_up: bool
    now_ns: int
    instance: int  # which instance heard it (1: the first made, 2: the next, ...)


@dataclass
class Script:
    """What a scripted strategy does (hooks) and what it heard (records)."""

    on_bar: BarHook | None = None
    on_order: EventHook | None = None
    on_fill: FillHook | None = None
    on_timer: TimerHook | None = None
    on_start: StartHook | None = None
    warmup: int = 0
    # what it heard
    bars: list[Heard] = field(default_factory=list)
    events: list[OrderEvent] = field(default_factory=list)
    fills: list[Fill] = field(default_factory=list)
    timers: list[tuple[str, int, int]] = field(default_factory=list)  # name, ts, ctx.now_ns()
    starts: int = 0
    stops: int = 0
    instances: set[int] = field(default_factory=set)
    made: int = 0  # instances made
    symbols: list[tuple[str, ...]] = field(default_factory=list)  # ctx.symbols at each start
    memo: dict[str, object] = field(default_factory=dict)  # the hooks' own notes

    def live_bars(self) -> list[Bar]:
        return [h.bar for h in self.bars if not h.warming_up]

    def closes(self, instance: int, *, warming: bool) -> list[float]:
        """Closes of the bars ``instance`` heard warming up (or live)."""
        return [h.bar.close for h in self.bars
                if h.instance == instance and h.warming_up is warming]

    def statuses(self, coid: str) -> list[str]:
        return [e.status for e in self.events if e.client_order_id == coid]

    def event_types(self, coid: str) -> list[str]:
        return [type(e).__name__ for e in self.events if e.client_order_id == coid]


SCRIPTS: dict[str, Script] = {}


class ScriptedParams(PluginParams):
    script: str


class Scripted(TradingStrategy):
    """Strategy ``scripted``: the test's :class:`Script`."""

    Params = ScriptedParams
    plugin_name = "scripted"

    def __init__(self, **params: object) -> None:
        super().__init__(**params)
        self.script = SCRIPTS[self.params.script]
        self.script.instances.add(id(self))
        self.script.made += 1
        self.number = self.script.made
        self.index = 0  # live bars seen by this instance

    def warmup_bars(self) -> int:
        return self.script.warmup

    def on_start(self) -> None:
        self.script.starts += 1
        self.script.symbols.append(self.ctx.symbols)
        if self.script.on_start is not None:
            self.script.on_start(self)

    def on_bar(self, bar: Bar) -> None:
        heard = Heard(bar, self.ctx.warming_up, self.ctx.now_ns(), self.number)
        self.script.bars.append(heard)
        if self.script.on_bar is not None:
            self.script.on_bar(self, bar, self.index)
        if not heard.warming_up:
            self.index += 1

    def on_order(self, event: OrderEvent) -> None:
        self.script.events.append(event)
        if self.script.on_order is not None:
            self.script.on_order(self, event)

    def on_fill(self, fill: Fill) -> None:
        self.script.fills.append(fill)
        if self.script.on_fill is not None:
            self.script.on_fill(self, fill)

    def on_timer(self, name: str, ts_ns: int) -> None:
        self.script.timers.append((name, ts_ns, self.ctx.now_ns()))
        if self.script.on_timer is not None:
            self.script.on_timer(self, name, ts_ns)

    def on_stop(self) -> None:
        self.script.stops += 1


class ScriptedPair(Scripted):
    """Strategy ``scripted_pair``: one instance for every asset naming it."""

    plugin_name = "scripted_pair"
    multi_symbol = True


def scripted_registry(script: Script, registry: Registry | None = None
                      ) -> tuple[Registry, dict[str, object]]:
    """A registry with the scripted strategies, and the params naming ``script``."""
    key = uuid.uuid4().hex[:10]
    SCRIPTS[key] = script
    registry = registry or Registry.discover()
    for name, cls in (("scripted", Scripted), ("scripted_pair", ScriptedPair)):
        if ("strategy", name) not in registry.plugins:
            registry.register("strategy", name, cls)
    return registry, {"script": key}


def bars(symbol: str, ohlc: Sequence[tuple[float, float, float, float]], *,
         start: int = T0, step: int = MINUTE, volume: float = 1_000_000.0) -> list[Bar]:
    """Bars of ``symbol`` from ``(open, high, low, close)``, one per ``step`` from ``start``."""
    return [Bar(symbol, start + i * step, o, h, lo, c, volume)
            for i, (o, h, lo, c) in enumerate(ohlc)]


def flat(price: float) -> tuple[float, float, float, float]:
    return (price, price, price, price)


async def backtest(script: Script, data: dict[str, list[Bar]], *,
                   strategy: str = "scripted", registry: Registry | None = None,
                   tick: str = "0.01", lot: str = "1", cash: str = "100000",
                   risk: RiskLimits | None = None, **broker: Any) -> ReplayResult:
    """The real replay of ``data`` with ``script`` (tick 0.01, lot 1, $100,000, no costs;
    ``broker``: more paper-venue params, e.g. ``volume_cap``)."""
    reg, params = scripted_registry(script, registry)
    return await run_replay(data, ReplayOptions(
        strategy=strategy, params=params, tick_size=Decimal(tick), lot_size=Decimal(lot),
        cash=Decimal(cash), risk=risk, costs=broker), reg)


def fills_of(result: ReplayResult, coid: str | None) -> list[tuple[int, Decimal, Decimal]]:
    """(bar index, quantity, price) of each fill of ``coid`` (bars a minute apart from T0)."""
    return [((f.ts_event - T0) // MINUTE, f.quantity, f.price) for f in result.fills
            if f.client_order_id == coid]
