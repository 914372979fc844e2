"""Portfolio ``fixed_fraction``: size each target at a fixed fraction of equity.

A signal that names a quantity is taken as it is. The order moves the position to the target:
LONG -> +size, FLAT -> 0, SHORT -> -size; nothing when already there. While an order of the
symbol is still open (not yet filled at the venue) the signal is left out: the position is on
its way to the last target, and an order against one that has not filled yet would be a short
sale (or spend cash that is already committed); the next signal after it settles moves on.

A target that cannot be sized (no price yet, or the fraction of equity buys less than one lot:
a high-priced asset with lot size 1) is a denial, never silence: counted in ``unsized`` and
logged with its reason (the first, then every thousandth).
"""

import logging
from decimal import Decimal

from pydantic import Field

from lts.domain.orders import OrderRequest, Side
from lts.domain.signals import Signal, Target
from lts.domain.values import ZERO, floor_to_step
from lts.plugins.base import PluginBase, PluginParams
from lts.plugins.portfolio import PortfolioView

log = logging.getLogger("lts.sizing")


class FixedFractionParams(PluginParams):
    fraction: Decimal = Field(Decimal("0.1"), gt=0, le=1,
                              description="fraction of equity per position")


class FixedFraction(PluginBase):
    Params = FixedFractionParams
    plugin_name = "fixed_fraction"
    plugin_debug_vars = ["requests", "waited", "unsized"]

    def __init__(self, **params: object) -> None:
        super().__init__(**params)
        self.requests = 0
        self.waited = 0  # signals left out while an order of their symbol was open
        self.unsized = 0  # targets that could not be sized (no price, less than one lot)

    def _size(self, signal: Signal, view: PortfolioView) -> Decimal:
        if signal.quantity is not None:
            return signal.quantity
        price = view.last_price(signal.symbol)
        if price is None or price <= 0:
            return ZERO
        budget = view.equity() * self.params.fraction
        return floor_to_step(budget / price, view.lot_size(signal.symbol))

    def _unsized(self, signal: Signal, view: PortfolioView) -> None:
        self.unsized += 1
        if self.unsized != 1 and self.unsized % 1000:
            return
        price = view.last_price(signal.symbol)
        why = "no price yet" if price is None or price <= 0 else (
            f"{self.params.fraction} of equity {view.equity():.2f} buys less than one lot "
            f"({view.lot_size(signal.symbol)}) at {price}")
        log.warning("%s %s signal not sized: %s (%d so far)", signal.symbol,
                    signal.target.value, why, self.unsized)

    def allocate(self, signal: Signal, view: PortfolioView) -> list[OrderRequest]:
        if view.pending(signal.symbol):
            self.waited += 1
            return []  # an order of this symbol is still open: wait for it to settle
        if signal.target is Target.FLAT:
            target = ZERO
        else:
            size = self._size(signal, view)
            if size <= 0:  # cannot size it: never trade the other way, and say so
                self._unsized(signal, view)
                return []
            target = size if signal.target is Target.LONG else -size
        delta = target - view.position(signal.symbol)
        if delta == 0:
            return []
        self.requests += 1
        side = Side.BUY if delta > 0 else Side.SELL
        return [OrderRequest(signal.symbol, side, abs(delta), tag=signal.reason)]
