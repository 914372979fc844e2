"""Scale: 500 portfolios x 4 assets trading live synthetic feeds in one process, on one loop.

Where it sits: the whole engine (architecture §4, §5) as ``python -m lts.engine`` runs it —
``Engine(settings).run()`` with its supervisor, feed hub, portfolio runners, risk, order manager,
paper broker and the group-commit journal on a SQLite file with WAL and ``synchronous=FULL``
(durable=True: every order row is committed before the broker sees it) — on the engine's event
loop (uvloop when installed) with the engine's default log level (INFO, written to a file as
``2> file`` would). Portfolios are created beforehand with ``repositories.create_portfolio``.

Each asset: ``synthetic`` feed with ``interval=1.0`` (one bar per second), ``sma_crossover``
with fast=2 / slow=5 (so orders happen), ``paper`` broker with fees and slippage;
``fixed_fraction`` sizing at 20 % per asset. By default every asset has its own symbol and seed,
so 500 x 4 = 2,000 feed tasks run (the worst case: nothing is shared); ``--universe N`` draws the
symbols from N shared ones instead (portfolios trading the same instruments share one feed task
per symbol, as the feed hub intends).

Measured: event-loop lag (a task sleeping 10 ms, its overshoot) while idle before the engine
starts (the baseline), during start-up and during the run (a window of ``--seconds`` after
``--warmup`` seconds of trading); start-up time of the portfolios; orders, fills and bars per
second; CPU of the loop thread and of the process; bar age when its processing is done (bar
made -> decision path finished, durable order write included); the journal's commits and
batches; process RSS (VmRSS, and the peak VmHWM) from /proc/self/status; the garbage
collector's pauses and what a full collection costs (``--gc-freeze`` tries ``gc.freeze()``).

    python bench/scale.py [--portfolios 500] [--assets 4] [--seconds 60] [--universe 0]
                          [--idle 5] [--warmup 10] [--log-level INFO] [--loop auto]
"""

from __future__ import annotations

import argparse
import gc
import logging
import statistics
import sys
import tempfile
import time
from array import array
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import anyio
from machine import describe
from sqlalchemy import func, select

from lts.domain.market import Bar
from lts.engine.engine import Engine
from lts.engine.runner import PortfolioRunner
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


# -- set-up ------------------------------------------------------------------------------------

def portfolio_specs(n: int, assets: int, universe: int) -> list[repo.PortfolioSpec]:
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
            items.append(repo.AssetSpec(
                symbol=symbol, strategy_plugin="sma_crossover",
                strategy_params={"fast": 2, "slow": 5},
                broker_plugin="paper", broker_params={"fees_bps": "1", "slippage_bps": "2"},
                pipeline_plugin="synthetic",
                pipeline_params={"seed": seed, "interval": 1.0, "volatility": 0.01}))
        specs.append(repo.PortfolioSpec(
            name=f"scale-{i:04d}", initial_cash=Decimal(100_000), assets=tuple(items),
            portfolio_plugin="fixed_fraction", portfolio_params={"fraction": "0.2"}))
    return specs


async def create_portfolios(url: str, specs: list[repo.PortfolioSpec]) -> float:
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


# -- the run -----------------------------------------------------------------------------------

class Totals:
    """Counters summed over every portfolio runner (and the engine's bus and journal)."""

    def __init__(self, engine: Engine) -> None:
        runners = [h.runner for h in engine.portfolios.values() if h.runner is not None]
        oms = [r.orders for r in runners if r.orders is not None]
        self.t = time.perf_counter()
        self.orders = sum(om.orders_created for om in oms)
        self.denied = sum(om.orders_denied for om in oms)
        self.fills = sum(r.ledger.fills for r in runners)
        self.bars = sum(r.bars for r in runners)
        self.published = engine.bus.published.get("Bar", 0)
        self.commits = engine.journal.commits
        self.records = engine.journal.records_written
        self.seen = sum(len(getattr(om, "_seen", ())) for om in oms)


