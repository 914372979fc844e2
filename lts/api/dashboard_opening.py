"""A portfolio's value as its fills make it, for the dashboard's figures: the equity curve of one
portfolio, and every portfolio's equity at the start of the day (00:00 UTC) that today's P&L of
the overview is measured from.

Where it sits: used by :mod:`lts.api.dashboard_data`; reads fills only (through the API's
reader). The value of a book is cash plus each position at its symbol's last fill price, as
:func:`lts.domain.analytics.analyze` values a portfolio between marks. The opening equity of a
portfolio is computed once a day (from its fills before midnight, in a worker thread) and kept
for the rest of the day: an overview of 500 portfolios reads the fills of a day's past once,
then nothing more.
"""

import time
from collections.abc import Iterable, Mapping, Sequence
from decimal import Decimal
from typing import Any

import anyio
from sqlalchemy import select

from lts.persistence.reader import Reader
from lts.persistence.tables import fills

__all__ = ["FILL_COLUMNS", "Book", "OpeningEquity", "midnight_ns"]

DAY_NS = 86_400 * 10**9
ZERO = Decimal(0)
#: The columns of a fill a book needs.
FILL_COLUMNS = (fills.c.symbol, fills.c.side, fills.c.quantity, fills.c.price, fills.c.fee,
                fills.c.commission)


def midnight_ns(now_ns: int) -> int:
    """00:00 UTC of the day of ``now_ns`` (ns since the epoch; UTC days have no leap time)."""
    return now_ns - now_ns % DAY_NS


class Book:
    """Cash and positions after each fill; valued at the last fill prices or given marks."""

    def __init__(self, initial_cash: Decimal) -> None:
        self.cash = initial_cash
        self.held: dict[str, Decimal] = {}
        self.last: dict[str, Decimal] = {}

    def apply(self, fill: Mapping[str, Any]) -> None:
        quantity = Decimal(fill["quantity"])
        price = Decimal(fill["price"])
        signed = quantity if fill["side"] == "buy" else -quantity
        self.cash -= signed * price + Decimal(fill["fee"])
        # a commission in the asset itself: a buy receives that much less
        kept = signed - (Decimal(fill["commission"]) if fill["side"] == "buy" else ZERO)
        symbol = fill["symbol"]
        self.held[symbol] = self.held.get(symbol, ZERO) + kept
        self.last[symbol] = price

    def value(self, marks: Mapping[str, Decimal] | None = None) -> Decimal:
        marks = marks or {}
        return self.cash + sum((q * marks.get(s, self.last[s]) for s, q in self.held.items()),
                               ZERO)


def _openings(cash: Mapping[int, Decimal], rows: Iterable[Mapping[str, Any]]) -> dict[int, float]:
    books = {pid: Book(c) for pid, c in cash.items()}
    for row in rows:
        books[row["portfolio_id"]].apply(row)
    return {pid: float(book.value()) for pid, book in books.items()}


class OpeningEquity:
    """Each portfolio's equity at 00:00 UTC today, computed once a day per portfolio."""

    def __init__(self) -> None:
        self._day = -1
        self._values: dict[int, float] = {}

    async def of(self, reader: Reader, portfolios: Sequence[Mapping[str, Any]],
                 now_ns: int | None = None) -> dict[int, float]:
        """The opening equity of each of ``portfolios`` (rows with ``id`` and
        ``initial_cash``)."""
        start = midnight_ns(now_ns if now_ns is not None else time.time_ns())
        if start != self._day:
            self._day, self._values = start, {}
        missing = {p["id"]: Decimal(p["initial_cash"]) for p in portfolios
                   if p["id"] not in self._values}
        if missing:
            rows = await reader.all(
                select(fills.c.portfolio_id, *FILL_COLUMNS)
                .where(fills.c.portfolio_id.in_(sorted(missing)), fills.c.ts_event < start)
                .order_by(fills.c.id))
            self._values.update(await anyio.to_thread.run_sync(_openings, missing, rows))
        return {p["id"]: self._values[p["id"]] for p in portfolios}
