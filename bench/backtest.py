"""Backtest speed and memory: LTS's replay against backtesting.py on the same bars (issue 11).

Both engines run the SMA crossover fast=10 slow=30, long only, a fixed 10 units, zero costs,
fills at the next open, on the same seeded one-minute GBM bars (bench/replay.py's series:
``GbmSeries(1, 100.0, 0.0, 0.001, 1000.0)``, about one order every ~26 bars), written once to a
CSV that both read. Each engine runs as a child process of its own, the two alternating within
each repeat (the machine is shared and noisy): times are medians of the repeats; a ratio is
taken within each repeat (its two runs are next to each other in time), backtesting.py's time
over LTS's (above 1: LTS faster), and the median of those is the figure held to the target.

  throughput  N bars (1,000,000), R repeats (5).
              (a) the loop: LTS's bars/s as its replay reports it (``--json``: bars over the
              run's elapsed_seconds) against backtesting.py's ``Backtest.run()`` alone (the
              CSV already loaded with pandas, the Backtest constructed; its statistics
              included); target LTS >= 2.5x. Where LTS's replay streams the file a chunk at a
              time (load_seconds 0), its elapsed_seconds includes reading the CSV, and its
              statistics come after it: both read times are printed.
              (b) the whole process: the wall time of ``python -m lts.engine replay CSV ...``
              against a python process that loads the CSV with pandas and runs backtesting.py
              (``python bench/_ref_backtesting.py CSV``), interpreter start-up and imports
              included; target LTS >= 2x.
  startup     a 1,000-bar backtest as a whole process, the same two commands, S repeats (7);
              target: LTS at most as long.
  memory      peak RSS of the whole process (``wait4``'s ru_maxrss of that child) at N bars,
              LTS against backtesting.py (target: at most backtesting.py's), and LTS at N/4,
              N/2 and N bars: whether it grows with the number of bars.

Both engines do the same work: backtesting.py's strategy (bench/_ref_backtesting.py) computes
the two means with its ``SMA`` through ``Strategy.I``, tests ``crossover`` on each bar, and
``buy(size=10)`` / ``position.close()``; the fills and final equity of both are printed. They
can differ by a pair of fills where the means tie exactly (LTS compares exact sums; float means
break the tie either way: see bench/parity.py); the ties in the series are counted and shown.
LTS runs with its defaults: no database (a backtest keeps its fills in memory; ``--db-url``
would journal every order, event and fill).

Usage: python bench/backtest.py [--bars N] [--repeat R] [--startup-repeat S]
                                [--only throughput|startup|memory] [--quick] [--lts-tree DIR]
``--quick``: 100,000 bars, 1 repeat of each (a smoke run, well under a minute).
"""

import argparse
import json
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _ref_lts
import pandas as pd
from _ref_fills import exact_ties
from machine import describe

BENCH = Path(__file__).resolve().parent
FAST, SLOW, QUANTITY, CASH = 10, 30, 10, 100_000
MINUTE_NS = 60 * 1_000_000_000
DECIMALS = 4  # GbmSeries's prices have 4 decimals
TARGET_LOOP, TARGET_PROCESS = 2.5, 2.0


def make_frame(n: int, seed: int = 1) -> pd.DataFrame:
    """bench/replay.py's ``make_bars`` series as a DataFrame (Open, High, Low, Close, Volume)."""
    from lts.plugins.pipeline.synthetic import GbmSeries

    gbm = GbmSeries(seed, 100.0, 0.0, 0.001, 1000.0)
    t0 = 1_700_000_000 * 1_000_000_000
    bars = [gbm.next_bar("BENCH", t0 + i * MINUTE_NS) for i in range(n)]
    return pd.DataFrame({"Open": [b.open for b in bars], "High": [b.high for b in bars],
                         "Low": [b.low for b in bars], "Close": [b.close for b in bars],
                         "Volume": [b.volume for b in bars]},
                        index=pd.to_datetime([b.ts_event for b in bars], unit="ns"))


