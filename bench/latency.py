"""Tick-to-order latency in live mode: market data published on the bus -> order at the broker.

Where it sits: the hot path of architecture §3 (feed -> bus -> portfolio runner's inbox ->
strategy -> portfolio plugin -> risk -> order manager -> journal -> broker), run with the real
components: ``FeedHub``, ``InProcessBus``, the runner's ``PortfolioInbox``, ``PortfolioRunner``
with a ``RunnerContext``, the real ``Journal`` on a real SQLite file (migrated with
``upgrade_to_head``), a portfolio created with ``repositories.create_portfolio``. Bench-local
plugins, registered on a discovered ``Registry``:

- ``bench_paced`` feed (provided through ``FeedHub.provide``): one bar per tick at a fixed pace,
  ``perf_counter_ns()`` stamped just before the bar is handed to the hub for publishing;
- ``bench_flip`` strategy: a signal on every bar, alternately LONG / FLAT with a fixed quantity,
  so every bar makes exactly one order (``fixed_fraction`` passes the quantity through; the
  signal's reason, which becomes the order's tag, is the bar's time, so each order is matched
  to its tick);
- ``bench_recorder`` broker (the venue stand-in), a broker of the async contract
  (``lts.plugins.broker.Broker``: ``run``, ``submit``, ``cancel``, ``query_order``, ...) and not
  a simulated venue, so the runner hands every order to it in a task of the portfolio's task
  group, as it would to a real exchange's adapter: ``submit()`` stamps ``perf_counter_ns()``
  first thing, returns the venue id (the acknowledgement) and pushes the fill to the runner's
  inbox on the next loop iteration, as a venue's execution report would come.

Ticks are paced (default 1,200 at 250/s after 100 warm-up ticks) so each order is measured alone.
Cases, interleaved in every repeat so drift of the shared machine hits them alike:

  direct      the same strategy -> ``await broker.submit()`` in a bare paced loop (no bus,
              risk, journal, task)
  asyncio hop the direct call in a second task woken by an asyncio.Event: the platform's floor
              for any design that hands market data from one task to another
  bus hop     feed -> FeedHub -> bus -> mailbox -> a task that makes the direct call
  (a) engine  durable=False, SQLite WAL synchronous=NORMAL (the order is handed to the venue
              at once; its row is written behind)
  (a) +INFO   the same with the engine's default log level (INFO) and its log set-up (the
              loop queues each record; a listener thread formats it and writes it to a file)
  (b) engine  durable=True, SQLite WAL synchronous=FULL: write-ahead, the order row is committed
              before the venue sees it (the commit resolves the insert's future, the runner
              learns it through its inbox and hands the order over then)

The engine cases also stamp where the time goes (strategy entry, journal enqueue, the insert's
future resolved); the journal is subclassed only to stamp its ``insert_order`` future. The event
loop is the engine's (uvloop when installed, like ``python -m lts.engine``).

    python bench/latency.py [--ticks 1200] [--rate 250] [--repeat 3] [--loop auto] [--profile]
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import io
import logging
import pstats
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import anyio
import anyio.to_thread
import msgspec
from anyio.abc import TaskStatus
from machine import describe
from scale import EngineLog

from lts.bus import InProcessBus, Mailbox, Overflow
from lts.domain.clock import Clock
from lts.domain.commands import ModifyOrder
from lts.domain.events import OrderSubmitted
from lts.domain.instruments import Instrument
from lts.domain.market import Bar
from lts.domain.orders import Fill, Order, OrderRequest, OrderStatusReport, Side
from lts.domain.portfolio_spec import AssetSpec, PortfolioSpec
from lts.domain.signals import Signal, Target
from lts.domain.values import to_decimal
from lts.engine.clock import LiveClock
from lts.engine.feeds import FeedHub
from lts.engine.journal_rows import order_row, order_update_row
from lts.engine.ledger import Ledger
from lts.engine.order_manager import OrderManager
from lts.engine.risk import RiskCheck
from lts.engine.runner import PortfolioRunner, RunnerContext
from lts.errors import VenueRejected
from lts.persistence import repositories as repo
from lts.persistence.db import SqliteSynchronous, make_engine
from lts.persistence.journal import Journal
from lts.persistence.migrations import upgrade_to_head
from lts.plugins.base import PluginBase, PluginParams
from lts.plugins.broker import Capabilities, ExecutionReport, ReportSink
from lts.plugins.portfolio.fixed_fraction import FixedFraction
from lts.plugins.registry import Registry
from lts.settings import RiskLimits

SYMBOL = "LAT"
BASE_TS = 1_700_000_000 * 1_000_000_000
FEED_PARAMS: dict[str, Any] = {"bench": "latency"}
PRICE_STEP = Decimal("0.01")
perf_ns = time.perf_counter_ns


# -- probe: where each tick's stamps go ---------------------------------------------------------

@dataclass
class Probe:
    """Stamps per tick (keyed by the bar's ``ts_event``), all ``perf_counter_ns``."""

    pub: dict[int, int] = field(default_factory=dict)  # bar handed to the hub / bare loop
    strat: dict[int, int] = field(default_factory=dict)  # strategy.on_bar entered
    enq: dict[int, int] = field(default_factory=dict)  # order row enqueued on the journal
    resume: dict[int, int] = field(default_factory=dict)  # the insert's future resolved
    sub: dict[int, int] = field(default_factory=dict)  # broker.submit entered
    backlog_at_tick: dict[int, int] = field(default_factory=dict)  # journal backlog at publish
    last: dict[str, float] = field(default_factory=dict)  # last close per symbol (fill price)
    cur: int = 0  # ts_event of the bar being decided


PROBE = Probe()


# -- bench plugins -----------------------------------------------------------------------------

class FlipParams(PluginParams):
    quantity: Decimal = Decimal(1)


class FlipStrategy(PluginBase):
    """A signal on every bar: LONG, FLAT, LONG, ... with a fixed quantity; the signal's reason
    (the order's tag) is the bar's time."""

    Params = FlipParams
    plugin_name = "bench_flip"

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self._qty: Decimal = self.params.quantity
        self._long = False

    def on_bar(self, bar: Bar) -> Signal:
        ts = bar.ts_event
        PROBE.strat[ts] = perf_ns()
        PROBE.cur = ts
        PROBE.last[bar.symbol] = bar.close
        self._long = not self._long
        return Signal(bar.symbol, Target.LONG if self._long else Target.FLAT, ts,
                      self._qty, str(ts))


class RecordingBroker(PluginBase):
    """The venue stand-in (the async broker contract, not simulated): stamps the hand-over in
    ``submit``, acknowledges by returning, and reports the fill on the next loop iteration."""

    plugin_name = "bench_recorder"
    capabilities = Capabilities()  # not simulated: the runner calls it in a task

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self.name = "bench_recorder"
        self._reports: ReportSink | None = None
        self._clock: Clock | None = None
        self._trades = 0
        self.received = 0

    async def run(self, reports: ReportSink, clock: Clock, *,
                  task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        self._reports, self._clock = reports, clock
        task_status.started()

    async def instruments(self, symbols: Sequence[str]) -> Mapping[str, Instrument]:
        return {}

    async def submit(self, order: Order) -> str | None:
        PROBE.sub[int(order.tag)] = perf_ns()
        self.received += 1
        asyncio.get_running_loop().call_soon(self._fill, order)
        return f"rec-{order.client_order_id}"

    def _fill(self, order: Order) -> None:
        assert self._reports is not None
        assert self._clock is not None
        self._trades += 1
        self._reports(Fill(order.portfolio_id, order.client_order_id, self.name,
                           f"t{self._trades}", order.symbol, order.side, order.quantity,
                           to_decimal(PROBE.last.get(order.symbol, 100.0), PRICE_STEP),
                           Decimal(0), self._clock.now_ns()))

    async def cancel(self, order: Order) -> None:
        pass  # nothing rests at this venue: every order fills at once

    async def modify(self, order: Order, change: ModifyOrder) -> None:
        raise VenueRejected("modify not supported")

    async def query_order(self, order: Order) -> OrderStatusReport | None:
        return None

    async def open_orders(self) -> list[OrderStatusReport]:
        return []

    async def fills(self, since_ns: int) -> list[Fill]:
        return []

    async def balances(self) -> dict[str, Decimal]:
        return {}

    async def positions(self) -> dict[str, Decimal]:
        return {}


class _NullReports:
    """A report sink that drops everything (the baselines have no runner)."""

    def __call__(self, report: ExecutionReport) -> None:
        pass

    def threadsafe(self, report: ExecutionReport) -> None:
        pass


class PacedFeed:
    """A live feed: ``warmup + ticks`` bars at ``rate`` per second, stamped when handed over."""

    historical = False

    def __init__(self, ticks: int, rate: float,
                 backlog: Callable[[], int] | None = None) -> None:
        self.ticks = ticks
        self.period = 1.0 / rate
        self.backlog = backlog
        self.done = anyio.Event()

    async def bars(self, symbol: str, clock: Clock) -> AsyncIterator[Sequence[Bar]]:
        async for bar in paced_bars(symbol, self.ticks, self.period):
            if self.backlog is not None:
                PROBE.backlog_at_tick[bar.ts_event] = self.backlog()
            PROBE.pub[bar.ts_event] = perf_ns()
            yield (bar,)
        self.done.set()


async def paced_bars(symbol: str, n: int, period: float) -> AsyncIterator[Bar]:
    next_at = anyio.current_time() + 0.05  # let the subscriber settle
    price = 100.0
    for i in range(n):
        next_at += period
        await anyio.sleep(max(0.0, next_at - anyio.current_time()))
        price = 100.0 + (i % 20) * 0.01
        yield Bar(symbol, BASE_TS + i, price, price + 0.02, price - 0.02, price, 1_000.0)


class TimedJournal(Journal):
    """The real journal; the future of each ``insert_order`` is stamped when it resolves (the
    write-ahead commit, seen by the loop) for the tick being decided."""

    def insert_order(self, row: Any, *, fence: int | None = None) -> asyncio.Future[None]:
        future = super().insert_order(row, fence=fence)
        tick = PROBE.cur
        PROBE.enq[tick] = perf_ns()
        # registered before the order manager's own callback, so it runs just before it
        future.add_done_callback(lambda _f: PROBE.resume.__setitem__(tick, perf_ns()))
        return future


# -- the cases ---------------------------------------------------------------------------------

@dataclass
class RunResult:
    lat_us: list[float]
    ticks: int
    orders: int
    segments: dict[str, list[float]] = field(default_factory=dict)
    busy_ticks: int = 0
    durable_share: list[float] = field(default_factory=list)  # durable wait / latency, per tick
    gc_pauses_us: list[float] = field(default_factory=list)


def _registry() -> Registry:
    reg = Registry.discover()
    reg.register("strategy", "bench_flip", FlipStrategy)
    reg.register("broker", "bench_recorder", RecordingBroker)
    return reg


def _direct_order(n: int, sig: Signal, clock: LiveClock) -> Order:
    side = Side.BUY if sig.target is Target.LONG else Side.SELL
    assert sig.quantity is not None
    return Order(client_order_id=f"1-{n}", portfolio_id=1, symbol=sig.symbol, side=side,
                 quantity=sig.quantity, tag=sig.reason, ts_init=clock.now_ns())


async def _null_broker(clock: LiveClock) -> RecordingBroker:
    broker = RecordingBroker()
    await broker.run(_NullReports(), clock)
    return broker


async def run_direct(ticks: int, rate: float) -> None:
    """Baseline: the same strategy -> broker call in a bare paced loop."""
    clock = LiveClock()
    strategy = FlipStrategy(quantity="1")
    broker = await _null_broker(clock)
    n = 0
    async for bar in paced_bars(SYMBOL, ticks, 1.0 / rate):
        PROBE.pub[bar.ts_event] = perf_ns()
        sig = strategy.on_bar(bar)
        if sig is not None:
            n += 1
            await broker.submit(_direct_order(n, sig, clock))


async def run_asyncio_hop(ticks: int, rate: float) -> None:
    """The platform's floor: the direct call, made in a second task woken by an asyncio.Event
    (no LTS code between the two tasks)."""
    clock = LiveClock()
    strategy = FlipStrategy(quantity="1")
    broker = await _null_broker(clock)
    ready = asyncio.Event()
    inbox: list[Bar] = []

    async def consume() -> None:
        n = 0
        while True:
            await ready.wait()
            ready.clear()
            bars, inbox[:] = list(inbox), []
            for bar in bars:
                sig = strategy.on_bar(bar)
                if sig is not None:
                    n += 1
                    await broker.submit(_direct_order(n, sig, clock))

    async with anyio.create_task_group() as tg:
        tg.start_soon(consume)
        async for bar in paced_bars(SYMBOL, ticks, 1.0 / rate):
            PROBE.pub[bar.ts_event] = perf_ns()
            inbox.append(bar)
            ready.set()
        await anyio.sleep(0.05)
        tg.cancel_scope.cancel()


async def run_bus_hop(ticks: int, rate: float) -> None:
    """Baseline: the real feed hub, bus and mailbox, then the direct call in the consumer."""
    clock = LiveClock()
    bus = InProcessBus()
    strategy = FlipStrategy(quantity="1")
    broker = await _null_broker(clock)
    feed = PacedFeed(ticks, rate)
    mailbox: Mailbox[Any] = Mailbox(10_000, Overflow.DROP_OLDEST, name="bench")

    async def consume() -> None:
        n = 0
        while True:
            for bar in await mailbox.get_batch():
                if type(bar) is not Bar:
                    continue
                sig = strategy.on_bar(bar)
                if sig is not None:
                    n += 1
                    await broker.submit(_direct_order(n, sig, clock))

    async with anyio.create_task_group() as tg:
        hub = FeedHub(_registry(), bus, clock, tg)
        hub.provide("bench_paced", FEED_PARAMS, SYMBOL, feed)
        lease = hub.acquire("bench_paced", FEED_PARAMS, SYMBOL, mailbox)
        tg.start_soon(consume)
        await feed.done.wait()
        await anyio.sleep(0.05)
        lease.release()
        tg.cancel_scope.cancel()


async def run_engine(db_file: Path, ticks: int, rate: float, *, durable: bool,
                     synchronous: SqliteSynchronous) -> dict[str, float]:
    """The engine's path: feed hub, bus, PortfolioRunner, risk, order manager, journal."""
    url = f"sqlite+aiosqlite:///{db_file}"
    db = make_engine(url, sqlite_synchronous=synchronous)
    try:
        registry = _registry()
        spec = PortfolioSpec(
            name="latency", initial_cash=Decimal(10_000_000),
            assets=(AssetSpec(symbol=SYMBOL, strategy_plugin="bench_flip",
                                   strategy_params={"quantity": "1"},
                                   broker_plugin="bench_recorder",
                                   pipeline_plugin="bench_paced", pipeline_params=FEED_PARAMS),))
        pid = await repo.create_portfolio(db, spec)
        spec = await repo.load_portfolio(db, pid)
        clock = LiveClock()
        bus = InProcessBus()
        journal = TimedJournal(db)
        feed = PacedFeed(ticks, rate, backlog=lambda: journal.backlog)
        # The default risk limits, but the order rate check allows the paced rate.
        risk = RiskLimits(max_orders_per_second=max(50, int(rate * 4)))
        async with anyio.create_task_group() as tg:
            await tg.start(journal.run)
            hub = FeedHub(registry, bus, clock, tg)
            hub.provide("bench_paced", FEED_PARAMS, SYMBOL, feed)
            ctx = RunnerContext(registry=registry, bus=bus, journal=journal, db=db, feeds=hub,
                                clock=clock, durable=durable, default_risk=risk)
            runner = PortfolioRunner(spec, ctx)
            await tg.start(runner.run)
            await feed.done.wait()
            await anyio.sleep(0.05)
            await journal.flush()
            tg.cancel_scope.cancel()
        om = runner.orders
        assert om is not None
        return {"commits": journal.commits, "denied": om.orders_denied,
                "written": journal.records_written, "failed": journal.records_failed,
                "anomalies": om.anomalies}
    finally:
        await db.dispose()


# -- measurement helpers -----------------------------------------------------------------------

def pct(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    i = min(len(sorted_values) - 1, max(0, round(q / 100 * len(sorted_values)) - 1))
    return sorted_values[i]


def summary(values: list[float]) -> dict[str, float]:
    s = sorted(values)
    return {"p50": pct(s, 50), "p90": pct(s, 90), "p99": pct(s, 99),
            "max": s[-1] if s else float("nan")}


class GcPauses:
    """Durations of the cyclic garbage collector's passes while active."""

    def __init__(self) -> None:
        self.pauses_us: list[float] = []
        self._t = 0

    def _cb(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._t = perf_ns()
        else:
            self.pauses_us.append((perf_ns() - self._t) / 1e3)

    def __enter__(self) -> GcPauses:
        gc.callbacks.append(self._cb)
        return self

    def __exit__(self, *exc: object) -> None:
        gc.callbacks.remove(self._cb)


def collect(warmup: int, engine: bool, durable: bool = False) -> RunResult:
    p = PROBE
    keys = sorted(p.pub)[warmup:]
    lat = [(p.sub[k] - p.pub[k]) / 1e3 for k in keys if k in p.sub]
    res = RunResult(lat, len(keys), len(lat))
    if engine:
        seg: dict[str, list[float]] = {"deliver": [], "decide": [], "durable": [], "hand-over": []}
        for k in keys:
            if k not in p.sub or k not in p.strat or k not in p.enq:
                continue
            seg["deliver"].append((p.strat[k] - p.pub[k]) / 1e3)
            seg["decide"].append((p.enq[k] - p.strat[k]) / 1e3)
            after = p.enq[k]
            if durable and k in p.resume:
                after = p.resume[k]
                seg["durable"].append((p.resume[k] - p.enq[k]) / 1e3)
                res.durable_share.append((p.resume[k] - p.enq[k]) / (p.sub[k] - p.pub[k]))
            seg["hand-over"].append((p.sub[k] - after) / 1e3)
        res.segments = {k: v for k, v in seg.items() if v}
        res.busy_ticks = sum(1 for k in keys if p.backlog_at_tick.get(k, 0) > 0)
    return res


def reset_probe() -> None:
    global PROBE
    PROBE = Probe()


async def commit_floors(directory: Path, n: int = 300) -> dict[str, dict[str, float]]:
    """One-row insert + commit, WAL + synchronous=FULL, on the same disk, three routes:
    stdlib sqlite3 inline; stdlib sqlite3 in one worker-thread hop per commit; and the journal's
    route, SQLAlchemy ``AsyncConnection`` over aiosqlite (a thread hop per statement)."""
    sql = "INSERT INTO t (coid, qty, ts) VALUES (?, ?, ?)"
    con = sqlite3.connect(directory / "raw.db", isolation_level=None, check_same_thread=False)
    out: dict[str, dict[str, float]] = {}
    try:
        con.execute("PRAGMA journal_mode=WAL")
        con.execute("PRAGMA synchronous=FULL")
        con.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, coid TEXT, qty TEXT, ts INTEGER)")

        def commit_one(i: int) -> None:
            con.execute("BEGIN")
            con.execute(sql, (f"1-{i}", "1", i))
            con.execute("COMMIT")

        for name, hop in (("sqlite3 inline", False), ("sqlite3, one thread hop", True)):
            lat = []
            for i in range(n):
                t = perf_ns()
                if hop:
                    await anyio.to_thread.run_sync(commit_one, i)
                else:
                    commit_one(i)
                lat.append((perf_ns() - t) / 1e3)
            out[name] = summary(lat)
    finally:
        con.close()
    db = make_engine(f"sqlite+aiosqlite:///{directory / 'raw.db'}", sqlite_synchronous="FULL")
    try:
        lat = []
        async with db.connect() as conn:
            for i in range(n):
                t = perf_ns()
                async with conn.begin():
                    await conn.exec_driver_sql(sql, (f"2-{i}", "1", i))
                lat.append((perf_ns() - t) / 1e3)
        out["SQLAlchemy async + aiosqlite"] = summary(lat)
    finally:
        await db.dispose()
    return out


# -- main --------------------------------------------------------------------------------------

CASES = ("direct", "asyncio hop", "bus hop", "(a) engine", "(a) +INFO", "(b) engine")


async def one_case(case: str, tmp: Path, template: Path, run: int, ticks: int, rate: float,
                   log_file: Path) -> tuple[RunResult, dict[str, float]]:
    reset_probe()
    gc.collect()  # every case starts from the same heap state
    total = ticks + WARMUP
    info: dict[str, float] = {}
    engine_log: EngineLog | None = None
    with GcPauses() as gcp:
        if case == "direct":
            await run_direct(total, rate)
        elif case == "asyncio hop":
            await run_asyncio_hop(total, rate)
        elif case == "bus hop":
            await run_bus_hop(total, rate)
        else:
            db_file = tmp / f"run{run}-case{CASES.index(case)}.db"
            shutil.copy(template, db_file)
            if case == "(a) +INFO":
                engine_log = EngineLog(log_file, "INFO")
            try:
                durable = case.startswith("(b)")
                info = await run_engine(db_file, total, rate, durable=durable,
                                        synchronous="FULL" if durable else "NORMAL")
            finally:
                if engine_log is not None:
                    engine_log.close()
                    logging.getLogger().setLevel(logging.WARNING)
    res = collect(WARMUP, engine=case.startswith("("), durable=case.startswith("(b)"))
    res.gc_pauses_us = gcp.pauses_us
    return res, info


WARMUP = 100


def fmt(s: dict[str, float]) -> str:
    return (f"p50 {s['p50']:8.1f}  p90 {s['p90']:8.1f}  p99 {s['p99']:8.1f}  "
            f"max {s['max']:9.1f} µs")


async def amain(args: argparse.Namespace) -> int:
    logging.getLogger("alembic").setLevel(logging.WARNING)
    with tempfile.TemporaryDirectory(prefix="lts-latency-") as tmp_name:
        tmp = Path(tmp_name)
        template = tmp / "template.db"
        t = time.perf_counter()
        await upgrade_to_head(f"sqlite+aiosqlite:///{template}")
        print(f"schema migrated in {time.perf_counter() - t:.2f}s (copied for every engine run)")
        floors = await commit_floors(tmp)
        print("floor: one-row insert + commit, WAL, synchronous=FULL, same disk:")
        for name, f in floors.items():
            print(f"  {name:<30} {fmt(f)}")
        floor = floors["sqlite3 inline"]
        log_file = tmp / "engine.log"

        results: dict[str, list[RunResult]] = {c: [] for c in CASES}
        infos: dict[str, list[dict[str, float]]] = {c: [] for c in CASES}
        for run in range(args.repeat):
            for case in CASES:
                res, info = await one_case(case, tmp, template, run, args.ticks, args.rate,
                                           log_file)
                results[case].append(res)
                infos[case].append(info)
                s = summary(res.lat_us)
                extra = ""
                if info:
                    extra = (f"; commits {info['commits']:.0f}, denied {info['denied']:.0f}, "
                             f"fill anomalies {info['anomalies']:.0f}, journal busy at "
                             f"{res.busy_ticks} tick(s)")
                gcs = res.gc_pauses_us
                print(f"run {run + 1} {case:<11} {fmt(s)}  ({res.orders}/{res.ticks} orders"
                      f"{extra}; gc {len(gcs)} passes, longest "
                      f"{max(gcs, default=0):.0f} µs)")
        if log_file.exists():
            lines = sum(1 for _ in log_file.open())
            print(f"(a) +INFO wrote {lines:,} log lines "
                  f"({lines / (args.repeat * args.ticks + args.repeat * WARMUP):.1f} per tick)")

        print()
        print(f"median over {args.repeat} runs of {args.ticks} paced ticks at {args.rate:g}/s "
              f"(after {WARMUP} warm-up ticks), tick published -> order at the broker:")
        med: dict[str, dict[str, float]] = {}
        for case in CASES:
            per = [summary(r.lat_us) for r in results[case]]
            med[case] = {k: statistics.median(p[k] for p in per) for k in per[0]}
            print(f"  {case:<11} {fmt(med[case])}")
        print("engine overhead over the direct call (median p50 / p99): "
              + ", ".join(f"{c} +{med[c]['p50'] - med['direct']['p50']:.1f} / "
                          f"+{med[c]['p99'] - med['direct']['p99']:.1f} µs"
                          for c in CASES[1:]))

        print()
        print("where the time goes (median over runs of each segment's p50 / p99, µs):")
        print("  deliver = published -> strategy.on_bar (hub, bus, inbox, loop wake-up); "
              "decide = strategy,\n  allocator, risk, order, journal enqueue; durable = enqueue "
              "-> the insert's future resolved\n  ((b) only: the commit); hand-over = (a) "
              "enqueue, (b) resolved -> broker.submit: (b) the\n  write-ahead outcome through "
              "the inbox and the runner's next turn, then state, journal update,\n  order "
              "event, logging, the venue call's task")
        for case in (c for c in CASES if c.startswith("(")):
            segs = results[case][0].segments
            parts = []
            for name in segs:
                p50 = statistics.median(summary(r.segments[name])["p50"] for r in results[case])
                p99 = statistics.median(summary(r.segments[name])["p99"] for r in results[case])
                parts.append(f"{name} {p50:.1f} / {p99:.1f}")
            print(f"  {case:<11} " + "; ".join(parts))

        b = results["(b) engine"]
        frac_med = statistics.median(statistics.median(r.durable_share) for r in b)
        dur_p50 = statistics.median(summary(r.segments["durable"])["p50"] for r in b)
        print(f"(b): the durable commit wait is {frac_med:.0%} of each order's latency (median "
              f"per order); its p50 {dur_p50:.0f} µs vs the raw sqlite3 commit p50 "
              f"{floor['p50']:.0f} µs; (b) - (a) at p50: "
              f"{med['(b) engine']['p50'] - med['(a) engine']['p50']:.0f} µs")

        a99, b99 = med["(a) engine"]["p99"], med["(b) engine"]["p99"]
        print()
        print(f"target (a) p99 <= 50 µs: {'met' if a99 <= 50 else 'NOT met'} ({a99:.1f} µs); "
              f"target (b) p99 <= 2 ms: {'met' if b99 <= 2000 else 'NOT met'} ({b99:.1f} µs)")

        db = make_engine(f"sqlite+aiosqlite:///{template}")
        costs = component_costs(db)
        await db.dispose()
        print()
        print("the decision path's steps alone, hot, in a tight loop (µs per call, median of 5):")
        for name, us in costs:
            print(f"  {name:<32} {us:6.2f}")

        if args.profile:
            await profile_case(tmp, template, args)
    return 0


def component_costs(db: Any, n: int = 2_000, reps: int = 5) -> list[tuple[str, float]]:
    """Each step of the decision path alone, hot, in a tight loop: µs per call (median of
    ``reps`` batches of ``n``). Must run inside the event loop (the journal makes futures).
    The order manager here hands orders to a spawn that drops them (no venue task)."""
    clock = LiveClock()
    open_orders: dict[str, Order] = {}
    instruments = {SYMBOL: Instrument(SYMBOL, PRICE_STEP, Decimal(1))}
    ledger = Ledger(Decimal(10_000_000), instruments, open_orders)
    ledger.mark(SYMBOL, 100.0)
    strategy = FlipStrategy(quantity="1")
    allocator = FixedFraction()
    risk = RiskCheck(RiskLimits(max_orders_per_second=None))
    journal = Journal(db)
    bus = InProcessBus()
    broker = RecordingBroker()
    trades: dict[str, set[tuple[str, str]]] = {}
    posted: list[Any] = []
    om = OrderManager(1, journal=journal, db=db, bus=bus, clock=clock, risk=risk, ledger=ledger,
                      instruments=instruments, brokers={SYMBOL: broker},
                      open_orders=open_orders, trades=trades, durable=False,
                      next_order_number=1, next_event_seq=0, post=posted.append,
                      spawn=lambda *_a, **_k: None)
    bar = Bar(SYMBOL, BASE_TS, 100.0, 100.0, 100.0, 100.0, 1.0)
    long = Signal(SYMBOL, Target.LONG, BASE_TS, Decimal(1), "flip")
    req = OrderRequest(SYMBOL, Side.BUY, Decimal(1), tag="flip")
    order = Order.from_request(req, client_order_id="1-1", portfolio_id=1, ts_init=1)
    row = order_row(order, "bench")
    encode = msgspec.json.Encoder().encode
    orders_log = logging.getLogger("lts.orders")
    file_log = logging.getLogger("bench.latency.file")
    file_log.propagate = False
    sink = logging.StreamHandler(io.StringIO())
    sink.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    file_log.addHandler(sink)
    file_log.setLevel(logging.INFO)

    def forget() -> None:
        # The writer is not running here: drop what was enqueued, so a growing queue of
        # futures does not make the garbage collector's passes longer and longer.
        journal._queue.clear()

    def request() -> None:
        om.request(req)
        open_orders.clear()
        trades.clear()
        forget()

    def emit() -> None:
        om._emit(OrderSubmitted, order, 1)
        forget()

    def enqueue() -> None:
        journal.insert_order(row)
        forget()

    steps: list[tuple[str, Callable[[], object]]] = [
        ("strategy.on_bar (bench_flip)", lambda: strategy.on_bar(bar)),
        ("ledger.mark", lambda: ledger.mark(SYMBOL, 100.0)),
        ("fixed_fraction.allocate", lambda: allocator.allocate(long, ledger)),
        ("risk.check (default limits)", lambda: risk.check(req, ledger, instruments[SYMBOL], 0,
                                                           clock.now_ns())),
        ("Order.from_request", lambda: Order.from_request(req, client_order_id="1-2",
                                                           portfolio_id=1, ts_init=1)),
        ("order_row()", lambda: order_row(order, "bench")),
        ("journal.insert_order (enqueue)", enqueue),
        ("order_update_row()", lambda: order_update_row(order)),
        ("OrderSubmitted + JSON encode", lambda: encode(OrderSubmitted(
            1, 1, "1-1", SYMBOL, "buy", "market", Decimal(1), "SUBMITTED", Decimal(0), None,
            None, None, "", 1))),
        ("om._emit (event+journal)", emit),
        ("log.info, level WARNING", lambda: orders_log.info(
            "order %s submitted: %s %s %s %s", "1-1", "buy", Decimal(1), SYMBOL, "market")),
        ("log.info, INFO formatted", lambda: file_log.info(
            "order %s submitted: %s %s %s %s", "1-1", "buy", Decimal(1), SYMBOL, "market")),
        ("om.request whole (no venue task)", request),
    ]
    out = []
    for name, fn in steps:
        per = []
        for _ in range(reps):
            t = perf_ns()
            for _ in range(n):
                fn()
            per.append((perf_ns() - t) / n / 1e3)
        out.append((name, statistics.median(per)))
    file_log.removeHandler(sink)
    return out


async def profile_case(tmp: Path, template: Path, args: argparse.Namespace) -> None:
    """cProfile of case (a): the functions that cost most (tottime), engine files only."""
    reset_probe()
    db_file = tmp / "profile.db"
    shutil.copy(template, db_file)
    prof = cProfile.Profile()
    prof.enable()
    await run_engine(db_file, args.ticks + WARMUP, args.rate, durable=False,
                     synchronous="NORMAL")
    prof.disable()
    out = io.StringIO()
    stats = pstats.Stats(prof, stream=out).sort_stats("tottime")
    stats.print_stats(r"lts/|msgspec|asyncio|uvloop|logging|decimal|enum|sqlalchemy", 30)
    print()
    print(f"cProfile of case (a) over {args.ticks + WARMUP} ticks (profiler overhead inflates "
          "absolute times; read the shares):")
    print("\n".join(line for line in out.getvalue().splitlines()[6:] if line.strip()))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ticks", type=int, default=1_200, help="measured ticks per run")
    ap.add_argument("--rate", type=float, default=250.0, help="ticks per second")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--loop", choices=["auto", "asyncio", "uvloop"], default="auto",
                    help="event loop (auto: uvloop when installed, as the engine does)")
    ap.add_argument("--profile", action="store_true", help="also cProfile case (a)")
    args = ap.parse_args()
    use_uvloop = args.loop == "uvloop"
    if args.loop == "auto":
        try:
            import uvloop  # noqa: F401
            use_uvloop = True
        except ImportError:
            use_uvloop = False
    print(describe())
    print(f"event loop: {'uvloop' if use_uvloop else 'asyncio'}; ticks {args.ticks} (+{WARMUP} "
          f"warm-up) at {args.rate:g}/s; repeats {args.repeat}; gc enabled")
    return anyio.run(amain, args, backend_options={"use_uvloop": use_uvloop})


if __name__ == "__main__":
    sys.exit(main())
