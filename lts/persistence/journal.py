"""The journal writer: group commit of order, fill, position, event and audit writes.

Where it sits: this is the durability step of the order flow (architecture §3 and §5): the order
manager, the ledger and the API enqueue rows here; each producer method returns a future that
resolves once the row is committed. One writer task (:meth:`Journal.run`) takes what is queued
(up to ``max_batch`` records) from the head of the queue, writes it in ONE transaction with one
``executemany`` per kind of write, commits and resolves the futures, so durability costs one
commit per batch, not per row.

**Order and callbacks.** Futures are resolved in FIFO order (the order of enqueueing), each right
after the transaction that wrote its record has committed (a failed record: in its place in that
order) — never before, whatever fails or is retried. A producer may therefore attach
``add_done_callback`` to publish an event only once its record is durable: the callbacks run in
commit order. A future that fails is marked retrieved: a write nobody awaits (fire and forget)
logs no "Future exception was never retrieved"; the journal logs every failure itself. A waiter
that cancels its future does not take its record back.

**Within a batch** the kinds run in a fixed order: order inserts, order updates, fills with their
positions, order event inserts, audit inserts, portfolio updates; order updates keep the last
state per order (each update carries the order's whole mutable state). Producers must therefore
not enqueue an update or a fill before the insert of its order.

**Positions** differ by store. SQLite has one writer (the engine's): a fill carries its ledger's
new position state and the last state per ``(portfolio_id, symbol)`` of the batch is upserted.
On PostgreSQL several engines may fill one position, so the position is recomputed from its
locked row and the fills the batch really inserted (:mod:`lts.persistence.pg_fills`); the state
a fill carries is not used there. A batch that hits a serialization failure or a deadlock
(SQLSTATE 40001, 40P01) is rolled back and retried whole, a few times with a short backoff.

**A bad record** — one the database refuses (``IntegrityError``; ``DataError`` or SQLSTATE class
22, e.g. a numeric overflow), a value the driver or a column type could not bind before the
database saw it, a ``KeyError``/``TypeError``/``ValueError``/``ArithmeticError`` building the
rows — fails the batch; the batch is split in halves and retried until the bad records stand
alone, so only their futures fail, with that error.

**Unavailable: hold and retry, never fail.** Any other error means the database cannot write
now: unreachable, connection lost (decided by SQLAlchemy's disconnect detection,
``connection_invalidated``, not by the exception's class: asyncpg reports a lost connection as
an ``InterfaceError``), shutting down, disk full, ``database is locked``, a timeout, serialization
failures beyond the retries. Then nothing fails: the unresolved records stay at the head of the
queue, in order, and the batch is tried again — on a new connection, the failed one is discarded
— after a backoff of 10 ms doubled per attempt, capped at 0.5 s (jittered below), until it
commits; producers keep enqueueing meanwhile (:meth:`Journal.wait_below_high_water` still bounds
the backlog). A record that keeps failing with such an error keeps the journal unavailable: it is
never dropped. :attr:`Journal.available` is False while it holds, :attr:`Journal.unavailable_since`
says since when (``time.monotonic()``) and :meth:`Journal.wait_available` waits for the end. One
WARNING is logged when it starts, one INFO when it ends (each attempt at DEBUG).
:attr:`Journal.unavailable_reason` (and :func:`unavailable_reason`, the classification) says why
in one short line built from exception classes and codes, never from a message, a statement or a
URL: ``database unreachable: <OSError class>`` (e.g. ``ConnectionRefusedError``),
``connection lost: <driver exception class>`` (a connection SQLAlchemy invalidated),
``database timeout``, ``disk full`` (SQLITE_FULL, SQLSTATE 53100, ENOSPC), ``database is
locked``, ``disk I/O error``, ``database is read-only``, ``cannot open the database file``,
``database starting up or shutting down`` (57P03), ``too many connections``, ``serialization
failures``, ``deadlocks``, ``commit outcome unknown`` (see below) and the like; otherwise
``database error: SQLSTATE <code>`` or ``database error: <class or SQLite result name>``.

On PostgreSQL a connection lost during ``COMMIT`` leaves the outcome unknown. So a transaction
reads its id (``txid_current()``) without a round trip of its own: a fenced one with the lease
tokens, another in its first order, order event or audit insert (rows that a second write would
duplicate or refuse; fills and updates, written again, change nothing). After such a loss, before
anything else is written, the journal asks the server (``txid_status``) whether it committed; if
it did, its records are resolved as written, so a retry never writes a record twice. (SQLite
reports a failed ``COMMIT`` as rolled back.)

**Fencing.** An engine trading a portfolio under a lease registers the lease's token with
:meth:`Journal.fence`; records enqueued with ``fence=portfolio_id`` are written only if the
token is still the portfolio's ``lease_token`` in the database. Once per batch, inside the
batch's transaction, the tokens of its fenced portfolios are read — on PostgreSQL ``SELECT ...
FOR SHARE``, so an engine taking a lease over waits for the batch to commit; on SQLite inside
the writer's ``BEGIN IMMEDIATE`` transaction, which holds the write lock. A fenced record is left
out, and its future fails with :class:`lts.errors.LeaseLost`, when the stored token differs from
the one registered when it was enqueued, when the portfolio was not fenced then, or when it has
been unfenced (or fenced with another token) since; the rest of the batch commits. A lease
found taken over calls :attr:`Journal.on_lease_lost` once with the portfolio id (after the
commit, before the futures resolve) and unfences the portfolio. Fence every record of a
portfolio alike: an unfenced fill of a left-out order would fail on its foreign key.

**Stopping.** Cancelling :meth:`Journal.run` commits what is still queued, records enqueued
meanwhile included. If the database is unavailable then, it keeps trying for ``stop_timeout``
seconds, then fails what is left with :class:`lts.errors.JournalUnavailable`: nobody awaiting is
left hanging. After it has exited, enqueueing raises :class:`JournalClosedError`.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import random
import sqlite3
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from itertools import islice
from operator import itemgetter
from typing import Any, Final

import anyio
import anyio.abc
from sqlalchemy import bindparam, update
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError, StatementError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncTransaction
from sqlalchemy.sql.base import Executable

from lts.errors import JournalUnavailable, LeaseLost
from lts.persistence.pg_bulk import BulkInsert
from lts.persistence.pg_fills import PgFillWriter
from lts.persistence.sqlite_writer import (
    Build,
    SqliteBatchWriter,
    Statement,
    lease_tokens_sql,
)
from lts.persistence.tables import audit_logs, metadata, order_events, orders, portfolios

__all__ = ["Journal", "JournalClosedError", "Row", "unavailable_reason"]

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

# A record's fence: (portfolio id, the token fenced when it was enqueued; None: not fenced then).
_Guard = tuple[int, int | None]
# A record: (kind, row, position row of a fill or None, future, guard or None).
_Record = tuple[int, Row, Row | None, asyncio.Future[None], _Guard | None]

# PostgreSQL's serialization failure and deadlock: the whole batch is tried again at once.
_RETRY_SQLSTATES: Final = frozenset({"40001", "40P01"})
_RETRIES: Final = 6  # after the first attempt
_BACKOFF_S: Final = 0.005  # doubled per retry, capped, with jitter
_BACKOFF_CAP_S: Final = 0.1

# The database cannot write: the head of the queue is tried again, this often.
_HOLD_S: Final = 0.01  # doubled per attempt, capped, with jitter below the cap
_HOLD_CAP_S: Final = 0.5


class JournalClosedError(JournalUnavailable):
    """A write was enqueued after the journal's writer task has stopped."""


