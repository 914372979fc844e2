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

**Where the parts live.** This module is the writer: the queue, batches, bisection, holding and
resolving the futures. :mod:`~lts.persistence.journal_records` has the kinds of record and a
batch's plan; :mod:`~lts.persistence.journal_errors` what an error means (a bad record, a
transient conflict or an outage, and the reason's one line); :mod:`~lts.persistence.journal_fencing`
the registered tokens and each batch's check; :mod:`~lts.persistence.journal_sqlite` and
:mod:`~lts.persistence.journal_pg` each store's statements and commit path (over
:mod:`~lts.persistence.sqlite_writer`, :mod:`~lts.persistence.pg_bulk` and
:mod:`~lts.persistence.pg_fills`).
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import deque
from collections.abc import Callable, Sequence
from itertools import islice
from typing import TYPE_CHECKING, Final, Protocol

import anyio
import anyio.abc
import anyio.lowlevel
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from lts.errors import JournalUnavailable
from lts.persistence.journal_errors import (
    describe_error,
    is_record_error,
    is_transient,
    sqlstate,
    unavailable_reason,
)
from lts.persistence.journal_fencing import FenceCheck, Fences, Fencing, lease_errors
from lts.persistence.journal_records import (
    AUDIT,
    FILL,
    KIND_NAMES,
    ORDER_EVENT,
    ORDER_INSERT,
    ORDER_UPDATE,
    PORTFOLIO_UPDATE,
    Record,
    Row,
)
from lts.persistence.journal_sqlite import SqliteCommitPath

if TYPE_CHECKING:
    from lts.persistence.journal_pg import InDoubt

__all__ = ["Journal", "JournalClosedError", "Row", "unavailable_reason"]

log = logging.getLogger(__name__)

# A serialization failure or a deadlock: the whole batch is tried again at once, this often.
_RETRIES: Final = 6  # after the first attempt
_BACKOFF_S: Final = 0.005  # doubled per retry, capped, with jitter
_BACKOFF_CAP_S: Final = 0.1

# A committed batch is resolved this many records per loop iteration: the producers a big batch
# wakes (and its committed hooks) run between chunks, not all in one stretch of the loop.
_RESOLVE_CHUNK: Final = 256

# The database cannot write: the head of the queue is tried again, this often.
_HOLD_S: Final = 0.01  # doubled per attempt, capped, with jitter below the cap
_HOLD_CAP_S: Final = 0.5


class JournalClosedError(JournalUnavailable):
    """A write was enqueued after the journal's writer task has stopped."""


class _CommitPath(Protocol):
    """A store's commit path: :class:`~lts.persistence.journal_sqlite.SqliteCommitPath` or
    :class:`~lts.persistence.journal_pg.PgCommitPath`. Each call may raise whatever the database
    raised; the writer decides what it means (:mod:`lts.persistence.journal_errors`)."""

    async def open(self) -> None:
        """Before the first batch."""

    async def commit(self, records: Sequence[Record],
                     check: FenceCheck | None) -> Fencing | None:
        """Write ``records`` in one transaction; what the fence check ``check`` decided."""

    async def settle(self) -> InDoubt | None:
        """Before anything else is written: the transaction whose commit was cut off, if it
        committed after all."""

    async def discard(self, *, invalidate: bool) -> None:
        """Drop the connection (``invalidate``: the database failed)."""

    async def close(self) -> None:
        """After the last batch."""


def _backoff(retry: int) -> float:
    jitter = 0.5 + random.random()  # noqa: S311 - spreads retries, no secret
    return float(min(_BACKOFF_CAP_S, _BACKOFF_S * 2.0 ** retry) * jitter)


def _hold_delay(attempt: int) -> float:
    jitter = 0.5 + random.random() / 2  # noqa: S311 - spreads retries, no secret
    return float(min(_HOLD_CAP_S, _HOLD_S * 2.0 ** min(attempt, 16)) * jitter)


def _run_hook(hook: Callable[[], None]) -> None:
    """A producer's committed hook; one that raises is logged, the writer goes on."""
    try:
        hook()
    except Exception:
        log.exception("journal: a committed hook raised")


