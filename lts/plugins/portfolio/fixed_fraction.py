"""Portfolio ``fixed_fraction``: size each target at a fixed fraction of equity.

A signal that names a quantity is taken as it is. The order moves the position to the target:
LONG -> +size, FLAT -> 0, SHORT -> -size; nothing when already there. While an order of the
symbol is still open (not yet filled at the venue) the signal is left out: the position is on
its way to the last target, and an order against one that has not filled yet would be a short
sale (or spend cash that is already committed); the next signal after it settles moves on.
"""

from decimal import Decimal

from pydantic import Field

from lts.domain.orders import OrderRequest, Side
from lts.domain.signals import Signal, Target
from lts.domain.values import ZERO, floor_to_step
from lts.plugins.base import PluginBase, PluginParams
from lts.plugins.portfolio import PortfolioView


class FixedFractionParams(PluginParams):
    fraction: Decimal = Field(Decimal("0.1"), gt=0, le=1,
                              description="fraction of equity per position")


class FixedFraction(PluginBase):
    Params = FixedFractionParams
    plugin_name = "fixed_fraction"
    plugin_debug_vars = ["requests", "waited"]

    def __init__(self, **params: object) -> None:
        super().__init__(**params)
        self.requests = 0
        self.waited = 0  # signals left out while an order of their symbol was open

    def _size(self, signal: Signal, view: PortfolioView) -> Decimal:
        if signal.quantity is not None:
            return signal.quantity
        price = view.last_price(signal.symbol)
        if price is None or price <= 0:
            return ZERO
        budget = view.equity() * self.params.fraction
        return floor_to_step(budget / price, view.lot_size(signal.symbol))

    def allocate(self, signal: Signal, view: PortfolioView) -> list[OrderRequest]:
        if view.pending(signal.symbol):
            self.waited += 1
            return []  # an order of this symbol is still open: wait for it to settle
        if signal.target is Target.FLAT:
            target = ZERO
        else:
            size = self._size(signal, view)
            if size <= 0:
                return []  # cannot size it (no price, no equity): never trade the other way
            target = size if signal.target is Target.LONG else -size
        delta = target - view.position(signal.symbol)
        if delta == 0:
            return []
        self.requests += 1
        side = Side.BUY if delta > 0 else Side.SELL
        return [OrderRequest(signal.symbol, side, abs(delta), tag=signal.reason)]
