"""Pipeline ``replay``: historical bars, as fast as the consumer takes them. The engine runs a
replay clock and never drops these bars.

The bars come from one of three places: a list given preloaded (``bars=``), a stream of batches
(``stream=``: an iterable of bar lists, e.g. a backtest's merged market data, read batch by
batch in a worker thread so that neither the loop blocks nor all bars are ever held), or the
``path`` param (the file streamed the same way, checked as it is read).
"""

from collections.abc import AsyncIterator, Iterable, Iterator, Sequence

import anyio
from pydantic import Field

from lts.domain.clock import Clock
from lts.domain.market import Bar
from lts.plugins.base import PluginBase, PluginParams
from lts.plugins.pipeline.bars_file import iter_bars

__all__ = ["ReplayFeed", "ReplayParams"]


class ReplayParams(PluginParams):
    path: str = Field("", description="CSV or Parquet file of OHLCV bars")
    batch: int = Field(4096, ge=1, description="bars handed over per batch")


class ReplayFeed(PluginBase):
    Params = ReplayParams
    plugin_name = "replay"
    plugin_debug_vars = ["bars_sent"]
    historical = True

    def __init__(self, bars: Sequence[Bar] | None = None, *,
                 stream: Iterable[Sequence[Bar]] | None = None, **params: object) -> None:
        super().__init__(**params)
        if bars is not None and stream is not None:
            raise ValueError("give bars or a stream, not both")
        self._preloaded = bars
        self._stream = stream
        self.bars_sent = 0

    async def bars(self, symbol: str, clock: Clock) -> AsyncIterator[Sequence[Bar]]:
        if self._preloaded is not None:
            data, step = self._preloaded, self.params.batch
            for i in range(0, len(data), step):
                chunk = data[i:i + step]
                self.bars_sent += len(chunk)
                yield chunk
            return
        stream = self._stream
        if stream is None:
            stream = iter_bars(self.params.path, symbol, self.params.batch)
        batches = iter(stream)
        try:
            while True:
                batch: Sequence[Bar] | None = await anyio.to_thread.run_sync(_next, batches)
                if batch is None:
                    return
                self.bars_sent += len(batch)
                yield batch
        finally:
            close = getattr(batches, "close", None)
            if close is not None:  # a generator stopped early lets its file go now
                close()


def _next(batches: Iterator[Sequence[Bar]]) -> Sequence[Bar] | None:
    return next(batches, None)
