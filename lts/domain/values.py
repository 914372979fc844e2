"""Exact values and identifiers shared by every layer.

Money, prices and quantities are ``Decimal``. Market data may carry floats for indicator math;
:func:`to_decimal` is the one place a float becomes a price or a quantity, quantized to a step
(tick size or lot size) with an explicit rounding mode.
"""

from decimal import ROUND_DOWN, ROUND_HALF_EVEN, Decimal
from typing import NewType

PortfolioId = NewType("PortfolioId", int)
Symbol = NewType("Symbol", str)
ClientOrderId = NewType("ClientOrderId", str)
TradeId = NewType("TradeId", str)

ZERO = Decimal(0)


def to_decimal(value: float | int | str | Decimal, step: Decimal | None = None,
               rounding: str = ROUND_HALF_EVEN) -> Decimal:
    """Convert ``value`` to ``Decimal`` exactly as written, then quantize it to ``step``.

    A float goes through ``repr`` so that ``0.1`` becomes ``Decimal('0.1')``, not its binary
    expansion. With ``step`` the result is a whole multiple of it (``ROUND_DOWN`` for sizes).
    """
    if isinstance(value, float):  # the usual case: a bar's price
        d = Decimal(repr(value))
    elif isinstance(value, Decimal):
        d = value
    else:
        d = Decimal(value)
    if step is None or step == 0:
        return d
    units = (d / step).to_integral_value(rounding=rounding)
    return (units * step).quantize(step)


def floor_to_step(value: Decimal, step: Decimal) -> Decimal:
    """Round a size down to a whole number of ``step`` (lot size): never over-allocate."""
    return to_decimal(value, step, ROUND_DOWN)
