"""A strategy of your own, in one file: a Donchian channel breakout with a trailing stop.

Buy ``quantity`` when a bar closes above the highest high of the ``period`` bars before it;
protect the position with a trailing stop ``trail_percent`` % below the highest price since;
when the stop fills, wait for the next breakout. Long only, one symbol per instance.

Run it without packaging (docs/strategies.md walks through every step):

    python -m lts.engine replay data.csv \\
        --strategy examples/strategies/donchian_breakout.py:DonchianBreakout \\
        --param period=20 --report out/
"""

from collections import deque
from decimal import Decimal

from pydantic import Field

from lts.domain.market import Bar
from lts.domain.orders import Fill, Side
from lts.plugins.base import PluginParams
from lts.plugins.strategy.base import TradingStrategy


class DonchianParams(PluginParams):
    period: int = Field(20, ge=2, description="bars in the channel")
    quantity: Decimal = Field(Decimal(10), gt=0, description="units per entry")
    trail_percent: Decimal = Field(Decimal(3), gt=0, lt=100,
                                   description="trailing stop distance, % below the high")


class DonchianBreakout(TradingStrategy):
    Params = DonchianParams
    plugin_name = "donchian_breakout"
    plugin_debug_vars = ["entries", "exits"]

    def __init__(self, **params: object) -> None:
        super().__init__(**params)
        self.highs: deque[float] = deque(maxlen=self.params.period)
        self.entries = 0
        self.exits = 0

    def warmup_bars(self) -> int:
        return int(self.params.period)  # a full channel before the first decision

    def on_bar(self, bar: Bar) -> None:
        p: DonchianParams = self.params
        ctx = self.ctx
        full = len(self.highs) == p.period
        breakout = full and bar.close > max(self.highs)
        self.highs.append(bar.high)
        if not breakout or ctx.position(bar.symbol) != 0 or ctx.open_orders(bar.symbol):
            return
        if ctx.buy(bar.symbol, p.quantity) is not None:  # None while warming up
            self.entries += 1

    def on_fill(self, fill: Fill) -> None:
        p: DonchianParams = self.params
        if fill.side is Side.BUY:  # in: protect what we hold
            self.ctx.trailing_stop(fill.symbol, Side.SELL, fill.quantity,
                                   trail_percent=p.trail_percent)
        else:
            self.exits += 1
