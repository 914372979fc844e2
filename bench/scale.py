"""Scale: 500 (or 2,000) portfolios x 4 assets trading live synthetic feeds in one process.

Where it sits: the whole engine (architecture §4, §5) as ``python -m lts.engine`` runs it —
``Engine(settings).run()`` with one supervisor per portfolio, the feed hub, the portfolio
runners (each the one owner of its portfolio, fed through its inbox), risk, order manager, paper
venue and the group-commit journal on a SQLite file with WAL and ``synchronous=FULL``
(durable=True: every order row is committed before the venue sees it) — on the engine's event
loop (uvloop when installed) with the engine's default log level (INFO) and its log set-up
(the loop queues each record; a listener thread formats and writes it, here to a file as
``2> file`` would; ``--log-on-loop``: a file handler on the loop, as this bench did before issue
9). Portfolios are created beforehand with ``repositories.create_portfolio``.

Each asset: ``synthetic`` feed with ``interval=1.0`` (one bar per second), ``sma_crossover``
with fast=2 / slow=5 (so orders happen), ``paper`` venue with fees and slippage;
``fixed_fraction`` sizing at 20 % per asset. Each symbol ticks at its own phase within the
second (as ticks of different instruments arrive); ``--aligned``: every symbol's bar at the same
instant (as bar closes: the whole second's work in one burst). By default every asset has its
own symbol and seed, so 500 x 4 = 2,000 feed tasks run (the worst case: nothing is shared;
``--portfolios 2000``: 8,000 feed tasks, 8,000 bars/s); ``--universe N`` draws the symbols from
N shared ones instead (portfolios trading the same instruments share one feed task per symbol,
as the feed hub intends).

Measured: event-loop lag (a task sleeping 10 ms, its overshoot) while idle before the engine
starts (the baseline: on a shared machine it shows what the neighbours cost), during start-up
and during the run (a window of ``--seconds`` after ``--warmup`` seconds of trading); start-up
time of the portfolios; orders, fills (committed) and bars per second; CPU of the loop thread
and of the process; bar age when its processing is done (bar made -> the runner's decision path
finished, the order's write-ahead row enqueued); the journal's commits and batches; process RSS
(VmRSS, and the peak VmHWM) from /proc/self/status with its slope over the window; the trade ids
the order managers keep for fill de-duplication; the garbage collector's pauses and what a full
collection costs (``--gc-freeze`` tries ``gc.freeze()``); what one ``engine.facade.states()``
(the API's portfolio reads: equity and P&L per portfolio) costs the loop. Runners are read
through ``engine.supervisors`` (their plain counters: the probe must not load the loop it
measures). ``--py-spy FILE`` profiles the window from outside the process (sampling, the process
never paused) and prints where the loop thread's busy time goes, by own and inclusive time.

Targets: loop lag p99 < 10 ms (issue 9: at 2,000 portfolios too; the landed code crossed 10 ms
at 1,500 and reached 28.8 ms at 2,000), memory < 1 GB. For memory over a long run see
bench/soak.py.

    python bench/scale.py [--portfolios 500] [--assets 4] [--seconds 60] [--universe 0]
                          [--idle 5] [--warmup 10] [--log-level INFO] [--loop auto]
                          [--log-on-loop] [--py-spy FILE] [--gc-freeze] [--aligned]
"""

from __future__ import annotations

import argparse
import gc
import logging
import logging.handlers
import os
import queue
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from array import array
from collections import Counter
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import anyio
import anyio.to_thread
from machine import describe
from sqlalchemy import func, select

from lts.cli.common import LoopQueueHandler as _LoopQueueHandler
from lts.cli.common import lean_log_records
from lts.domain.market import Bar
from lts.domain.orders import OrderStatus
from lts.domain.portfolio_spec import AssetSpec, PortfolioSpec
from lts.engine import executions
from lts.engine.engine import Engine
from lts.engine.runner import PortfolioRunner
from lts.engine.supervisor import PortfolioStatus
from lts.persistence import repositories as repo
from lts.persistence.db import make_engine
from lts.persistence.migrations import upgrade_to_head
from lts.persistence.tables import fills, orders
from lts.settings import load_settings

LAG_INTERVAL = 0.010
MB = 1024 * 1024


