"""The borrow cost of short positions in a backtest: an annual rate on what is borrowed.

Where it sits: a backtest's per-bar hook (:attr:`PortfolioRunner.on_bar_done
<lts.engine.runner.PortfolioRunner.on_bar_done>`), after the bar's fills. At the first bar of
each new UTC day, every short position held at the end of the day before is charged ``rate_bps``
/ 10,000 a year of its value at the last price, for the days since the last charge (a weekend is
charged at Monday's first bar), from cash (:meth:`Ledger.charge
<lts.engine.ledger.Ledger.charge>`). backtesting.py has no borrow cost; backtrader charges
``interest`` daily on shorts the same way.
"""

from decimal import ROUND_CEILING, Decimal

from lts.domain.market import Bar
from lts.domain.values import to_decimal
from lts.engine.ledger import Ledger

__all__ = ["BorrowCost"]

_DAY_NS = 86_400 * 1_000_000_000
_YEAR_DAYS = Decimal(365)
_BPS = Decimal(10_000)
_CENT = Decimal("0.01")


class BorrowCost:
    def __init__(self, ledger: Ledger, rate_bps: Decimal) -> None:
        self._ledger = ledger
        self._daily = rate_bps / _BPS / _YEAR_DAYS
        self._day: int | None = None
        self._shorts: dict[str, Decimal] = {}  # held at the end of the last bar
        self.charged = Decimal(0)

    def on_bar(self, bar: Bar) -> None:
        """After ``bar``'s fills: a new day charges the shorts held when the last one ended."""
        day = bar.ts_event // _DAY_NS
        last = self._day
        if last is not None and day > last:
            self._charge(day - last)
        if last is None or day > last:
            self._day = day
        ledger = self._ledger
        self._shorts = {s: -p.quantity for s, p in ledger.positions.items() if p.quantity < 0}

    def _charge(self, days: int) -> None:
        ledger = self._ledger
        for symbol, quantity in self._shorts.items():
            price = ledger.last.get(symbol)
            if price is None:
                continue
            cost = quantity * to_decimal(price) * self._daily * days
            cost = cost.quantize(_CENT, ROUND_CEILING)  # never in the trader's favour
            if cost > 0:
                ledger.charge(cost)
                self.charged += cost
