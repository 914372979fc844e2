"""The journal on SQLite: a batch's statements as plain SQL text, and its commit path.

Where it sits: under :class:`lts.persistence.journal.Journal` when the database is SQLite. The
journal hands each batch (and its fence check, :mod:`lts.persistence.journal_fencing`) to
:meth:`SqliteCommitPath.commit`, which runs it as one transaction: on a database file through
the writer thread of :mod:`lts.persistence.sqlite_writer` (``BEGIN IMMEDIATE``: the lease tokens
read cannot change before the commit), in memory on the engine's own connection. A fill carries
its ledger's new position state, and the last state per ``(portfolio_id, symbol)`` of the batch
is upserted. Nothing is ever in doubt here: SQLite reports a failed ``COMMIT`` as rolled back.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from operator import itemgetter
from typing import Any, Final

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from lts.persistence.journal_errors import describe_error
from lts.persistence.journal_fencing import FenceCheck, Fencing
from lts.persistence.journal_records import (
    FILL,
    ORDER_UPDATE,
    PORTFOLIO_UPDATE,
    POSITION,
    Record,
    Row,
    plan,
)
from lts.persistence.sqlite_writer import Build, SqliteBatchWriter, Statement, lease_tokens_sql
from lts.persistence.tables import metadata

__all__ = ["SqliteCommitPath", "SqliteText"]

log = logging.getLogger("lts.persistence.journal")  # the journal's logger: one name to follow

_POSITION_STATE: Final = ("quantity", "cost", "avg_price", "realized_pnl", "fees", "ts_last")

_UPSERT_POSITION_SQL: Final = (
    " ON CONFLICT (portfolio_id, symbol) DO UPDATE SET "  # nosec B608
    + ", ".join(f"{c} = excluded.{c}" for c in _POSITION_STATE))


class SqliteText:
    """SQLite's hot path: plain SQL text per (kind, key set), parameters as tuples.

    SQLAlchemy's per-row bind processing costs about 9 µs a row here; the driver's
    ``executemany`` with tuples a fraction of that. The values are converted once, by type:
    ``Decimal`` to its exact text (what :class:`~lts.persistence.types.Money` stores on SQLite),
    ``dict``/``list`` to JSON (what the ``JSON`` columns store). The statements are the same as
    the Core ones that PostgreSQL runs.
    """

    _TABLES: Final = ("orders", "orders", "fills", "positions", "order_events", "audit_logs",
                      "portfolios")

    def __init__(self) -> None:
        self._sql: dict[tuple[int, tuple[str, ...]], str] = {}

    def sql(self, kind: int, keys: tuple[str, ...]) -> str:
        cached = self._sql.get((kind, keys))
        if cached is not None:
            return cached
        table = self._TABLES[kind]
        columns = metadata.tables[table].c
        unknown = [k for k in keys if k not in columns and k not in ("b_coid", "b_id")]
        if unknown:  # names come from LTS's own rows; still, only real columns reach the SQL
            raise ValueError(f"unknown {table} column(s): {unknown}")
        if kind in (ORDER_UPDATE, PORTFOLIO_UPDATE):
            where = keys[-1]
            sets = ", ".join(f"{k} = ?" for k in keys[:-1])
            column = "client_order_id" if kind == ORDER_UPDATE else "id"
            assert where in ("b_coid", "b_id")
            text = f"UPDATE {table} SET {sets} WHERE {column} = ?"  # noqa: S608 # nosec B608
        else:
            text = (f"INSERT INTO {table} ({', '.join(keys)}) "  # noqa: S608 # nosec B608
                    f"VALUES ({', '.join('?' * len(keys))})")
            if kind == FILL:
                text += " ON CONFLICT (broker, trade_id) DO NOTHING"
            elif kind == POSITION:
                text += _UPSERT_POSITION_SQL
        self._sql[(kind, keys)] = text
        return text

    @staticmethod
    def params(rows: Sequence[Row], keys: tuple[str, ...]) -> list[tuple[Any, ...]]:
        """Parameter tuples, taken in C; ``Decimal`` and JSON values are converted by the
        ``sqlite3`` adapters that :mod:`lts.persistence.sqlite_writer` registers."""
        take = itemgetter(*keys)
        if len(keys) == 1:
            return [(take(row),) for row in rows]
        return [take(row) for row in rows]

    def statements(self, records: Sequence[Record]) -> list[Statement]:
        return [(self.sql(kind, keys), self.params(rows, keys))
                for kind, groups in enumerate(plan(records)) for keys, rows in groups.items()]


class SqliteCommitPath:
    """One transaction per batch: on the writer thread (a database file; ``inline``: on the
    loop's thread, for backtests), or on the engine's connection (an in-memory database)."""

    def __init__(self, engine: AsyncEngine, *, inline: bool) -> None:
        self._engine = engine
        self._inline = inline
        self._text = SqliteText()
        self._writer: SqliteBatchWriter | None = None
        self._connection: AsyncConnection | None = None

    async def open(self) -> None:
        """Start the writer thread when the database is a file, at the synchronous level the
        engine's connections use."""
        url = self._engine.url
        if not url.database or url.database == ":memory:":
            return
        async with self._engine.connect() as conn:
            level = (await conn.exec_driver_sql("PRAGMA synchronous")).scalar_one()
        self._writer = SqliteBatchWriter(url.database, int(level), inline=self._inline)

    async def commit(self, records: Sequence[Record],
                     check: FenceCheck | None) -> Fencing | None:
        """Write ``records`` in one transaction; with ``check``, what the fence check decided
        under the write lock (the records it left out are not written)."""
        text = self._text
        if check is None:  # the statements are built here, on the loop
            statements = text.statements(records)
            await self._run(lambda _stored: statements, ())
            return None
        decided: list[Fencing | None] = [None]

        def build(stored: Mapping[int, int]) -> list[Statement]:
            """In the transaction, once the tokens of the fenced portfolios are read."""
            fencing = decided[0] = check.decide(records, stored)
            return text.statements(records if fencing is None else fencing.kept(records))

        await self._run(build, check.ids)
        return decided[0]

    async def settle(self) -> None:
        """Nothing to settle: SQLite reports a failed ``COMMIT`` as rolled back."""

    async def _run(self, build: Build, fenced: Sequence[int]) -> None:
        """One SQLite transaction: on the writer thread, or (an in-memory database) on the
        engine's connection."""
        if self._writer is not None:
            await self._writer.write(build, fenced)
            return
        connection = await self._get_connection()
        async with connection.begin():
            stored: dict[int, int] = {}
            if fenced:
                result = await connection.exec_driver_sql(lease_tokens_sql(len(fenced)),
                                                          tuple(fenced))
                stored = {int(row[0]): int(row[1]) for row in map(tuple, result)}
            for sql, params in build(stored):
                await connection.exec_driver_sql(sql, params)

    async def _get_connection(self) -> AsyncConnection:
        if self._connection is None:
            self._connection = await self._engine.connect()
        return self._connection

    async def discard(self, *, invalidate: bool) -> None:
        """Close the connection; ``invalidate``: the database failed, so the writer thread
        drops its own."""
        connection, self._connection = self._connection, None
        if invalidate and self._writer is not None:
            await self._writer.reset()
        if connection is None:
            return
        try:
            await connection.close()
        except Exception as exc:
            log.debug("journal: closing the connection failed (%s)", describe_error(exc))

    async def close(self) -> None:
        """The journal has stopped: close the connection and the writer thread."""
        await self.discard(invalidate=False)
        if self._writer is not None:
            await self._writer.close()
