"""Instrument rules: what a venue accepts for one symbol (tick size, lot size, minimums).

Where it sits: a broker reports them (a real venue from its market list, the paper venue from the
asset's row); the runner keeps one per symbol; the portfolio plugin sizes with the lot size, the
risk check denies what does not conform, and the paper venue fills on the tick grid. An order
price or quantity that does not conform is denied, never silently rounded: rounding is the
caller's choice (:meth:`Instrument.round_price`, :meth:`Instrument.floor_quantity`).

Storage bounds: prices and quantities are stored exactly (PostgreSQL ``NUMERIC(38, 18)``), so a
value with more than 20 integer digits or 18 decimals cannot be made durable;
:func:`storable` tells.
"""

from decimal import ROUND_DOWN, ROUND_HALF_EVEN, Context, Decimal

import msgspec

from lts.domain.values import ZERO

__all__ = ["MAX_INTEGER_DIGITS", "MAX_SCALE", "Instrument", "storable"]

#: NUMERIC(38, 18): 20 digits before the point, 18 after.
MAX_INTEGER_DIGITS = 20
MAX_SCALE = 18
_LIMIT = Decimal(10) ** MAX_INTEGER_DIGITS
_SCALE = Decimal(1).scaleb(-MAX_SCALE)
#: Digits enough for any value below the limit on the 18-decimal grid.
_STORE = Context(prec=MAX_INTEGER_DIGITS + MAX_SCALE)


def storable(value: Decimal) -> bool:
    """Finite, below 10**20 in size and with at most 18 decimals: the store keeps it exactly."""
    if not value.is_finite() or abs(value) >= _LIMIT:
        return False
    # on the 18-decimal grid: cutting it there loses nothing (far cheaper than as_tuple())
    return value.quantize(_SCALE, ROUND_DOWN, _STORE) == value


def _on_grid(value: Decimal, step: Decimal) -> bool:
    return step <= 0 or value % step == 0


class Instrument(msgspec.Struct, frozen=True):
    """The rules of one tradable symbol. ``min_quantity`` and ``min_notional`` of 0: none."""

    symbol: str
    tick_size: Decimal
    lot_size: Decimal
    min_quantity: Decimal = ZERO
    min_notional: Decimal = ZERO

    @property
    def price_precision(self) -> int:
        """Decimals of the tick size (0.01 -> 2; 5 -> 0)."""
        exponent = self.tick_size.normalize().as_tuple().exponent
        return max(0, -exponent) if isinstance(exponent, int) else 0

    def price_conforms(self, price: Decimal) -> bool:
        return _on_grid(price, self.tick_size)

    def quantity_conforms(self, quantity: Decimal) -> bool:
        return _on_grid(quantity, self.lot_size)

    def round_price(self, price: Decimal, rounding: str = ROUND_HALF_EVEN) -> Decimal:
        """``price`` on the tick grid (``rounding`` chooses the direction)."""
        step = self.tick_size
        if step <= 0:
            return price
        return ((price / step).to_integral_value(rounding=rounding) * step).quantize(step)

    def floor_quantity(self, quantity: Decimal) -> Decimal:
        """``quantity`` rounded down to whole lots: never more than asked."""
        step = self.lot_size
        if step <= 0:
            return quantity
        return ((quantity / step).to_integral_value(rounding=ROUND_DOWN) * step).quantize(step)
