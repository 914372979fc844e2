"""Multi-symbol replay: 20 symbols x 100,000 one-minute bars through one portfolio (issue 11).

Twenty seeded GBM series (bench/backtest.py's generator, one seed per symbol), one CSV each in
one directory, replayed with ``python -m lts.engine replay DIR`` (every file a symbol, their
bars merged in time order through the same engine path) with the SMA crossover fast=10 slow=30
and a fixed 10 units on each. Printed: bars per second as the replay reports it (its loop,
reading the files included: they stream), the whole process's wall time and peak RSS. The
baseline in the same run, alternating: ONE of those symbols' files alone (100,000 bars), so
the ratio of the two bars/s says what twenty symbols and the merge cost per bar, and the two
RSS figures say whether memory grows with the number of symbols held open.

Usage: python bench/multi_symbol.py [--symbols 20] [--bars 100000] [--repeat 3] [--quick]
``--quick``: 4 symbols x 20,000 bars, 1 repeat.
"""

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _ref_lts
from backtest import make_frame, write_csv
from machine import describe


def replay(target: Path) -> tuple[float, float, float, int]:
    """(bars/s, wall s, peak RSS MiB, bars) of one replay of ``target`` (a file or a dir)."""
    cmd = [sys.executable, "-m", "lts.engine", "replay", str(target), "--strategy",
           "sma_crossover", "--param", "fast=10", "--param", "slow=30", "--quantity", "10",
           "--json"]
    child = _ref_lts.run_child(cmd, tree=_ref_lts.ROOT)
    s = json.loads(child.stdout.strip().splitlines()[-1])
    return (float(s["bars_per_second"]), child.wall_seconds, child.max_rss_kib / 1024,
            int(s["bars"]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--symbols", type=int, default=20)
    ap.add_argument("--bars", type=int, default=100_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    if args.quick:
        args.symbols, args.bars, args.repeat = 4, 20_000, 1
    print(describe())
    with tempfile.TemporaryDirectory(prefix="lts-multi-") as tmp:
        folder = Path(tmp) / "market"
        folder.mkdir()
        t = time.perf_counter()
        for i in range(args.symbols):
            write_csv(make_frame(args.bars, seed=100 + i), folder / f"SYM{i:02d}.csv")
        print(f"{args.symbols} symbols x {args.bars:,} bars written in "
              f"{time.perf_counter() - t:.1f}s")
        one = folder / "SYM00.csv"
        many: list[tuple[float, float, float, int]] = []
        single: list[tuple[float, float, float, int]] = []
        for r in range(args.repeat):
            order = [(many, folder), (single, one)]
            if r % 2:
                order.reverse()
            for runs, target in order:
                runs.append(replay(target))
            m, s = many[-1], single[-1]
            print(f"run {r + 1}: {args.symbols} symbols {m[0]:,.0f} bars/s ({m[3]:,} bars, "
                  f"{m[1]:.2f}s, {m[2]:.0f} MiB); one symbol {s[0]:,.0f} bars/s "
                  f"({s[3]:,} bars, {s[1]:.2f}s, {s[2]:.0f} MiB)")
    med = statistics.median
    ratio = med(m[0] / s[0] for m, s in zip(many, single, strict=True))
    print(f"\n{args.symbols} symbols x {args.bars:,} bars: {med(r[0] for r in many):,.0f} "
          f"bars/s, {med(r[1] for r in many):.2f}s wall, peak RSS "
          f"{med(r[2] for r in many):.0f} MiB (medians)")
    print(f"1 symbol x {args.bars:,} bars: {med(r[0] for r in single):,.0f} bars/s, "
          f"{med(r[1] for r in single):.2f}s wall, peak RSS {med(r[2] for r in single):.0f} "
          f"MiB")
    print(f"per-bar speed, {args.symbols} symbols / one: {ratio:.2f} (median of the "
          f"alternating pairs)")


if __name__ == "__main__":
    main()