def _set_exception(future: asyncio.Future[None], exc: BaseException) -> None:
    """Fail ``future`` and mark its exception retrieved (the journal logs it; a write nobody
    awaits must not log "Future exception was never retrieved")."""
    if not future.done():
        future.set_exception(exc)
        future.exception()


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
        self._store: _CommitPath
        if dialect == "sqlite":  # inline_writes: commit on the loop's thread (backtests)
            self._store = SqliteCommitPath(engine, inline=inline_writes)
        else:  # imported here: SQLAlchemy's PostgreSQL dialect costs a backtest 0.1 s
            from lts.persistence.journal_pg import PgCommitPath

            self._store = PgCommitPath(engine)
        self._max_batch = max_batch
        self._high_water = high_water
        self._stop_timeout = stop_timeout
        self._queue: deque[Record] = deque()
        #: the producers' committed hooks, by the record's future (most records have none)
        self._then: dict[asyncio.Future[None], Callable[[], None]] = {}
        self._wakeup = asyncio.Event()
        self._progress = asyncio.Event()  # set after every batch; wakes flush / back-pressure
        self._enqueued = 0  # records ever enqueued
        self._resolved = 0  # records ever resolved (committed or failed), in FIFO order
        self._settled = 0  # records of the head batch resolved so far (a prefix of the queue)
        self._closed = False
        self._running = False
        self._fences = Fences()
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

    def _enqueue(self, kind: int, row: Row, position: Row | None, fence: int | None,
                 committed: Callable[[], None] | None = None) -> asyncio.Future[None]:
        if self._closed:
            raise JournalClosedError("the journal writer has stopped")
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        guard = None if fence is None else self._fences.guard(fence)
        self._queue.append((kind, row, position, future, guard))
        if committed is not None:
            self._then[future] = committed
        self._enqueued += 1
        self._wakeup.set()
        return future

    def insert_order(self, row: Row, *, fence: int | None = None) -> asyncio.Future[None]:
        """Insert an ``orders`` row (every column except ``id``).

        ``fence`` (every producer method has it): the portfolio whose lease guards the record
        (:meth:`fence`); None: not fenced."""
        return self._enqueue(ORDER_INSERT, row, None, fence)

    def update_order(self, row: Row, *, fence: int | None = None) -> asyncio.Future[None]:
        """Update the order ``row["client_order_id"]`` to the state in ``row``: every update
        carries the whole mutable state, so within a batch the last one per order wins."""
        return self._enqueue(ORDER_UPDATE, row, None, fence)

    def insert_fill(self, fill_row: Row, position_row: Row, *, fence: int | None = None,
                    committed: Callable[[], None] | None = None) -> asyncio.Future[None]:
        """Insert a fill (a duplicate ``(broker, trade_id)`` is ignored) and change its position
        in the same transaction: on SQLite to the state ``position_row`` (every column of
        ``positions`` but ``id``), on PostgreSQL by applying the fill to the locked row.
        ``committed`` (here and for events): called by the writer right after the commit, in
        the order of the records, before the futures resolve; never when the record fails."""
        return self._enqueue(FILL, fill_row, position_row, fence, committed)

    def insert_order_event(self, row: Row, *, fence: int | None = None,
                           committed: Callable[[], None] | None = None
                           ) -> asyncio.Future[None]:
        """Insert an ``order_events`` row (``committed``: see :meth:`insert_fill`)."""
        return self._enqueue(ORDER_EVENT, row, None, fence, committed)

    def insert_audit(self, row: Row, *, fence: int | None = None) -> asyncio.Future[None]:
        """Insert an ``audit_logs`` row."""
        return self._enqueue(AUDIT, row, None, fence)

    def update_portfolio(self, row: Row, *, fence: int | None = None) -> asyncio.Future[None]:
        """Update the portfolio ``row["id"]`` (``status``, ``last_error``, ``trading_state``)."""
        return self._enqueue(PORTFOLIO_UPDATE, row, None, fence)

    # -- fencing -------------------------------------------------------------------------------

    def fence(self, portfolio_id: int, token: int) -> None:
        """Guard the records enqueued from now on with ``fence=portfolio_id`` by the lease
        ``token``: they are written only while it is the portfolio's stored ``lease_token``."""
        self._fences.fence(portfolio_id, token)

    def unfence(self, portfolio_id: int) -> None:
        """Stop fencing ``portfolio_id``: its fenced records not yet written fail with
        :class:`~lts.errors.LeaseLost`, as do those enqueued with ``fence=portfolio_id`` later."""
        self._fences.unfence(portfolio_id)

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
            await self._store.open()
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
                    await self._store.close()

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
        self._then.clear()
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

    async def _write(self, records: Sequence[Record]) -> None:
        """Commit ``records`` and resolve their futures, isolating bad records by bisection;
        raise an error that is not a record's (the unresolved records stay queued)."""
        try:
            fencing = await self._commit(records)
        except Exception as exc:
            if not is_record_error(exc):
                raise
            if len(records) == 1:
                self._fail_record(records[0], exc)
                return
            middle = len(records) // 2
            await self._write(records[:middle])
            await self._write(records[middle:])
            return
        await self._committed(records, fencing)

    async def _committed(self, records: Sequence[Record], fencing: Fencing | None) -> None:
        """Run the committed hooks and resolve the futures of committed ``records``, in
        order, ``_RESOLVE_CHUNK`` at a time (a checkpoint between chunks)."""
        self._settled += len(records)
        then = self._then
        if fencing is None:
            self.records_written += len(records)
            for start in range(0, len(records), _RESOLVE_CHUNK):
                if start:
                    await anyio.lowlevel.checkpoint()
                for record in records[start:start + _RESOLVE_CHUNK]:
                    future = record[3]
                    if then:
                        hook = then.pop(future, None)
                        if hook is not None:
                            _run_hook(hook)
                    if not future.done():
                        future.set_result(None)
            return
        self._fences.drop_taken(fencing, self.on_lease_lost)
        errors = lease_errors(records, fencing)
        self.records_lease_lost += len(fencing.lost)
        self.records_written += len(records) - len(fencing.lost)
        for i, record in enumerate(records):
            if i and i % _RESOLVE_CHUNK == 0:
                await anyio.lowlevel.checkpoint()
            future = record[3]
            hook = then.pop(future, None) if then else None
            if i in fencing.lost:
                guard = record[4]
                assert guard is not None
                _set_exception(future, errors[guard[0]])
                continue
            if hook is not None:
                _run_hook(hook)
            if not future.done():
                future.set_result(None)

    def _fail_record(self, record: Record, exc: Exception) -> None:
        kind, row, position, future, _ = record
        self._then.pop(future, None)
        self._settled += 1
        self.records_failed += 1
        log.error("journal: %s failed: %s; row=%r position=%r", KIND_NAMES[kind], exc,
                  dict(row), None if position is None else dict(position))
        _set_exception(future, exc)

    # -- availability --------------------------------------------------------------------------

    async def _hold(self, exc: Exception) -> None:
        """The database cannot write: note why, discard the connection, keep the records."""
        reason = describe_error(exc)
        self._attempts += 1
        await self._store.discard(invalidate=True)
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

    async def _settle_doubt(self, batch: Sequence[Record]) -> None:
        """Settle a commit cut off mid-way (PostgreSQL): if it had committed, its records (the
        head of ``batch``) are resolved as written."""
        doubt = await self._store.settle()
        if doubt is not None:
            self.commits += 1
            await self._committed(batch[:doubt.count], doubt.fencing)

    # -- transactions --------------------------------------------------------------------------

    async def _commit(self, records: Sequence[Record]) -> Fencing | None:
        started = time.perf_counter()
        fencing = await self._transaction(records)
        self.commits += 1
        self.last_batch_size = len(records)
        self.last_commit_latency = time.perf_counter() - started
        if self.on_commit is not None:
            try:  # committed: whatever the callback does, the records are written
                self.on_commit(self.last_commit_latency, len(records))
            except Exception:
                log.exception("journal: on_commit failed")
        return fencing

    async def _transaction(self, records: Sequence[Record]) -> Fencing | None:
        """One transaction of the store's commit path; one that hits a serialization failure or
        a deadlock (PostgreSQL) is tried again whole, a few times with a short backoff."""
        check = self._fences.check(records)
        for attempt in range(_RETRIES + 1):
            try:
                return await self._store.commit(records, check)
            except DBAPIError as exc:
                if attempt == _RETRIES or not is_transient(exc):
                    raise
                self.retries += 1
                log.warning("journal: batch of %d records tried again (%s)", len(records),
                            sqlstate(exc))
                await asyncio.sleep(_backoff(attempt))
        raise AssertionError("unreachable")  # pragma: no cover
