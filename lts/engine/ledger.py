"""The ledger of one portfolio: cash, positions, last prices; the view portfolio plugins read.

Fills change it (through the order manager); market data marks it. Cash and positions are exact
decimals; a float mirror of the marked equity is kept for per-bar statistics (drawdown) that
must not cost a decimal multiplication per bar.
"""

from collections.abc import Iterable, Mapping
from decimal import Decimal

from lts.domain.orders import Fill, Order, Side
from lts.domain.position import Position
from lts.domain.values import ZERO, to_decimal


class Ledger:
    def __init__(self, initial_cash: Decimal, lot_sizes: Mapping[str, Decimal],
                 open_orders: Mapping[str, Order]) -> None:
        self.initial_cash = initial_cash
        self._cash = initial_cash
        self.positions: dict[str, Position] = {s: Position(symbol=s) for s in lot_sizes}
        self.last: dict[str, float] = {}
        self._lots = dict(lot_sizes)
        self._open = open_orders
        self.fills = 0
        self.round_trips = 0
        # float mirrors for per-bar equity: cash + sum(qty * last)
        self.cash_f = float(initial_cash)
        self.qty_f: dict[str, float] = dict.fromkeys(lot_sizes, 0.0)
        self.value_f = 0.0

    # -- PortfolioView ------------------------------------------------------------------------
    @property
    def cash(self) -> Decimal:
        return self._cash

    def position(self, symbol: str) -> Decimal:
        pos = self.positions.get(symbol)
        return pos.quantity if pos is not None else ZERO

    def pending(self, symbol: str) -> Decimal:
        return sum((o.leaves_quantity * o.side.sign for o in self._open.values()
                    if o.symbol == symbol), ZERO)

    def last_price(self, symbol: str) -> Decimal | None:
        last = self.last.get(symbol)
        return None if last is None else to_decimal(last)

    def lot_size(self, symbol: str) -> Decimal:
        return self._lots.get(symbol, Decimal(1))

    def equity(self) -> Decimal:
        total = self._cash
        for sym, pos in self.positions.items():
            if pos.quantity:
                mark = self.last_price(sym) or pos.avg_price
                total += pos.quantity * mark
        return total

    def gross_exposure(self) -> Decimal:
        total = ZERO
        for sym, pos in self.positions.items():
            if pos.quantity:
                total += abs(pos.quantity * (self.last_price(sym) or pos.avg_price))
        return total

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
        was_open = pos.quantity != 0
        pos.apply_fill(fill.side, fill.quantity, fill.price, fill.fee)
        signed = fill.quantity if fill.side is Side.BUY else -fill.quantity
        self._cash -= signed * fill.price + fill.fee
        self.fills += 1
        if was_open and pos.quantity == 0:
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
        self.positions = {s: Position(symbol=s) for s in self._lots}
        self.fills = self.round_trips = 0
        self.cash_f, self.value_f = float(self.initial_cash), 0.0
        self.qty_f = dict.fromkeys(self._lots, 0.0)
        for fill in fills:
            self.apply_fill(fill)
        self.value_f = sum(q * self.last.get(s, 0.0) for s, q in self.qty_f.items())

    def realized_pnl(self) -> Decimal:
        return sum((p.realized_pnl for p in self.positions.values()), ZERO)

    def fees(self) -> Decimal:
        return sum((p.fees for p in self.positions.values()), ZERO)
