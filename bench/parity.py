"""Parity: LTS's backtest against backtesting.py and backtrader, fill for fill (issue 11).

The shipped ``sma_crossover`` with a fixed quantity and zero costs runs in three engines on the
same bars, in both fill modes and both variants, and their fills and final equity are compared:

  data sets   GOOG (daily, 2 decimals, 2,148 bars) and EURUSD (hourly, 5 decimals, 5,000 bars),
              both shipped in backtesting.py (``backtesting.test``); COIN, a seeded geometric
              random walk from 0.00001 with prices of 8 decimals (1 tick = 1e-8, ~1,000 ticks
              from 1e-5, like SHIB on a spot exchange), 4,000 hourly bars, seed 5
              (``--coin-seed``); GOOGCUT, GOOG's first 86 bars (to 2004-12-20, the bar of its
              first cross up); MICRO (only when asked: ``--data MICRO``), COIN's walk from
              1e-7 with prices of 10 decimals, 10,000,000,000 units. Each is written to a
              CSV (``%.{decimals}f``) for LTS; the references take the same DataFrame.
  fill modes  next-open: an order made on bar t fills at bar t+1's open (LTS's default;
              backtesting.py's and backtrader's default);
              close: it fills at bar t's close (LTS ``--fill-at close``; backtesting.py
              ``trade_on_close=True``; backtrader ``broker.set_coc(True)``).
  variants    long: cross up -> long Q, cross down -> flat;
              long-short: cross up -> long Q, cross down -> short Q (``long_only=false``; LTS's
              risk refuses short sales by default, SHORT_NOT_ALLOWED, so LTS runs this one with
              ``--set risk.allow_short=true``).
  engines     LTS: ``python -m lts.engine replay`` in a child process as a user runs it, fills
              from its ``--report`` fills.csv; with ``--lts-journal`` (or a CLI without
              ``--report``) into a SQLite db kept with ``--db-url`` (LTS's full journal), whose
              fills table and open orders are read too (bench/_ref_lts.py); backtesting.py
              (bench/_ref_backtesting.py); backtrader (bench/_ref_backtrader.py).

The parameters that make the three engines' conventions the same (and why):

  fast=10, slow=30 (``--fast``/``--slow``). Any pair works for the warm-up: the slow mean exists
      from bar slow-1 (0-based) in all three, and a cross needs the means at t-1 and t, so the
      first possible signal is bar ``slow`` everywhere (backtesting.py starts ``next()`` at bar
      1 + the indicators' warm-up; backtrader's ``[-1]`` is NaN on its first ``next()``).
  The cross: ``fast[t-1] < slow[t-1] and fast[t] > slow[t]``, strictly, in all three (LTS
      compares exact integer sums; backtesting.py's ``crossover``; backtrader tested on the SMA
      lines, not with ``CrossOver``, which counts a touch-and-go through an equal mean).
  quantity: whole units (backtesting.py takes an integer >= 1 as units, a fraction as a share of
      equity): GOOG 10 shares, EURUSD 10,000 units, COIN 100,000,000 units (~$1,000 held;
      one tick of 1e-8 moves the equity $1, so "to the cent" is a real test).
  cash 100,000: far above what any position needs, so no engine refuses an order for margin.
  exclusive_orders=True in backtesting.py: a cross up from short closes the short first. A
      reversal is then two trades (close Q, open Q) there and one order of 2Q in LTS and
      backtrader: fills of the same bar, side and price are summed before comparing.
  The end: nothing is closed at the end (backtesting.py ``finalize_trades=False``) and the final
      equity is cash + position x the last close in all three. An order made on the last bar
      never fills in next-open mode (there is no next bar), in any engine. In close mode LTS
      fills it at once at the last close (its paper venue fills a market order at the close it
      was made on), while backtesting.py and backtrader leave it open (both work an order on
      the bar after it was made, even at the close): that one fill is left out of the
      comparison and noted; with zero costs it does not change the equity. GOOGCUT, GOOG cut
      after its first cross up, shows it, and each engine's orders still open at the end are
      printed.
  Exact ties: on a coarse price grid the fast and slow means can be exactly equal (COIN with
      seed 11: twice in 4,000 bars at 10/30; GOOG, EURUSD and COIN seed 5: never). A cross
      through a tie (diff +, 0, -) is no cross under the strict rule, and LTS, comparing exact
      integer sums, sees none there; the references' float means come out ~1e-21 off zero, so
      each of them sees a cross on one side of the tie or the other (backtesting.py's pandas
      rolling mean and backtrader's fsum disagree with each other there too). The default coin
      has no tie so that the three engines can agree; the ties of each data set are printed, and
      a difference that follows one is marked.

Fills compare exactly: bar time (ns, UTC), side, quantity and price (a float as written, via
``repr``); final equity to the cent. The table shows, for each engine, whether its fills and
its equity equal each other engine's; under it, the first differing fill of each pair that
differs. Exit status 1 when LTS disagrees with both references on some case, else 0.

Usage: python bench/parity.py [--quick] [--data GOOG,EURUSD,COIN,GOOGCUT]
                              [--fill-at next-open|close] [--variant long|long-short]
                              [--fast N] [--slow N] [--coin-seed N] [--keep DIR] [--lts-tree DIR]
                              [--lts-journal]
``--quick``: GOOG, next-open, long only.
"""

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _ref_backtesting
import _ref_backtrader
import _ref_lts
import numpy as np
import pandas as pd
from _ref_fills import (
    Fill,
    RunResult,
    bar_ns,
    exact_ties,
    first_difference,
    net,
    same_equity,
)
from machine import describe

