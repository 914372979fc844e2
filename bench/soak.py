"""Soak: the whole engine trading for a long time; does its memory stay flat?

Where it sits: the same engine and portfolios as bench/scale.py (``Engine(settings).run()`` in
this process with its supervisors, portfolio runners, paper venue and the group-commit journal on
a SQLite file, WAL, ``synchronous=FULL``; ``--portfolios`` x ``--assets`` assets, each a
``synthetic`` feed at one bar per second, ``sma_crossover`` 2/5, ``fixed_fraction`` at 20 %; the
engine's default log level INFO and its log set-up: records queued on the loop, written to a file
by a listener thread), run for ``--minutes`` (default 30).

Measured every ``--sample`` seconds: the process's RSS (VmRSS from /proc/self/status), the
Python heap's allocated blocks, the fills the journal committed, the trade ids the order
managers keep for fill de-duplication (per open order, plus a small window of recently closed
orders per portfolio), open orders, and the loop lag of the interval (a 10 ms sleep's overshoot,
reduced to its p99 at once: the probe keeps nothing that grows). The first ``--warmup`` seconds
(default: the first 20 % of the run) are excluded: start-up, the strategies' windows filling, the
recent-trade windows filling (64 trade ids per portfolio: about 70 s at 500 portfolios), the
allocator's arenas reaching their working size.

Printed: RSS before the engine (the baseline: what this process holds without it), at the end of
the warm-up and at the end; the growth after the warm-up in % and in MB/min (least-squares slope
over the samples after the warm-up, and separately over each half of them: a leak keeps its
slope, a settling heap flattens), bytes of RSS and heap blocks per fill made after the warm-up
(the landed code's figure: about 300 bytes per fill, +7 MB/min at 500 portfolios, +37 MB/min at
2,000, measured 2026-12-05 with bench/scale.py), and the verdict against the target: RSS growth
under 5 % after the warm-up (exit status 3 when it is not met, 1 when the run went wrong; the
soak test tests/e2e/test_memory_soak.py runs it). ``--tracemalloc N`` also traces allocations
(slow: for finding a leak, not for the figure) and prints the N sites that grew most between the
end of the warm-up and the end.

    python bench/soak.py [--portfolios 500] [--assets 4] [--minutes 30] [--warmup SECONDS]
                         [--sample 5] [--universe 0] [--log-level INFO] [--tracemalloc 0]
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import tempfile
import time
import tracemalloc
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import anyio
from machine import describe
from scale import (
    MB,
    EngineLog,
    count_rows,
    create_portfolios,
    kept_per_portfolio,
    pct,
    portfolio_specs,
    proc_status,
    running_runners,
    trade_ids_kept,
)

from lts.engine.engine import Engine
from lts.settings import load_settings

TARGET_GROWTH = 0.05
LAG_INTERVAL = 0.010


class LagP99:
    """Sleeps 10 ms again and again; :meth:`take` gives the p99 overshoot since the last take
    (and forgets the samples: nothing here grows with the run)."""

    def __init__(self) -> None:
        self._samples: list[float] = []

    def take(self) -> float:
        out, self._samples = self._samples, []
        return pct(out, 99)

    async def run(self) -> None:
        clock = time.perf_counter
        while True:
            t = clock()
            await anyio.sleep(LAG_INTERVAL)
            self._samples.append(clock() - t - LAG_INTERVAL)


@dataclass(slots=True)
class Sample:
    t: float  # seconds since the engine started trading
    rss: int
    blocks: int
    fills: int
    orders: int
    trade_ids: int
    open_orders: int
    lag_p99: float


def take_sample(engine: Engine, t0: float, lag: LagP99) -> Sample:
    runners = list(running_runners(engine).values())
    oms = [r.orders for r in runners if r.orders is not None]
    return Sample(
        t=time.perf_counter() - t0, rss=proc_status()["VmRSS"], blocks=sys.getallocatedblocks(),
        fills=sum(om.fills_committed for om in oms), orders=sum(om.orders_created for om in oms),
        trade_ids=sum(trade_ids_kept(om) for om in oms),
        open_orders=sum(len(r.open_orders) for r in runners), lag_p99=lag.take())


def slope_per_min(points: list[Sample]) -> float:
    """Least-squares RSS slope, bytes per minute."""
    if len(points) < 3:
        return float("nan")
    return statistics.linear_regression([p.t for p in points],
                                        [float(p.rss) for p in points]).slope * 60


async def run(args: argparse.Namespace) -> int:
    seconds = args.minutes * 60
    warmup = args.warmup if args.warmup is not None else 0.2 * seconds
    print(f"{args.portfolios} portfolios x {args.assets} assets, synthetic feeds at 1 bar/s, "
          f"sma_crossover 2/5, paper, fixed_fraction; SQLite WAL synchronous=FULL; log level "
          f"{args.log_level} to a file; {args.minutes:g} min, warm-up {warmup:.0f} s excluded, "
          f"a sample every {args.sample:g} s"
          + (f"; tracemalloc on ({args.tracemalloc} sites)" if args.tracemalloc else ""))
    with tempfile.TemporaryDirectory(prefix="lts-soak-") as tmp_name:
        tmp = Path(tmp_name)
        url = f"sqlite+aiosqlite:///{tmp / 'soak.db'}"
        specs = portfolio_specs(args.portfolios, args.assets, args.universe)
        await create_portfolios(url, specs)
        log_file = tmp / "engine.log"
        engine_log = EngineLog(log_file, args.log_level)
        engine = Engine(load_settings(overrides={
            "database": {"url": url, "sqlite_synchronous": "FULL"}, "demo": {"enabled": False},
            "log_level": args.log_level, "admin_password": "Soak-bench-passw0rd",
            "api": {"port": 0}}))  # served, on any free port of 127.0.0.1
        lag = LagP99()
        samples: list[Sample] = []
        snapshot_warm = None
        code = 0
        gc.collect()
        rss_before = proc_status()["VmRSS"]
        async with anyio.create_task_group() as tg:
            tg.start_soon(lag.run)
            done = anyio.Event()

            async def run_engine() -> None:
                try:
                    await engine.run()
                finally:
                    done.set()

            tg.start_soon(run_engine)
            await engine.started.wait()
            with anyio.move_on_after(args.startup_timeout):
                while len(running_runners(engine)) < len(specs):  # noqa: ASYNC110 - a poll
                    await anyio.sleep(0.1)
            if len(running_runners(engine)) < len(specs):
                print(f"NOT all portfolios started within {args.startup_timeout:.0f}s")
                code = 1
            if args.tracemalloc:
                tracemalloc.start(8)
            t0 = time.perf_counter()
            lag.take()
            next_line = 60.0
            warm: Sample | None = None
            while (now := time.perf_counter() - t0) < seconds:
                await anyio.sleep(min(args.sample, seconds - now))
                s = take_sample(engine, t0, lag)
                samples.append(s)
                if warm is None and s.t >= warmup:
                    warm = s
                    if args.tracemalloc:
                        snapshot_warm = tracemalloc.take_snapshot()
                if s.t >= next_line:
                    next_line += 60
                    print(f"  t+{s.t / 60:4.1f} min: RSS {s.rss / MB:7.1f} MB, heap "
                          f"{s.blocks:,} blocks, fills {s.fills:,}, trade ids kept "
                          f"{s.trade_ids:,}, open orders {s.open_orders:,}, loop lag p99 "
                          f"{s.lag_p99 * 1e3:.1f} ms" + ("" if warm is None else
                                                          " (after warm-up)"), flush=True)
            top = []
            if args.tracemalloc and snapshot_warm is not None:
                stats = tracemalloc.take_snapshot().compare_to(snapshot_warm, "lineno")
                top = stats[:args.tracemalloc]
                tracemalloc.stop()
            states = engine.facade.states()
            engine.stop()
            await done.wait()
            tg.cancel_scope.cancel()
        engine_log.close()
        n_orders, n_fills = await count_rows(url)
        log_mb = log_file.stat().st_size / MB

    after = [s for s in samples if warm is not None and s.t >= warm.t]
    if warm is None or len(after) < 3:
        print("too short: no samples after the warm-up (raise --minutes or lower --warmup)")
        return 1
    end = samples[-1]
    window = (end.t - warm.t) / 60
    fills = end.fills - warm.fills
    growth = (end.rss - warm.rss) / warm.rss
    half = len(after) // 2
    print()
    print(f"RSS: {rss_before / MB:.1f} MB before the engine (the baseline), {warm.rss / MB:.1f} "
          f"MB at the end of the warm-up (t+{warm.t / 60:.1f} min), {end.rss / MB:.1f} MB at the "
          f"end (t+{end.t / 60:.1f} min)")
    print(f"growth after the warm-up: {(end.rss - warm.rss) / MB:+.1f} MB ({growth:+.1%}) over "
          f"{window:.1f} min; slope {slope_per_min(after) / MB:+.2f} MB/min (first half "
          f"{slope_per_min(after[:half + 1]) / MB:+.2f}, second half "
          f"{slope_per_min(after[half:]) / MB:+.2f} MB/min)")
    print(f"fills after the warm-up: {fills:,} ({fills / (window * 60):,.1f}/s), orders "
          f"{end.orders - warm.orders:,}; per fill: "
          f"{(end.rss - warm.rss) / max(1, fills):+,.0f} bytes of RSS, "
          f"{(end.blocks - warm.blocks) / max(1, fills):+.2f} heap blocks (landed code: about "
          f"+300 bytes per fill)")
    print(f"Python heap: {warm.blocks:,} -> {end.blocks:,} allocated blocks; trade ids kept "
          f"{warm.trade_ids:,} -> {end.trade_ids:,} (those of open orders, plus "
          f"{kept_per_portfolio()}); open orders {warm.open_orders:,} -> {end.open_orders:,}")
    lags = [s.lag_p99 * 1e3 for s in after]
    print(f"loop lag p99 per {args.sample:g} s interval after the warm-up: median "
          f"{statistics.median(lags):.1f} ms, worst {max(lags):.1f} ms")
    running = sum(1 for s in states if s.status == "running")
    print(f"database at the end: {n_orders:,} orders, {n_fills:,} fills; log {log_mb:.0f} MB; "
          f"{running}/{len(specs)} portfolios running, "
          f"{sum(s.restarts for s in states)} restart(s)")
    if top:
        print(f"tracemalloc: the {len(top)} sites that grew most after the warm-up:")
        for stat in top:
            frame = stat.traceback[0]
            where = "/".join(Path(frame.filename).parts[-2:])
            print(f"  {stat.size_diff / 1024:+9.1f} KiB {stat.count_diff:+8,} blocks  "
                  f"{where}:{frame.lineno}  {stat.traceback.format()[-1].strip()}")
    met = growth < TARGET_GROWTH
    print()
    print(f"target RSS growth under {TARGET_GROWTH:.0%} after the warm-up: "
          f"{'met' if met else 'NOT met'} ({growth:+.1%}, {slope_per_min(after) / MB:+.2f} "
          f"MB/min over {window:.1f} min)")
    return code or (0 if met else 3)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--portfolios", type=int, default=500)
    ap.add_argument("--assets", type=int, default=4)
    ap.add_argument("--minutes", type=float, default=30.0)
    ap.add_argument("--warmup", type=float, default=None,
                    help="seconds excluded at the start (default: 20%% of the run)")
    ap.add_argument("--sample", type=float, default=5.0, help="seconds between samples")
    ap.add_argument("--universe", type=int, default=0,
                    help="share symbols from this many (0: a distinct symbol per asset)")
    ap.add_argument("--startup-timeout", type=float, default=300.0)
    ap.add_argument("--log-level", choices=["DEBUG", "INFO", "WARNING"], default="INFO")
    ap.add_argument("--loop", choices=["auto", "asyncio", "uvloop"], default="auto")
    ap.add_argument("--tracemalloc", type=int, default=0, metavar="N",
                    help="trace allocations; print the N sites that grew most (slow)")
    args = ap.parse_args()
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
