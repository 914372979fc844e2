"""Replay (backtest): the live engine's code over historical bars, on a replay clock.

Where it sits: under ``python -m lts.engine replay`` (:mod:`lts.cli.replay_command`), the sweeps
(:mod:`lts.backtest.sweep`) and the self-test. The same bus, strategy, portfolio plugin, risk
checks, order manager, paper broker, ledger and journal run as in live trading; only the clock
(the bar's time), the mailbox policy (never drop) and the write-ahead wait (orders are
journaled, but the broker does not wait for the commit) differ. Every symbol of the market data
is an asset of one portfolio; their bars reach it through one feed, merged in time order.

Without ``db_url`` a backtest has no database at all: the portfolio is built in memory, its
order manager keeps only the fills (:mod:`lts.engine.backtest_book`) and SQLAlchemy is never
imported (a quarter of a second of start-up). With ``db_url`` every order, event and fill is
journaled there, as live.

Results: a :class:`ReplayResult` (the summary, the fills, the equity after every bar), and with
``report`` a report directory (:mod:`lts.backtest.report`).
"""

import gc
import heapq
import logging
import sys
import time
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from itertools import chain, islice
from operator import attrgetter
from typing import TYPE_CHECKING, Any, Protocol

import anyio
import anyio.lowlevel
import msgspec

from lts.backtest.borrow import BorrowCost
from lts.bus import InProcessBus
from lts.domain.clock import Clock
from lts.domain.market import Bar
from lts.domain.orders import Fill
from lts.domain.performance import EquityCurve, Statistics, compute_statistics
from lts.domain.portfolio_spec import AssetSpec, PortfolioSpec
from lts.domain.trades import Trade, round_trips
from lts.engine.backtest_book import BacktestBook
from lts.engine.clock import ReplayClock
from lts.engine.equity_recorder import EquityRecorder
from lts.engine.feeds import FeedHub
from lts.engine.heap import freeze_startup_heap, unfreeze_heap
from lts.engine.runner import PortfolioRunner, RunnerContext
from lts.errors import DataError, InvalidParams
from lts.plugins.registry import Registry
from lts.settings import RiskLimits

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

__all__ = ["REPLAY_TICK", "BarsInMemory", "Market", "ReplayOptions", "ReplayResult",
           "ReplaySummary", "run_replay", "strategy_params"]

log = logging.getLogger("lts.replay")

_REPLAY_GC_THRESHOLD = 70_000
_BATCH = 4096

#: The price grid of a replayed instrument whose data says nothing finer: fine enough for any
#: data file's prices to stay as written (a coin at 0.0000123 fills at 0.0000123).
REPLAY_TICK = Decimal("0.00000001")


class Market(Protocol):
    """Historical bars of one or several symbols (:class:`lts.backtest.data.MarketData`, or
    :class:`BarsInMemory`)."""

    symbols: list[str]

    def batches(self, batch: int = _BATCH, *, held: bool = True) -> Iterator[list[Bar]]:
        """Every symbol's bars merged in time order (may block: read in a worker thread).
        ``held=False``: the caller drops each batch once used (a replay), so bars read from a
        file need not share their float objects (memory for a caller that keeps them)."""
        ...

    def bar_count(self, symbol: str | None = None) -> int | None:
        """Bars of one symbol, or of all (None: unknown before they are read)."""
        ...

    def tick_size(self, symbol: str) -> Decimal: ...


class BarsInMemory:
    """Bars already loaded, per symbol (tests, benches, the self-test)."""

    def __init__(self, bars: Mapping[str, Sequence[Bar]],
                 tick_sizes: Mapping[str, Decimal] | None = None) -> None:
        self._bars = bars
        self._ticks = dict(tick_sizes or {})
        self.symbols = sorted(bars)

    def batches(self, batch: int = _BATCH, *, held: bool = True) -> Iterator[list[Bar]]:
        if len(self._bars) == 1:
            (only,) = self._bars.values()
            for i in range(0, len(only), batch):
                yield list(only[i:i + batch])
            return
        merged = heapq.merge(*(self._bars[s] for s in self.symbols), key=attrgetter("ts_event"))
        while chunk := list(islice(merged, batch)):
            yield chunk

    def bar_count(self, symbol: str | None = None) -> int:
        if symbol is not None:
            return len(self._bars[symbol])
        return sum(len(b) for b in self._bars.values())

    def tick_size(self, symbol: str) -> Decimal:
        return self._ticks.get(symbol, REPLAY_TICK)


@dataclass
class ReplayOptions:
    strategy: str
    params: dict[str, Any] = field(default_factory=dict)
    symbol: str | None = None  # the symbol of a plain list of bars
    cash: Decimal = Decimal(100_000)
    quantity: Decimal | None = None
    fraction: Decimal | None = None  # the portfolio plugin's share of equity per position
    fees_bps: Decimal | None = None  # maker and taker alike (or costs' maker_bps, taker_bps)
    slippage_bps: Decimal = Decimal(0)
    #: further paper-venue costs (maker_bps, taker_bps, fee_per_order, min_fee_per_order)
    costs: dict[str, Any] = field(default_factory=dict)
    fill_at: str = "next_open"
    borrow_bps: Decimal | None = None  # annual rate on shorts' value, charged daily
    tick_size: Decimal | None = None  # every symbol's; else the data's
    lot_size: Decimal | None = None
    min_quantity: Decimal | None = None
    min_notional: Decimal | None = None
    db_url: str | None = None
    portfolio_plugin: str = "fixed_fraction"
    risk: RiskLimits | None = None
    progress: bool = False