# -- probes ------------------------------------------------------------------------------------

def proc_status() -> dict[str, int]:
    """VmRSS and VmHWM (peak RSS) of this process, in bytes."""
    out = {}
    with open("/proc/self/status") as f:
        for line in f:
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out[key] = int(rest.split()[0]) * 1024
    return out


class LagProbe:
    """Sleeps 10 ms again and again; the overshoot of each sleep is the loop's lag."""

    def __init__(self) -> None:
        self.samples: list[float] = []

    def take(self) -> list[float]:
        out, self.samples = self.samples, []
        return out

    async def run(self) -> None:
        clock = time.perf_counter
        while True:
            t = clock()
            await anyio.sleep(LAG_INTERVAL)
            self.samples.append(clock() - t - LAG_INTERVAL)


class GcPauses:
    def __init__(self) -> None:
        self.pauses: list[tuple[int, float]] = []  # (generation, seconds)
        self._t = 0.0

    def _cb(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._t = time.perf_counter()
        else:
            self.pauses.append((info["generation"], time.perf_counter() - self._t))

    def start(self) -> None:
        gc.callbacks.append(self._cb)

    def stop(self) -> None:
        gc.callbacks.remove(self._cb)


def timed_full_collection() -> tuple[float, int]:
    """A full collection, timed (seconds), and how many objects the collector tracks."""
    t = time.perf_counter()
    gc.collect()
    return time.perf_counter() - t, len(gc.get_objects())


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, max(0, round(q / 100 * len(s)) - 1))]


def lag_line(samples: list[float]) -> str:
    ms = [x * 1e3 for x in samples]
    return (f"p50 {pct(ms, 50):6.2f}  p90 {pct(ms, 90):6.2f}  p99 {pct(ms, 99):7.2f}  "
            f"max {max(ms, default=float('nan')):7.2f} ms  ({len(ms):,} samples)")


# -- profile (py-spy, from outside the process) ------------------------------------------------

PY_SPY_RATE = 100  # samples per second


