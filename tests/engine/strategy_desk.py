"""A live desk for trading strategies: the real engine, a portfolio trading a scripted strategy
on the paper venue, a SQLite file (or PostgreSQL), bars the test pushes.

Built on the engine desk (:mod:`tests.engine.desk`): its engine runs, and this adds a portfolio
of its own to it, whose strategy is the test's :class:`~tests.engine.scripted_strategy.Scripted`
(registered in the engine's own registry, as an embedding application registers a plugin) and
whose market data is :class:`HistoryFeed`: a live feed that may first yield its recent past as a
:class:`~lts.domain.market.WarmUp` (as the ccxt feed yields its backfill), then the bars the test
pushes. The paper venue's book lives in the runner, so a restarted runner takes the journal's
open orders back, as after a process restart.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from decimal import Decimal
from typing import Any

from lts.bus import Mailbox, Overflow
from lts.domain.clock import Clock
from lts.domain.events import OrderEvent
from lts.domain.market import Bar, WarmUp
from lts.domain.portfolio_spec import AssetSpec, PortfolioSpec
from lts.persistence import repositories as repo
from lts.persistence.db import make_engine
from lts.plugins.base import PluginBase, PluginParams

from .desk import EngineDesk, running_desk
from .scripted_strategy import Script, scripted_registry
from .venue import CHANNELS, FeedChannel

__all__ = ["HistoryFeed", "strategy_desk"]


class HistoryParams(PluginParams):
    channel: str
    backfill: int = 0


class HistoryFeed(PluginBase):
    """Pipeline ``history``: at each start, the last ``backfill`` bars pushed to its channel
    for the symbol (its past, as one WarmUp), then each bar pushed from then on."""

    Params = HistoryParams
    plugin_name = "history"
    historical = False

    def __init__(self, **params: object) -> None:
        super().__init__(**params)
        self.channel = CHANNELS[self.params.channel]

    async def bars(self, symbol: str, clock: Clock) -> AsyncIterator[Sequence[Bar] | WarmUp]:
        queue = self.channel.queue(symbol)
        past = PAST.get(self.params.channel, {}).get(symbol, [])
        if self.params.backfill and past:
            yield WarmUp(symbol, tuple(past[-self.params.backfill:]))
        while True:
            yield [await queue.get()]


#: every bar pushed per channel and symbol (the venue's candle history)
PAST: dict[str, dict[str, list[Bar]]] = {}


class Market:
    """The bars of a :class:`HistoryFeed`'s channel: pushed live, or made history before."""

    def __init__(self, key: str) -> None:
        self.key = key
        self.channel = CHANNELS[key] = FeedChannel()
        self.past = PAST[key] = {}

    def push(self, symbol: str, close: float, **kw: Any) -> Bar:
        bar = self.channel.push(symbol, close, **kw)
        self.past.setdefault(symbol, []).append(bar)
        return bar

    def history(self, symbol: str, closes: Sequence[float]) -> list[Bar]:
        """Bars from before the feed starts (its backfill; never delivered live)."""
        channel, made = self.channel, []
        for close in closes:
            channel.ts += 60_000_000_000
            open_ = channel.last.get(symbol, close)
            made.append(Bar(symbol, channel.ts, open_, max(open_, close), min(open_, close),
                            close, 1_000_000.0))
            channel.last[symbol] = close
        self.past.setdefault(symbol, []).extend(made)
        return made


@asynccontextmanager
async def strategy_desk(db_url: str, script: Script, *, symbols: tuple[str, ...] = ("AAA",),
                        strategy: str = "scripted", backfill: int = 0,
                        history: dict[str, Sequence[float]] | None = None,
                        history_in_order: Sequence[tuple[str, float]] = (),
                        broker: dict[str, Any] | None = None, cash: str = "100000",
                        risk: dict[str, Any] | None = None,
                        engine: dict[str, Any] | None = None,
                        strategy_params: dict[str, Any] | None = None,
                        ) -> AsyncIterator[tuple[EngineDesk, Market]]:
    """The engine with a portfolio of ``symbols`` (tick 0.01, lot 1) trading ``script`` on the
    paper venue (``broker``: its params) over a :class:`HistoryFeed` (``backfill`` bars of
    ``history`` first; ``history_in_order``: (symbol, close) bars in that time order). Yields
    the portfolio's desk and its market."""
    async with running_desk(db_url, engine=engine) as base:
        registry = base.engine.registry
        _, params = scripted_registry(script, registry)
        if strategy_params is not None:  # another strategy than the script's
            params = strategy_params
        if ("pipeline", "history") not in registry.plugins:
            registry.register("pipeline", "history", HistoryFeed)
        key = uuid.uuid4().hex[:10]
        market = Market(key)
        for symbol, closes in (history or {}).items():
            market.history(symbol, closes)
        for symbol, close in history_in_order:
            market.history(symbol, [close])
        db = make_engine(db_url)
        try:
            pid = await repo.create_portfolio(db, PortfolioSpec(
                name=f"strategy-{key}", initial_cash=Decimal(cash), risk_params=risk or {},
                assets=tuple(AssetSpec(
                    symbol=s, strategy_plugin=strategy, strategy_params=params,
                    broker_plugin="paper", broker_params=broker or {},
                    pipeline_plugin="history",
                    pipeline_params={"channel": key, "backfill": backfill})
                    for s in symbols)))
        finally:
            await db.dispose()
        events: Mailbox[OrderEvent] = Mailbox(100_000, Overflow.BLOCK, name="strategy desk")
        base.facade.subscribe_events(events, pid)
        base.facade.activate(pid)
        desk = EngineDesk(base.engine, pid, base.venue, market.channel, symbols, events)
        try:
            await desk.running()
            yield desk, market
        finally:
            CHANNELS.pop(key, None)
            PAST.pop(key, None)
