"""The ledger of one portfolio: cash, positions, last prices; the view portfolio plugins and the
pre-trade risk check read.

Where it sits: broker --Fill--> order manager --> **ledger** (positions, P&L) --> journal; market
data marks it; the portfolio plugin sizes from it and :class:`~lts.engine.risk.RiskCheck` checks
order requests against it (:class:`~lts.plugins.portfolio.PortfolioView`).

Cash and positions are exact decimals. The hot path stays cheap: :meth:`Ledger.mark` runs per
bar on floats (a float mirror of the marked equity serves per-bar statistics such as drawdown),
and :meth:`Ledger.apply_fill` touches one position. What open orders commit and add to exposure
is computed from the runner's open-order map only when a risk check asks
(:meth:`Ledger.committed_cash`, :meth:`Ledger.gross_exposure`). An exit group (orders tagged
``oco <group>``, :mod:`lts.domain.contingency`: a bracket's take-profit and stop-loss, an OCO
pair) exits one quantity between its members, so these views count it once, as its member with
the most left to fill.
"""

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from decimal import Decimal

from lts.domain.contingency import OCO_PREFIX
from lts.domain.instruments import Instrument
from lts.domain.orders import OPEN_STATUSES, Fill, Order, OrderRequest, Side
from lts.domain.position import Position
from lts.domain.values import ZERO, to_decimal
from lts.plugins.portfolio import valuation_price

__all__ = ["Ledger"]

_ONE = Decimal(1)


@dataclass(slots=True)
class _Working:
    """The open orders of one symbol: unfilled quantity per side, and its value at the orders'
    own prices (used only for a symbol with no mark)."""

    buys: Decimal = ZERO
    sells: Decimal = ZERO
    buys_value: Decimal = ZERO
    sells_value: Decimal = ZERO

    def add(self, order: Order | OrderRequest, leaves: Decimal) -> None:
        value = leaves * (valuation_price(order, None) or ZERO)
        if order.side is Side.BUY:
            self.buys += leaves
            self.buys_value += value
        else:
            self.sells += leaves
            self.sells_value += value


