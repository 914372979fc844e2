"""Replay (backtest): the live engine's code over historical bars, on a replay clock.

The same bus, strategy, portfolio plugin, risk checks, order manager, paper broker, ledger and
journal run as in live trading; only the clock (the bar's time), the mailbox policy (never drop)
and the write-ahead wait (orders are journaled, but the broker does not wait for the commit)
differ. Results: a :class:`ReplaySummary`.
"""

import gc
import logging
import sys
import tempfile
import time
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import anyio
import msgspec

from lts.bus import InProcessBus
from lts.domain.market import Bar
from lts.engine.clock import ReplayClock
from lts.engine.equity_recorder import EquityRecorder
from lts.engine.feeds import FeedHub
from lts.engine.heap import freeze_startup_heap, unfreeze_heap
from lts.engine.runner import PortfolioRunner, RunnerContext
from lts.errors import InvalidParams
from lts.persistence import repositories as repo
from lts.persistence.db import check_url, make_engine
from lts.persistence.journal import Journal
from lts.persistence.migrations import upgrade_to_head
from lts.plugins.pipeline.bars_file import load_bars
from lts.plugins.pipeline.replay import ReplayFeed
from lts.plugins.registry import Registry
from lts.settings import RiskLimits

log = logging.getLogger("lts.replay")

_REPLAY_GC_THRESHOLD = 70_000

#: The price grid of a replayed instrument: fine enough for any data file's prices to stay as
#: written (a coin at 0.0000123 fills at 0.0000123).
REPLAY_TICK = Decimal("0.00000001")


@dataclass
class ReplayOptions:
    symbol: str
    strategy: str
    params: dict[str, Any]
    cash: Decimal = Decimal(100_000)
    quantity: Decimal | None = None
    fees_bps: Decimal = Decimal(0)
    slippage_bps: Decimal = Decimal(0)
    fill_at: str = "next_open"
    db_url: str | None = None
    portfolio_plugin: str = "fixed_fraction"
    risk: RiskLimits | None = None
    progress: bool = False


class ReplaySummary(msgspec.Struct):
    symbol: str
    strategy: str
    bars: int
    orders: int
    denied: int
    fills: int
    round_trips: int
    initial_cash: Decimal
    final_equity: Decimal
    realized_pnl: Decimal
    fees: Decimal
    final_position: Decimal
    max_drawdown: float
    load_seconds: float
    elapsed_seconds: float
    bars_per_second: float
    database: str


def strategy_params(registry: Registry, opts: ReplayOptions) -> dict[str, Any]:
    """The strategy's params with ``--quantity`` folded in, validated before anything runs."""
    cls = registry.get("strategy", opts.strategy)
    params = dict(opts.params)
    if opts.quantity is not None:
        if "quantity" not in cls.plugin_params:
            raise InvalidParams(opts.strategy, "quantity", "this strategy takes no quantity")
        params["quantity"] = str(opts.quantity)
    cls.validate_params(params)
    return params


async def run_replay(bars: list[Bar], opts: ReplayOptions,
                     registry: Registry | None = None, load_seconds: float = 0.0
                     ) -> ReplaySummary:
    registry = registry or Registry.discover()
    params = strategy_params(registry, opts)
    with tempfile.TemporaryDirectory(prefix="lts-replay-") as tmp:
        url = opts.db_url or f"sqlite+aiosqlite:///{Path(tmp) / 'replay.db'}"
        check_url(url)
        await upgrade_to_head(url)
        db = make_engine(url, sqlite_synchronous="OFF")
        try:
            return await _replay(db, url, bars, opts, registry, params, load_seconds)
        finally:
            await db.dispose()


async def _replay(db: Any, url: str, bars: list[Bar], opts: ReplayOptions, registry: Registry,
                  params: dict[str, Any], load_seconds: float) -> ReplaySummary:
    broker_params = {"fees_bps": str(opts.fees_bps), "slippage_bps": str(opts.slippage_bps),
                     "fill_at": opts.fill_at}
    registry.validate("broker", "paper", broker_params)
    spec = repo.PortfolioSpec(
        name=f"replay {opts.symbol} {opts.strategy} {time.time_ns()}", initial_cash=opts.cash,
        portfolio_plugin=opts.portfolio_plugin,
        assets=(repo.AssetSpec(symbol=opts.symbol, strategy_plugin=opts.strategy,
                               strategy_params=params, broker_plugin="paper",
                               broker_params=broker_params, pipeline_plugin="replay",
                               tick_size=REPLAY_TICK),))
    pid = await repo.create_portfolio(db, spec)
    spec = await repo.load_portfolio(db, pid)
    clock = ReplayClock(bars[0].ts_event if bars else 0)
    bus = InProcessBus()
    journal = Journal(db, inline_writes=True)  # a backtest: nothing else waits on the loop
    risk = opts.risk or RiskLimits(max_orders_per_second=None, max_open_orders=None)
    async with anyio.create_task_group() as tg:
        await tg.start(journal.run)
        feeds = FeedHub(registry, bus, clock, tg)
        feeds.provide("replay", {}, opts.symbol, ReplayFeed(bars=bars))
        ctx = RunnerContext(registry=registry, bus=bus, journal=journal, db=db, feeds=feeds,
                            clock=clock, durable=False, mailbox_capacity=16_384,
                            default_risk=risk)
        runner = PortfolioRunner(spec, ctx)
        curve = runner.curve = EquityRecorder()
        if opts.progress:
            tg.start_soon(_progress, runner, len(bars))
        freeze_startup_heap()
        thresholds = gc.get_threshold()
        # a backtest allocates fast and keeps little: collect the young generation 100 times
        # less often (measured: about 8% of a replay's time went to young collections)
        gc.set_threshold(_REPLAY_GC_THRESHOLD, *thresholds[1:])
        started = time.perf_counter()
        try:
            await runner.run()
        finally:
            gc.set_threshold(*thresholds)
            unfreeze_heap()
        await journal.flush()
        elapsed = time.perf_counter() - started
        tg.cancel_scope.cancel()
    om = runner.orders
    assert om is not None
    ledger = runner.ledger
    pos = ledger.positions[opts.symbol]
    if opts.progress:
        print(file=sys.stderr)
    return ReplaySummary(
        symbol=opts.symbol, strategy=opts.strategy, bars=runner.bars,
        orders=om.orders_created, denied=om.orders_denied, fills=ledger.fills,
        round_trips=ledger.round_trips, initial_cash=opts.cash, final_equity=ledger.equity(),
        realized_pnl=ledger.realized_pnl(), fees=ledger.fees(), final_position=pos.quantity,
        max_drawdown=round(curve.max_drawdown(), 6), load_seconds=round(load_seconds, 3),
        elapsed_seconds=round(elapsed, 3),
        bars_per_second=round(len(bars) / elapsed if elapsed else 0.0, 1),
        database=url if opts.db_url else "temporary")


async def _progress(runner: PortfolioRunner, total: int) -> None:
    width = 30
    while True:
        done = min(runner.bars, total)
        filled = int(width * done / total) if total else width
        print(f"\r[{'#' * filled}{'.' * (width - filled)}] {done:,}/{total:,} bars",
              end="", file=sys.stderr, flush=True)
        await anyio.sleep(0.2)


async def load_and_replay(path: Path, opts: ReplayOptions) -> ReplaySummary:
    registry = Registry.discover()
    strategy_params(registry, opts)  # fail on a bad strategy or param before loading data
    t0 = time.perf_counter()
    bars = await anyio.to_thread.run_sync(load_bars, path, opts.symbol)
    return await run_replay(bars, opts, registry, time.perf_counter() - t0)
