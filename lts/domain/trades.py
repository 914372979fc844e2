"""Round trips (trades) from fills: what the backtest report and the statistics count.

Flow: broker --Fill--> ledger; after a run (or for the API's analytics) the fills of a portfolio
go through :class:`TradeBook`, which groups them per symbol into round trips. A trade opens
when the symbol's position leaves zero and closes when it returns to zero. Adding to the
position and partial exits stay in the same trade. A fill that reverses the position through
zero (long 5, sell 10: short 5) closes the trade and opens the next one: its quantity is split
at zero, and so is its fee, in proportion to the quantity on each side (the fee is paid per unit
traded, so each trade pays for its own part; the closing share is rounded to 1e-12 and the
opening one is the rest, so the two add up to the fill's fee exactly).

A fill moves the position by :attr:`Fill.position_quantity` and costs :attr:`Fill.total_fee`
(a commission taken in the asset itself is counted at the fill's price).

The figures of a trade, with ``entered``/``exited`` the quantities traded opening and closing
it and ``entry_value``/``exit_value`` their notional values:

- ``entry_price = entry_value / entered`` and ``exit_price = exit_value / exited``
  (quantity-weighted averages of the fills);
- ``pnl = sign * (exit_value + open * mark - entry_value) - fees`` with ``sign`` +1 for a long
  and -1 for a short (``open`` is the quantity still held: zero once the trade is closed);
- ``return_pct = 100 * pnl / entry_value``. For a trade of one entry and one exit this is
  backtesting.py's ``Trade.pl_pct`` (``sign * (exit / entry - 1)`` less the commissions over
  the entry value), in percent.

A trade still open at the end is returned with ``open=True`` and no exit time; what it still
holds is valued at the mark given for its symbol, else at its average entry price (no
unrealized P&L).
"""

from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Literal

import msgspec

from lts.domain.orders import Fill, Side
from lts.domain.values import ZERO

__all__ = ["Trade", "TradeBook", "TradeSide", "round_trips"]

#: A reversal's fee is split on this grid, so the two shares add up to the fee exactly.
_FEE_STEP = Decimal("1e-12")


#: A trade is long (opened by a buy) or short (opened by a sell).
TradeSide = Literal["long", "short"]


class Trade(msgspec.Struct, frozen=True, kw_only=True):
    """One round trip of one symbol. Times are ns since the epoch; money in the quote currency.

    ``quantity`` is the largest absolute position held during the trade; ``fees`` include the
    trade's share of a reversal fill's fee.
    """

    trade_id: int
    symbol: str
    side: TradeSide
    quantity: Decimal
    entry_ts: int
    exit_ts: int | None
    entry_price: Decimal
    exit_price: Decimal | None
    pnl: Decimal
    return_pct: float
    fees: Decimal
    open: bool

    @property
    def duration_ns(self) -> int | None:
        return None if self.exit_ts is None else self.exit_ts - self.entry_ts


class _OpenTrade:
    """A trade being built: the running sums :class:`Trade` is computed from."""

    __slots__ = ("entered", "entry_ts", "entry_value", "exit_ts", "exit_value", "exited",
                 "fees", "held", "long", "peak", "trade_id")

    def __init__(self, trade_id: int, long: bool, ts: int) -> None:
        self.trade_id = trade_id
        self.long = long
        self.entry_ts = ts
        self.exit_ts = ts
        self.held = self.peak = self.entered = self.exited = ZERO  # held is signed
        self.entry_value = self.exit_value = self.fees = ZERO

    def add(self, signed: Decimal, price: Decimal, fee: Decimal, ts: int) -> None:
        """Apply ``signed`` units (never crossing zero) at ``price``."""
        quantity = abs(signed)
        if (signed > 0) == self.long:
            self.entered += quantity
            self.entry_value += quantity * price
        else:
            self.exited += quantity
            self.exit_value += quantity * price
            self.exit_ts = ts
        self.held += signed
        self.peak = max(self.peak, abs(self.held))
        self.fees += fee

    def trade(self, symbol: str, mark: Decimal | None) -> Trade:
        still_open = self.held != 0
        sign = 1 if self.long else -1
        exit_value = self.exit_value
        exited = self.exited
        if still_open and mark is not None:
            exit_value += abs(self.held) * mark
            exited += abs(self.held)
        pnl = sign * (exit_value - self.entry_value) - self.fees
        if still_open and mark is None:  # what is held counts at the average entry price
            pnl = sign * (exit_value - exited * self.entry_value / self.entered) - self.fees
        return Trade(
            trade_id=self.trade_id, symbol=symbol, side="long" if self.long else "short",
            quantity=self.peak, entry_ts=self.entry_ts,
            exit_ts=None if still_open else self.exit_ts,
            entry_price=self.entry_value / self.entered,
            exit_price=exit_value / exited if exited else None,
            pnl=pnl, return_pct=float(pnl / self.entry_value * 100) if self.entry_value else 0.0,
            fees=self.fees, open=still_open)


class TradeBook:
    """Groups fills into round trips, one fill at a time (fills in time order).

    :meth:`apply` answers the ids of the trades a fill belongs to (two for a reversal), so a
    report can label each fill; ids count from 1 in the order trades open, across symbols.
    """

    def __init__(self) -> None:
        self._open: dict[str, _OpenTrade] = {}
        self._done: list[tuple[str, _OpenTrade]] = []
        self._next_id = 1

    def apply(self, fill: Fill) -> tuple[int, ...]:
        quantity = fill.position_quantity
        if quantity <= 0:
            return ()
        signed = quantity if fill.side is Side.BUY else -quantity
        fee = fill.total_fee
        current = self._open.get(fill.symbol)
        touched: list[int] = []
        if current is not None:
            held = current.held
            if (held > 0) == (signed > 0) or abs(signed) <= abs(held):  # add, reduce or close
                current.add(signed, fill.price, fee, fill.ts_event)
                if current.held == 0:
                    self._done.append((fill.symbol, self._open.pop(fill.symbol)))
                return (current.trade_id,)
            # a reversal: close at zero, the rest opens the next trade
            closing_fee = (fee * abs(held) / quantity).quantize(_FEE_STEP)
            current.add(-held, fill.price, closing_fee, fill.ts_event)
            self._done.append((fill.symbol, self._open.pop(fill.symbol)))
            touched.append(current.trade_id)
            signed += held
            fee -= closing_fee
        trade = _OpenTrade(self._next_id, signed > 0, fill.ts_event)
        self._next_id += 1
        trade.add(signed, fill.price, fee, fill.ts_event)
        self._open[fill.symbol] = trade
        touched.append(trade.trade_id)
        return tuple(touched)

    def trades(self, marks: Mapping[str, Decimal] | None = None) -> list[Trade]:
        """Every trade so far in the order they opened; the open ones last marked at ``marks``."""
        marks = marks or {}
        built = [t.trade(symbol, None) for symbol, t in self._done]
        built += [t.trade(symbol, marks.get(symbol)) for symbol, t in self._open.items()]
        return sorted(built, key=lambda t: t.trade_id)


def round_trips(fills: Iterable[Fill], marks: Mapping[str, Decimal] | None = None
                ) -> list[Trade]:
    """The round trips of ``fills`` (in time order), closed and open, in the order they opened.

    An open trade (``open=True``, ``exit_ts`` None) is valued at ``marks[symbol]`` if given.
    """
    book = TradeBook()
    for fill in fills:
        book.apply(fill)
    return book.trades(marks)
