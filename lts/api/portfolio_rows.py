"""Portfolio rows as the control API reads them, answered from memory.

Where it sits: between the portfolio routes (and every route that checks who owns a portfolio:
assets, orders, the WebSocket) and :mod:`lts.persistence.portfolio_store`. Nearly every request
names a portfolio, and a read through the async driver costs thread hops that wait behind the
trading loop; so a row read once is kept for ``api.cache_seconds`` (the same bound on staleness as
sessions: a change made by another process is seen within it), and every change
made through this process goes through here and drops the row at once.

The columns the engine itself writes while it runs (``status``, ``last_error``) are not read
from here: the routes take them from the live runner (see ``lts.api.routes.portfolios``).
"""

import time
from collections.abc import Callable, Mapping
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from lts.persistence import portfolio_store as store
from lts.persistence.reader import Reader

Row = Mapping[str, Any]


class PortfolioRows:
    def __init__(self, db: AsyncEngine, reader: Reader, ttl: float, *,
                 max_entries: int = 10_000,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.db = db
        self.reader = reader
        self.ttl = ttl
        self.max_entries = max_entries
        self._clock = clock
        self._rows: dict[int, tuple[float, Row]] = {}

    async def get(self, portfolio_id: int) -> Row | None:
        """The row (do not change it), or None when there is no such portfolio."""
        kept = self._rows.get(portfolio_id)
        if kept is not None and self._clock() < kept[0]:
            return kept[1]
        row = await store.get_portfolio(self.reader, portfolio_id)
        if row is None:
            self._rows.pop(portfolio_id, None)
            return None
        self._rows[portfolio_id] = (self._clock() + self.ttl, row)
        while len(self._rows) > self.max_entries:
            del self._rows[next(iter(self._rows))]
        return row

    def forget(self, portfolio_id: int) -> None:
        """The row changed behind this cache (the engine wrote it): read it again next time."""
        self._rows.pop(portfolio_id, None)

    async def create(self, values: Mapping[str, Any]) -> int:
        return await store.create_portfolio(self.db, values)

    async def update(self, portfolio_id: int, values: Mapping[str, Any]) -> None:
        self._rows.pop(portfolio_id, None)
        try:
            await store.update_portfolio(self.db, portfolio_id, values)
        finally:
            self._rows.pop(portfolio_id, None)  # a read while the write was in flight

    async def delete(self, portfolio_id: int) -> None:
        self._rows.pop(portfolio_id, None)
        try:
            await store.delete_portfolio(self.db, portfolio_id)
        finally:
            self._rows.pop(portfolio_id, None)
