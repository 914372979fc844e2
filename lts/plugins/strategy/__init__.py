"""Strategy plugins: market data in, signals out. One instance per asset; never sees a broker."""

from typing import Protocol

from lts.domain.market import Bar
from lts.domain.signals import Signal


class Strategy(Protocol):
    def on_bar(self, bar: Bar) -> Signal | None:
        """Called once per bar of this asset, in time order; return a signal or None."""
        ...
