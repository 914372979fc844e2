"""Strategy ``buy_and_hold``: one LONG signal on the first bar, then nothing."""

from decimal import Decimal

from pydantic import Field

from lts.domain.market import Bar
from lts.domain.signals import Signal, Target
from lts.plugins.base import PluginBase, PluginParams


class BuyAndHoldParams(PluginParams):
    quantity: Decimal | None = Field(None, gt=0, description="fixed size; else the portfolio sizes")


class BuyAndHold(PluginBase):
    Params = BuyAndHoldParams
    plugin_name = "buy_and_hold"
    plugin_debug_vars = ["bought"]

    def __init__(self, **params: object) -> None:
        super().__init__(**params)
        self.bought = False

    def on_bar(self, bar: Bar) -> Signal | None:
        if self.bought:
            return None
        self.bought = True
        return Signal(bar.symbol, Target.LONG, bar.ts_event, self.params.quantity, "buy and hold")
