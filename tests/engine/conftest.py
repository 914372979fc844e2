"""Fixtures of the engine tests: an engine desk (the real engine, one portfolio, a scripted venue)
on every store, and a reader of what the database holds as another process sees it."""

import sqlite3
from collections.abc import AsyncIterator, Callable
from contextlib import closing
from typing import Any

import asyncpg
import pytest
from sqlalchemy.engine import make_url

from .desk import EngineDesk, running_desk


@pytest.fixture
async def desk(migrated_url: str) -> AsyncIterator[EngineDesk]:
    """The engine running one portfolio of ``AAA`` (tick 0.01, lot 1, $100,000, marked at 100)
    on the scripted venue, on SQLite and on PostgreSQL."""
    async with running_desk(migrated_url) as running:
        yield running


StatusReader = Callable[[str], str | None]


@pytest.fixture
def read_status(migrated_url: str, run_in_thread: Callable[..., Any]) -> StatusReader:
    """The committed status of an order, read through a connection of its own (sqlite3 or
    asyncpg), blocking, as a venue's own process would see the database."""
    url = make_url(migrated_url)
    query = "SELECT status FROM orders WHERE client_order_id = {}"
    if url.get_backend_name() == "sqlite":
        def read_sqlite(coid: str) -> str | None:
            with closing(sqlite3.connect(str(url.database))) as conn:
                row = conn.execute(query.format("?"), (coid,)).fetchone()
            return None if row is None else str(row[0])
        return read_sqlite
    dsn = url.set(drivername="postgresql").render_as_string(hide_password=False)

    def read_pg(coid: str) -> str | None:
        async def read() -> Any:
            conn = await asyncpg.connect(dsn)
            try:
                return await conn.fetchval(query.format("$1"), coid)
            finally:
                await conn.close()
        value = run_in_thread(read)
        return None if value is None else str(value)
    return read_pg