def write_csv(frame: pd.DataFrame, path: Path) -> Path:
    frame.to_csv(path, index_label="time", float_format=f"%.{DECIMALS}f",
                 date_format="%Y-%m-%dT%H:%M:%S")
    return path


@dataclass
class Run:
    engine: str
    bars: int
    loop_seconds: float  # LTS: the replay's elapsed_seconds; backtesting.py: Backtest.run()
    wall_seconds: float  # the whole child process
    rss_mib: float
    fills: int
    final_equity: float
    load_seconds: float  # reading the CSV, as the engine reports it

    @property
    def loop_rate(self) -> float:
        return self.bars / self.loop_seconds if self.loop_seconds else 0.0


def run_lts(csv: Path, tree: Path) -> Run:
    cmd = _ref_lts.replay_command(csv, symbol="BENCH", fast=FAST, slow=SLOW, quantity=QUANTITY,
                                  cash=CASH, fill_at="next-open")
    child = _ref_lts.run_child(cmd, tree=tree)
    s = json.loads(child.stdout.strip().splitlines()[-1])
    return Run("LTS", int(s["bars"]), float(s["elapsed_seconds"]), child.wall_seconds,
               child.max_rss_kib / 1024, int(s["fills"]), float(s["final_equity"]),
               float(s.get("load_seconds", 0.0)))


def run_backtesting(csv: Path, tree: Path) -> Run:
    cmd = [sys.executable, str(BENCH / "_ref_backtesting.py"), str(csv), "--fast", str(FAST),
           "--slow", str(SLOW), "--quantity", str(QUANTITY), "--cash", str(CASH)]
    child = _ref_lts.run_child(cmd, tree=tree)
    s = json.loads(child.stdout.strip().splitlines()[-1])
    return Run("backtesting.py", int(s["bars"]), float(s["run_seconds"]), child.wall_seconds,
               child.max_rss_kib / 1024, int(s["fills"]), float(s["final_equity"]),
               float(s["load_seconds"]))


def run_lts_in_memory(csv: Path, tree: Path) -> Run:
    """LTS's loop with the bars read before it (bench/_lts_loop.py), as backtesting.py's
    run() is timed."""
    cmd = [sys.executable, str(BENCH / "_lts_loop.py"), str(csv)]
    child = _ref_lts.run_child(cmd, tree=tree)
    s = json.loads(child.stdout.strip().splitlines()[-1])
    return Run("LTS in memory", int(s["bars"]), float(s["run_seconds"]), child.wall_seconds,
               child.max_rss_kib / 1024, int(s["fills"]), float(s["final_equity"]),
               float(s["load_seconds"]))


def pair(csv: Path, tree: Path, i: int) -> tuple[Run, Run]:
    """One run of each, LTS first on even repeats, backtesting.py first on odd ones."""
    if i % 2 == 0:
        lts = run_lts(csv, tree)
        return lts, run_backtesting(csv, tree)
    ref = run_backtesting(csv, tree)
    return run_lts(csv, tree), ref


def _med(values: list[float]) -> float:
    return statistics.median(values)


def _verdict(ok: bool) -> str:
    return "met" if ok else "NOT met"


