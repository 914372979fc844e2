"""Reading historical bars: peak memory and speed of the data input of a backtest (issue 11).

One-minute bars (a seeded random walk, prices with 2 decimals, written once to CSV) are read by
a child process of its own per measurement; its peak RSS is ``wait4``'s ru_maxrss of that
child, its speed the bars over the reading time, wall and CPU (imports excluded; the machine is
shared: CPU time is the steadier figure). Modes:

  imports   the imports alone (pyarrow, numpy, pandas, LTS's reader): the floor
  load      ``load_bars``: every bar held as a Bar
  stream    ``iter_bars``, batches of 4096 dropped as they come (what a replay holds)
  market    ``open_market_data`` over three files of a third each: the checking survey, then
            the merged stream of all three (heapq.merge), batches dropped

Each mode at N/4, N/2 and N bars: ``load`` grows with N, the streamed modes should not.
Medians of R repeats. Target (issue 11): at most backtesting.py's 381 MiB at 1M bars, and flat
with N when streamed.

Usage: python bench/data_memory.py [--bars N] [--repeat R] [--quick]
``--quick``: 100,000 bars, 1 repeat.
"""

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from machine import describe

MODES = ("imports", "load", "stream", "market")
HEADER = "timestamp,open,high,low,close,volume\n"


def write_bars(path: Path, n: int, seed: int, start: int = 1_704_153_600) -> None:
    """n one-minute bars of a random walk from 100, 2 decimals, a consistent OHLC."""
    rng = random.Random(seed)
    price = 100.0
    with path.open("w") as f:
        f.write(HEADER)
        for i in range(n):
            close = max(0.01, round(price * (1 + rng.gauss(0, 0.001)), 2))
            high = round(max(price, close) * 1.0005, 2)
            low = round(min(price, close) * 0.9995, 2)
            f.write(f"{start + 60 * i},{price:.2f},{high:.2f},{low:.2f},{close:.2f},"
                    f"{rng.randint(1, 1000)}\n")
            price = close


def child(mode: str, paths: list[str]) -> None:
    """One measurement, in this (child) process: prints bars and seconds as JSON."""
    import pandas  # noqa: F401  (pyarrow's conversions import it: part of the floor)
    import pyarrow as pa

    from lts.backtest.data import open_market_data
    from lts.plugins.pipeline.bars_file import iter_bars, load_bars

    pa.array([1])
    bars = 0
    started, cpu = time.perf_counter(), time.process_time()
    if mode == "load":
        bars = len(load_bars(paths[0], "X"))
    elif mode == "stream":
        for batch in iter_bars(paths[0], "X", batch=4096):
            bars += len(batch)
    elif mode == "market":
        for batch in open_market_data(paths).batches(4096):
            bars += len(batch)
    print(json.dumps({"bars": bars, "seconds": time.perf_counter() - started,
                      "cpu": time.process_time() - cpu}))


def measure(mode: str, paths: list[Path]) -> tuple[float, int, float, float]:
    """(peak RSS in MiB, bars, seconds, CPU seconds) of one child process."""
    proc = subprocess.Popen([sys.executable, __file__, "--child", mode, *map(str, paths)],
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"child {mode} failed with status {proc.returncode}")
    result = json.loads(out)
    return usage.ru_maxrss / 1024, result["bars"], result["seconds"], result["cpu"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bars", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], args.child[1:])
        return
    if args.quick:
        args.bars, args.repeat = 100_000, 1
    print(describe())
    print(f"bars: N = {args.bars:,} one-minute bars; medians of {args.repeat} repeat(s)")
    with tempfile.TemporaryDirectory(prefix="lts-data-bench-") as tmp:
        sizes = [args.bars // 4, args.bars // 2, args.bars]
        files: dict[int, list[Path]] = {}
        for n in sizes:
            whole = Path(tmp) / f"X{n}.csv"
            write_bars(whole, n, seed=n)
            thirds = [Path(tmp) / f"S{k}_{n}.csv" for k in range(3)]
            for k, path in enumerate(thirds):
                write_bars(path, n // 3, seed=n + k)
            files[n] = [whole, *thirds]
        print(f"{'mode':<8} {'bars':>10} {'peak RSS MiB':>13} {'bars/s':>12} "
              f"{'bars/CPU-s':>12}")
        for mode in MODES:
            for n in sizes if mode != "imports" else sizes[-1:]:
                paths = files[n][1:] if mode == "market" else files[n][:1]
                runs = [measure(mode, paths) for _ in range(args.repeat)]
                rss = statistics.median(r[0] for r in runs)
                bars = runs[0][1]
                wall = statistics.median(r[1] / r[2] for r in runs) if bars else 0
                cpu = statistics.median(r[1] / r[3] for r in runs) if bars else 0
                print(f"{mode:<8} {bars:>10,} {rss:>13.0f} "
                      f"{f'{wall:,.0f}' if bars else '-':>12} "
                      f"{f'{cpu:,.0f}' if bars else '-':>12}")


if __name__ == "__main__":
    main()
