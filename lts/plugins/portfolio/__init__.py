"""Portfolio plugins: signals in, order requests out (capital, sizing, netting).

They read the portfolio through :class:`PortfolioView` and never change it: the engine's ledger
owns cash and positions.
"""

from decimal import Decimal
from typing import Protocol

from lts.domain.orders import OrderRequest
from lts.domain.signals import Signal


class PortfolioView(Protocol):
    @property
    def cash(self) -> Decimal: ...

    def equity(self) -> Decimal: ...

    def position(self, symbol: str) -> Decimal:
        """Signed quantity held (long positive)."""
        ...

    def pending(self, symbol: str) -> Decimal:
        """Signed quantity of open orders not yet filled."""
        ...

    def last_price(self, symbol: str) -> Decimal | None: ...

    def lot_size(self, symbol: str) -> Decimal: ...

    def gross_exposure(self) -> Decimal:
        """Sum of absolute position values at the last prices."""
        ...


class Allocator(Protocol):
    def allocate(self, signal: Signal, view: PortfolioView) -> list[OrderRequest]:
        """Turn a target into order requests that move the position towards it."""
        ...
