"""The equity curves the dashboard draws, kept up to date by the fills that came since the last
look.

Where it sits: used by the ``activity`` route of :mod:`lts.api.dashboard_data`. The portfolio
page asks for its portfolio's activity after fills (throttled), several pages may watch the same
portfolio, and a busy portfolio has millions of fills: reading them all per request made each
request cost as much as the portfolio's whole history. So each watched portfolio keeps its
:class:`~lts.api.dashboard_opening.Book` and its curve here, and a request reads only the fills
after the last one applied (by row id: the journal writes a portfolio's fills in order). The
curve keeps at most ``2 * limit`` points: past that every other point is dropped (the first and
the newest kept), an even thinning that a chart ``limit`` points wide cannot tell from the full
curve. The last :data:`WATCHED` portfolios asked for are kept; the rest are read again from the
start when asked for next.
"""

from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import anyio
from sqlalchemy import select

from lts.api.dashboard_opening import FILL_COLUMNS, Book
from lts.persistence.reader import Reader
from lts.persistence.tables import fills

__all__ = ["WATCHED", "EquityCurves"]

#: portfolios whose curves are kept (the least recently asked for is dropped first)
WATCHED = 64
#: new fills applied on the event loop at most; more (a first look at a long history) are
#: applied in a worker thread
INLINE = 2_000


@dataclass
class _Curve:
    initial_cash: Decimal
    book: Book
    last_id: int = 0
    points: list[tuple[int, float]] = field(default_factory=list)
    lock: anyio.Lock = field(default_factory=anyio.Lock)


class EquityCurves:
    """Each watched portfolio's equity after each of its fills, at most ``2 * limit`` points."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._curves: OrderedDict[int, _Curve] = OrderedDict()

    async def of(self, reader: Reader, portfolio_id: int, initial_cash: Decimal,
                 marks: Mapping[str, Decimal]) -> tuple[list[tuple[int, float]], float]:
        """The curve (time in ns, equity) after each fill so far, and the book after the last
        fill valued at ``marks`` (read under the lock: a look at a long history applies its
        fills to the book in a worker thread)."""
        curve = self._curves.get(portfolio_id)
        if curve is None or curve.initial_cash != initial_cash:
            curve = _Curve(initial_cash, Book(initial_cash))
            self._curves[portfolio_id] = curve
        self._curves.move_to_end(portfolio_id)
        while len(self._curves) > WATCHED:
            self._curves.popitem(last=False)
        async with curve.lock:  # two pages at once: the fills are applied once
            rows = await reader.all(
                select(fills.c.id, fills.c.ts_event, *FILL_COLUMNS)
                .where(fills.c.portfolio_id == portfolio_id, fills.c.id > curve.last_id)
                .order_by(fills.c.id))
            if len(rows) > INLINE:
                await anyio.to_thread.run_sync(self._apply, curve, rows)
            elif rows:
                self._apply(curve, rows)
            return list(curve.points), float(curve.book.value(marks))

    def _apply(self, curve: _Curve, rows: Sequence[dict[str, Any]]) -> None:
        points, book = curve.points, curve.book
        if not points:
            points.append((rows[0]["ts_event"], float(curve.initial_cash)))
        for r in rows:
            book.apply(r)
            points.append((r["ts_event"], float(book.value())))
            if len(points) > 2 * self._limit:
                newest = points[-1]
                del points[1::2]
                if points[-1] != newest:
                    points.append(newest)
        curve.last_id = rows[-1]["id"]