class ReplaySummary(msgspec.Struct):
    symbols: list[str]
    strategy: str
    bars: int
    orders: int
    denied: int
    unsized: int  # signals or targets that could not be sized (less than one lot, no price)
    fills: int
    round_trips: int
    initial_cash: Decimal
    final_equity: Decimal
    realized_pnl: Decimal
    fees: Decimal
    borrow_costs: Decimal
    final_positions: dict[str, Decimal]
    max_drawdown: float
    statistics: Statistics | None  # None: no bar was replayed
    load_seconds: float
    elapsed_seconds: float
    bars_per_second: float
    database: str


@dataclass
class ReplayResult:
    summary: ReplaySummary
    fills: list[Fill]
    curve: EquityCurve | None  # equity after every bar's fills (None: no bar)
    trades: list[Trade]
    portfolio_id: int


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


def _market(data: Market | Sequence[Bar] | Mapping[str, Sequence[Bar]],
            opts: ReplayOptions) -> Market:
    if isinstance(data, Mapping):
        return BarsInMemory(data)
    if isinstance(data, Sequence):
        if opts.symbol is None:
            raise InvalidParams("replay", "symbol", "bars without a symbol to trade them as")
        return BarsInMemory({opts.symbol: data})
    return data


async def run_replay(data: Market | Sequence[Bar] | Mapping[str, Sequence[Bar]],
                     opts: ReplayOptions, registry: Registry | None = None,
                     load_seconds: float = 0.0) -> ReplayResult:
    registry = registry or Registry.discover(lazy=True)
    params = strategy_params(registry, opts)
    market = _market(data, opts)
    if not market.symbols:
        raise DataError("no market data")
    spec = _portfolio(market, opts, registry, params)
    if opts.db_url is None:  # in memory
        return await _replay(None, spec, market, opts, registry, load_seconds)
    from lts.persistence import repositories as repo  # only for a database to keep
    from lts.persistence.db import check_url, make_engine, unreachable
    from lts.persistence.migrations import upgrade_to_head

    check_url(opts.db_url)
    db = make_engine(opts.db_url, sqlite_synchronous="OFF")
    try:
        try:
            await upgrade_to_head(opts.db_url)  # migrated as the engine's
            spec = await repo.load_portfolio(db, await repo.create_portfolio(db, spec))
        except Exception as exc:
            raise (unreachable(opts.db_url, exc) or exc) from None
        return await _replay(db, spec, market, opts, registry, load_seconds)
    finally:
        await db.dispose()


def _portfolio(market: Market, opts: ReplayOptions, registry: Registry,
               params: dict[str, Any]) -> PortfolioSpec:
    """The backtest's portfolio: every symbol an asset, traded on the paper venue; its plugins'
    params validated before anything runs. Ids as a new database would give them."""
    broker_params = {"slippage_bps": str(opts.slippage_bps), "fill_at": opts.fill_at,
                     **{k: str(v) for k, v in opts.costs.items()}}
    if opts.fees_bps is not None:
        broker_params["fees_bps"] = str(opts.fees_bps)
    registry.validate("broker", "paper", broker_params)
    portfolio_params = {} if opts.fraction is None else {"fraction": str(opts.fraction)}
    registry.validate("portfolio", opts.portfolio_plugin, portfolio_params)
    assets = tuple(AssetSpec(
        id=i, symbol=symbol, strategy_plugin=opts.strategy, strategy_params=params,
        broker_plugin="paper", broker_params=broker_params, pipeline_plugin="replay",
        pipeline_params={"path": ""}, tick_size=opts.tick_size or market.tick_size(symbol),
        lot_size=opts.lot_size or Decimal(1), min_quantity=opts.min_quantity,
        min_notional=opts.min_notional)
        for i, symbol in enumerate(market.symbols, start=1))
    name = f"replay {','.join(market.symbols)[:60]} {opts.strategy} {time.time_ns()}"
    return PortfolioSpec(id=1, name=name, initial_cash=opts.cash,
                         portfolio_plugin=opts.portfolio_plugin,
                         portfolio_params=portfolio_params, assets=assets)


