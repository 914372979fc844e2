"""The market data of a sweep, held in memory in the order a replay takes it, and cut in time.

Where it sits: a sweep worker (:mod:`lts.backtest.sweep_pool`) reads its market data once
(:meth:`MarketTape.record`: every bar of every symbol, merged as the data merges them) and
replays it many times; a walk-forward (:mod:`lts.backtest.walk_forward`) replays windows of it
(:meth:`MarketTape.window`: the bars whose time is in ``[start, end)``). A tape is a
:class:`lts.backtest.replay.Market`: ``run_replay`` takes it as it takes the files.

Bars are not tracked by the garbage collector (``gc=False`` structs), so a tape of a million bars
adds nothing to a collection's work; it costs about 100 bytes a bar.
"""

from array import array
from bisect import bisect_left
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from decimal import Decimal
from operator import attrgetter

from lts.backtest.replay import Market
from lts.domain.market import Bar

__all__ = ["MarketTape"]

_BATCH = 4096


class MarketTape:
    """Every bar of ``symbols`` in replay order (time order; equal times as the source gave
    them), with each symbol's tick size. Immutable; windows share nothing mutable."""

    def __init__(self, symbols: Sequence[str], bars: Sequence[Bar],
                 tick_sizes: Mapping[str, Decimal]) -> None:
        self.symbols = list(symbols)
        self._bars = list(bars)
        self._times = array("q", [bar.ts_event for bar in self._bars])
        times = self._times
        if any(times[i] < times[i - 1] for i in range(1, len(times))):
            raise ValueError("a market tape's bars must be in time order")
        self._ticks = dict(tick_sizes)
        self._counts: Counter[str] | None = None

    @classmethod
    def record(cls, market: Market) -> "MarketTape":
        """Read ``market`` once, whole (blocking: files are read here)."""
        bars = [bar for batch in market.batches(_BATCH) for bar in batch]
        return cls(market.symbols, bars, {s: market.tick_size(s) for s in market.symbols})

    def __len__(self) -> int:
        return len(self._bars)

    @property
    def first_ts(self) -> int:
        """The time of the first bar (ns); the tape must not be empty."""
        return self._times[0]

    @property
    def last_ts(self) -> int:
        """The time of the last bar (ns); the tape must not be empty."""
        return self._times[-1]

    def window(self, start_ns: int, end_ns: int) -> "MarketTape":
        """The bars with ``start_ns <= time < end_ns``, every symbol kept (one without bars in
        the window is still an asset of the replay)."""
        lo = bisect_left(self._times, start_ns)
        hi = bisect_left(self._times, end_ns, lo)
        return MarketTape(self.symbols, self._bars[lo:hi], self._ticks)

    # -- the Market protocol ----------------------------------------------------------------

    def batches(self, batch: int = _BATCH, *, held: bool = True) -> Iterator[list[Bar]]:
        bars = self._bars
        for i in range(0, len(bars), batch):
            yield bars[i:i + batch]

    def bar_count(self, symbol: str | None = None) -> int:
        if symbol is None:
            return len(self._bars)
        if self._counts is None:
            self._counts = Counter(map(attrgetter("symbol"), self._bars))
        return self._counts[symbol]

    def tick_size(self, symbol: str) -> Decimal:
        return self._ticks[symbol]