def start_py_spy(out: Path, seconds: float) -> subprocess.Popen[bytes] | None:
    """``py-spy record`` of this process for ``seconds`` (collapsed stacks per thread, idle
    samples left out, the process never paused), or None when py-spy is not installed."""
    exe = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(exe).exists():
        print("--py-spy: py-spy not found (pip install py-spy); not profiling")
        return None
    return subprocess.Popen(
        [exe, "record", "--pid", str(os.getpid()), "--duration", str(max(1, round(seconds))),
         "--rate", str(PY_SPY_RATE), "--format", "raw", "--output", str(out), "--threads",
         "--nonblocking"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


_LINE = re.compile(r" \(([^()]*?)(?::\d+)?\)$")


def _function(frame: str) -> str:
    """``name (path/to/file.py:123)`` -> ``name (to/file.py)``: one entry per function."""
    m = _LINE.search(frame)
    if m is None:
        return frame
    where = "/".join(Path(m.group(1)).parts[-2:])
    return f"{frame[:m.start()]} ({where})"


def print_profile(path: Path, seconds: float, top: int = 25) -> None:
    """Where the event loop's thread (MainThread) spent its busy samples: functions by their
    own time and by inclusive time (the function and what it called)."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    threads: Counter[str] = Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        head, _, frames_text = stack.partition(";")
        name = head.split(": ", 1)[-1]
        threads[name] += count
        if name != "MainThread":
            continue
        frames = [_function(f) for f in frames_text.split(";") if f]
        if not frames:
            continue
        total += count
        own[frames[-1]] += count
        for f in set(frames):
            inclusive[f] += count
    possible = seconds * PY_SPY_RATE
    print()
    print(f"py-spy over the window ({PY_SPY_RATE}/s, idle samples left out): the loop thread busy "
          f"in {total:,} samples of ~{possible:,.0f} ({total / possible:.0%}); other threads: "
          + ", ".join(f"{n} {c:,}" for n, c in threads.most_common() if n != "MainThread"))
    if not total:
        return
    print(f"  own time (top {top}), share of the loop thread's busy samples:")
    for f, c in own.most_common(top):
        print(f"    {c / total:6.1%}  {f}")
    print(f"  inclusive time (top {top}; the event loop's own frames left out):")
    roots = ("<module>", "run (", "main (", "Runner.run", "_run_once", "run_until_complete",
             "run_forever", "Handle._run", "Context.run", "BaseEventLoop.")
    shown = 0
    for f, c in inclusive.most_common():
        if f.startswith(roots):
            continue
        print(f"    {c / total:6.1%}  {f}")
        shown += 1
        if shown >= top:
            break


# -- set-up ------------------------------------------------------------------------------------

def portfolio_specs(n: int, assets: int, universe: int,
                    aligned: bool = False) -> list[PortfolioSpec]:
    specs = []
    for i in range(n):
        items = []
        for j in range(assets):
            if universe:
                k = (i * assets + j) % universe  # distinct within a portfolio (universe >= assets)
                symbol, seed = f"U{k:04d}", 1_000 + k
            else:
                k = i * assets + j
                symbol, seed = f"S{i:03d}-{j}", 1_000 + k
            items.append(AssetSpec(
                symbol=symbol, strategy_plugin="sma_crossover",
                strategy_params={"fast": 2, "slow": 5},
                broker_plugin="paper", broker_params={"fees_bps": "1", "slippage_bps": "2"},
                pipeline_plugin="synthetic",
                pipeline_params={"seed": seed, "interval": 1.0, "volatility": 0.01,
                                 "aligned": aligned}))
        specs.append(PortfolioSpec(
            name=f"scale-{i:04d}", initial_cash=Decimal(100_000), assets=tuple(items),
            portfolio_plugin="fixed_fraction", portfolio_params={"fraction": "0.2"}))
    return specs


async def create_portfolios(url: str, specs: list[PortfolioSpec]) -> float:
    await upgrade_to_head(url)
    db = make_engine(url, sqlite_synchronous="FULL")
    try:
        t = time.perf_counter()
        for spec in specs:
            await repo.create_portfolio(db, spec)
        return time.perf_counter() - t
    finally:
        await db.dispose()


async def count_rows(url: str) -> tuple[int, int]:
    db = make_engine(url)
    try:
        async with db.connect() as conn:
            n_orders = (await conn.execute(select(func.count()).select_from(orders))).scalar_one()
            n_fills = (await conn.execute(select(func.count()).select_from(fills))).scalar_one()
        return int(n_orders), int(n_fills)
    finally:
        await db.dispose()


async def denial_reasons(url: str) -> dict[str, int]:
    """Denied orders in the database by reason code."""
    db = make_engine(url)
    try:
        async with db.connect() as conn:
            rows = (await conn.execute(
                select(orders.c.reason, func.count()).where(
                    orders.c.status == OrderStatus.DENIED.value).group_by(orders.c.reason))).all()
        return {str(r[0]): int(r[1]) for r in sorted(rows, key=lambda r: -r[1])}
    finally:
        await db.dispose()


# -- logging ----------------------------------------------------------------------------------

class EngineLog:
    """The engine's log set-up (``lts.cli.main``): the loop only queues each record, a
    listener thread formats and writes it — here to ``path``, as ``2> file`` would take the
    engine's stderr. ``on_loop``: a plain FileHandler instead, formatting and writing on the
    loop (how this bench logged before issue 9, so figures can be compared with old ones)."""

    def __init__(self, path: Path, level: str, *, on_loop: bool = False) -> None:
        self.file = logging.FileHandler(path)
        self.file.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
        self.listener: logging.handlers.QueueListener | None = None
        if on_loop:
            self.handler: logging.Handler = self.file
        else:
            records: queue.SimpleQueue[logging.LogRecord] = queue.SimpleQueue()
            self.listener = logging.handlers.QueueListener(records, self.file)
            self.listener.start()
            self.handler = _LoopQueueHandler(records)
        root = logging.getLogger()
        root.addHandler(self.handler)
        root.setLevel(level)
        logging.getLogger("alembic").setLevel(logging.WARNING)
        lean_log_records()  # as python -m lts.engine sets it

    def close(self) -> None:
        logging.getLogger().removeHandler(self.handler)
        if self.listener is not None:
            self.listener.stop()  # writes what is still queued
        self.file.close()


# -- the run -----------------------------------------------------------------------------------

def trade_ids_kept(om: Any) -> int:
    """Trade ids an order manager keeps in memory for fill de-duplication: those of its open
    orders, plus those of the closed orders it keeps for late fills (private state that is
    still changing: read defensively)."""
    n = sum(len(t) for t in getattr(om, "_trades", {}).values())
    late = getattr(om, "_late", {})  # closed orders kept: coid -> (order, trade ids)
    return n + sum(len(entry[1]) for entry in late.values())


def kept_per_portfolio() -> str:
    """What the order manager keeps of closed orders, per portfolio (its private bound)."""
    return f"the trade ids of the last {executions._LATE_ORDERS} closed orders per portfolio"


def running_runners(engine: Engine) -> dict[int, PortfolioRunner]:
    """The runner of every portfolio whose supervisor reports it RUNNING."""
    return {pid: sup.runner for pid, sup in engine.supervisors.items()
            if sup.status is PortfolioStatus.RUNNING and sup.runner is not None}


class Totals:
    """Counters summed over every running portfolio (and the engine's bus and journal).

    Read from the runners' plain counters (what ``engine.facade.state()`` reports, without the
    equity and P&L it computes per portfolio: this probe must not load the loop it measures)."""

    def __init__(self, engine: Engine) -> None:
        runners = list(running_runners(engine).values())
        oms = [r.orders for r in runners if r.orders is not None]
        counters = engine.facade.counters()
        self.t = time.perf_counter()
        self.orders = sum(om.orders_created for om in oms)
        self.denied = sum(om.orders_denied for om in oms)
        self.fills = sum(om.fills_committed for om in oms)
        self.bars = sum(r.bars for r in runners)
        self.published = counters.published.get("Bar", 0)
        self.commits = counters.journal_commits
        self.records = counters.journal_records
        # trade ids the order managers keep in memory: per open order, plus a recent window
        self.trade_ids = sum(trade_ids_kept(om) for om in oms)
        self.open_orders = sum(len(r.open_orders) for r in runners)


async def run(args: argparse.Namespace) -> int:
    n_feeds = args.universe or args.portfolios * args.assets
    print(f"{args.portfolios} portfolios x {args.assets} assets; "
          + (f"symbols shared from a universe of {args.universe}" if args.universe
             else "a distinct symbol and seed per asset")
          + f": {n_feeds:,} synthetic feed tasks at 1 bar/s each"
          + (", every bar at the same instant" if args.aligned else ", each at its own phase")
          + "; sma_crossover 2/5, paper "
          f"broker, fixed_fraction; SQLite WAL synchronous=FULL, durable=True; "
          f"log level {args.log_level}")
    with tempfile.TemporaryDirectory(prefix="lts-scale-") as tmp_name:
        tmp = Path(tmp_name)
        url = f"sqlite+aiosqlite:///{tmp / 'scale.db'}"
        specs = portfolio_specs(args.portfolios, args.assets, args.universe, args.aligned)
        took = await create_portfolios(url, specs)
        print(f"created {len(specs)} portfolios in the database in {took:.2f}s "
              f"(create_portfolio, one transaction each)")

        log_file = tmp / "engine.log"
        engine_log = EngineLog(log_file, args.log_level, on_loop=args.log_on_loop)

        settings = load_settings(overrides={
            "database": {"url": url, "sqlite_synchronous": "FULL"},
            "demo": {"enabled": False},
            "log_level": args.log_level,
            "admin_password": "Scale-bench-passw0rd",
            "api": {"port": 0},  # served, on any free port of 127.0.0.1
        })
        engine = Engine(settings)
        probe = LagProbe()
        gcp = GcPauses()
        ages = array("q")  # 8 bytes a sample: the probe must not be what grows
        rss: list[tuple[float, int]] = []
        backlog_max = 0
        commit_ms: list[float] = []
        code = 0

        def on_bar_done_for() -> Callable[[Bar], None]:
            now = time.time_ns
            append = ages.append

            def done(bar: Bar) -> None:
                append(now() - bar.ts_event)
            return done

        async with anyio.create_task_group() as tg:
            tg.start_soon(probe.run)
            rss_before = proc_status()
            await anyio.sleep(args.idle)
            idle = probe.take()

            t_run = time.perf_counter()
            done = anyio.Event()

            async def run_engine() -> None:
                try:
                    await engine.run()
                finally:
                    done.set()

            tg.start_soon(run_engine)
            await engine.started.wait()
            t_started = time.perf_counter()
            hooked: dict[int, PortfolioRunner] = {}
            t_ready = t_first_bar = None
            deadline = t_started + args.startup_timeout
            quarters: dict[int, float] = {}  # share running (%) -> seconds after the start
            while time.perf_counter() < deadline:
                await anyio.sleep(0.01)
                ready = running_runners(engine)
                for q in (25, 50, 75):
                    if q not in quarters and len(ready) * 100 >= q * len(specs):
                        quarters[q] = time.perf_counter() - t_started
                if t_ready is None and len(ready) == len(specs):
                    t_ready = time.perf_counter()
                if t_ready is not None and all(r.bars > 0 for r in ready.values()):
                    t_first_bar = time.perf_counter()
                    break
            startup_lag = probe.take()
            if t_ready is None:
                print(f"NOT all portfolios started within {args.startup_timeout:.0f}s: "
                      f"{len(running_runners(engine))} running")
                code = 1
            print(f"engine boot (migration check, lease, admin user, plugin discovery, journal) "
                  f"{t_started - t_run:.2f}s; then all {len(specs)} portfolios recovered and "
                  f"subscribed in {((t_ready or time.perf_counter()) - t_started):.2f}s; "
                  f"every portfolio had its first bar after "
                  f"{((t_first_bar or time.perf_counter()) - t_started):.2f}s (running: "
                  + ", ".join(f"{q}% after {t:.1f}s" for q, t in quarters.items()) + ")")

            for pid, runner in running_runners(engine).items():
                runner.on_bar_done = on_bar_done_for()
                hooked[pid] = runner
            await anyio.sleep(args.warmup)  # the SMAs fill, orders reach their steady rate
            engine_frozen = gc.get_freeze_count()  # the engine's own start-up heap freeze
            full_start = timed_full_collection()
            if args.gc_freeze:
                gc.freeze()  # what start-up built is never scanned again
            await anyio.sleep(0.05)  # the probe's sleep that spanned the collection ends first
            blocks_start = sys.getallocatedblocks()
            cpu_start = time.thread_time(), time.process_time()  # loop thread, whole process
            start = Totals(engine)
            rss_start = proc_status()
            gcp.start()
            spy = start_py_spy(args.py_spy, args.seconds) if args.py_spy else None
            probe.take()
            del ages[:]
            t_end = time.perf_counter() + args.seconds
            next_report = time.perf_counter() + 10
            while time.perf_counter() < t_end:
                await anyio.sleep(min(1.0, max(0.0, t_end - time.perf_counter())))
                backlog_max = max(backlog_max, engine.facade.counters().journal_backlog)
                commit_ms.append(engine.journal.last_commit_latency * 1e3)
                rss.append((time.perf_counter() - start.t, proc_status()["VmRSS"]))
                # runners restarted by the supervisor get the hook too
                for pid, runner in running_runners(engine).items():
                    if hooked.get(pid) is not runner:
                        runner.on_bar_done = on_bar_done_for()
                        hooked[pid] = runner
                if time.perf_counter() >= next_report:
                    next_report += 10
                    now = Totals(engine)
                    dt = now.t - start.t
                    print(f"  t+{dt:4.0f}s: orders {(now.orders - start.orders) / dt:6.1f}/s, "
                          f"fills {(now.fills - start.fills) / dt:6.1f}/s, lag so far p99 "
                          f"{pct(probe.samples, 99) * 1e3:.2f} ms, RSS "
                          f"{rss[-1][1] / MB:.0f} MB")
            end = Totals(engine)
            cpu_end = time.thread_time(), time.process_time()
            blocks_end = sys.getallocatedblocks()
            gcp.stop()
            window_lag = probe.take()
            if spy is not None:
                await anyio.to_thread.run_sync(spy.wait)
            full_end = timed_full_collection()
            window_ages = ages.tolist()
            own_buffers = ages.buffer_info()[1] * ages.itemsize
            rss_end = proc_status()
            t_states = time.perf_counter()
            states = engine.facade.states()  # what the API's portfolio list asks, timed once
            states_ms = (time.perf_counter() - t_states) * 1e3
            errors = [(st.portfolio_id, st.status, st.last_error)
                      for st in states if st.status != PortfolioStatus.RUNNING.value]
            restarts = sum(st.restarts for st in states)
            anomalies = sum(st.anomalies for st in states)
            dropped = engine.facade.counters().dropped

            t_stop = time.perf_counter()
            engine.stop()
            await done.wait()
            t_stopped = time.perf_counter()
            tg.cancel_scope.cancel()

        engine_log.close()
        n_orders, n_fills = await count_rows(url)
        denied_by = await denial_reasons(url)
        log_lines = sum(1 for _ in log_file.open())
        log_mb = log_file.stat().st_size / MB

    dt = end.t - start.t
    print()
    print("event-loop lag (10 ms sleeps, overshoot):")
    print(f"  idle loop, before the engine (baseline): {lag_line(idle)}")
    print(f"  during start-up:                         {lag_line(startup_lag)}")
    print(f"  running, {dt:.0f}s window:                  {lag_line(window_lag)}")
    print(f"throughput over the window: orders {(end.orders - start.orders) / dt:,.1f}/s "
          f"(denied {(end.denied - start.denied) / dt:,.1f}/s), fills "
          f"{(end.fills - start.fills) / dt:,.1f}/s, bars published "
          f"{(end.published - start.published) / dt:,.0f}/s, bars processed by portfolios "
          f"{(end.bars - start.bars) / dt:,.0f}/s; market data dropped: "
          f"{sum(dropped.values()):,}")
    if denied_by:
        print(f"denied orders in the database by reason: {denied_by}")
    print(f"CPU over the window: event-loop thread {(cpu_end[0] - cpu_start[0]) / dt:.0%} of one "
          f"core, whole process (loop + database threads) "
          f"{(cpu_end[1] - cpu_start[1]) / dt:.0%} of one core")
    ages_ms = [a / 1e6 for a in window_ages]
    print(f"bar age when its processing is done (bar made in the feed -> decision path done, "
          f"durable writes included): p50 {pct(ages_ms, 50):.2f}  p90 {pct(ages_ms, 90):.2f}  "
          f"p99 {pct(ages_ms, 99):.2f}  max {max(ages_ms, default=float('nan')):.2f} ms "
          f"({len(ages_ms):,} bars)")
    commits = end.commits - start.commits
    records = end.records - start.records
    print(f"journal: {commits / dt:,.1f} commits/s, {records / dt:,.0f} records/s, mean batch "
          f"{records / commits if commits else 0:.1f} records, backlog max (1 s samples) "
          f"{backlog_max:,}; last commit's BEGIN->COMMIT (1 s samples) p50 "
          f"{pct(commit_ms, 50):.1f} ms, max {max(commit_ms, default=0):.1f} ms; database at the "
          f"end: {n_orders:,} orders, {n_fills:,} fills")
    pauses = gcp.pauses
    per_gen = "; ".join(
        f"gen{g}: {len(ps)} passes, longest {max(ps, default=0) * 1e3:.1f} ms"
        for g, ps in ((g, [p for gg, p in pauses if gg == g]) for g in range(3)))
    print(f"gc{' (frozen after warm-up)' if args.gc_freeze else ''}: {per_gen}; a full "
          f"collection takes {full_start[0] * 1e3:.0f} ms over {full_start[1]:,} tracked "
          f"objects after warm-up, {full_end[0] * 1e3:.0f} ms over {full_end[1]:,} at the end"
          + (f" ({gc.get_freeze_count():,} frozen)" if args.gc_freeze else "")
          + f"; the engine's start-up freeze (lts.engine.heap) had frozen {engine_frozen:,} "
          f"objects")
    slope = statistics.linear_regression([t for t, _ in rss], [r for _, r in rss]).slope \
        if len(rss) >= 2 else 0.0
    print(f"memory: RSS {rss_before['VmRSS'] / MB:.0f} MB before the engine, "
          f"{rss_start['VmRSS'] / MB:.0f} MB with every portfolio running, "
          f"{rss_end['VmRSS'] / MB:.0f} MB at the end of the window (growth "
          f"{slope * 60 / MB:+.1f} MB/min, {slope * 3600 / MB:+.0f} MB/h); peak VmHWM "
          f"{rss_end['VmHWM'] / MB:.0f} MB")
    print(f"  Python heap: {(blocks_end - blocks_start) * 60 / dt:+,.0f} allocated blocks/min "
          f"(sys.getallocatedblocks); this script's own sample buffers "
          f"{own_buffers / MB:.1f} MB")
    print(f"  trade ids kept for fill de-duplication (per open order, plus "
          f"{kept_per_portfolio()}): {start.trade_ids:,} after warm-up, {end.trade_ids:,} "
          f"at the end ({(end.trade_ids - start.trade_ids) / dt:+,.1f}/s); open orders "
          f"{start.open_orders:,} -> {end.open_orders:,}")
    print(f"logging: {log_lines:,} lines ({log_lines / (dt + t_stopped - t_run):,.0f}/s "
          f"over the whole run), {log_mb:.1f} MB")
    print(f"supervision: {len(errors)} portfolio(s) not running, {restarts} restart(s), "
          f"{anomalies} fill anomalies" + (f"; first: {errors[0]}" if errors else ""))
    print(f"engine.facade.states() over {len(states):,} portfolios (equity and P&L each, what "
          f"the API's reads cost): {states_ms:.1f} ms on the loop")
    print(f"shutdown (stop -> engine.run returned, journal flushed): {t_stopped - t_stop:.2f}s")

    if spy is not None:
        if spy.returncode == 0 and args.py_spy.exists():
            print_profile(args.py_spy, args.seconds)
        else:
            err = spy.stderr.read().decode(errors="replace").strip() if spy.stderr else ""
            print(f"py-spy failed ({spy.returncode}): {err[-300:]}")

    lag99 = pct(window_lag, 99) * 1e3
    peak = rss_end["VmHWM"] / MB
    print()
    print(f"target loop lag p99 < 10 ms: {'met' if lag99 < 10 else 'NOT met'} ({lag99:.2f} ms); "
          f"target memory < 1 GB: {'met' if peak < 1024 else 'NOT met'} (peak {peak:.0f} MB)")
    return code


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--portfolios", type=int, default=500)
    ap.add_argument("--assets", type=int, default=4)
    ap.add_argument("--seconds", type=float, default=60.0, help="measured window")
    ap.add_argument("--universe", type=int, default=0,
                    help="share symbols from this many (0: a distinct symbol per asset)")
    ap.add_argument("--idle", type=float, default=5.0, help="idle-loop baseline, seconds")
    ap.add_argument("--warmup", type=float, default=10.0,
                    help="seconds of trading before the window (the SMAs fill)")
    ap.add_argument("--startup-timeout", type=float, default=180.0)
    ap.add_argument("--log-level", choices=["DEBUG", "INFO", "WARNING"], default="INFO",
                    help="the engine's log level (default INFO, the engine's default)")
    ap.add_argument("--log-on-loop", action="store_true",
                    help="format and write log lines on the loop (this bench's way before "
                    "issue 9) instead of the engine's queue and listener thread")
    ap.add_argument("--aligned", action="store_true",
                    help="every symbol's bar at the same instant (default: own phase)")
    ap.add_argument("--loop", choices=["auto", "asyncio", "uvloop"], default="auto")
    ap.add_argument("--py-spy", type=Path, metavar="FILE",
                    help="profile the window with py-spy from outside (pip install py-spy; it "
                    "takes a few %% of a core): collapsed stacks to FILE, a summary printed")
    ap.add_argument("--gc-freeze", action="store_true",
                    help="experiment: gc.freeze() after warm-up (start-up objects never rescanned)")
    args = ap.parse_args()
    if args.universe and args.universe < args.assets:
        ap.error("--universe must be at least --assets")
    use_uvloop = args.loop == "uvloop"
    if args.loop == "auto":
        try:
            import uvloop  # noqa: F401
            use_uvloop = True
        except ImportError:
            use_uvloop = False
    print(describe())
    print(f"event loop: {'uvloop' if use_uvloop else 'asyncio'}")
    return anyio.run(run, args, backend_options={"use_uvloop": use_uvloop})


if __name__ == "__main__":
    sys.exit(main())