async def _replay(db: "AsyncEngine | None", spec: PortfolioSpec, market: Market,
                  opts: ReplayOptions, registry: Registry,
                  load_seconds: float) -> ReplayResult:
    assert spec.id is not None
    batches = market.batches(_BATCH, held=False)  # each batch is dropped once replayed
    first = next(batches, None)
    clock = ReplayClock(first[0].ts_event if first else 0)
    bus = InProcessBus()
    journal = None
    if db is not None:
        from lts.persistence.journal import Journal

        journal = Journal(db, inline_writes=True)  # a backtest: nothing else waits on the loop
    risk = opts.risk or RiskLimits(max_orders_per_second=None, max_open_orders=None)
    async with anyio.create_task_group() as tg:
        if journal is not None:
            await tg.start(journal.run)
        feeds = FeedHub(registry, bus, clock, tg)
        # one feed carries every symbol's bars in time order (one feed per symbol would
        # interleave them a batch at a time); the others end at once
        carrier = _MarketFeed(chain([first] if first else [], batches), len(market.symbols))
        for i, symbol in enumerate(market.symbols):
            feeds.provide("replay", {"path": ""}, symbol, carrier if i == 0 else _MarketFeed(()))
        ctx = RunnerContext(registry=registry, bus=bus, journal=journal, db=db, feeds=feeds,
                            clock=clock, durable=False, mailbox_capacity=16_384,
                            default_risk=risk)
        runner = PortfolioRunner(spec, ctx)
        curve = runner.curve = EquityRecorder()
        borrow = None
        if opts.borrow_bps:
            borrow = BorrowCost(runner.ledger, opts.borrow_bps)
            runner.on_bar_done = borrow.on_bar
        if opts.progress:
            tg.start_soon(_progress, runner, market.bar_count())
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
        if journal is not None:
            await journal.flush()
        elapsed = time.perf_counter() - started
        tg.cancel_scope.cancel()
    if opts.progress:
        print(file=sys.stderr)
    book = runner.orders.book if runner.orders is not None else None
    if isinstance(book, BacktestBook):
        fills = book.fills
    else:
        assert db is not None
        from lts.persistence.repositories import load_fills

        fills = await load_fills(db, spec.id)
    ledger = runner.ledger
    marks = {s: Decimal(repr(c)) for s, c in ledger.last.items()}
    trades = round_trips(fills, marks)
    equity = None
    statistics = None
    if len(curve):
        ts, cash, values = curve.samples()
        equity = EquityCurve(ts, cash, values, initial_cash=opts.cash)
        buy_hold = {s: (c, ledger.last[s]) for s, c in carrier.first_close.items()
                    if s in ledger.last}
        statistics = compute_statistics(equity, trades, buy_hold=buy_hold)
    summary = _summary(runner, market, opts, curve, statistics, load_seconds, elapsed)
    return ReplayResult(summary, fills, equity, trades, spec.id)


def _summary(runner: PortfolioRunner, market: Market, opts: ReplayOptions,
             curve: EquityRecorder, statistics: Statistics | None, load_seconds: float,
             elapsed: float) -> ReplaySummary:
    om, ledger = runner.orders, runner.ledger
    assert om is not None
    unsized = runner.host.unsized + int(getattr(runner.allocator, "unsized", 0))
    return ReplaySummary(
        symbols=list(market.symbols), strategy=opts.strategy, bars=runner.bars,
        orders=om.orders_created, denied=om.orders_denied, unsized=unsized,
        fills=ledger.fills, round_trips=ledger.round_trips, initial_cash=opts.cash,
        final_equity=ledger.equity(), realized_pnl=ledger.realized_pnl(), fees=ledger.fees(),
        borrow_costs=ledger.charges,
        final_positions={s: p.quantity for s, p in sorted(ledger.positions.items())},
        max_drawdown=round(curve.max_drawdown(), 6), statistics=statistics,
        load_seconds=round(load_seconds, 3),
        elapsed_seconds=round(elapsed, 3),
        bars_per_second=round(runner.bars / elapsed if elapsed else 0.0, 1),
        database=opts.db_url or "none (in memory)")


class _MarketFeed:
    """The replay feed of a backtest: the market data's merged batches (a file is read a chunk
    at a time, never held whole), read in line on the loop: a backtest's loop serves nothing
    else, and a worker thread only added hand-offs of the interpreter lock between the reader
    and the runner (measured: 6% slower on 200k bars)."""

    historical = True

    def __init__(self, batches: Iterator[list[Bar]] | Sequence[list[Bar]],
                 symbols: int = 0) -> None:
        self._batches = iter(batches)
        self._symbols = symbols
        self.first_close: dict[str, float] = {}  # for buy and hold

    async def bars(self, symbol: str, clock: Clock) -> AsyncIterator[list[Bar]]:
        batches, first = self._batches, self.first_close
        while True:
            batch = next(batches, None)  # in line: see the class docstring
            await anyio.lowlevel.checkpoint()
            if batch is None:
                return
            if len(first) < self._symbols:  # until every symbol has shown its first bar
                for bar in batch:
                    first.setdefault(bar.symbol, bar.close)
            yield batch


async def _progress(runner: PortfolioRunner, total: int | None) -> None:
    if total is None:  # not counted ahead: the bars so far
        while True:
            print(f"\r{runner.bars:,} bars", end="", file=sys.stderr, flush=True)
            await anyio.sleep(0.2)
    width = 30
    while True:
        done = min(runner.bars, total)
        filled = int(width * done / total) if total else width
        print(f"\r[{'#' * filled}{'.' * (width - filled)}] {done:,}/{total:,} bars",
              end="", file=sys.stderr, flush=True)
        await anyio.sleep(0.2)
