"""The journal writer: group commit of order, fill, position, event and audit writes.

This is the durability step of the order flow (architecture §3 and §5): the order manager,
the ledger and the API enqueue rows here and await the returned future; the future resolves once
the row is committed. One writer task (:meth:`Journal.run`) takes everything queued (up to
``max_batch`` records), writes it in ONE transaction with one SQLAlchemy Core ``executemany`` per
kind of write, commits and resolves the futures, so durability costs one commit per batch, not
per row.

Within a batch the kinds run in a fixed order: order inserts, order updates, fills with their
positions, order event inserts, audit inserts, portfolio updates; order updates keep the last
state per order (each update carries the order's whole mutable state). Producers must therefore
not enqueue an update or a fill before the insert of its order.

Positions differ by store. SQLite has one writer (the engine's): a fill carries its ledger's new
position state and the last state per ``(portfolio_id, symbol)`` of the batch is upserted. On
PostgreSQL several engines may fill one position, so the position is recomputed from its locked
row and the fills the batch really inserted (:mod:`lts.persistence.pg_fills`); the state a fill
carries is not used there. A batch that hits a serialization failure or a deadlock (SQLSTATE
40001, 40P01) is rolled back and retried whole, a few times with a short backoff.

A batch that fails on a bad record (a constraint violation, a bad value) is split in halves and
retried until the bad records stand alone, so only their futures fail; a batch that fails for
another reason (the database is unavailable) fails all its futures. Every future is resolved:
nobody awaiting is left hanging.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from operator import itemgetter
from typing import Any, Final

import anyio
import anyio.abc
from sqlalchemy import bindparam, update
from sqlalchemy.exc import (
    ArgumentError,
    CompileError,
    DataError,
    DBAPIError,
    IntegrityError,
    InterfaceError,
    ProgrammingError,
    StatementError,
)
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.sql.base import Executable

from lts.persistence.pg_bulk import BulkInsert
from lts.persistence.pg_fills import PgFillWriter
from lts.persistence.sqlite_writer import SqliteBatchWriter, Statement
from lts.persistence.tables import audit_logs, metadata, order_events, orders, portfolios

log = logging.getLogger(__name__)

Row = Mapping[str, Any]

# Kinds of record, in the order a batch writes them.
_ORDER_INSERT: Final = 0
_ORDER_UPDATE: Final = 1
_FILL: Final = 2  # the fill insert, then its position (kind 3)
_POSITION: Final = 3  # SQLite: the fill's position state upserted; PostgreSQL: see pg_fills
_ORDER_EVENT: Final = 4
_AUDIT: Final = 5
_PORTFOLIO_UPDATE: Final = 6
_KINDS: Final = 7
_KIND_NAMES: Final = ("order insert", "order update", "fill", "position upsert", "order event",
                      "audit", "portfolio update")

_POSITION_STATE: Final = ("quantity", "cost", "avg_price", "realized_pnl", "fees", "ts_last")

# A record: (kind, row, position row of a fill or None, future).
_Record = tuple[int, Row, Row | None, asyncio.Future[None]]

# Errors caused by the records themselves: splitting the batch isolates the bad ones.
_RECORD_ERRORS: Final = (
    IntegrityError, InterfaceError, DataError, ProgrammingError, CompileError, ArgumentError,
    KeyError, TypeError, ValueError, ArithmeticError,
)

# PostgreSQL's serialization failure and deadlock: the whole batch is tried again.
_RETRY_SQLSTATES: Final = frozenset({"40001", "40P01"})
_RETRIES: Final = 6  # after the first attempt
_BACKOFF_S: Final = 0.005  # doubled per retry, capped, with jitter
_BACKOFF_CAP_S: Final = 0.1


class JournalClosedError(RuntimeError):
    """A write was enqueued after the journal's writer task has stopped."""


def _is_record_error(exc: BaseException) -> bool:
    if isinstance(exc, _RECORD_ERRORS):
        return True
    # A bind value the type could not process (raised before the database saw it).
    return isinstance(exc, StatementError) and not isinstance(exc, DBAPIError)


def _is_transient(exc: BaseException) -> bool:
    """A serialization failure or deadlock: the transaction may simply be tried again."""
    return isinstance(exc, DBAPIError) and \
        getattr(exc.orig, "sqlstate", None) in _RETRY_SQLSTATES


def _backoff(retry: int) -> float:
    jitter = 0.5 + random.random()  # noqa: S311 - spreads retries, no secret
    return float(min(_BACKOFF_CAP_S, _BACKOFF_S * 2.0 ** retry) * jitter)


