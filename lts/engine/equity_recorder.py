"""The equity curve of a backtest: cash and equity at every bar, after that bar's fills.

Where it sits: the runner records a sample after each bar's decision path (the simulated
venue's fills of resting orders, the strategy, the orders it made and, with ``fill_at=close``,
their fills), so drawdown is measured where the fills have landed. Bars of several symbols at
the same time make one sample (the last). Floats in typed arrays: 24 bytes a bar, read by the
statistics and the report (:mod:`lts.domain.performance`, :mod:`lts.backtest.report`).
"""

from array import array

__all__ = ["EquityRecorder"]


class EquityRecorder:
    def __init__(self) -> None:
        self.ts_ns = array("q")
        self.cash = array("d")
        self.equity = array("d")

    def record(self, ts_ns: int, cash: float, equity: float) -> None:
        ts = self.ts_ns
        if ts and ts[-1] == ts_ns:  # another symbol's bar of the same time: one sample
            self.cash[-1] = cash
            self.equity[-1] = equity
            return
        ts.append(ts_ns)
        self.cash.append(cash)
        self.equity.append(equity)

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
