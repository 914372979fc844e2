"""Shared by the shipped strategies' tests: bars, a replay through the real engine, and a start
on history (what a live feed's backfill gives a strategy) followed by live bars.

Bars are daily from ``T0``; ``day(fill)`` turns a fill's time back into the bar's index. The
references in the tests are computed here with numpy/pandas from the bars alone.
"""

import heapq
import tempfile
from collections.abc import AsyncIterator, Mapping, Sequence
from decimal import Decimal
from operator import attrgetter
from pathlib import Path
from typing import Any

import anyio

from lts.backtest.replay import ReplayOptions, ReplayResult, run_replay
from lts.bus import InProcessBus
from lts.domain.clock import Clock
from lts.domain.market import Bar, WarmUp
from lts.domain.orders import Fill
from lts.domain.portfolio_spec import AssetSpec, PortfolioSpec
from lts.engine.clock import ReplayClock
from lts.engine.feeds import FeedHub
from lts.engine.runner import PortfolioRunner, RunnerContext
from lts.persistence import repositories as repo
from lts.persistence.db import make_engine
from lts.persistence.journal import Journal
from lts.persistence.migrations import upgrade_to_head
from lts.plugins.registry import Registry
from lts.settings import RiskLimits

T0 = 1_704_153_600_000_000_000  # 2024-01-02 00:00 UTC
DAY = 86_400 * 1_000_000_000
TICK = Decimal("0.01")

#: Shorts allowed (pairs, long/short signals), no order-rate or open-order caps.
LOOSE = RiskLimits(allow_short=True, max_orders_per_second=None, max_open_orders=None)
#: The engine's default risk (long only, buying power), rate caps off: a backtest's bars
#: come faster than any second.
LONG_ONLY = RiskLimits(max_orders_per_second=None, max_open_orders=None)

Row = tuple[int, str, Decimal, Decimal]  # (bar index, side, quantity, price)


def make_bars(closes: Sequence[float], symbol: str = "X", opens: Sequence[float] | None = None,
              wick: float = 0.0, start: int = 0) -> list[Bar]:
    """Daily bars: open = the previous close (the first: its own close) unless given; high and
    low ``wick`` beyond the body."""
    out = []
    for i, close in enumerate(closes):
        open_ = opens[i] if opens is not None else closes[i - 1] if i else close
        out.append(Bar(symbol, T0 + (start + i) * DAY, float(open_),
                       max(open_, close) + wick, min(open_, close) - wick, float(close), 1e6))
    return out


def day(fill: Fill) -> int:
    return (fill.ts_event - T0) // DAY


def rows(fills: Sequence[Fill], symbol: str | None = None) -> list[Row]:
    """(bar, side, quantity, price) of each fill, of ``symbol`` or all, in time order."""
    return [(day(f), f.side.value, f.quantity, f.price) for f in fills
            if symbol is None or f.symbol == symbol]


def cents(value: float) -> Decimal:
    """A float price on the 0.01 grid, the nearest tick (a bar's open or close as the paper
    venue fills it, when the data is on the grid already)."""
    return Decimal(str(round(value, 2))).quantize(TICK)


async def replay(data: Sequence[Bar] | Mapping[str, Sequence[Bar]] | Any, strategy: str,
                 params: dict[str, Any], *, fill_at: str = "close",
                 risk: RiskLimits = LOOSE, cash: Decimal = Decimal(100_000),
                 symbol: str | None = None) -> ReplayResult:
    opts = ReplayOptions(strategy=strategy, params=params, cash=cash, fill_at=fill_at,
                         tick_size=TICK, risk=risk,
                         symbol=symbol if symbol is not None
                         else (data[0].symbol if isinstance(data, list) else None))
    return await run_replay(data, opts)


class _HistoryThenLive:
    """One symbol's feed that starts like a live one: its history as a
    :class:`~lts.domain.market.WarmUp` (the strategy takes it in, nothing is ordered). The
    first symbol's feed then carries every symbol's live bars in time order, once every other
    feed has handed over its history (``told``: set when the hub asks a feed for more)."""

    historical = True

    def __init__(self, history: Sequence[Bar], live: Sequence[Bar],
                 told: anyio.Event, others: Sequence[anyio.Event]) -> None:
        self._history = history
        self._live = live
        self._told = told
        self._others = others

    async def bars(self, symbol: str, clock: Clock) -> AsyncIterator[Sequence[Bar] | WarmUp]:
        yield WarmUp(symbol, tuple(self._history))
        self._told.set()
        for other in self._others:
            await other.wait()
        if self._live:
            yield list(self._live)


async def replay_after_history(bars: Mapping[str, Sequence[Bar]], at: int, strategy: str,
                               params: dict[str, Any], *, fill_at: str = "close",
                               risk: RiskLimits = LOOSE,
                               cash: Decimal = Decimal(100_000)) -> list[Fill]:
    """The engine's start on a live feed, replayed: bars before index ``at`` of every symbol
    come as its feed's history, the rest live. The same pieces as :func:`run_replay` (runner,
    feed hub, paper venue, journal on a scratch SQLite file), with a feed that opens with
    history, which a backtest's market data cannot. Returns the fills."""
    registry = Registry.discover()
    symbols = sorted(bars)
    broker_params = {"fill_at": fill_at}
    with tempfile.TemporaryDirectory(prefix="lts-warm-") as tmp:
        url = f"sqlite+aiosqlite:///{Path(tmp) / 'warm.db'}"
        await upgrade_to_head(url)
        db = make_engine(url, sqlite_synchronous="OFF")
        try:
            spec = PortfolioSpec(
                name="warm", initial_cash=cash, portfolio_plugin="fixed_fraction",
                portfolio_params={}, assets=tuple(AssetSpec(
                    symbol=s, strategy_plugin=strategy, strategy_params=params,
                    broker_plugin="paper", broker_params=broker_params,
                    pipeline_plugin="replay", pipeline_params={"path": ""}, tick_size=TICK,
                    lot_size=Decimal(1)) for s in symbols))
            pid = await repo.create_portfolio(db, spec)
            spec = await repo.load_portfolio(db, pid)
            clock = ReplayClock(min(b[0].ts_event for b in bars.values()))
            bus = InProcessBus()
            journal = Journal(db, inline_writes=True)
            async with anyio.create_task_group() as tg:
                await tg.start(journal.run)
                feeds = FeedHub(registry, bus, clock, tg)
                told = [anyio.Event() for _ in symbols]
                live = list(heapq.merge(*(bars[s][at:] for s in symbols),
                                        key=attrgetter("ts_event")))
                for i, symbol in enumerate(symbols):
                    feeds.provide("replay", {"path": ""}, symbol, _HistoryThenLive(
                        bars[symbol][:at], live if i == 0 else (), told[i],
                        told[1:] if i == 0 else ()))
                runner = PortfolioRunner(spec, RunnerContext(
                    registry=registry, bus=bus, journal=journal, db=db, feeds=feeds,
                    clock=clock, durable=False, mailbox_capacity=16_384, default_risk=risk))
                await runner.run()
                await journal.flush()
                tg.cancel_scope.cancel()
            return await repo.load_fills(db, pid)
        finally:
            await db.dispose()