class Ledger:
    """One portfolio's books (SYS-006). ``instruments`` and ``open_orders`` are the runner's own
    maps, read live: a changed lot size or a new open order is seen at once."""

    def __init__(self, initial_cash: Decimal, instruments: Mapping[str, Instrument],
                 open_orders: Mapping[str, Order]) -> None:
        self.initial_cash = initial_cash
        self._cash = initial_cash
        self._instruments = instruments
        self.positions: dict[str, Position] = {s: Position(symbol=s) for s in instruments}
        self.last: dict[str, float] = {}
        self._open = open_orders
        self.fills = 0
        self.charges = ZERO  # costs not paid through a fill (a backtest's borrow cost)
        self.round_trips = 0
        # float mirrors for per-bar equity: cash + sum(qty * last)
        self.cash_f = float(initial_cash)
        self.qty_f: dict[str, float] = dict.fromkeys(instruments, 0.0)
        self.value_f = 0.0

    # -- PortfolioView: holdings ----------------------------------------------------------------
    @property
    def cash(self) -> Decimal:
        return self._cash

    def position(self, symbol: str) -> Decimal:
        pos = self.positions.get(symbol)
        return pos.quantity if pos is not None else ZERO

    def last_price(self, symbol: str) -> Decimal | None:
        last = self.last.get(symbol)
        return None if last is None else to_decimal(last)

    def lot_size(self, symbol: str) -> Decimal:
        instrument = self._instruments.get(symbol)
        return instrument.lot_size if instrument is not None else _ONE

    def equity(self) -> Decimal:
        total = self._cash
        for sym, pos in self.positions.items():
            if pos.quantity:
                mark = self.last_price(sym) or pos.avg_price
                total += pos.quantity * mark
        return total

    # -- PortfolioView: open orders (computed when asked) ---------------------------------------
    def pending(self, symbol: str) -> Decimal:
        buys, sells = self.open_quantities(symbol)
        return buys - sells

    def open_quantities(self, symbol: str) -> tuple[Decimal, Decimal]:
        buys = sells = ZERO
        for order, leaves in self._working_orders(symbol):
            if order.side is Side.BUY:
                buys += leaves
            else:
                sells += leaves
        return buys, sells

    def committed_cash(self) -> Decimal:
        total = ZERO
        marks: dict[str, Decimal | None] = {}
        groups: dict[str, Decimal] = {}  # an exit group's most valuable member
        for order in self._open.values():
            if order.side is Side.BUY and order.status in OPEN_STATUSES:
                leaves = order.quantity - order.filled_quantity
                if leaves <= 0:
                    continue
                symbol = order.symbol
                if symbol not in marks:
                    marks[symbol] = self._mark(symbol)
                value = leaves * (valuation_price(order, marks[symbol]) or ZERO)
                if order.tag.startswith(OCO_PREFIX):
                    groups[order.tag] = max(value, groups.get(order.tag, ZERO))
                else:
                    total += value
        return total + sum(groups.values(), ZERO)

    def gross_exposure(self, with_order: OrderRequest | None = None) -> Decimal:
        working: dict[str, _Working] = {}
        for order, leaves in self._working_orders():
            working.setdefault(order.symbol, _Working()).add(order, leaves)
        if with_order is not None:
            working.setdefault(with_order.symbol, _Working()).add(with_order, with_order.quantity)
        held = {sym for sym, pos in self.positions.items() if pos.quantity}
        return sum((self._exposure(sym, working.get(sym)) for sym in held | working.keys()),
                   ZERO)

    def _working_orders(self, symbol: str | None = None) -> Iterator[tuple[Order, Decimal]]:
        """Open orders (of ``symbol``, or all) with something left to fill, and that quantity
        (an overfilled order, or one the venue has closed, has none); an exit group once, as
        its member with the most left."""
        groups: dict[str, tuple[Order, Decimal]] = {}
        for order in self._open.values():
            if symbol is not None and order.symbol != symbol:
                continue
            leaves = order.quantity - order.filled_quantity
            if leaves > 0 and order.status in OPEN_STATUSES:
                if order.tag.startswith(OCO_PREFIX):
                    best = groups.get(order.tag)
                    if best is None or leaves > best[1]:
                        groups[order.tag] = (order, leaves)
                    continue
                yield order, leaves
        yield from groups.values()

    def _mark(self, symbol: str) -> Decimal | None:
        """The price a holding is valued at: the last price, else the average price held."""
        last = self.last_price(symbol)
        if last is not None:
            return last
        pos = self.positions.get(symbol)
        return pos.avg_price if pos is not None and pos.quantity else None

    def _exposure(self, symbol: str, working: _Working | None) -> Decimal:
        quantity = self.position(symbol)
        mark = self._mark(symbol)
        if working is None:
            return abs(quantity) * (mark or ZERO)
        if mark is None:  # flat and never priced: the orders at their own prices
            return max(working.buys_value, working.sells_value)
        worst = max(abs(quantity + working.buys), abs(quantity - working.sells))
        return worst * mark

    # -- changes ------------------------------------------------------------------------------
    def mark(self, symbol: str, close: float) -> float:
        """Record the last price; return the float equity marked at it."""
        prev = self.last.get(symbol)
        self.last[symbol] = close
        qty = self.qty_f.get(symbol, 0.0)
        if qty:
            self.value_f += qty * (close - (prev if prev is not None else 0.0))
        return self.cash_f + self.value_f

    def apply_fill(self, fill: Fill) -> Position:
        pos = self.positions.get(fill.symbol)
        if pos is None:
            pos = self.positions[fill.symbol] = Position(symbol=fill.symbol)
        before = pos.quantity
        if fill.commission:  # a fee in the asset itself: the position holds less of it
            quantity, fee = fill.position_quantity, fill.total_fee
        else:
            quantity, fee = fill.quantity, fill.fee
        pos.apply_fill(fill.side, quantity, fill.price, fee)
        signed = quantity if fill.side is Side.BUY else -quantity
        self._cash -= signed * fill.price + fee
        self.fills += 1
        if before and (not pos.quantity or (pos.quantity > 0) != (before > 0)):
            # closed, or reversed through zero (long to short: one trip ends, the next opens)
            self.round_trips += 1
        # float mirrors
        last = self.last.get(fill.symbol)
        fq = float(signed)
        self.cash_f = float(self._cash)
        self.qty_f[fill.symbol] = float(pos.quantity)
        if last is not None:
            self.value_f += fq * last
        return pos

    def rebuild(self, fills: Iterable[Fill]) -> None:
        """Start from the initial cash and replay every fill (recovery after a restart)."""
        self._cash = self.initial_cash
        self.positions = {s: Position(symbol=s) for s in self._instruments}
        self.fills = self.round_trips = 0
        self.cash_f, self.value_f = float(self.initial_cash), 0.0
        self.qty_f = dict.fromkeys(self._instruments, 0.0)
        for fill in fills:
            self.apply_fill(fill)
        self.value_f = sum(q * self.last.get(s, 0.0) for s, q in self.qty_f.items())

    def charge(self, amount: Decimal) -> None:
        """A cost paid from cash outside any fill (a backtest's borrow cost of a short)."""
        self._cash -= amount
        self.cash_f = float(self._cash)
        self.charges += amount

    def realized_pnl(self) -> Decimal:
        return sum((p.realized_pnl for p in self.positions.values()), ZERO)

    def fees(self) -> Decimal:
        return sum((p.fees for p in self.positions.values()), ZERO)
