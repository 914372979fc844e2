"""Replay throughput: 1M one-minute bars through the full engine path, persistence on.

Compares, in the same process and on the same seeded series:
  1. a bare Python event loop (event objects + callbacks, the same SMA crossover): the ceiling;
  2. a plain-Python reference backtest that computes the expected fills;
  3. the engine's replay (bus, strategy, portfolio plugin, risk, order manager, paper broker,
     ledger, journal into a SQLite file), whose fills are read back from the database and must
     equal the reference's.

``--landed DIR`` adds the landed code (a tree of an earlier commit, e.g. extracted with
``git archive 4cdcaa6 | tar -x -C DIR``) to every repeat: its engine replays the same bars in a
child process with ``PYTHONPATH=DIR`` (its ``lts`` package), and so does today's in a child
process too, alternating, so the two are compared on the same machine at the same time
(median ratio printed); both children check their fills against the reference.

Usage: python bench/replay.py [--bars N] [--repeat R] [--landed DIR]
"""

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections import deque
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from machine import describe
from sqlalchemy import create_engine, select

from lts.backtest.replay import ReplayOptions, run_replay
from lts.domain.market import Bar
from lts.persistence.tables import fills
from lts.plugins.pipeline.synthetic import GbmSeries

FAST, SLOW, QTY = 10, 30, Decimal(10)
MINUTE_NS = 60 * 1_000_000_000


def make_bars(n: int, seed: int = 1) -> list[Bar]:
    gbm = GbmSeries(seed, 100.0, 0.0, 0.001, 1000.0)
    t0 = 1_700_000_000 * 1_000_000_000
    return [gbm.next_bar("BENCH", t0 + i * MINUTE_NS) for i in range(n)]


def bare_loop(bars: list[Bar]) -> float:
    """Event objects through a dispatch table to a callback: no bus, no orders."""
    handlers: dict[type, list] = {}
    state = {"fs": 0.0, "ss": 0.0, "prev": None, "n": 0}
    fw: deque[float] = deque()
    sw: deque[float] = deque()
    crosses = 0

    def on_bar(bar: Bar) -> None:
        nonlocal crosses
        c = bar.close
        fw.append(c)
        state["fs"] += c
        if len(fw) > FAST:
            state["fs"] -= fw.popleft()
        sw.append(c)
        state["ss"] += c
        if len(sw) > SLOW:
            state["ss"] -= sw.popleft()
        if len(sw) < SLOW:
            return
        diff = state["fs"] / FAST - state["ss"] / SLOW
        prev = state["prev"]
        state["prev"] = diff
        if prev is not None and ((prev < 0 < diff) or (prev > 0 > diff)):
            crosses += 1

    handlers.setdefault(Bar, []).append(on_bar)
    t = time.perf_counter()
    for bar in bars:
        for h in handlers[type(bar)]:
            h(bar)
    return len(bars) / (time.perf_counter() - t)


def reference_fills(bars: list[Bar]) -> list[tuple[str, Decimal, Decimal]]:
    """Long-only SMA(10/30) crossover, fixed quantity, market orders filled at the next open.

    Means compared exactly: closes as integers in units of 1e-8, ``fast_sum * SLOW`` against
    ``slow_sum * FAST`` (the rule ``sma_crossover`` documents).
    """
    window: deque[int] = deque()
    fs = ss = 0
    prev = None
    position = Decimal(0)
    pending: str | None = None
    out = []
    for bar in bars:
        if pending is not None:
            price = Decimal(repr(bar.open)).quantize(Decimal("0.0001"))
            out.append((pending, QTY, price))
            position += QTY if pending == "buy" else -QTY
            pending = None
        c = round(bar.close * 100_000_000)
        window.append(c)
        fs += c
        ss += c
        if len(window) > FAST:
            fs -= window[-FAST - 1]
        if len(window) > SLOW:
            ss -= window.popleft()
        if len(window) < SLOW:
            continue
        diff = fs * SLOW - ss * FAST
        p, prev = prev, diff
        if p is None:
            continue
        if p < 0 < diff and position == 0:
            pending = "buy"
        elif p > 0 > diff and position > 0:
            pending = "sell"
    return out