def throughput(csv: Path, tree: Path, repeat: int, ties: int) -> list[tuple[Run, Run]]:
    print(f"\n== throughput: {ties} exact tie(s) of the means in the series; "
          f"{repeat} repeat(s), alternating")
    runs: list[tuple[Run, Run]] = []
    in_memory: list[float] = []
    for i in range(repeat):
        lts, ref = pair(csv, tree, i)
        runs.append((lts, ref))
        held = run_lts_in_memory(csv, tree)
        in_memory.append(held.loop_rate / ref.loop_rate)
        print(f"       loop with the bars in memory: LTS {held.loop_rate:>9,.0f} bars/s "
              f"({held.loop_seconds:.2f}s; read before it in {held.load_seconds:.2f}s)")
        print(f"run {i + 1}: loop LTS {lts.loop_rate:>9,.0f} bars/s ({lts.loop_seconds:.2f}s), "
              f"backtesting.py {ref.loop_rate:>9,.0f} bars/s ({ref.loop_seconds:.2f}s); "
              f"process LTS {lts.wall_seconds:.2f}s, backtesting.py {ref.wall_seconds:.2f}s")
    lts_runs, ref_runs = [r[0] for r in runs], [r[1] for r in runs]
    lts_rate = _med([r.loop_rate for r in lts_runs])
    ref_rate = _med([r.loop_rate for r in ref_runs])
    lts_wall = _med([r.wall_seconds for r in lts_runs])
    ref_wall = _med([r.wall_seconds for r in ref_runs])
    # the ratio of each repeat's two runs, next to each other in time, then their median:
    # steadier on a shared machine than the ratio of the two medians (shown too)
    loop_ratios = [lts.loop_rate / ref.loop_rate for lts, ref in runs]
    wall_ratios = [ref.wall_seconds / lts.wall_seconds for lts, ref in runs]
    loop, process = _med(loop_ratios), _med(wall_ratios)
    print(f"same work: LTS {lts_runs[0].fills:,} fills, final equity "
          f"{lts_runs[0].final_equity:,.2f}; backtesting.py {ref_runs[0].fills:,} fills, "
          f"final equity {ref_runs[0].final_equity:,.2f}")
    print(f"reading the CSV: LTS reports {_med([r.load_seconds for r in lts_runs]):.2f}s apart "
          f"from its loop (0: read in the loop, as it streams), backtesting.py's pandas "
          f"{_med([r.load_seconds for r in ref_runs]):.2f}s (not in its run())")
    print(f"(a) loop: LTS {lts_rate:,.0f} bars/s, backtesting.py {ref_rate:,.0f} bars/s "
          f"(medians, ratio {lts_rate / ref_rate:.2f}); LTS/backtesting.py per repeat "
          f"{', '.join(f'{x:.2f}' for x in loop_ratios)}, median {loop:.2f}x; "
          f"target >= {TARGET_LOOP}x: {_verdict(loop >= TARGET_LOOP)}")
    held = _med(in_memory)
    print(f"(a') loop, the bars in memory (read before it, as backtesting.py's run() is "
          f"timed): LTS/backtesting.py per repeat {', '.join(f'{x:.2f}' for x in in_memory)}, "
          f"median {held:.2f}x; target >= {TARGET_LOOP}x: {_verdict(held >= TARGET_LOOP)}")
    print(f"(b) whole process: LTS {lts_wall:.2f}s, backtesting.py {ref_wall:.2f}s "
          f"(medians, ratio {ref_wall / lts_wall:.2f}); backtesting.py/LTS per repeat "
          f"{', '.join(f'{x:.2f}' for x in wall_ratios)}, median {process:.2f}x; "
          f"target >= {TARGET_PROCESS}x: {_verdict(process >= TARGET_PROCESS)}")
    return runs


def startup(csv: Path, tree: Path, repeat: int) -> None:
    print(f"\n== startup: a 1,000-bar backtest as a whole process, {repeat} repeat(s), "
          "alternating")
    lts_walls, ref_walls = [], []
    for i in range(repeat):
        lts, ref = pair(csv, tree, i)
        lts_walls.append(lts.wall_seconds)
        ref_walls.append(ref.wall_seconds)
    lts_wall, ref_wall = _med(lts_walls), _med(ref_walls)
    ratio = _med([ref / lts for lts, ref in zip(lts_walls, ref_walls, strict=True)])
    print(f"LTS {lts_wall:.2f}s (runs {', '.join(f'{x:.2f}' for x in lts_walls)}), "
          f"backtesting.py {ref_wall:.2f}s (runs {', '.join(f'{x:.2f}' for x in ref_walls)}) "
          f"(medians); backtesting.py/LTS per repeat, median {ratio:.2f}; target LTS at most "
          f"as long: {_verdict(ratio >= 1)}")


