"""backtesting.py as an independent reference: the SMA crossover written the library's own way.

Used by bench/parity.py (fills and final equity) and bench/backtest.py (speed, memory). The
strategy does the same work as LTS's ``sma_crossover`` with a fixed size: two ``SMA`` indicators
through ``Strategy.I``, ``crossover`` (``a[-2] < b[-2] and a[-1] > b[-1]``), ``buy(size=Q)`` on
the cross up and ``position.close()`` (long only) or ``sell(size=Q)`` (long/short, with
``exclusive_orders=True`` closing the other side first) on the cross down. Commission 0,
``trade_on_close`` for fills at the signal bar's close, ``finalize_trades=False`` so that the
final equity is the one marked at the last close with the position still open.
"""

import os
import warnings
from typing import Any

os.environ.setdefault("TQDM_DISABLE", "1")  # no progress bar, whether or not tqdm is installed

import pandas as pd
from _ref_fills import Fill, RunResult, bar_ns, decimal_of
from backtesting import Backtest, Strategy
from backtesting.lib import crossover
from backtesting.test import SMA

__all__ = ["SmaCross", "make_backtest", "quiet", "run"]


def quiet() -> None:
    """backtesting.py warns about open trades at the end and more: not the bench's business."""
    warnings.filterwarnings("ignore", module=r"backtesting(\..*)?")
    warnings.filterwarnings("ignore", category=UserWarning)


class SmaCross(Strategy):  # type: ignore[misc]
    fast = 10
    slow = 30
    quantity = 10
    long_only = True

    def init(self) -> None:
        close = self.data.Close
        self.sma_fast = self.I(SMA, close, self.fast)
        self.sma_slow = self.I(SMA, close, self.slow)

    def next(self) -> None:
        if crossover(self.sma_fast, self.sma_slow):
            self.buy(size=self.quantity)
        elif crossover(self.sma_slow, self.sma_fast):
            if self.long_only:
                self.position.close()
            else:
                self.sell(size=self.quantity)


def make_backtest(frame: pd.DataFrame, *, cash: float, fill_at: str) -> Backtest:
    """A Backtest over ``frame`` (columns Open, High, Low, Close, Volume), constructed only."""
    quiet()
    return Backtest(frame, SmaCross, cash=cash, commission=0.0,
                    trade_on_close=fill_at == "close", exclusive_orders=True,
                    finalize_trades=False)


def run(frame: pd.DataFrame, *, fast: int, slow: int, quantity: int, cash: float,
        fill_at: str, long_only: bool) -> RunResult:
    """Run and read every fill: each trade's entry, and each closed trade's exit."""
    bt = make_backtest(frame, cash=cash, fill_at=fill_at)
    with warnings.catch_warnings():
        quiet()
        stats: Any = bt.run(fast=fast, slow=slow, quantity=quantity, long_only=long_only)
    strategy = stats["_strategy"]
    fills: list[Fill] = []
    for trade in (*strategy.closed_trades, *strategy.trades):
        size = int(trade.size)
        fills.append(Fill(bar_ns(trade.entry_time), "buy" if size > 0 else "sell",
                          decimal_of(abs(size)), decimal_of(trade.entry_price)))
        if trade.exit_time is not None:
            fills.append(Fill(bar_ns(trade.exit_time), "sell" if size > 0 else "buy",
                              decimal_of(abs(size)), decimal_of(trade.exit_price)))
    fills.sort(key=lambda f: f.ts_ns)
    left = [f"{'buy' if o.size > 0 else 'sell'} {abs(o.size):g}" for o in strategy.orders]
    return RunResult("backtesting.py", fills, decimal_of(stats["Equity Final [$]"]),
                     extra={"open_trades": len(strategy.trades), "open_orders": left})


def main(argv: list[str] | None = None) -> int:
    """A whole backtest in this process, as bench/backtest.py times it: load the CSV with
    pandas, construct the Backtest, run it; one JSON line with the times and the results."""
    import argparse
    import json
    import time

    ap = argparse.ArgumentParser(description="backtesting.py SMA crossover on a CSV")
    ap.add_argument("csv")
    ap.add_argument("--fast", type=int, default=10)
    ap.add_argument("--slow", type=int, default=30)
    ap.add_argument("--quantity", type=int, default=10)
    ap.add_argument("--cash", type=float, default=100_000)
    ap.add_argument("--fill-at", choices=["next-open", "close"], default="next-open")
    args = ap.parse_args(argv)
    started = time.perf_counter()
    frame = pd.read_csv(args.csv, index_col=0, parse_dates=True)
    loaded = time.perf_counter()
    bt = make_backtest(frame, cash=args.cash, fill_at=args.fill_at)
    built = time.perf_counter()
    with warnings.catch_warnings():
        quiet()
        stats: Any = bt.run(fast=args.fast, slow=args.slow, quantity=args.quantity,
                            long_only=True)
    done = time.perf_counter()
    strategy = stats["_strategy"]
    print(json.dumps({"bars": len(frame), "load_seconds": round(loaded - started, 3),
                      "run_seconds": round(done - built, 3),
                      "fills": 2 * len(strategy.closed_trades) + len(strategy.trades),
                      "final_equity": float(stats["Equity Final [$]"])}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