def engine_replay(bars: list[Bar], db_path: Path) -> tuple[float, dict, list]:
    url = f"sqlite+aiosqlite:///{db_path}"
    opts = ReplayOptions(symbol="BENCH", strategy="sma_crossover",
                         params={"fast": FAST, "slow": SLOW}, quantity=QTY, db_url=url)
    summary = asyncio.run(run_replay(bars, opts)).summary
    eng = create_engine(f"sqlite:///{db_path}")
    with eng.connect() as conn:
        rows = conn.execute(select(fills.c.side, fills.c.quantity, fills.c.price)
                            .order_by(fills.c.id)).all()
    eng.dispose()
    got = [(r.side, Decimal(r.quantity), Decimal(r.price)) for r in rows]
    return summary.bars_per_second, {"orders": summary.orders, "fills": summary.fills,
                                     "round_trips": summary.round_trips,
                                     "final_equity": str(summary.final_equity),
                                     "elapsed_seconds": summary.elapsed_seconds}, got


def child(args: argparse.Namespace) -> int:
    """One engine replay in this (child) process: its rate and whether the fills match."""
    bars = make_bars(args.bars)
    with tempfile.TemporaryDirectory() as tmp:
        rate, _, got = engine_replay(bars, Path(tmp) / "child.db")
    print(json.dumps({"rate": rate, "same": got == reference_fills(bars)}))
    return 0


def replay_in(tree: Path | None, bars: int) -> tuple[float, bool]:
    """The engine replay in a child process, of ``tree``'s ``lts`` (None: today's)."""
    env = dict(os.environ)
    if tree is not None:
        env["PYTHONPATH"] = str(tree)
    out = subprocess.run([sys.executable, __file__, "--child", "--bars", str(bars)], env=env,
                         check=True, capture_output=True, text=True).stdout
    got = json.loads(out.strip().splitlines()[-1])
    return float(got["rate"]), bool(got["same"])


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--bars", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--landed", type=Path, metavar="DIR",
                    help="also replay with the lts package of this tree (child processes)")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        return child(args)
    print(describe())
    t = time.perf_counter()
    bars = make_bars(args.bars)
    print(f"generated {len(bars):,} seeded bars in {time.perf_counter() - t:.2f}s")
    expected = reference_fills(bars)
    print(f"reference: {len(expected):,} fills")
    bare, eng = [], []
    ok = True
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.repeat):
            bare.append(bare_loop(bars))
            rate, info, got = engine_replay(bars, Path(tmp) / f"run{i}.db")
            eng.append(rate)
            same = got == expected
            ok &= same
            print(f"run {i + 1}: bare loop {bare[-1]:,.0f} bars/s; engine {rate:,.0f} bars/s "
                  f"{info}; fills equal reference: {same}")
    mb, me = statistics.median(bare), statistics.median(eng)
    print(f"median: bare loop {mb:,.0f} bars/s, engine replay {me:,.0f} bars/s "
          f"(engine/bare = {me / mb:.2f}); target >= 250,000 bars/s: "
          f"{'met' if me >= 250_000 else 'NOT met'}; fills match: {ok}")
    if args.landed is not None:
        today, landed = [], []
        for i in range(args.repeat):
            for name, tree, into in (("today", None, today), ("landed", args.landed, landed)) \
                    if i % 2 == 0 else (("landed", args.landed, landed), ("today", None, today)):
                rate, same = replay_in(tree, args.bars)
                into.append(rate)
                ok &= same
                print(f"run {i + 1}: child process, {name}'s engine {rate:,.0f} bars/s; fills "
                      f"equal reference: {same}")
        mt, ml = statistics.median(today), statistics.median(landed)
        print(f"median in child processes: today {mt:,.0f} bars/s, landed ({args.landed}) "
              f"{ml:,.0f} bars/s: today/landed = {mt / ml:.2f}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
