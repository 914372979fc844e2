"""Strategy ``grid``: resting buys below a center price, each sold back one step higher.

A trading strategy of limit orders. Levels: ``L0`` is the center (``center``, else the close of
the first live bar), ``Li = L0 - i * step`` for i = 1..``levels``, where the step is ``spacing``
(``spacing_unit=absolute``) or ``spacing`` % of the center (``percent``).

- At the first live bar a limit buy of ``quantity`` rests at every level ``Li``.
- When the buy at ``Li`` has filled (whole: a partly filled buy waits), a limit sell of what
  it bought rests at ``L(i-1)``, one step above the level.
- When that sell has filled, the buy at ``Li`` rests again.

So each level holds at most one order, a buy or a sell, and the grid buys dips and sells the
rebounds, one step of profit per round trip. Prices go to the tick grid through the context,
never to the trader's disadvantage (a buy limit rounds down, a sell limit up). A level whose
order ends without filling (canceled, rejected, denied) stays empty, counted in ``idle``.

Each order's tag (``grid b<i>@<center>`` or ``grid s<i>@<center>``) says what it is; after a
restart :meth:`Grid.on_start` reads the grid back from the open orders and places nothing new.

Indicator: none (prices are fixed levels). Warm-up: none: the grid needs no history and ignores
any (:meth:`Grid.warmup_bars` is 0); its first decision is on the first live bar.
"""

from decimal import Decimal
from typing import Literal

from pydantic import Field, ValidationInfo, field_validator

from lts.domain.events import OrderEvent
from lts.domain.market import Bar
from lts.domain.orders import OrderStatus, Side
from lts.domain.values import to_decimal
from lts.errors import InvalidParams
from lts.plugins.base import PluginParams
from lts.plugins.strategy.base import TradingStrategy

__all__ = ["Grid", "GridParams"]

_TAG = "grid "
_FILLED = OrderStatus.FILLED.value
_ENDED = frozenset(s.value for s in (OrderStatus.CANCELED, OrderStatus.REJECTED,
                                      OrderStatus.EXPIRED, OrderStatus.DENIED))


class GridParams(PluginParams):
    levels: int = Field(5, ge=1, le=50, description="buy levels below the center")
    spacing_unit: Literal["percent", "absolute"] = Field(
        "percent", description="spacing in % of the center, or in price")
    spacing: Decimal = Field(Decimal(1), gt=0, description="distance between levels")
    center: Decimal | None = Field(None, gt=0, description="level 0; else the first live close")
    quantity: Decimal = Field(Decimal(1), gt=0, description="bought at each level")

    @field_validator("spacing")
    @classmethod
    def _percent_levels_above_zero(cls, spacing: Decimal, info: ValidationInfo) -> Decimal:
        levels = info.data.get("levels")
        if info.data.get("spacing_unit") == "percent" and levels and spacing * levels >= 100:
            raise ValueError(f"{levels} levels of {spacing} % reach zero")
        return spacing

    @field_validator("center")
    @classmethod
    def _levels_above_zero(cls, center: Decimal | None, info: ValidationInfo) -> Decimal | None:
        levels, spacing = info.data.get("levels"), info.data.get("spacing")
        if center is not None and info.data.get("spacing_unit") == "absolute" \
                and levels and spacing and spacing * levels >= center:
            raise ValueError(f"{levels} levels of {spacing} below {center} reach zero")
        return center


class Grid(TradingStrategy):
    Params = GridParams
    plugin_name = "grid"
    plugin_debug_vars = ["center", "buys", "sells", "idle"]

    def __init__(self, **params: object) -> None:
        super().__init__(**params)
        self.buys = 0  # buy fills (whole orders)
        self.sells = 0
        self.idle = 0
        self.params_changed()

    def params_changed(self) -> None:
        self.center: Decimal | None = None
        self._orders: dict[str, tuple[Side, int]] = {}  # open order -> (side, level)

    def on_start(self) -> None:
        self.params_changed()
        for order in self.ctx.open_orders():
            head, _, rest = order.tag.partition(_TAG)
            kind, _, center = rest.partition("@")
            if head or kind[:1] not in ("b", "s") or not kind[1:].isdigit():
                continue
            try:
                self.center = Decimal(center)
            except ArithmeticError:
                continue  # not a tag this strategy wrote
            self._orders[order.client_order_id] = (
                Side.BUY if kind[0] == "b" else Side.SELL, int(kind[1:]))

    def level(self, i: int) -> Decimal:
        """The price of level ``i`` (0: the center)."""
        p: GridParams = self.params
        assert self.center is not None
        step = p.spacing if p.spacing_unit == "absolute" else self.center * p.spacing / 100
        return self.center - i * step

    def on_bar(self, bar: Bar) -> None:
        if self.center is not None or self.ctx.warming_up:
            return
        p: GridParams = self.params
        self.center = p.center if p.center is not None else to_decimal(bar.close)
        if self.level(p.levels) <= 0:
            self.center = None
            raise InvalidParams(self.plugin_name, "spacing",
                                f"level {p.levels} is not above zero at center {bar.close}")
        for i in range(1, p.levels + 1):
            self._place(Side.BUY, i)

    def on_order(self, event: OrderEvent) -> None:
        placed = self._orders.get(event.client_order_id)
        if placed is None:
            return
        if event.status == _FILLED:
            del self._orders[event.client_order_id]
            side, i = placed
            if side is Side.BUY:
                self.buys += 1
                self._place(Side.SELL, i, event.filled_quantity)
            else:
                self.sells += 1
                self._place(Side.BUY, i)
        elif event.status in _ENDED:
            del self._orders[event.client_order_id]
            self.idle += 1

    def _place(self, side: Side, i: int, quantity: Decimal | None = None) -> None:
        p: GridParams = self.params
        tag = f"{_TAG}{'b' if side is Side.BUY else 's'}{i}@{self.center}"
        qty = p.quantity if quantity is None else quantity
        if side is Side.BUY:
            coid = self.ctx.buy(self.ctx.symbols[0], qty, limit=self.level(i), tag=tag)
        else:
            coid = self.ctx.sell(self.ctx.symbols[0], qty, limit=self.level(i - 1), tag=tag)
        if coid is not None:
            self._orders[coid] = (side, i)