class _PgStatements:
    """PostgreSQL's statements, built once: bulk inserts (:mod:`lts.persistence.pg_bulk`),
    Core updates (SQLAlchemy's compiled cache serves them) and the fill step."""

    def __init__(self) -> None:
        self.fills = PgFillWriter()
        self.inserts: dict[int, BulkInsert] = {
            _ORDER_INSERT: BulkInsert(orders),
            _ORDER_EVENT: BulkInsert(order_events),
            _AUDIT: BulkInsert(audit_logs),
        }
        self.updates: dict[int, Executable] = {
            _ORDER_UPDATE: update(orders).where(orders.c.client_order_id == bindparam("b_coid")),
            _PORTFOLIO_UPDATE: update(portfolios).where(portfolios.c.id == bindparam("b_id")),
        }


_UPSERT_POSITION_SQL: Final = (
    " ON CONFLICT (portfolio_id, symbol) DO UPDATE SET "  # nosec B608
    + ", ".join(f"{c} = excluded.{c}" for c in _POSITION_STATE))


class _SqliteText:
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
        if kind in (_ORDER_UPDATE, _PORTFOLIO_UPDATE):
            where = keys[-1]
            sets = ", ".join(f"{k} = ?" for k in keys[:-1])
            column = "client_order_id" if kind == _ORDER_UPDATE else "id"
            assert where in ("b_coid", "b_id")
            text = f"UPDATE {table} SET {sets} WHERE {column} = ?"  # noqa: S608 # nosec B608
        else:
            text = (f"INSERT INTO {table} ({', '.join(keys)}) "  # noqa: S608 # nosec B608
                    f"VALUES ({', '.join('?' * len(keys))})")
            if kind == _FILL:
                text += " ON CONFLICT (broker, trade_id) DO NOTHING"
            elif kind == _POSITION:
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


def _group(groups: dict[tuple[str, ...], list[Row]], row: Row) -> None:
    """Add ``row`` to the executemany group of its key set (one executemany needs one)."""
    key = tuple(row)
    rows = groups.get(key)
    if rows is None:
        groups[key] = [row]
    else:
        rows.append(row)


def _rebind(row: Row, key: str, bind_name: str) -> dict[str, Any]:
    """An update's parameters: the WHERE key renamed (a column name is taken by SET)."""
    params = dict(row)
    params[bind_name] = params.pop(key)
    return params


def _plan(records: Sequence[_Record]) -> list[dict[tuple[str, ...], list[Row]]]:
    """Sort a batch into one executemany group per (kind, key set), positions deduplicated."""
    plan: list[dict[tuple[str, ...], list[Row]]] = [{} for _ in range(_KINDS)]
    last_position: dict[tuple[Any, Any], Row] = {}
    last_update: dict[Any, Row] = {}
    for kind, row, position, _ in records:
        if kind == _ORDER_UPDATE:
            # Every update carries the order's whole mutable state: the last one per order wins.
            last_update[row["client_order_id"]] = row
        elif kind == _PORTFOLIO_UPDATE:
            _group(plan[kind], _rebind(row, "id", "b_id"))
        else:
            _group(plan[kind], row)
            if position is not None:
                last_position[(position["portfolio_id"], position["symbol"])] = position
    for row in last_update.values():
        _group(plan[_ORDER_UPDATE], _rebind(row, "client_order_id", "b_coid"))
    for position in last_position.values():
        _group(plan[_POSITION], position)
    return plan


