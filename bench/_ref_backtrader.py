"""backtrader as an independent reference: the SMA crossover written the library's own way.

Used by bench/parity.py. Two ``bt.indicators.SMA`` of the close; the cross is tested on the
lines themselves, ``fast[-1] < slow[-1] and fast[0] > slow[0]`` (and the mirror), the rule LTS
and backtesting.py use. ``bt.indicators.CrossOver`` is not used: it compares with the last
*non-zero* difference, so a mean that touches the other and goes on counts as a cross there,
and the three engines would differ by definition. Orders are ``order_target_size`` to +Q, 0
(long only) or -Q, one order per signal like LTS's; commission 0; ``set_coc(True)`` fills a
market order at the signal bar's close. Fills are read in ``notify_order`` from each execution
bit (its time is the bar whose price the order took); the final equity is
``broker.getvalue()``, marked at the last close. The feed is given as minutes so backtrader
keeps each bar's own time (as days it moves it to the session's end).
"""

from typing import Any

import backtrader as bt
import pandas as pd
from _ref_fills import Fill, RunResult, bar_ns, decimal_of

__all__ = ["run"]


class _SmaCross(bt.Strategy):  # type: ignore[misc]
    params = (("fast", 10), ("slow", 30), ("quantity", 10), ("long_only", True))

    def __init__(self) -> None:
        self.sma_fast = bt.indicators.SMA(self.data.close, period=self.p.fast)
        self.sma_slow = bt.indicators.SMA(self.data.close, period=self.p.slow)
        self.fills: list[Fill] = []
        self.orders: list[Any] = []

    def next(self) -> None:
        f0, f1 = self.sma_fast[0], self.sma_fast[-1]
        s0, s1 = self.sma_slow[0], self.sma_slow[-1]
        order = None
        if f1 < s1 and f0 > s0:  # NaN (warm-up) compares False: no cross
            order = self.order_target_size(target=self.p.quantity)
        elif f1 > s1 and f0 < s0:
            order = self.order_target_size(target=0 if self.p.long_only else -self.p.quantity)
        if order is not None:
            self.orders.append(order)

    def notify_order(self, order: Any) -> None:
        # each execution bit, at its own price: ``executed.price`` is a running average
        # (484.69 x -10 / -10 = 484.68999999999994)
        if order.status in (order.Partial, order.Completed):
            for bit in order.executed.iterpending():
                self.fills.append(Fill(bar_ns(bt.num2date(bit.dt)),
                                       "buy" if bit.size > 0 else "sell",
                                       decimal_of(abs(bit.size)), decimal_of(bit.price)))


def run(frame: pd.DataFrame, *, fast: int, slow: int, quantity: int, cash: float,
        fill_at: str, long_only: bool) -> RunResult:
    cerebro = bt.Cerebro(stdstats=False)
    cerebro.adddata(bt.feeds.PandasData(dataname=frame, timeframe=bt.TimeFrame.Minutes))
    cerebro.addstrategy(_SmaCross, fast=fast, slow=slow, quantity=quantity, long_only=long_only)
    cerebro.broker.setcash(cash)
    cerebro.broker.setcommission(commission=0.0)
    cerebro.broker.set_coc(fill_at == "close")
    strategy = cerebro.run()[0]
    left = [f"{'buy' if o.isbuy() else 'sell'} {abs(o.created.size):g} "
            f"({o.getstatusname().lower()}, made {bt.num2date(o.created.dt):%Y-%m-%d %H:%M})"
            for o in strategy.orders if o.alive()]
    return RunResult("backtrader", sorted(strategy.fills, key=lambda f: f.ts_ns),
                     decimal_of(cerebro.broker.getvalue()),
                     extra={"position": strategy.position.size, "open_orders": left})
