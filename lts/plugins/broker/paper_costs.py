"""The paper venue's trading costs: the fee of each fill and the price a taker fill pays.

Where it sits: pure arithmetic on ``Decimal`` that :class:`~lts.plugins.broker.paper.PaperBroker`
applies to every fill it makes from a bar; it decides nothing about *whether* an order fills.
The rules, with worked examples and how they differ from backtesting.py and backtrader, are in
``docs/costs.md``.

Fees: a rate of the fill's notional (the maker rate for a limit order that rested on the book
and filled at its limit, the taker rate for every other fill), each fill's part rounded up to
:data:`FEE_STEP`; plus a fixed amount once per order, on its first fill; and a minimum per order,
held on the order's total so far: after every fill the order has paid
``max(minimum, fixed + its fills' rate parts)``, so the first fill pays at least the minimum and
a later fill only what the total grew beyond it. An order that fills whole pays exactly what a
venue charging the minimum on the completed order does; one canceled after a partial fill has
paid the minimum all the same (a simulated fee needs a fill to ride on).

Slippage: a taker fill's price moves against the order by a fraction, onto the tick grid against
it (a buy up, a sell down), but no further than the bar's range (its high for a buy, its low for
a sell, taken on the grid inside the bar), never better than the unslipped price and never
through the order's limit.
"""

from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from functools import cached_property

from lts.domain.instruments import Instrument
from lts.domain.orders import Side
from lts.domain.values import ZERO, to_decimal

__all__ = ["FEE_STEP", "PaperCosts"]

#: Fees are whole multiples of this (quote currency), rounded up.
FEE_STEP = Decimal("0.00000001")
_BPS = Decimal(10_000)


def _fee_up(amount: Decimal) -> Decimal:
    """``amount`` on the fee step, rounded up: never in the trader's favour."""
    return amount.quantize(FEE_STEP, rounding=ROUND_CEILING)


@dataclass(frozen=True)
class PaperCosts:
    """One venue's cost schedule. Rates are fractions of notional (``0.001`` is 10 bps);
    amounts are quote currency on :data:`FEE_STEP`; ``slippage`` is a fraction of the price."""

    taker_rate: Decimal = ZERO
    maker_rate: Decimal = ZERO
    fee_per_order: Decimal = ZERO
    min_fee_per_order: Decimal = ZERO
    slippage: Decimal = ZERO

    @classmethod
    def from_bps(cls, *, taker_bps: Decimal, maker_bps: Decimal, fee_per_order: Decimal,
                 min_fee_per_order: Decimal, slippage_bps: Decimal) -> "PaperCosts":
        """The schedule from a venue's terms: rates in basis points, the fixed and minimum
        amounts rounded up to the fee step."""
        return cls(taker_bps / _BPS, maker_bps / _BPS, _fee_up(fee_per_order),
                   _fee_up(min_fee_per_order), slippage_bps / _BPS)

    @cached_property
    def free(self) -> bool:
        """No fee of any kind."""
        return not (self.taker_rate or self.maker_rate or self.fee_per_order
                    or self.min_fee_per_order)

    # -- fees ------------------------------------------------------------------------------------
    def fill_fee(self, accrued: Decimal | None, notional: Decimal, *,
                 maker: bool) -> tuple[Decimal, Decimal]:
        """The fee of one fill of ``notional`` (price x quantity) and the order's accrued fee
        after it. ``accrued`` is the order's fixed fee plus its fills' rate parts before this
        fill, before the minimum (None: this is the order's first fill, which carries the
        fixed fee); keep the second value for the order's next fill."""
        part = _fee_up(notional * (self.maker_rate if maker else self.taker_rate))
        if accrued is None:
            paid, after = ZERO, self.fee_per_order + part
        else:
            paid, after = max(self.min_fee_per_order, accrued), accrued + part
        return max(self.min_fee_per_order, after) - paid, after

    def accrued_unknown(self) -> Decimal:
        """The accrual to take for an order that filled before this venue knew it (restored
        after a restart: the journal keeps its fills' fees, not the order's accrual). It has
        paid its fixed fee and at least the minimum, so each later fill pays its rate part in
        full: never less than the order would have owed."""
        return self.min_fee_per_order

    # -- prices ----------------------------------------------------------------------------------
    @staticmethod
    def against(price: Decimal, side: Side, rules: Instrument) -> Decimal:
        """A market price on the tick grid, rounded against the order (a buy up, a sell
        down): a bar price between two ticks never fills in the trader's favour."""
        return rules.round_price(price, ROUND_CEILING if side is Side.BUY else ROUND_FLOOR)

    def taker_price(self, price: Decimal, side: Side, rules: Instrument, *,
                    high: float | Decimal, low: float | Decimal,
                    limit: Decimal | None = None) -> Decimal:
        """A taker fill's price: ``price`` (unslipped, on the grid) moved against the order by
        the slippage and rounded onto the grid against it, capped by the bar's range (``high``
        for a buy, ``low`` for a sell: the last tick inside the bar; a bar's float is taken as
        written, and only when there is slippage), never better than ``price`` and never
        through ``limit``."""
        if side is Side.BUY:
            if self.slippage:
                slipped = rules.round_price(price * (1 + self.slippage), ROUND_CEILING)
                price = max(price, min(slipped, rules.round_price(to_decimal(high), ROUND_FLOOR)))
            return price if limit is None else min(price, limit)
        if self.slippage:
            slipped = rules.round_price(price * (1 - self.slippage), ROUND_FLOOR)
            price = min(price, max(slipped, rules.round_price(to_decimal(low), ROUND_CEILING)))
        return price if limit is None else max(price, limit)