async def run(args: argparse.Namespace) -> int:
    n_feeds = args.universe or args.portfolios * args.assets
    print(f"{args.portfolios} portfolios x {args.assets} assets; "
          + (f"symbols shared from a universe of {args.universe}" if args.universe
             else "a distinct symbol and seed per asset")
          + f": {n_feeds:,} synthetic feed tasks at 1 bar/s each; sma_crossover 2/5, paper "
          f"broker, fixed_fraction; SQLite WAL synchronous=FULL, durable=True; "
          f"log level {args.log_level}")
    with tempfile.TemporaryDirectory(prefix="lts-scale-") as tmp_name:
        tmp = Path(tmp_name)
        url = f"sqlite+aiosqlite:///{tmp / 'scale.db'}"
        specs = portfolio_specs(args.portfolios, args.assets, args.universe)
        took = await create_portfolios(url, specs)
        print(f"created {len(specs)} portfolios in the database in {took:.2f}s "
              f"(create_portfolio, one transaction each)")

        log_file = tmp / "engine.log"
        handler = logging.FileHandler(log_file)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
        root = logging.getLogger()
        root.addHandler(handler)
        root.setLevel(args.log_level)
        logging.getLogger("alembic").setLevel(logging.WARNING)

        settings = load_settings(overrides={
            "database": {"url": url, "sqlite_synchronous": "FULL"},
            "demo": {"enabled": False},
            "log_level": args.log_level,
            "admin_password": "scale-bench-password",
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
            while time.perf_counter() < deadline:
                await anyio.sleep(0.01)
                handles = list(engine.portfolios.values())
                ready = [h.runner for h in handles
                         if h.runner is not None and h.runner.orders is not None]
                if t_ready is None and len(ready) == len(specs):
                    t_ready = time.perf_counter()
                if t_ready is not None and all(r.bars > 0 for r in ready):
                    t_first_bar = time.perf_counter()
                    break
            startup_lag = probe.take()
            if t_ready is None:
                print(f"NOT all portfolios started within {args.startup_timeout:.0f}s: "
                      f"{sum(1 for h in engine.portfolios.values() if h.runner is not None)}")
                code = 1
            print(f"engine boot (migration check, admin user, plugin discovery, journal) "
                  f"{t_started - t_run:.2f}s; then all {len(specs)} portfolios recovered and "
                  f"subscribed in {((t_ready or time.perf_counter()) - t_started):.2f}s; "
                  f"every portfolio had its first bar after "
                  f"{((t_first_bar or time.perf_counter()) - t_started):.2f}s")

            for pid, h in engine.portfolios.items():
                if h.runner is not None:
                    h.runner.on_bar_done = on_bar_done_for()
                    hooked[pid] = h.runner
            await anyio.sleep(args.warmup)  # the SMAs fill, orders reach their steady rate
            full_start = timed_full_collection()
            if args.gc_freeze:
                gc.freeze()  # what start-up built is never scanned again
            await anyio.sleep(0.05)  # the probe's sleep that spanned the collection ends first
            blocks_start = sys.getallocatedblocks()
            cpu_start = time.thread_time(), time.process_time()  # loop thread, whole process
            start = Totals(engine)
            rss_start = proc_status()
            gcp.start()
            probe.take()
            del ages[:]
            t_end = time.perf_counter() + args.seconds
            next_report = time.perf_counter() + 10
            while time.perf_counter() < t_end:
                await anyio.sleep(min(1.0, max(0.0, t_end - time.perf_counter())))
                backlog_max = max(backlog_max, engine.journal.backlog)
                commit_ms.append(engine.journal.last_commit_latency * 1e3)
                rss.append((time.perf_counter() - start.t, proc_status()["VmRSS"]))
                # runners restarted by the supervisor get the hook too
                for pid, h in engine.portfolios.items():
                    if h.runner is not None and hooked.get(pid) is not h.runner:
                        h.runner.on_bar_done = on_bar_done_for()
                        hooked[pid] = h.runner
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
            full_end = timed_full_collection()
            window_ages = ages.tolist()
            own_buffers = ages.buffer_info()[1] * ages.itemsize
            rss_end = proc_status()
            errors = [(pid, h.state.status, h.state.last_error)
                      for pid, h in engine.portfolios.items() if h.state.status == "error"]
            restarts = sum(h.state.restarts for h in engine.portfolios.values())
            dropped = engine.bus.dropped()

            t_stop = time.perf_counter()
            engine.stop()
            await done.wait()
            t_stopped = time.perf_counter()
            tg.cancel_scope.cancel()

        root.removeHandler(handler)
        handler.close()
        n_orders, n_fills = await count_rows(url)
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
          + (f" ({gc.get_freeze_count():,} frozen)" if args.gc_freeze else ""))
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
    print(f"  in-memory fill de-duplication set (OrderManager._seen): {end.seen:,} entries, "
          f"+{(end.seen - start.seen) / dt:,.1f}/s, never pruned")
    print(f"logging: {log_lines:,} lines ({log_lines / (dt + t_stopped - t_run):,.0f}/s "
          f"over the whole run), {log_mb:.1f} MB")
    print(f"supervision: {len(errors)} portfolio(s) in error, {restarts} restart(s)"
          + (f"; first: {errors[0]}" if errors else ""))
    print(f"shutdown (stop -> engine.run returned, journal flushed): {t_stopped - t_stop:.2f}s")

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
    ap.add_argument("--startup-timeout", type=float, default=60.0)
    ap.add_argument("--log-level", choices=["DEBUG", "INFO", "WARNING"], default="INFO",
                    help="the engine's log level (default INFO, the engine's default)")
    ap.add_argument("--loop", choices=["auto", "asyncio", "uvloop"], default="auto")
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
