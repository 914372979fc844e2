"""Reads for the control API, off the engine's loop: a synchronous engine on the same database,
queried in worker threads, in read-only transactions.

Where it sits: under the API's list and get routes (portfolios, positions, orders), beside the
process's ``AsyncEngine`` (which the journal, the engine and the API's writes keep using). A read
through SQLAlchemy's asyncio layer costs the loop far more than the query: measured here, about
0.45-0.58 ms of the loop thread's CPU for a one-row SELECT on SQLite (aiosqlite: a thread hop per
step, greenlet switches, a ROLLBACK on return) and about 0.37 ms on PostgreSQL (asyncpg), against
0.06 ms when the same statement runs on a synchronous connection in a worker thread: one hop,
and the rows built there. The loop is where trading runs (architecture §4: heavy reads off the
loop), so the API reads this way.

The reader's connections are read-only (SQLite ``query_only``; PostgreSQL
``default_transaction_read_only``): nothing on this path can write. At most ``threads`` reads
run at once; more wait for a thread. One thread by default (``api.read_threads``): a reader
thread builds rows in Python, holding the GIL that the trading loop needs, so a second one
mostly adds contention (measured: tick p99 under a saturating read load 5.2 ms with one, 5.5-8.9
ms with two). SQLite in WAL mode lets them read beside the journal's
writes. An in-memory SQLite database cannot be opened twice: there the reads go through the
``AsyncEngine`` on the loop.
"""

from collections.abc import Callable
from typing import Any, TypeVar

import anyio
import sqlalchemy
from sqlalchemy import Connection, Executable, event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from lts.persistence.db import BUSY_TIMEOUT_MS

_T = TypeVar("_T")
Row = dict[str, Any]

_SYNC_DRIVERS = {"sqlite": "pysqlite", "postgresql": "psycopg"}


class Reader:
    def __init__(self, db: AsyncEngine, threads: int = 1) -> None:
        self.db = db
        self.sync = _sync_engine(db, threads)
        self._limiter = anyio.CapacityLimiter(threads)

    async def all(self, query: Executable) -> list[Row]:
        """Every row of ``query``, as dicts."""
        return await self.run(lambda conn: [dict(r) for r in conn.execute(query).mappings()])

    async def first(self, query: Executable) -> Row | None:
        """The first row of ``query`` as a dict, or None."""
        def one(conn: Connection) -> Row | None:
            row = conn.execute(query).mappings().first()
            return None if row is None else dict(row)
        return await self.run(one)

    async def run(self, read: Callable[[Connection], _T]) -> _T:
        """``read(connection)`` in a worker thread, in a read-only transaction."""
        if self.sync is None:
            async with self.db.connect() as conn:
                return await conn.run_sync(read)
        return await anyio.to_thread.run_sync(self._run, read, limiter=self._limiter)

    def _run(self, read: Callable[[Connection], _T]) -> _T:
        assert self.sync is not None
        with self.sync.connect() as conn:
            return read(conn)

    def dispose(self) -> None:
        if self.sync is not None:
            self.sync.dispose()


def _sync_engine(db: AsyncEngine, threads: int) -> sqlalchemy.Engine | None:
    url = db.url
    backend = url.get_backend_name()
    if backend == "sqlite" and url.database in (None, "", ":memory:"):
        return None
    url = make_url(url).set(drivername=f"{backend}+{_SYNC_DRIVERS[backend]}")
    if backend == "postgresql":
        return sqlalchemy.create_engine(
            url, pool_size=threads, max_overflow=0, pool_pre_ping=True, pool_recycle=1800,
            connect_args={"options": "-c default_transaction_read_only=on"})
    engine = sqlalchemy.create_engine(url, pool_size=threads, max_overflow=0)

    @event.listens_for(engine, "connect")
    def _read_only(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
            cursor.execute("PRAGMA query_only=ON")
        finally:
            cursor.close()

    return engine
