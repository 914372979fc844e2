"""The equity curve of a backtest: cash and equity at every bar, after that bar's fills.

Where it sits: the runner records a sample after each bar's decision path (the simulated
venue's fills of resting orders, the strategy, the orders it made and, with ``fill_at=close``,
their fills), so drawdown is measured where the fills have landed. Bars of several symbols at
the same time make one sample (the last, see :meth:`EquityRecorder.samples`). Floats in typed
arrays, 24 bytes a bar, appended in line by the runner (a method call per bar cost 5% of a
backtest); read by the statistics and the report (:mod:`lts.domain.performance`,
:mod:`lts.backtest.report`).
"""

from __future__ import annotations

from array import array
from typing import Any

import numpy as np

__all__ = ["EquityRecorder"]


class EquityRecorder:
    def __init__(self) -> None:
        self.ts_ns = array("q")
        self.cash = array("d")
        self.equity = array("d")

    def record(self, ts_ns: int, cash: float, equity: float) -> None:
        self.ts_ns.append(ts_ns)
        self.cash.append(cash)
        self.equity.append(equity)

    def samples(self) -> tuple[Any, Any, Any]:
        """Times, cash and equity (numpy arrays over the recorded buffers) with one sample per
        time: the last of equal times."""
        ts = np.frombuffer(self.ts_ns, dtype=np.int64) if self.ts_ns else np.empty(0, np.int64)
        cash = np.frombuffer(self.cash, dtype=np.float64) if self.cash else np.empty(0)
        equity = np.frombuffer(self.equity, dtype=np.float64) if self.equity else np.empty(0)
        if len(ts) < 2:
            return ts, cash, equity
        changes = ts[1:] != ts[:-1]
        if bool(changes.all()):
            return ts, cash, equity
        keep = np.append(np.flatnonzero(changes), len(ts) - 1)
        return ts[keep], cash[keep], equity[keep]

    def __len__(self) -> int:
        return len(self.ts_ns)

    def max_drawdown(self) -> float:
        """The largest fall from a peak, in currency."""
        if not self.equity:
            return 0.0
        equity = np.frombuffer(self.equity, dtype=np.float64)
        return float(np.max(np.maximum.accumulate(equity) - equity))