class Journal:
    """The group-commit journal writer (one per process, one writer task)."""

    def __init__(self, engine: AsyncEngine, *, max_batch: int = 10_000,
                 high_water: int = 50_000, inline_writes: bool = False) -> None:
        if max_batch < 1 or high_water < 1:
            raise ValueError("max_batch and high_water must be positive")
        dialect = engine.dialect.name
        if dialect not in ("sqlite", "postgresql"):
            raise ValueError(f"the journal supports sqlite and postgresql, not {dialect!r}")
        self._engine = engine
        self._sqlite_text = _SqliteText() if dialect == "sqlite" else None
        self._pg_statements = _PgStatements() if dialect == "postgresql" else None
        self._sqlite: SqliteBatchWriter | None = None
        self._inline_writes = inline_writes  # SQLite: commit on the loop's thread (backtests)
        self._max_batch = max_batch
        self._high_water = high_water
        self._queue: deque[_Record] = deque()
        self._wakeup = asyncio.Event()
        self._progress = asyncio.Event()  # set after every batch; wakes flush / back-pressure
        self._enqueued = 0  # records ever enqueued
        self._resolved = 0  # records ever resolved (committed or failed), in FIFO order
        self._closed = False
        self._running = False
        self._connection: AsyncConnection | None = None
        # Counters for metrics.
        self.commits = 0
        self.records_written = 0
        self.records_failed = 0
        self.retries = 0  # batches tried again after a serialization failure or deadlock
        self.last_batch_size = 0
        self.last_commit_latency = 0.0  # seconds: BEGIN to COMMIT of the last batch
        self.on_commit: Callable[[float, int], None] | None = None  # (seconds, records)
        # TEMPORARY (until the journal's fencing lands): the interface only
        self.available = True
        self.unavailable_reason: str | None = None
        self.on_lease_lost: Callable[[int], None] | None = None
        self._fences: dict[int, int] = {}

    def fence(self, portfolio_id: int, token: int) -> None:
        self._fences[portfolio_id] = token

    def unfence(self, portfolio_id: int) -> None:
        self._fences.pop(portfolio_id, None)

    # -- producers -----------------------------------------------------------------------------

    def _enqueue(self, kind: int, row: Row, position: Row | None = None) -> asyncio.Future[None]:
        if self._closed:
            raise JournalClosedError("the journal writer has stopped")
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.append((kind, row, position, future))
        self._enqueued += 1
        self._wakeup.set()
        return future

    def insert_order(self, row: Row, *, fence: int | None = None) -> asyncio.Future[None]:
        """Insert an ``orders`` row (every column except ``id``)."""
        return self._enqueue(_ORDER_INSERT, row)

    def update_order(self, row: Row, *, fence: int | None = None) -> asyncio.Future[None]:
        """Update the order ``row["client_order_id"]`` to the state in ``row``: every update
        carries the whole mutable state, so within a batch the last one per order wins."""
        return self._enqueue(_ORDER_UPDATE, row)

    def insert_fill(self, fill_row: Row, position_row: Row, *,
                    fence: int | None = None) -> asyncio.Future[None]:
        """Insert a fill (a duplicate ``(broker, trade_id)`` is ignored) and change its position
        in the same transaction: on SQLite to the state ``position_row`` (every column of
        ``positions`` but ``id``), on PostgreSQL by applying the fill to the locked row."""
        return self._enqueue(_FILL, fill_row, position_row)

    def insert_order_event(self, row: Row, *, fence: int | None = None) -> asyncio.Future[None]:
        """Insert an ``order_events`` row."""
        return self._enqueue(_ORDER_EVENT, row)

    def insert_audit(self, row: Row, *, fence: int | None = None) -> asyncio.Future[None]:
        """Insert an ``audit_logs`` row."""
        return self._enqueue(_AUDIT, row)

    def update_portfolio(self, row: Row, *, fence: int | None = None) -> asyncio.Future[None]:
        """Update the portfolio ``row["id"]`` (``status``, ``last_error``, ``trading_state``)."""
        return self._enqueue(_PORTFOLIO_UPDATE, row)

    @property
    def backlog(self) -> int:
        """Records enqueued and not yet resolved (queued plus the batch being written)."""
        return self._enqueued - self._resolved

    async def wait_below_high_water(self) -> None:
        """Wait (never drop) while the backlog is at or above ``high_water``."""
        while self.backlog >= self._high_water:
            self._progress.clear()
            await self._progress.wait()

    async def flush(self) -> None:
        """Return when every record enqueued before the call is resolved (committed or failed)."""
        target = self._enqueued
        while self._resolved < target:
            self._progress.clear()
            await self._progress.wait()

    # -- the writer ----------------------------------------------------------------------------

    async def run(self, *,
                  task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """The writer task. On cancellation it commits what is still queued, then exits.

        Writes enqueued while it drains are still taken; after it has exited, enqueueing raises
        :class:`JournalClosedError`.
        """
        if self._running or self._closed:
            raise RuntimeError("the journal writer runs once")
        self._running = True
        try:
            self._sqlite = await self._sqlite_writer()
            task_status.started()
            while True:
                if not self._queue:
                    self._wakeup.clear()
                    await self._wakeup.wait()
                # A batch is a critical section: once taken, it is written and resolved.
                with anyio.CancelScope(shield=True):
                    await self._write_next_batch()
        finally:
            with anyio.CancelScope(shield=True):
                while self._queue:
                    await self._write_next_batch()
                self._closed = True
                await self._close_connection()
                if self._sqlite is not None:
                    await self._sqlite.close()

    async def _write_next_batch(self) -> None:
        queue = self._queue
        if len(queue) <= self._max_batch:
            batch: list[_Record] = list(queue)
            queue.clear()
        else:
            batch = [queue.popleft() for _ in range(self._max_batch)]
        try:
            await self._write(batch)
        except BaseException:
            self._fail(batch, JournalClosedError("the journal writer stopped mid-batch"))
            raise
        finally:
            self._resolved += len(batch)
            self._progress.set()

    async def _write(self, records: Sequence[_Record]) -> None:
        """Commit ``records`` and resolve their futures, isolating bad records by bisection."""
        try:
            await self._commit(records)
        except Exception as exc:
            if len(records) > 1 and _is_record_error(exc):
                middle = len(records) // 2
                await self._write(records[:middle])
                await self._write(records[middle:])
                return
            self._fail(records, exc)
            if not _is_record_error(exc):
                await self._close_connection()
            return
        self.records_written += len(records)
        for record in records:
            future = record[3]
            if not future.done():
                future.set_result(None)

    async def _sqlite_writer(self) -> SqliteBatchWriter | None:
        """A dedicated-thread writer when the database is a SQLite file, at the synchronous
        level the engine's connections use."""
        url = self._engine.url
        if self._sqlite_text is None or not url.database or url.database == ":memory:":
            return None
        async with self._engine.connect() as conn:
            level = (await conn.exec_driver_sql("PRAGMA synchronous")).scalar_one()
        return SqliteBatchWriter(url.database, int(level), inline=self._inline_writes)

    async def _commit(self, records: Sequence[_Record]) -> None:
        started = time.perf_counter()
        if self._sqlite_text is not None:
            await self._commit_sqlite(self._sqlite_text, records)
        else:
            await self._commit_postgresql(records)
        self.commits += 1
        self.last_batch_size = len(records)
        self.last_commit_latency = time.perf_counter() - started
        if self.on_commit is not None:
            self.on_commit(self.last_commit_latency, len(records))

    async def _commit_sqlite(self, text: _SqliteText, records: Sequence[_Record]) -> None:
        batch: list[Statement] = [
            (text.sql(kind, keys), text.params(rows, keys))
            for kind, groups in enumerate(_plan(records)) for keys, rows in groups.items()]
        if self._sqlite is not None:
            await self._sqlite.write(batch)
            return
        connection = await self._get_connection()  # an in-memory database: no writer thread
        async with connection.begin():
            for sql, params in batch:
                await connection.exec_driver_sql(sql, params)

    async def _commit_postgresql(self, records: Sequence[_Record]) -> None:
        statements = self._pg_statements
        assert statements is not None
        plan = _plan(records)
        fill_rows = [row for kind, row, _, _ in records if kind == _FILL]
        connection = await self._get_connection()
        for attempt in range(_RETRIES + 1):
            try:
                async with connection.begin():
                    for kind, groups in enumerate(plan):
                        if kind == _FILL:
                            await statements.fills.write(connection, fill_rows)
                        elif kind in statements.inserts:
                            await statements.inserts[kind].execute(
                                connection, [row for rows in groups.values() for row in rows])
                        elif kind in statements.updates:
                            for rows in groups.values():
                                await connection.execute(statements.updates[kind], rows)
                return
            except DBAPIError as exc:
                if attempt == _RETRIES or not _is_transient(exc):
                    raise
                self.retries += 1
                log.warning("journal: batch of %d records tried again (%s)", len(records),
                            getattr(exc.orig, "sqlstate", "?"))
                await asyncio.sleep(_backoff(attempt))

    def _fail(self, records: Sequence[_Record], exc: Exception) -> None:
        records = [record for record in records if not record[3].done()]
        if not records:
            return
        self.records_failed += len(records)
        if len(records) == 1:
            kind, row, position, _ = records[0]
            log.error("journal: %s failed: %s; row=%r position=%r",
                      _KIND_NAMES[kind], exc, dict(row),
                      None if position is None else dict(position))
        else:
            log.error("journal: batch of %d records failed: %s", len(records), exc)
        for record in records:
            future = record[3]
            if not future.done():
                future.set_exception(exc)

    async def _get_connection(self) -> AsyncConnection:
        if self._connection is None:
            connection = await self._engine.connect()
            if self._pg_statements is not None:  # the row locks assume READ COMMITTED
                await connection.execution_options(isolation_level="READ COMMITTED")
            self._connection = connection
        return self._connection

    async def _close_connection(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            try:
                await connection.close()
            except Exception:
                log.exception("journal: closing the connection failed")