# -- what an error means ---------------------------------------------------------------------

# Python errors building or binding a record's values.
_ROW_ERRORS: Final = (KeyError, TypeError, ValueError, ArithmeticError)
# SQLSTATE classes of a record the database refuses: data exception, integrity violation.
_RECORD_SQLSTATE_CLASSES: Final = frozenset({"22", "23"})

_PG_REASONS: Final = {
    "53100": "disk full", "53200": "database out of memory", "53300": "too many connections",
    "57P01": "database shutting down", "57P02": "database crashed",
    "57P03": "database starting up or shutting down", "57014": "statement cancelled",
    "25006": "database is read-only", "40001": "serialization failures",
    "40P01": "deadlocks",
}
_PG_CLASS_REASONS: Final = {"08": "connection lost", "53": "database out of resources",
                            "58": "database system error", "XX": "database internal error"}
_SQLITE_REASONS: Final = {  # by primary result code
    3: "access denied", 5: "database is locked", 6: "database is locked", 7: "out of memory",
    8: "database is read-only", 10: "disk I/O error", 11: "database file corrupt",
    13: "disk full", 14: "cannot open the database file", 26: "not a database file",
}


def _sqlstate(exc: DBAPIError) -> str | None:
    code = getattr(exc.orig, "sqlstate", None)
    return code if isinstance(code, str) else None


