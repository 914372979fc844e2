"""Pipeline plugins: market data in. A feed yields batches of bars for one symbol; the engine
runs one task per (plugin, params, symbol) and shares it between every portfolio that trades it.
A live feed may first yield a :class:`~lts.domain.market.WarmUp` (its history): strategies take
it in without trading on it, and a portfolio that subscribes later gets it too.
"""

from collections.abc import AsyncIterator, Sequence
from typing import Protocol

from lts.domain.clock import Clock
from lts.domain.market import Bar, Quote, TradeTick, WarmUp


class Feed(Protocol):
    #: True for historical data: the engine must never drop its bars and runs a replay clock.
    historical: bool

    def bars(self, symbol: str, clock: Clock
             ) -> AsyncIterator[Sequence[Bar] | Sequence[Quote] | Sequence[TradeTick] | WarmUp]:
        """Yield batches in time order (a live feed: its history first, as a
        :class:`WarmUp`); a live feed paces itself. A batch holds one kind of value: bars, or
        quotes, or public trades (a feed that gives them)."""
        ...
