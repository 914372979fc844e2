"""LTS's replay loop with the bars already in memory, as backtesting.py's ``Backtest.run()`` is
timed (its CSV read by pandas before): a child process of bench/backtest.py.

    python bench/_lts_loop.py CSV  ->  one JSON line: bars, load_seconds, run_seconds, fills,
                                       final_equity

The CSV is read with LTS's reader into Bar objects first (load_seconds); run_seconds is the
replay's own elapsed time (its loop: every bar through the full engine path, statistics after
it not included), the same SMA crossover fast=10 slow=30 and 10 units as the CLI runs.
"""

import json
import sys
import time
from decimal import Decimal

import anyio

from lts.backtest.replay import BarsInMemory, ReplayOptions, run_replay
from lts.plugins.pipeline.bars_file import load_bars


def main() -> None:
    path = sys.argv[1]
    t = time.perf_counter()
    bars = load_bars(path, "BENCH")
    load = time.perf_counter() - t
    opts = ReplayOptions(strategy="sma_crossover", params={"fast": 10, "slow": 30},
                         quantity=Decimal(10))
    out: list[object] = []

    async def run() -> None:
        out.append(await run_replay(BarsInMemory({"BENCH": bars}), opts))

    anyio.run(run)
    result = out[0]
    s = result.summary  # type: ignore[attr-defined]
    print(json.dumps({"bars": s.bars, "load_seconds": round(load, 3),
                      "run_seconds": s.elapsed_seconds, "fills": s.fills,
                      "final_equity": float(s.final_equity)}))


if __name__ == "__main__":
    main()