def _driver_error(exc: DBAPIError) -> BaseException:
    """The driver's own exception (asyncpg's, under SQLAlchemy's adapter), else ``orig``."""
    orig = exc.orig
    cause = orig.__cause__ if orig is not None else None
    return cause if cause is not None else orig if orig is not None else exc


def _is_sqlite_binding_error(error: BaseException | None) -> bool:
    """``sqlite3`` refused a value before SQLite saw it (no SQLite result code)."""
    return isinstance(error, (sqlite3.ProgrammingError, sqlite3.InterfaceError)) \
        and getattr(error, "sqlite_errorcode", None) is None and "binding" in str(error)


def _is_record_error(exc: BaseException) -> bool:
    """Caused by the records themselves (see the module docstring); anything else means the
    database cannot write now."""
    if isinstance(exc, DBAPIError):
        if exc.connection_invalidated:
            return False
        if isinstance(exc, IntegrityError | DataError):
            return True
        code = _sqlstate(exc)
        if code is not None:
            return code[:2] in _RECORD_SQLSTATE_CLASSES
        return _is_sqlite_binding_error(exc.orig)
    if isinstance(exc, StatementError):  # raised binding a value, before the database saw it
        return exc.orig is not None and _is_record_error(exc.orig)
    return isinstance(exc, _ROW_ERRORS)


def _sqlite_reason(error: sqlite3.Error) -> str:
    code = getattr(error, "sqlite_errorcode", None)
    if isinstance(code, int):
        name = getattr(error, "sqlite_errorname", None) or str(code)
        return _SQLITE_REASONS.get(code & 0xFF, f"database error: {name}")
    return f"database error: {type(error).__name__}"


def _describe(exc: BaseException) -> str:
    """One short line for an error that keeps the database from writing: built from classes
    and codes only, never from a message (it could hold a URL or a value)."""
    if isinstance(exc, JournalUnavailable):
        return str(exc)  # the journal's own words
    if isinstance(exc, sqlite3.Error):
        return _sqlite_reason(exc)
    if isinstance(exc, DBAPIError):
        if isinstance(exc.orig, sqlite3.Error):
            return _sqlite_reason(exc.orig)
        if exc.connection_invalidated:
            return f"connection lost: {type(_driver_error(exc)).__name__}"
        code = _sqlstate(exc)
        known = _PG_REASONS.get(code or "") or _PG_CLASS_REASONS.get((code or "")[:2])
        if known is not None:
            return known
        what = f"SQLSTATE {code}" if code else type(_driver_error(exc)).__name__
        return f"database error: {what}"
    if isinstance(exc, StatementError) and exc.orig is not None:
        return _describe(exc.orig)
    if isinstance(exc, TimeoutError):
        return "database timeout"
    if isinstance(exc, OSError):
        if exc.errno == errno.ENOSPC:
            return "disk full"
        return f"database unreachable: {type(exc).__name__}"
    return f"database error: {type(exc).__name__}"


def unavailable_reason(exc: BaseException) -> str | None:
    """Why ``exc`` keeps the database from writing, in one short sanitized line; None when it
    is caused by the records themselves (the journal fails those records alone)."""
    return None if _is_record_error(exc) else _describe(exc)


def _is_transient(exc: BaseException) -> bool:
    """A serialization failure or deadlock: the transaction may simply be tried again."""
    return isinstance(exc, DBAPIError) and _sqlstate(exc) in _RETRY_SQLSTATES


def _backoff(retry: int) -> float:
    jitter = 0.5 + random.random()  # noqa: S311 - spreads retries, no secret
    return float(min(_BACKOFF_CAP_S, _BACKOFF_S * 2.0 ** retry) * jitter)


def _hold_delay(attempt: int) -> float:
    jitter = 0.5 + random.random() / 2  # noqa: S311 - spreads retries, no secret
    return float(min(_HOLD_CAP_S, _HOLD_S * 2.0 ** min(attempt, 16)) * jitter)


def _set_exception(future: asyncio.Future[None], exc: BaseException) -> None:
    """Fail ``future`` and mark its exception retrieved (the journal logs it; a write nobody
    awaits must not log "Future exception was never retrieved")."""
    if not future.done():
        future.set_exception(exc)
        future.exception()


# -- fencing ---------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class _Fencing:
    """What the fence check of one transaction decided."""

    lost: frozenset[int]  # indices of the records left out
    taken: dict[int, int | None]  # leases found taken over: portfolio id -> the stored token
    registered: dict[int, int | None]  # the tokens fenced when the transaction began

    def kept(self, records: Sequence[_Record]) -> list[_Record]:
        return [record for i, record in enumerate(records) if i not in self.lost]


