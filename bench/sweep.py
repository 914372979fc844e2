"""Parameter sweep speed: LTS's ``sweep`` against backtesting.py's ``Backtest.optimize`` (issue 11).

Both sweep the SMA crossover over the same 10 x 10 grid, every pair valid: fast 5..50 step 5,
slow 60..240 step 20 (100 combinations), long only, a fixed 10 units, zero costs, fills at the
next open, on the same seeded one-minute GBM bars as bench/backtest.py (N bars, 100,000 by
default), written once to a CSV that both read; both rank by Sharpe.

- LTS: ``python -m lts.engine sweep CSV --grid fast=5:50:5 --grid slow=60:240:20 --workers 2
  --out DIR`` as a child process (spawned workers, each loading the CSV once).
- backtesting.py 0.6.6: a child process (this script with ``--child``) that loads the CSV with
  pandas and calls ``Backtest.optimize(fast=range(5, 55, 5), slow=range(60, 260, 20),
  maximize="Sharpe Ratio")``. optimize runs its grid in ``backtesting.Pool()``: a
  ``multiprocessing.Pool`` of ``os.cpu_count()`` forked processes on Linux (this machine: 2,
  the same two cores as LTS's workers), the data handed over in shared memory.

The two alternate within each repeat (the machine is shared and noisy); figures are medians of
R repeats; the ratio is backtesting.py's time over LTS's (above 1: LTS faster); target >= 2x,
whole process against whole process. Each side's best combination and its Sharpe are printed
(both use backtesting.py's definition of the Sharpe ratio).

``--profile``: where a worker's time goes. This process replays K combinations the way a
worker does (the CSV loaded once into a MarketTape, ``run_replay`` per combination, the heap
frozen before each run) and prints per run: the whole run, the bar loop (the replay's own
elapsed_seconds) and the rest, then the top of a cProfile of those runs.

Usage: python bench/sweep.py [--bars N] [--repeat R] [--workers W] [--quick]
                             [--profile [K]] [--only lts|backtesting]
``--quick``: 20,000 bars, 1 repeat (a smoke run).
"""

import argparse
import csv
import json
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _ref_lts
from machine import describe

BENCH = Path(__file__).resolve().parent
FAST, SLOW = (5, 50, 5), (60, 240, 20)  # start, stop (included), step
QUANTITY, CASH = 10, 100_000
TARGET = 2.0


def _spec(r: tuple[int, int, int]) -> str:
    return f"{r[0]}:{r[1]}:{r[2]}"


def _range(r: tuple[int, int, int]) -> range:
    return range(r[0], r[1] + 1, r[2])