CASH = 100_000
ENGINES = ("LTS", "backtesting.py", "backtrader")


@dataclass(frozen=True)
class DataSet:
    name: str
    load: Callable[[], pd.DataFrame]
    quantity: int
    decimals: int


def goog() -> pd.DataFrame:
    from backtesting.test import GOOG
    return GOOG.copy()


def eurusd() -> pd.DataFrame:
    from backtesting.test import EURUSD
    return EURUSD.copy()


COIN_SEED = 5  # its exact means never tie at 10/30 (seed 11's tie twice: see the docstring)


def coin(seed: int = COIN_SEED, bars: int = 4_000, start: float = 1e-5,
         decimals: int = 8) -> pd.DataFrame:
    """A seeded geometric random walk from ``start``, 1% per hourly bar, prices of ``decimals``
    decimals; each bar opens at the last close, high and low a little beyond the body."""
    rng = np.random.default_rng(seed)
    closes = start * np.exp(np.cumsum(rng.normal(0.0, 0.01, bars)))
    opens = np.concatenate(([start], closes[:-1]))
    body_hi, body_lo = np.maximum(opens, closes), np.minimum(opens, closes)
    highs = body_hi * (1 + np.abs(rng.normal(0.0, 0.004, bars)))
    lows = body_lo * (1 - np.abs(rng.normal(0.0, 0.004, bars)))
    frame = pd.DataFrame({"Open": opens, "High": highs, "Low": lows, "Close": closes,
                          "Volume": rng.integers(10**9, 10**10, bars)},
                         index=pd.date_range("2024-01-01", periods=bars, freq="h"))
    prices = ["Open", "High", "Low", "Close"]
    frame[prices] = frame[prices].round(decimals)
    return frame


def googcut() -> pd.DataFrame:
    """GOOG up to 2004-12-20, the bar of its first cross up: the last bar makes an order."""
    frame = goog()
    return frame.loc[:"2004-12-20"].copy()


def datasets(coin_seed: int = COIN_SEED) -> dict[str, DataSet]:
    return {d.name: d for d in (DataSet("GOOG", goog, 10, 2),
                                DataSet("EURUSD", eurusd, 10_000, 5),
                                DataSet("COIN", lambda: coin(coin_seed), 100_000_000, 8),
                                DataSet("GOOGCUT", googcut, 10, 2),
                                DataSet("MICRO", lambda: coin(coin_seed, start=1e-7, decimals=10),
                                        10_000_000_000, 10))}


def write_csv(frame: pd.DataFrame, path: Path, decimals: int) -> None:
    frame.to_csv(path, index_label="time", float_format=f"%.{decimals}f",
                 date_format="%Y-%m-%dT%H:%M:%S")


