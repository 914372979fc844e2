"""Portfolio plugins: signals in, order requests out (capital, sizing, netting).

Where it sits: strategy --Signal--> **portfolio plugin** --OrderRequest--> risk check --> order
manager. A plugin reads the portfolio through :class:`PortfolioView` and never changes it: the
engine's ledger owns cash, positions and the open orders. The pre-trade risk check reads the same
view, so what a plugin sizes with and what risk enforces are one set of figures.

How an order not yet filled is valued (:func:`valuation_price`): at its limit price; a stop
order at the higher of its stop price and the mark (a buy stop fills at or above its stop);
a market order at the mark. Higher is the cautious side for both the cash an order may spend
and the exposure it may add.
"""

from decimal import Decimal
from typing import Protocol

from lts.domain.orders import Order, OrderRequest, OrderType
from lts.domain.signals import Signal

__all__ = ["Allocator", "PortfolioView", "valuation_price"]

_LIMIT_TYPES = frozenset({OrderType.LIMIT, OrderType.STOP_LIMIT})


def valuation_price(order: Order | OrderRequest, mark: Decimal | None) -> Decimal | None:
    """The price ``order`` is valued at before it fills, given the symbol's ``mark`` (``None``:
    no price known; then a market order has no value either)."""
    if order.order_type in _LIMIT_TYPES and order.limit_price is not None:
        return order.limit_price
    if order.order_type is OrderType.STOP and order.stop_price is not None:
        return order.stop_price if mark is None else max(order.stop_price, mark)
    return mark


class PortfolioView(Protocol):
    """What a portfolio holds and has working, read-only. Quantities are signed where a side is
    not named (long positive); an open order counts with its unfilled (leaves) quantity."""

    @property
    def cash(self) -> Decimal:
        """Cash held now (fills applied; open orders not deducted)."""
        ...

    def equity(self) -> Decimal:
        """Cash plus every position marked at its last price (else its average price)."""
        ...

    def position(self, symbol: str) -> Decimal:
        """Signed quantity held (long positive)."""
        ...

    def pending(self, symbol: str) -> Decimal:
        """Signed quantity of open orders not yet filled (buys minus sells)."""
        ...

    def open_quantities(self, symbol: str) -> tuple[Decimal, Decimal]:
        """Unfilled quantity of the open buy orders and of the open sell orders of ``symbol``,
        each zero or more: the position may end anywhere from ``position - sells`` to
        ``position + buys``."""
        ...

    def last_price(self, symbol: str) -> Decimal | None: ...

    def lot_size(self, symbol: str) -> Decimal: ...

    def committed_cash(self) -> Decimal:
        """Cash the open buy orders will spend if they fill: each one's leaves quantity at its
        :func:`valuation_price`, marked at the last price (else the average price held)."""
        ...

    def gross_exposure(self, with_order: OrderRequest | None = None) -> Decimal:
        """The one gross exposure figure: per symbol, the larger absolute position of "every
        open buy fills" and "every open sell fills", at the last price (else the average
        price), summed over symbols. A symbol with neither (flat, never priced) counts its open
        orders at their own prices.

        ``with_order`` counts a prospective order as one more open order: the exposure the
        portfolio would have if it were accepted.
        """
        ...


class Allocator(Protocol):
    def allocate(self, signal: Signal, view: PortfolioView) -> list[OrderRequest]:
        """Turn a target into order requests that move the position towards it."""
        ...
