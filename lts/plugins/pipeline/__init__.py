"""Pipeline plugins: market data in. A feed yields batches of bars for one symbol; the engine
runs one task per (plugin, params, symbol) and shares it between every portfolio that trades it.
"""

from collections.abc import AsyncIterator, Sequence
from typing import Protocol

from lts.domain.clock import Clock
from lts.domain.market import Bar


class Feed(Protocol):
    #: True for historical data: the engine must never drop its bars and runs a replay clock.
    historical: bool

    def bars(self, symbol: str, clock: Clock) -> AsyncIterator[Sequence[Bar]]:
        """Yield batches of bars in time order; a live feed paces itself."""
        ...
