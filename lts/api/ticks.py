"""Prices shown to an asset's tick: an average of fills (a position's, an order's) carries as many
digits as the division gave (28); the API shows it with as many decimals as the asset's tick has.
The stored value stays exact: only answers are rounded (half to even, as Decimal's default).
"""

from decimal import ROUND_HALF_EVEN, Context, Decimal

__all__ = ["to_tick"]

#: Enough digits for any price the journal stores (below 10**20, 18 decimals): quantizing never
#: runs out of precision (the default context's 28 would, for 20 + 18 digits).
_WIDE = Context(prec=60, rounding=ROUND_HALF_EVEN)


def to_tick(price: Decimal, tick: Decimal) -> Decimal:
    """``price`` with as many decimals as ``tick`` has (none for a tick of 1 or more)."""
    exponent = min(int(tick.normalize(_WIDE).as_tuple().exponent), 0)
    return price.quantize(Decimal(1).scaleb(exponent), context=_WIDE)
