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

    def samples(self) -> tuple[array[int], array[float], array[float]]:
        """Times, cash and equity with one sample per time (the last of equal times)."""
        ts = self.ts_ns
        keep = [i for i in range(len(ts) - 1) if ts[i] != ts[i + 1]]
        if len(keep) == len(ts) - 1:
            return ts, self.cash, self.equity
        keep.append(len(ts) - 1)
        return (array("q", (ts[i] for i in keep)), array("d", (self.cash[i] for i in keep)),
                array("d", (self.equity[i] for i in keep)))

    def __len__(self) -> int:
        return len(self.ts_ns)

    def max_drawdown(self) -> float:
        """The largest fall from a peak, in currency."""
        peak = worst = 0.0
        first = True
        for value in self.equity:
            if first or value > peak:
                peak, first = value, False
            elif peak - value > worst:
                worst = peak - value
        return worst
