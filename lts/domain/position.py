"""A position in one symbol: signed quantity, average cost, realized P&L and fees.

Long is positive. A fill that reduces a position realizes P&L against the average cost; one
that crosses zero closes the old side and opens the new one at the fill price. Invariants
(property-tested): quantity is the signed sum of fills, and realized + unrealized P&L - fees
equals the change in equity (cash plus marked position) since the position was opened.
"""

from decimal import Decimal

import msgspec

from lts.domain.orders import Side
from lts.domain.values import ZERO

#: A partial close takes its share of the cost basis on this grid, so every later sum stays exact.
_COST_STEP = Decimal("1e-12")


class Position(msgspec.Struct, kw_only=True):
    """``cost`` is the signed cost basis of the open quantity (exact); ``avg_price`` derives
    from it. Unrealized P&L is ``mark * quantity - cost``, which keeps realized + unrealized
    exact even when an average price does not divide evenly."""

    symbol: str
    quantity: Decimal = ZERO
    cost: Decimal = ZERO
    realized_pnl: Decimal = ZERO
    fees: Decimal = ZERO

    @property
    def avg_price(self) -> Decimal:
        return self.cost / self.quantity if self.quantity else ZERO

    def apply_fill(self, side: Side, quantity: Decimal, price: Decimal,
                   fee: Decimal = ZERO) -> Decimal:
        """Apply one fill; return the P&L it realized (before fees)."""
        if quantity <= 0:
            raise ValueError("fill quantity must be positive")
        signed = quantity if side is Side.BUY else -quantity
        old = self.quantity
        realized = ZERO
        if old == 0 or (old > 0) == (signed > 0):
            self.cost += signed * price  # opening or adding
        else:
            held = abs(old)
            closed = min(quantity, held)
            removed = self.cost if closed == held else \
                (self.cost * closed / held).quantize(_COST_STEP)
            direction = 1 if old > 0 else -1
            realized = price * closed * direction - removed
            self.cost -= removed
            rest = quantity - closed
            if rest:  # flipped through zero: the rest opens at this price
                self.cost += (rest if signed > 0 else -rest) * price
        self.quantity = old + signed
        self.realized_pnl += realized
        self.fees += fee
        return realized

    def unrealized_pnl(self, mark: Decimal) -> Decimal:
        return mark * self.quantity - self.cost

    def market_value(self, mark: Decimal) -> Decimal:
        return mark * self.quantity