class _FenceCheck:
    """The fenced portfolios of a batch and their tokens registered when it began."""

    __slots__ = ("ids", "registered")

    def __init__(self, registered: dict[int, int | None]) -> None:
        self.registered = registered
        self.ids = sorted(pid for pid, token in registered.items() if token is not None)

    @classmethod
    def of(cls, records: Sequence[_Record], fences: Mapping[int, int]) -> _FenceCheck | None:
        registered: dict[int, int | None] = {}
        for record in records:
            guard = record[4]
            if guard is not None and guard[0] not in registered:
                registered[guard[0]] = fences.get(guard[0])
        return cls(registered) if registered else None

    def decide(self, records: Sequence[_Record], stored: Mapping[int, int]) -> _Fencing | None:
        """Given the tokens ``stored`` (read in the transaction), which records are lost."""
        registered = self.registered
        lost = frozenset(
            i for i, record in enumerate(records) if (guard := record[4]) is not None
            and (guard[1] is None or registered[guard[0]] != guard[1]
                 or stored.get(guard[0]) != guard[1]))
        taken = {pid: stored.get(pid) for pid, token in registered.items()
                 if token is not None and stored.get(pid) != token}
        return _Fencing(lost, taken, registered) if lost or taken else None


@dataclass(frozen=True, slots=True)
class _InDoubt:
    """A PostgreSQL commit whose outcome is unknown (the connection was lost during it): the
    first ``count`` records of the queue, in transaction ``xid``."""

    xid: int
    count: int
    fencing: _Fencing | None


# -- statements ------------------------------------------------------------------------------

# A fenced PostgreSQL batch begins with this: its transaction id (to settle a commit whose outcome
# is unknown) and the lease tokens of its fenced portfolios, locked FOR SHARE until it commits.
# (An unfenced batch reads its id in its first order, event or audit insert: pg_bulk.)
_PG_OPEN: Final = (
    "SELECT txid_current(), (SELECT array_agg(ARRAY[id, lease_token]) FROM "
    "(SELECT id, lease_token FROM portfolios WHERE id = ANY($1::integer[]) ORDER BY id "
    "FOR SHARE) AS fenced)")
_PG_TXID_STATUS: Final = "SELECT txid_status($1)"


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

    @staticmethod
    async def open(connection: AsyncConnection,
                   fenced: Sequence[int]) -> tuple[int, dict[int, int]]:
        """A fenced batch's first statement: the transaction's id and the stored tokens of the
        portfolios ``fenced``, locked FOR SHARE (one round trip)."""
        result = await connection.exec_driver_sql(_PG_OPEN, (list(fenced),))
        row = tuple(result.one())  # (xid, [[id, token], ...] or None)
        return int(row[0]), {int(pid): int(token) for pid, token in row[1] or ()}

    async def write(self, connection: AsyncConnection, records: Sequence[_Record], *,
                    want_xid: bool) -> int | None:
        """Write ``records``; with ``want_xid``, the transaction's id, read by the first insert
        a second write would duplicate or refuse (None: the batch has none, it is idempotent)."""
        xid: int | None = None
        fill_rows = [row for kind, row, _, _, _ in records if kind == _FILL]
        for kind, groups in enumerate(_plan(records)):
            if kind == _FILL:
                await self.fills.write(connection, fill_rows)
            elif kind in self.inserts and groups:
                rows = [row for rows in groups.values() for row in rows]
                if want_xid and xid is None:
                    xid = await self.inserts[kind].execute_with_xid(connection, rows)
                else:
                    await self.inserts[kind].execute(connection, rows)
            elif kind in self.updates:
                for rows in groups.values():
                    await connection.execute(self.updates[kind], rows)
        return xid


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

    def statements(self, records: Sequence[_Record]) -> list[Statement]:
        return [(self.sql(kind, keys), self.params(rows, keys))
                for kind, groups in enumerate(_plan(records)) for keys, rows in groups.items()]


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
    for kind, row, position, _, _ in records:
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


async def _rollback(transaction: AsyncTransaction) -> None:
    try:
        await transaction.rollback()
    except Exception as exc:  # the connection is gone: it is discarded anyway
        log.debug("journal: rollback failed (%s)", _describe(exc))


# -- the journal -----------------------------------------------------------------------------

