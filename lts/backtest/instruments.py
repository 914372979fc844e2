"""What a backtest can tell about an instrument from its data alone: the tick size, read off the
decimals its prices are written with (EURUSD at 1.12345 -> 0.00001, a coin at 0.0000123 ->
0.0000001, GOOG at 123.45 -> 0.01), unless the user set one. The backtest's market data
(:mod:`lts.backtest.data`) makes one hint per symbol; the CLI prints
:meth:`InstrumentHint.describe`.
"""

from dataclasses import dataclass
from decimal import Decimal

__all__ = ["InstrumentHint", "tick_for_decimals"]


def tick_for_decimals(decimals: int) -> Decimal:
    """The price step of prices written with that many decimals: 2 -> 0.01, 0 -> 1."""
    if decimals <= 0:
        return Decimal(1)
    return Decimal(f"0.{'0' * (decimals - 1)}1")


@dataclass(frozen=True)
class InstrumentHint:
    symbol: str
    tick_size: Decimal
    #: True: read off the data's decimals; False: set by the user
    inferred: bool

    def describe(self) -> str:
        """One line for the user, e.g. ``EURUSD: tick size 0.00001 (inferred from the data's
        decimals; set --tick-size to override)``."""
        how = ("inferred from the data's decimals; set --tick-size to override" if self.inferred
               else "set by --tick-size")
        return f"{self.symbol}: tick size {self.tick_size:f} ({how})"