def run_lts(csv_path: Path, workers: int, out: Path) -> dict[str, float | str]:
    cmd = [sys.executable, "-m", "lts.engine", "sweep", str(csv_path), "--symbol", "BENCH",
           "--strategy", "sma_crossover", "--quantity", str(QUANTITY), "--cash", str(CASH),
           "--fill-at", "next-open", "--grid", f"fast={_spec(FAST)}", "--grid",
           f"slow={_spec(SLOW)}", "--workers", str(workers), "--metric", "sharpe",
           "--out", str(out)]
    child = _ref_lts.run_child(cmd)
    with (out / "results.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    best = max((r for r in rows if r["sharpe"]), key=lambda r: float(r["sharpe"]))
    return {"wall": child.wall_seconds, "runs": len(rows),
            "best": f"fast={best['fast']} slow={best['slow']}",
            "sharpe": float(best["sharpe"]), "rss_mib": child.max_rss_kib / 1024}


def run_backtesting(csv_path: Path) -> dict[str, float | str]:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", str(csv_path)]
    child = _ref_lts.run_child(cmd)
    result = json.loads(child.stdout.strip().splitlines()[-1])
    result["wall"] = child.wall_seconds
    result["rss_mib"] = child.max_rss_kib / 1024
    return dict(result)


def child_backtesting(csv_path: str) -> int:
    """backtesting.py's optimize over the grid, in this process (``--child``)."""
    import os
    import warnings

    os.environ.setdefault("TQDM_DISABLE", "1")
    import _ref_backtesting
    import pandas as pd

    started = time.perf_counter()
    frame = pd.read_csv(csv_path, index_col=0, parse_dates=True)
    bt = _ref_backtesting.make_backtest(frame, cash=CASH, fill_at="next-open")
    loaded = time.perf_counter()
    with warnings.catch_warnings():
        _ref_backtesting.quiet()
        stats, heatmap = bt.optimize(fast=list(_range(FAST)), slow=list(_range(SLOW)),
                                     quantity=[QUANTITY], long_only=[True],
                                     maximize="Sharpe Ratio", return_heatmap=True)
    done = time.perf_counter()
    strategy = stats["_strategy"]
    print(json.dumps({"load_seconds": round(loaded - started, 3),
                      "optimize_seconds": round(done - loaded, 3),
                      "runs": int(heatmap.notna().sum()),
                      "best": f"fast={strategy.fast} slow={strategy.slow}",
                      "sharpe": float(stats["Sharpe Ratio"]),
                      "processes": os.cpu_count()}))
    return 0


def profile(csv_path: Path, runs: int) -> None:
    """Replay ``runs`` combinations the way a sweep worker does, timed and profiled."""
    import cProfile
    import gc
    import io
    import pstats
    from decimal import Decimal

    import anyio

    from lts.backtest.data import open_market_data
    from lts.backtest.market_tape import MarketTape
    from lts.backtest.replay import ReplayOptions, run_replay
    from lts.plugins.registry import Registry
    from lts.settings import RiskLimits

    # as in a worker: SIGINT ignored. (With Python's default handler, asyncio's Runner.run
    # installs its own and, on 3.11, reads it back at the end through signal's enum
    # conversion, whose error message reprs the finished task: the whole ReplayResult, tens of
    # ms for a few thousand fills.)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    t = time.perf_counter()
    tape = MarketTape.record(open_market_data([csv_path], "BENCH"))
    print(f"\n== profile: one worker's work in this process; the data loaded into a tape in "
          f"{time.perf_counter() - t:.2f}s")
    registry = Registry.discover(("strategy", "portfolio", "broker", "pipeline"), lazy=True)
    pairs = [(f, s) for f in _range(FAST) for s in _range(SLOW)][:runs]

    def one(fast: int, slow: int) -> tuple[float, float]:
        opts = ReplayOptions(strategy="sma_crossover", params={"fast": fast, "slow": slow},
                             quantity=Decimal(QUANTITY), cash=Decimal(CASH),
                             risk=RiskLimits(max_orders_per_second=None, max_open_orders=None))
        gc.freeze()
        started = time.perf_counter()
        result = anyio.run(run_replay, tape, opts, registry,
                           backend_options={"use_uvloop": True})
        gc.unfreeze()
        return time.perf_counter() - started, result.summary.elapsed_seconds

    one(*pairs[0])  # warm: imports, first loop
    timed = [one(f, s) for f, s in pairs]
    whole = statistics.median(t for t, _ in timed)
    loop = statistics.median(b for _, b in timed)
    rest = statistics.median(t - b for t, b in timed)
    print(f"per run, median of {len(timed)}: whole {whole * 1000:,.0f} ms = bar loop "
          f"{loop * 1000:,.0f} ms + the rest {rest * 1000:,.0f} ms ({len(tape):,} bars: "
          f"{len(tape) / loop:,.0f} bars/s in the loop)")
    profiler = cProfile.Profile()
    profiler.enable()
    for f, s in pairs:
        one(f, s)
    profiler.disable()
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    stats.sort_stats("cumulative").print_stats(
        r"gc.collect|round_trips|compute_statistics|samples|create_all|_create_connection|"
        r"create_portfolio|load_portfolio|_summary|dispose|freeze_startup_heap|"
        r"runner.py:\d+\(run\)|new_event_loop|start_new_thread")
    print(f"cProfile of {len(pairs)} runs (cumulative; the bar loop is runner.py run):")
    print("\n".join(line for line in out.getvalue().splitlines()
                    if line.strip() and "Ordered by" not in line
                    and "List reduced" not in line and "function calls" not in line))
    out = io.StringIO()
    stats.stream = out
    stats.sort_stats("tottime").print_stats(15)
    print("top by own time:")
    print("\n".join(line for line in out.getvalue().splitlines()[6:] if line.strip()))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bars", type=int, default=100_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--quick", action="store_true", help="20,000 bars, 1 repeat")
    ap.add_argument("--profile", type=int, nargs="?", const=10, metavar="K",
                    help="profile K runs as a worker does them (default 10) and stop")
    ap.add_argument("--only", choices=["lts", "backtesting"])
    ap.add_argument("--child", metavar="CSV", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        return child_backtesting(args.child)
    if args.quick:
        args.bars, args.repeat = 20_000, 1
    from backtest import make_frame, write_csv

    print(describe())
    print(f"sma_crossover, grid fast {_spec(FAST)} x slow {_spec(SLOW)} = "
          f"{len(_range(FAST)) * len(_range(SLOW))} combinations, long only, {QUANTITY} units, "
          f"zero costs, fills at the next open; LTS --workers {args.workers}, backtesting.py "
          "optimize (multiprocessing.Pool, fork, os.cpu_count() processes)")
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="lts-sweep-bench-") as tmp:
        workdir = Path(tmp)
        t = time.perf_counter()
        csv_path = write_csv(make_frame(args.bars), workdir / "bars.csv")
        print(f"{args.bars:,} seeded one-minute bars written to CSV "
              f"({csv_path.stat().st_size / 2**20:,.1f} MiB) in {time.perf_counter() - t:.1f}s")
        if args.profile is not None:
            profile(csv_path, args.profile)
            return 0
        lts_runs: list[dict[str, float | str]] = []
        ref_runs: list[dict[str, float | str]] = []
        for i in range(args.repeat):
            order = ["lts", "backtesting"] if i % 2 == 0 else ["backtesting", "lts"]
            for engine in order:
                if args.only not in (None, engine):
                    continue
                if engine == "lts":
                    lts_runs.append(run_lts(csv_path, args.workers, workdir / f"lts-{i}"))
                    r = lts_runs[-1]
                    print(f"run {i + 1}: LTS sweep {r['wall']:.1f}s, {r['runs']} runs, best "
                          f"{r['best']} (sharpe {float(r['sharpe']):.4f})", flush=True)
                else:
                    ref_runs.append(run_backtesting(csv_path))
                    r = ref_runs[-1]
                    print(f"run {i + 1}: backtesting.py {r['wall']:.1f}s (optimize "
                          f"{float(r['optimize_seconds']):.1f}s, {r['processes']} processes), "
                          f"{r['runs']} runs, best {r['best']} "
                          f"(sharpe {float(r['sharpe']):.4f})", flush=True)
        if lts_runs and ref_runs:
            lts_wall = statistics.median(float(r["wall"]) for r in lts_runs)
            ref_wall = statistics.median(float(r["wall"]) for r in ref_runs)
            ratio = ref_wall / lts_wall
            ratios = [float(b["wall"]) / float(a["wall"]) for a, b in zip(lts_runs, ref_runs,
                                                                           strict=True)]
            per_run = lts_wall / float(lts_runs[0]["runs"])
            print(f"\nmedian whole process: LTS {lts_wall:.1f}s ({per_run * 1000:,.0f} ms per "
                  f"combination with {args.workers} workers), backtesting.py {ref_wall:.1f}s: "
                  f"LTS {ratio:.2f}x (per repeat {', '.join(f'{x:.2f}' for x in ratios)}); "
                  f"target >= {TARGET}x: "
                  f"{'met' if ratio >= TARGET else 'NOT met'}")
    print(f"\ndone in {time.perf_counter() - started:.0f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