def _set_aside_last_bar(result: RunResult, last_ns: int, fill_at: str) -> None:
    """Close mode: a fill at the last bar's close has no counterpart in the references."""
    if fill_at != "close":
        return
    kept = [f for f in result.fills if f.ts_ns != last_ns]
    if len(kept) != len(result.fills):
        result.notes.append(f"{len(result.fills) - len(kept)} fill(s) at the last bar's close "
                            "left out (an order of the last bar)")
        result.fills = kept


@dataclass
class Case:
    data: str
    fill_at: str
    variant: str
    results: dict[str, RunResult]
    ties: list[int]

    def agree(self, a: str, b: str) -> tuple[bool, bool]:
        ra, rb = self.results[a], self.results[b]
        return ra.fills == rb.fills, same_equity(ra.final_equity, rb.final_equity)

    def lts_disagrees_with_both(self) -> bool:
        return all(not all(self.agree("LTS", ref)) for ref in ENGINES[1:])


def run_case(ds: DataSet, frame: pd.DataFrame, csv: Path, workdir: Path, *, fast: int,
             slow: int, fill_at: str, long_only: bool, tree: Path, journal: bool) -> Case:
    kw = dict(fast=fast, slow=slow, quantity=ds.quantity, cash=CASH, fill_at=fill_at,
              long_only=long_only)
    results = {
        "LTS": _ref_lts.replay(csv, workdir, symbol=ds.name, tree=tree, journal=journal,
                               **kw),  # type: ignore[arg-type]
        "backtesting.py": _ref_backtesting.run(frame, **kw),  # type: ignore[arg-type]
        "backtrader": _ref_backtrader.run(frame, **kw),  # type: ignore[arg-type]
    }
    last_ns = bar_ns(frame.index[-1])
    for r in results.values():
        r.fills = net(r.fills)
        _set_aside_last_bar(r, last_ns, fill_at)
    ties = exact_ties(frame, ds.decimals, fast, slow)
    return Case(ds.name, fill_at, "long" if long_only else "long-short", results, ties)


def _cell(fills_same: bool, equity_same: bool) -> str:
    if fills_same and equity_same:
        return "same"
    if fills_same:
        return "equity differs"
    return "fills differ" if equity_same else "both differ"


def print_table(cases: list[Case]) -> None:
    head = (f"{'data':<7} {'fill at':<9} {'variant':<10} {'engine':<15} {'fills':>6} "
            f"{'final equity':>16}  {'vs LTS':<14} {'vs backtesting.py':<17} {'vs backtrader':<14}")
    print(head)
    print("-" * len(head))
    for case in cases:
        for engine in ENGINES:
            r = case.results[engine]
            cells = ["" if other == engine else _cell(*case.agree(engine, other))
                     for other in ENGINES]
            print(f"{case.data:<7} {case.fill_at:<9} {case.variant:<10} {engine:<15} "
                  f"{len(r.fills):>6} {r.final_equity:>16,.2f}  {cells[0]:<14} {cells[1]:<17} "
                  f"{cells[2]:<14}")
    print()


def _show(fill: Fill | None) -> str:
    return "(none)" if fill is None else fill.show()


