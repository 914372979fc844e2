"""Pipeline ``replay``: historical bars from a CSV or Parquet file, as fast as the consumer takes
them. The engine runs a replay clock and never drops these bars."""

from collections.abc import AsyncIterator, Sequence

import anyio
from pydantic import Field

from lts.domain.clock import Clock
from lts.domain.market import Bar
from lts.plugins.base import PluginBase, PluginParams
from lts.plugins.pipeline.bars_file import load_bars


class ReplayParams(PluginParams):
    path: str = Field("", description="CSV or Parquet file of OHLCV bars")
    batch: int = Field(4096, ge=1, description="bars handed over per batch")


class ReplayFeed(PluginBase):
    Params = ReplayParams
    plugin_name = "replay"
    plugin_debug_vars = ["bars_sent"]
    historical = True

    def __init__(self, bars: Sequence[Bar] | None = None, **params: object) -> None:
        super().__init__(**params)
        self._preloaded = bars
        self.bars_sent = 0

    async def bars(self, symbol: str, clock: Clock) -> AsyncIterator[Sequence[Bar]]:
        data = self._preloaded
        if data is None:
            data = await anyio.to_thread.run_sync(load_bars, self.params.path, symbol)
        step = self.params.batch
        for i in range(0, len(data), step):
            chunk = data[i:i + step]
            self.bars_sent += len(chunk)
            yield chunk
