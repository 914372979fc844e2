"""Pipeline ``synthetic``: a seeded geometric Brownian motion, paced in real time.

One bar every ``interval`` seconds per symbol, the same series for the same seed and symbol, so
a demo trades at once and a test can reason about it. The bar's time comes from the engine's
clock; its open is the previous close. Each symbol ticks at its own phase within the interval
(from the seed and the symbol), as ticks of different instruments arrive; ``aligned`` makes
every symbol's bar come at the same instant, as bar closes do.
"""

import math
import random
import zlib
from collections.abc import AsyncIterator, Sequence

import anyio
from pydantic import Field

from lts.domain.clock import Clock
from lts.domain.market import Bar
from lts.plugins.base import PluginBase, PluginParams
from lts.plugins.pipeline.pacer import sleep_until


class SyntheticParams(PluginParams):
    seed: int = Field(7, description="random seed (combined with the symbol)")
    interval: float = Field(1.0, gt=0, description="seconds between bars")
    start_price: float = Field(100.0, gt=0)
    drift: float = Field(0.0, description="drift per bar")
    volatility: float = Field(0.01, ge=0, description="standard deviation of log return per bar")
    volume: float = Field(1000.0, gt=0, description="mean volume per bar")
    max_bars: int = Field(0, ge=0, description="stop after this many bars; 0: never")
    aligned: bool = Field(False, description="every symbol's bar at the same instant (bar "
                          "closes); false: each symbol at its own phase within the interval")


class SyntheticFeed(PluginBase):
    Params = SyntheticParams
    plugin_name = "synthetic"
    plugin_debug_vars = ["bars_made"]
    historical = False

    def __init__(self, **params: object) -> None:
        super().__init__(**params)
        self.bars_made = 0

    def series(self, symbol: str) -> "GbmSeries":
        p: SyntheticParams = self.params
        return GbmSeries(p.seed ^ zlib.crc32(symbol.encode()), p.start_price, p.drift,
                         p.volatility, p.volume)

    async def bars(self, symbol: str, clock: Clock) -> AsyncIterator[Sequence[Bar]]:
        p: SyntheticParams = self.params
        gbm = self.series(symbol)
        # the first bar after one interval, or (not aligned) at a phase of its own in it
        phase = 1.0 if p.aligned else (p.seed ^ zlib.crc32(symbol.encode())) % 1000 / 1000
        next_at = anyio.current_time() - p.interval * (1.0 - phase)
        made = 0
        while not p.max_bars or made < p.max_bars:
            next_at += p.interval
            await sleep_until(next_at)
            made += 1
            self.bars_made += 1
            yield [gbm.next_bar(symbol, clock.now_ns())]


class GbmSeries:
    """The price process: log returns ~ N(drift - vol^2/2, vol) per bar."""

    def __init__(self, seed: int, price: float, drift: float, vol: float, volume: float) -> None:
        self._rng = random.Random(seed)  # noqa: S311 - market simulation, not security
        self._price = price
        self._mu = drift - 0.5 * vol * vol
        self._vol = vol
        self._volume = volume

    def next_bar(self, symbol: str, ts: int) -> Bar:
        rng = self._rng
        open_ = self._price
        close = open_ * math.exp(self._mu + self._vol * rng.gauss(0.0, 1.0))
        wiggle = abs(rng.gauss(0.0, self._vol * 0.5))
        high = max(open_, close) * (1 + wiggle)
        low = min(open_, close) * (1 - wiggle)
        self._price = close
        volume = self._volume * (0.5 + rng.random())
        return Bar(symbol, ts, round(open_, 4), round(high, 4), round(low, 4), round(close, 4),
                   round(volume, 2))