def memory(frame: pd.DataFrame, workdir: Path, tree: Path,
           full: list[tuple[Run, Run]]) -> None:
    n = len(frame)
    print("\n== memory: peak RSS of the whole process (MiB)")
    if full:
        lts_full = _med([r[0].rss_mib for r in full])
        ref_full = _med([r[1].rss_mib for r in full])
    else:
        lts_run, ref_run = pair(workdir / "full.csv", tree, 0)
        lts_full, ref_full = lts_run.rss_mib, ref_run.rss_mib
    print(f"{n:,} bars: LTS {lts_full:,.0f} MiB, backtesting.py {ref_full:,.0f} MiB "
          f"(LTS/backtesting.py = {lts_full / ref_full:.2f}); target at most backtesting.py's: "
          f"{_verdict(lts_full <= ref_full)}")
    sizes = [n // 4, n // 2]
    rss = {}
    for size in sizes:
        csv = write_csv(frame.iloc[:size], workdir / f"part{size}.csv")
        rss[size] = run_lts(csv, tree).rss_mib
    rss[n] = lts_full
    per_bar = (rss[n] - rss[sizes[0]]) * 1024 * 1024 / (n - sizes[0])
    print("LTS by bars: " + ", ".join(f"{k:,}: {v:,.0f} MiB" for k, v in rss.items())
          + f"; growth {per_bar:,.0f} bytes per bar")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bars", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--startup-repeat", type=int, default=7)
    ap.add_argument("--only", choices=["throughput", "startup", "memory"])
    ap.add_argument("--quick", action="store_true", help="100,000 bars, 1 repeat of each")
    ap.add_argument("--lts-tree", type=Path, default=_ref_lts.ROOT, metavar="DIR",
                    help="run the lts package of this tree (default: this checkout)")
    args = ap.parse_args()
    if args.quick:
        args.bars, args.repeat, args.startup_repeat = 100_000, 1, 1
    sys.path.insert(0, str(args.lts_tree))  # make_frame's GbmSeries from the same tree
    print(describe())
    print(f"LTS: python -m lts.engine replay, lts from {args.lts_tree}; backtesting.py "
          f"{_version('backtesting')}, pandas {pd.__version__}")
    print(f"sma_crossover fast={FAST} slow={SLOW}, long only, {QUANTITY} units, zero costs, "
          "fills at the next open")
    want = {args.only} if args.only else {"throughput", "startup", "memory"}
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="lts-backtest-bench-") as tmp:
        workdir = Path(tmp)
        t = time.perf_counter()
        bars = 1_000 if want == {"startup"} else args.bars
        frame = make_frame(bars)
        csv = write_csv(frame, workdir / "full.csv")
        print(f"{bars:,} seeded one-minute bars written to CSV "
              f"({csv.stat().st_size / 2**20:,.0f} MiB) in {time.perf_counter() - t:.1f}s")
        full: list[tuple[Run, Run]] = []
        if "throughput" in want:
            ties = len(exact_ties(frame, DECIMALS, FAST, SLOW))
            full = throughput(csv, args.lts_tree, args.repeat, ties)
        if "startup" in want:
            small = write_csv(frame.iloc[:1_000], workdir / "startup.csv")
            startup(small, args.lts_tree, args.startup_repeat)
        if "memory" in want:
            memory(frame, workdir, args.lts_tree, full)
    print(f"\ndone in {time.perf_counter() - started:.0f}s")
    return 0


def _version(name: str) -> str:
    from importlib.metadata import version

    return version(name)


if __name__ == "__main__":
    sys.exit(main())