def print_differences(cases: list[Case]) -> None:
    for case in cases:
        name = f"{case.data} {case.fill_at} {case.variant}"
        for engine in ENGINES:
            for note in case.results[engine].notes:
                print(f"note: {name}: {engine}: {note}")
            extra = case.results[engine].extra
            if extra.get("denied"):
                print(f"note: {name}: {engine}: {extra['denied']} order(s) denied")
            if extra.get("open_orders"):
                print(f"note: {name}: {engine}: open at the end: "
                      + "; ".join(map(str, extra["open_orders"])))  # type: ignore[call-overload]
            if extra.get("final_position", 0) != extra.get("position_of_fills", 0):
                print(f"note: {name}: {engine}: final position {extra['final_position']} but "
                      f"its fills add up to {extra['position_of_fills']}")
        for i, a in enumerate(ENGINES):
            for b in ENGINES[i + 1:]:
                ra, rb = case.results[a], case.results[b]
                diff = first_difference(ra.fills, rb.fills)
                if diff is not None:
                    k, fa, fb = diff
                    print(f"{name}: {a} vs {b}: first differing fill #{k + 1}: "
                          f"{a} {_show(fa)} | {b} {_show(fb)}")
                    after = ra.fills[k - 1].ts_ns if k else 0
                    until = min(f.ts_ns for f in (fa, fb) if f is not None)
                    for tie in (t for t in case.ties if after < t <= until):
                        print(f"    (the means tie exactly at {pd.Timestamp(tie, tz='UTC')}, "
                              "after the last equal fill: a cross through the tie)")
                if not same_equity(ra.final_equity, rb.final_equity):
                    gap = ra.final_equity - rb.final_equity
                    print(f"{name}: {a} vs {b}: final equity {ra.final_equity:,.8f} vs "
                          f"{rb.final_equity:,.8f} (difference {gap:,.8f})")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="GOOG, next-open, long only")
    ap.add_argument("--data", default="GOOG,EURUSD,COIN,GOOGCUT",
                    help="comma-separated data sets")
    ap.add_argument("--fill-at", choices=["next-open", "close"], help="one mode (default both)")
    ap.add_argument("--variant", choices=["long", "long-short"], help="one (default both)")
    ap.add_argument("--fast", type=int, default=10)
    ap.add_argument("--slow", type=int, default=30)
    ap.add_argument("--coin-seed", type=int, default=COIN_SEED,
                    help=f"the COIN walk's seed (default {COIN_SEED}; 11 has two exact ties)")
    ap.add_argument("--lts-tree", type=Path, default=_ref_lts.ROOT, metavar="DIR",
                    help="run the lts package of this tree (default: this checkout)")
    ap.add_argument("--lts-journal", action="store_true",
                    help="LTS with --db-url: its full journal (orders, events) kept and read")
    ap.add_argument("--keep", type=Path, metavar="DIR", help="keep the CSVs and LTS databases")
    args = ap.parse_args()
    names = ["GOOG"] if args.quick else [n.strip().upper() for n in args.data.split(",")]
    known = datasets(args.coin_seed)
    unknown = [n for n in names if n not in known]
    if unknown:
        ap.error(f"unknown data set(s): {', '.join(unknown)} (known: {', '.join(known)})")
    modes = [args.fill_at] if args.fill_at else ["next-open"] if args.quick else \
        ["next-open", "close"]
    variants = [args.variant] if args.variant else ["long"] if args.quick else \
        ["long", "long-short"]
    print(describe())
    reads = "--report's fills.csv" if "--report" in _ref_lts.cli_flags(args.lts_tree) else \
        "its database's fills table"
    if args.lts_journal:
        reads += ", with its full journal (--db-url)"
    print(f"LTS: python -m lts.engine replay, lts from {args.lts_tree}; fills read from {reads}")
    print(f"sma_crossover fast={args.fast} slow={args.slow}, cash {CASH:,}, zero costs")
    started = time.perf_counter()
    cases: list[Case] = []
    with tempfile.TemporaryDirectory(prefix="lts-parity-") as tmp:
        workdir = args.keep or Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        for name in names:
            ds = known[name]
            frame = ds.load()
            csv = workdir / f"{name}.csv"
            write_csv(frame, csv, ds.decimals)
            ties = exact_ties(frame, ds.decimals, args.fast, args.slow)
            print(f"{name}: {len(frame):,} bars, {frame.index[0]} .. {frame.index[-1]}, "
                  f"quantity {ds.quantity:,}, prices of {ds.decimals} decimals; "
                  f"exact ties of the means: {len(ties)}"
                  + "".join(f" {pd.Timestamp(t, tz='UTC'):%Y-%m-%d %H:%M}" for t in ties))
            for mode in modes:
                for variant in variants:
                    cases.append(run_case(ds, frame, csv, workdir, fast=args.fast,
                                          slow=args.slow, fill_at=mode,
                                          long_only=variant == "long",
                                          tree=args.lts_tree, journal=args.lts_journal))
    print()
    print_table(cases)
    print_differences(cases)
    bad = [c for c in cases if c.lts_disagrees_with_both()]
    print(f"{len(cases)} case(s) in {time.perf_counter() - started:.1f}s: "
          f"{len(cases) - len(bad)} where LTS agrees with at least one reference, "
          f"{len(bad)} where it disagrees with both"
          + (": " + ", ".join(f"{c.data} {c.fill_at} {c.variant}" for c in bad) if bad else ""))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