class Journal:
    """The group-commit journal writer (one per process, one writer task)."""

    def __init__(self, engine: AsyncEngine, *, max_batch: int = 10_000,
                 high_water: int = 50_000, inline_writes: bool = False,
                 stop_timeout: float = 10.0) -> None:
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
        self._stop_timeout = stop_timeout
        self._queue: deque[_Record] = deque()
        self._wakeup = asyncio.Event()
        self._progress = asyncio.Event()  # set after every batch; wakes flush / back-pressure
        self._enqueued = 0  # records ever enqueued
        self._resolved = 0  # records ever resolved (committed or failed), in FIFO order
        self._settled = 0  # records of the head batch resolved so far (a prefix of the queue)
        self._closed = False
        self._running = False
        self._connection: AsyncConnection | None = None
        self._in_doubt: _InDoubt | None = None
        self._fences: dict[int, int] = {}
        # Availability.
        self._available = True
        self._available_event = asyncio.Event()
        self._available_event.set()
        self._reason: str | None = None
        self._since: float | None = None
        self._attempts = 0  # failed attempts since the database last wrote
        # Counters for metrics.
        self.commits = 0
        self.records_written = 0
        self.records_failed = 0  # bad records (and records failed when stopping)
        self.records_lease_lost = 0  # fenced records left out: their lease is lost
        self.retries = 0  # batches tried again after a serialization failure or deadlock
        self.last_batch_size = 0
        self.last_commit_latency = 0.0  # seconds: BEGIN to COMMIT of the last batch
        self.on_commit: Callable[[float, int], None] | None = None  # (seconds, records)
        self.on_lease_lost: Callable[[int], None] | None = None  # (portfolio id), once a lease

    # -- producers -----------------------------------------------------------------------------

    def _enqueue(self, kind: int, row: Row, position: Row | None,
                 fence: int | None) -> asyncio.Future[None]:
        if self._closed:
            raise JournalClosedError("the journal writer has stopped")
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        guard = None if fence is None else (fence, self._fences.get(fence))
        self._queue.append((kind, row, position, future, guard))
        self._enqueued += 1
        self._wakeup.set()
        return future

    def insert_order(self, row: Row, *, fence: int | None = None) -> asyncio.Future[None]:
        """Insert an ``orders`` row (every column except ``id``).

        ``fence`` (every producer method has it): the portfolio whose lease guards the record
        (:meth:`fence`); None: not fenced."""
        return self._enqueue(_ORDER_INSERT, row, None, fence)

    def update_order(self, row: Row, *, fence: int | None = None) -> asyncio.Future[None]:
        """Update the order ``row["client_order_id"]`` to the state in ``row``: every update
        carries the whole mutable state, so within a batch the last one per order wins."""
        return self._enqueue(_ORDER_UPDATE, row, None, fence)

    def insert_fill(self, fill_row: Row, position_row: Row, *,
                    fence: int | None = None) -> asyncio.Future[None]:
        """Insert a fill (a duplicate ``(broker, trade_id)`` is ignored) and change its position
        in the same transaction: on SQLite to the state ``position_row`` (every column of
        ``positions`` but ``id``), on PostgreSQL by applying the fill to the locked row."""
        return self._enqueue(_FILL, fill_row, position_row, fence)

    def insert_order_event(self, row: Row, *, fence: int | None = None) -> asyncio.Future[None]:
        """Insert an ``order_events`` row."""
        return self._enqueue(_ORDER_EVENT, row, None, fence)

    def insert_audit(self, row: Row, *, fence: int | None = None) -> asyncio.Future[None]:
        """Insert an ``audit_logs`` row."""
        return self._enqueue(_AUDIT, row, None, fence)

    def update_portfolio(self, row: Row, *, fence: int | None = None) -> asyncio.Future[None]:
        """Update the portfolio ``row["id"]`` (``status``, ``last_error``, ``trading_state``)."""
        return self._enqueue(_PORTFOLIO_UPDATE, row, None, fence)

    # -- fencing -------------------------------------------------------------------------------

    def fence(self, portfolio_id: int, token: int) -> None:
        """Guard the records enqueued from now on with ``fence=portfolio_id`` by the lease
        ``token``: they are written only while it is the portfolio's stored ``lease_token``."""
        self._fences[portfolio_id] = token

    def unfence(self, portfolio_id: int) -> None:
        """Stop fencing ``portfolio_id``: its fenced records not yet written fail with
        :class:`~lts.errors.LeaseLost`, as do those enqueued with ``fence=portfolio_id`` later."""
        self._fences.pop(portfolio_id, None)

    # -- state ---------------------------------------------------------------------------------

    @property
    def backlog(self) -> int:
        """Records enqueued and not yet resolved (queued plus the batch being written)."""
        return self._enqueued - self._resolved

    @property
    def available(self) -> bool:
        """False while the database cannot write (the records are held and retried)."""
        return self._available

    @property
    def unavailable_reason(self) -> str | None:
        """Why the database cannot write, in one short line; None while it can."""
        return self._reason

    @property
    def unavailable_since(self) -> float | None:
        """Since when (``time.monotonic()``) the database cannot write; None while it can."""
        return self._since

    async def wait_available(self) -> None:
        """Return when the database writes (at once if it does)."""
        await self._available_event.wait()

    async def wait_below_high_water(self) -> None:
        """Wait (never drop) while the backlog is at or above ``high_water``."""
        while self.backlog >= self._high_water:
            self._progress.clear()
            await self._progress.wait()

    async def flush(self) -> None:
        """Return when every record enqueued before the call is resolved (committed or failed);
        while the database is unavailable, that is when it is back and they are written."""
        target = self._enqueued
        while self._resolved < target:
            self._progress.clear()
            await self._progress.wait()

    # -- the writer ----------------------------------------------------------------------------

    async def run(self, *,
                  task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """The writer task. On cancellation it commits what is still queued, then exits
        (see "Stopping" in the module docstring)."""
        if self._running or self._closed:
            raise RuntimeError("the journal writer runs once")
        self._running = True
        started = False
        try:
            self._sqlite = await self._sqlite_writer()
            task_status.started()
            started = True
            await self._serve()
        finally:
            with anyio.CancelScope(shield=True):
                try:
                    if started:
                        await self._drain()
                finally:
                    self._fail_queued(JournalClosedError("the journal writer stopped"))
                    self._closed = True
                    await self._discard_connection(invalidate=False)
                    if self._sqlite is not None:
                        await self._sqlite.close()

    async def _serve(self) -> None:
        while True:
            if not self._queue:
                self._wakeup.clear()
                await self._wakeup.wait()
            # A batch attempt is a critical section: once begun, it is finished.
            with anyio.CancelScope(shield=True):
                written = await self._write_head()
            if not written:
                await anyio.sleep(_hold_delay(self._attempts))  # a stop may interrupt this

    async def _drain(self) -> None:
        """Write what is queued; fail it with JournalUnavailable when the database stays
        unavailable ``stop_timeout`` seconds."""
        deadline = time.monotonic() + self._stop_timeout
        while self._queue:
            if await self._write_head():
                continue
            if time.monotonic() >= deadline:
                self._fail_queued(JournalUnavailable(
                    f"the journal stopped while the database was unavailable ({self._reason})"))
                return
            await anyio.sleep(_hold_delay(self._attempts))

    def _fail_queued(self, exc: Exception) -> None:
        """Fail everything still queued (the writer is stopping)."""
        if not self._queue:
            return
        log.error("journal: %d records failed: %s", len(self._queue), exc)
        for record in self._queue:
            _set_exception(record[3], exc)
        self.records_failed += len(self._queue)
        self._resolved += len(self._queue)
        self._queue.clear()
        self._progress.set()

    async def _write_head(self) -> bool:
        """Write the batch at the head of the queue and resolve it; False when the database
        cannot write (what is not resolved stays queued)."""
        queue = self._queue
        batch = list(queue) if len(queue) <= self._max_batch else \
            list(islice(queue, self._max_batch))
        self._settled = 0
        try:
            if self._in_doubt is not None:
                await self._settle_doubt(batch)
            if self._settled < len(batch):
                await self._write(batch[self._settled:])
        except Exception as exc:  # not caused by the records: hold them
            await self._hold(exc)
            return False
        finally:
            self._pop_settled()
        self._writes_again()
        return True

    def _pop_settled(self) -> None:
        settled, self._settled = self._settled, 0
        if settled == len(self._queue):
            self._queue.clear()
        else:
            popleft = self._queue.popleft
            for _ in range(settled):
                popleft()
        self._resolved += settled
        self._progress.set()

    async def _write(self, records: Sequence[_Record]) -> None:
        """Commit ``records`` and resolve their futures, isolating bad records by bisection;
        raise an error that is not a record's (the unresolved records stay queued)."""
        try:
            fencing = await self._commit(records)
        except Exception as exc:
            if not _is_record_error(exc):
                raise
            if len(records) == 1:
                self._fail_record(records[0], exc)
                return
            middle = len(records) // 2
            await self._write(records[:middle])
            await self._write(records[middle:])
            return
        self._committed(records, fencing)

    def _committed(self, records: Sequence[_Record], fencing: _Fencing | None) -> None:
        """Resolve the futures of committed ``records``, in order."""
        self._settled += len(records)
        if fencing is None:
            self.records_written += len(records)
            for record in records:
                future = record[3]
                if not future.done():
                    future.set_result(None)
            return
        self._leases_taken(fencing)
        errors = self._lease_errors(records, fencing)
        self.records_written += len(records) - len(fencing.lost)
        for i, record in enumerate(records):
            future = record[3]
            if i in fencing.lost:
                guard = record[4]
                assert guard is not None
                _set_exception(future, errors[guard[0]])
            elif not future.done():
                future.set_result(None)

    def _lease_errors(self, records: Sequence[_Record],
                      fencing: _Fencing) -> dict[int, LeaseLost]:
        """One LeaseLost per portfolio with records left out, logged with their count."""
        counts: dict[int, int] = {}
        for i in fencing.lost:
            guard = records[i][4]
            assert guard is not None
            counts[guard[0]] = counts.get(guard[0], 0) + 1
        errors = {}
        for pid, count in counts.items():
            errors[pid] = LeaseLost(f"portfolio {pid}: not written, this engine's lease on the "
                                    "portfolio is lost")
            log.info("journal: %d records of portfolio %d left out: its lease is lost", count,
                     pid)
        self.records_lease_lost += len(fencing.lost)
        return errors

    def _leases_taken(self, fencing: _Fencing) -> None:
        """Leases found taken over: unfence them and tell the owner, once each."""
        for pid, stored in fencing.taken.items():
            registered = fencing.registered[pid]
            if self._fences.get(pid) != registered:
                continue  # unfenced or fenced anew meanwhile: reported already or moot
            del self._fences[pid]
            log.warning("journal: the lease on portfolio %d is lost: fenced with token %s, the "
                        "database has %s", pid, registered, stored)
            if self.on_lease_lost is not None:
                try:
                    self.on_lease_lost(pid)
                except Exception:
                    log.exception("journal: on_lease_lost(%d) failed", pid)

    def _fail_record(self, record: _Record, exc: Exception) -> None:
        kind, row, position, future, _ = record
        self._settled += 1
        self.records_failed += 1
        log.error("journal: %s failed: %s; row=%r position=%r", _KIND_NAMES[kind], exc,
                  dict(row), None if position is None else dict(position))
        _set_exception(future, exc)

    # -- availability --------------------------------------------------------------------------

    async def _hold(self, exc: Exception) -> None:
        """The database cannot write: note why, discard the connection, keep the records."""
        reason = _describe(exc)
        self._attempts += 1
        await self._discard_connection(invalidate=True)
        held = len(self._queue) - self._settled
        if self._available:
            self._available = False
            self._since = time.monotonic()
            self._available_event.clear()
            log.warning("journal: the database cannot write (%s); %d records held, retrying",
                        reason, held)
        elif reason != self._reason:
            log.debug("journal: still unavailable, now: %s", reason)
        self._reason = reason
        log.debug("journal: attempt %d failed (%s); %d records held", self._attempts, reason,
                  held)

    def _writes_again(self) -> None:
        self._attempts = 0
        if self._available:
            return
        assert self._since is not None
        log.info("journal: the database writes again, after %.1f s unavailable (%s); %d "
                 "records queued", time.monotonic() - self._since, self._reason,
                 len(self._queue))
        self._available = True
        self._reason = None
        self._since = None
        self._available_event.set()

    async def _settle_doubt(self, batch: Sequence[_Record]) -> None:
        """Learn whether the transaction whose commit was cut off committed; if it did, its
        records (the head of ``batch``) are resolved as written."""
        doubt = self._in_doubt
        assert doubt is not None
        connection = await self._get_connection()
        async with connection.begin():
            status = (await connection.exec_driver_sql(_PG_TXID_STATUS, (doubt.xid,))).scalar()
        if status == "in progress":
            raise JournalUnavailable("commit outcome unknown")
        self._in_doubt = None
        if status == "committed":
            log.info("journal: a commit cut off by the connection loss had succeeded (%d records)",
                     doubt.count)
            self.commits += 1
            self._committed(batch[:doubt.count], doubt.fencing)
        elif status != "aborted":
            log.warning("journal: the outcome of transaction %d is unknown (%s): its %d records "
                        "are written again", doubt.xid, status, doubt.count)

    # -- transactions --------------------------------------------------------------------------

    async def _sqlite_writer(self) -> SqliteBatchWriter | None:
        """A dedicated-thread writer when the database is a SQLite file, at the synchronous
        level the engine's connections use."""
        url = self._engine.url
        if self._sqlite_text is None or not url.database or url.database == ":memory:":
            return None
        async with self._engine.connect() as conn:
            level = (await conn.exec_driver_sql("PRAGMA synchronous")).scalar_one()
        return SqliteBatchWriter(url.database, int(level), inline=self._inline_writes)

    async def _commit(self, records: Sequence[_Record]) -> _Fencing | None:
        started = time.perf_counter()
        if self._sqlite_text is not None:
            fencing = await self._commit_sqlite(self._sqlite_text, records)
        else:
            fencing = await self._commit_postgresql(records)
        self.commits += 1
        self.last_batch_size = len(records)
        self.last_commit_latency = time.perf_counter() - started
        if self.on_commit is not None:
            try:  # committed: whatever the callback does, the records are written
                self.on_commit(self.last_commit_latency, len(records))
            except Exception:
                log.exception("journal: on_commit failed")
        return fencing

    async def _commit_sqlite(self, text: _SqliteText,
                             records: Sequence[_Record]) -> _Fencing | None:
        check = _FenceCheck.of(records, self._fences)
        if check is None:  # the statements are built here, on the loop
            statements = text.statements(records)
            await self._run_sqlite(lambda _stored: statements, ())
            return None
        decided: list[_Fencing | None] = [None]

        def build(stored: Mapping[int, int]) -> list[Statement]:
            """In the transaction, once the tokens of the fenced portfolios are read."""
            fencing = decided[0] = check.decide(records, stored)
            return text.statements(records if fencing is None else fencing.kept(records))

        await self._run_sqlite(build, check.ids)
        return decided[0]

    async def _run_sqlite(self, build: Build, fenced: Sequence[int]) -> None:
        """One SQLite transaction: on the writer thread, or (an in-memory database) on the
        engine's connection."""
        if self._sqlite is not None:
            await self._sqlite.write(build, fenced)
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

    async def _commit_postgresql(self, records: Sequence[_Record]) -> _Fencing | None:
        check = _FenceCheck.of(records, self._fences)
        connection = await self._get_connection()
        for attempt in range(_RETRIES + 1):
            try:
                return await self._pg_transaction(connection, records, check)
            except DBAPIError as exc:
                if attempt == _RETRIES or not _is_transient(exc):
                    raise
                self.retries += 1
                log.warning("journal: batch of %d records tried again (%s)", len(records),
                            _sqlstate(exc))
                await asyncio.sleep(_backoff(attempt))
        raise AssertionError("unreachable")  # pragma: no cover

    async def _pg_transaction(self, connection: AsyncConnection, records: Sequence[_Record],
                              check: _FenceCheck | None) -> _Fencing | None:
        statements = self._pg_statements
        assert statements is not None
        transaction = await connection.begin()
        try:
            xid: int | None = None
            fencing = None
            if check is not None:
                xid, stored = await statements.open(connection, check.ids)
                fencing = check.decide(records, stored)
            written_xid = await statements.write(
                connection, records if fencing is None else fencing.kept(records),
                want_xid=xid is None)
            xid = written_xid if xid is None else xid
        except BaseException:
            await _rollback(transaction)
            raise
        self._in_doubt = None if xid is None else _InDoubt(xid, len(records), fencing)
        try:
            await transaction.commit()
        except Exception as exc:
            if _is_record_error(exc) or _is_transient(exc):
                self._in_doubt = None  # the server answered: rolled back
            raise
        self._in_doubt = None
        return fencing

    async def _get_connection(self) -> AsyncConnection:
        if self._connection is None:
            connection = await self._engine.connect()
            if self._pg_statements is not None:  # the row locks assume READ COMMITTED
                try:
                    await connection.execution_options(isolation_level="READ COMMITTED")
                except BaseException:
                    await connection.close()
                    raise
            self._connection = connection
        return self._connection

    async def _discard_connection(self, *, invalidate: bool) -> None:
        """Close the connection; ``invalidate``: the database failed, so a PostgreSQL connection
        is not returned to the pool and SQLite's writer thread drops its own."""
        connection, self._connection = self._connection, None
        if invalidate and self._sqlite is not None:
            await self._sqlite.reset()
        if connection is None:
            return
        try:
            if invalidate and self._pg_statements is not None:  # never an in-memory SQLite
                await connection.invalidate()
            await connection.close()
        except Exception as exc:
            log.debug("journal: closing the connection failed (%s)", _describe(exc))
