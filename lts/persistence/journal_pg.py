"""The journal on PostgreSQL: a batch's statements, its transaction, and commits cut off mid-way.

Where it sits: under :class:`lts.persistence.journal.Journal` when the database is PostgreSQL.
The journal hands each batch (and its fence check, :mod:`lts.persistence.journal_fencing`) to
:meth:`PgCommitPath.commit`, which writes it in one READ COMMITTED transaction: a fenced batch
first reads its transaction id and its portfolios' lease tokens ``FOR SHARE``; orders, order
events and audit rows go in as bulk inserts (:mod:`lts.persistence.pg_bulk`), the first of them
reading the transaction id of an unfenced batch; fills and their positions go through
:mod:`lts.persistence.pg_fills`; updates are Core statements. When the connection is lost
during ``COMMIT`` the transaction stays in doubt, and :meth:`PgCommitPath.settle` asks the
server (``txid_status``) before anything else is written. The journal retries serialization
failures and deadlocks and holds the batch through outages (:mod:`lts.persistence.journal`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from sqlalchemy import bindparam, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncTransaction
from sqlalchemy.sql.base import Executable

from lts.errors import JournalUnavailable
from lts.persistence.journal_errors import describe_error, is_record_error, is_transient
from lts.persistence.journal_fencing import FenceCheck, Fencing
from lts.persistence.journal_records import (
    AUDIT,
    FILL,
    ORDER_EVENT,
    ORDER_INSERT,
    ORDER_UPDATE,
    PORTFOLIO_UPDATE,
    Record,
    plan,
)
from lts.persistence.pg_bulk import BulkInsert
from lts.persistence.pg_fills import PgFillWriter
from lts.persistence.tables import audit_logs, order_events, orders, portfolios

__all__ = ["InDoubt", "PgCommitPath", "PgStatements"]

log = logging.getLogger("lts.persistence.journal")  # the journal's logger: one name to follow

# A fenced PostgreSQL batch begins with this: its transaction id (to settle a commit whose outcome
# is unknown) and the lease tokens of its fenced portfolios, locked FOR SHARE until it commits.
# (An unfenced batch reads its id in its first order, event or audit insert: pg_bulk.)
_PG_OPEN: Final = (
    "SELECT txid_current(), (SELECT array_agg(ARRAY[id, lease_token]) FROM "
    "(SELECT id, lease_token FROM portfolios WHERE id = ANY($1::integer[]) ORDER BY id "
    "FOR SHARE) AS fenced)")
_PG_TXID_STATUS: Final = "SELECT txid_status($1)"


@dataclass(frozen=True, slots=True)
class InDoubt:
    """A PostgreSQL commit whose outcome is unknown (the connection was lost during it): the
    first ``count`` records of the queue, in transaction ``xid``."""

    xid: int
    count: int
    fencing: Fencing | None


class PgStatements:
    """PostgreSQL's statements, built once: bulk inserts (:mod:`lts.persistence.pg_bulk`),
    Core updates (SQLAlchemy's compiled cache serves them) and the fill step."""

    def __init__(self) -> None:
        self.fills = PgFillWriter()
        self.inserts: dict[int, BulkInsert] = {
            ORDER_INSERT: BulkInsert(orders),
            ORDER_EVENT: BulkInsert(order_events),
            AUDIT: BulkInsert(audit_logs),
        }
        self.updates: dict[int, Executable] = {
            ORDER_UPDATE: update(orders).where(orders.c.client_order_id == bindparam("b_coid")),
            PORTFOLIO_UPDATE: update(portfolios).where(portfolios.c.id == bindparam("b_id")),
        }

    @staticmethod
    async def open(connection: AsyncConnection,
                   fenced: Sequence[int]) -> tuple[int, dict[int, int]]:
        """A fenced batch's first statement: the transaction's id and the stored tokens of the
        portfolios ``fenced``, locked FOR SHARE (one round trip)."""
        result = await connection.exec_driver_sql(_PG_OPEN, (list(fenced),))
        row = tuple(result.one())  # (xid, [[id, token], ...] or None)
        return int(row[0]), {int(pid): int(token) for pid, token in row[1] or ()}

    async def write(self, connection: AsyncConnection, records: Sequence[Record], *,
                    want_xid: bool) -> int | None:
        """Write ``records``; with ``want_xid``, the transaction's id, read by the first insert
        a second write would duplicate or refuse (None: the batch has none, it is idempotent)."""
        xid: int | None = None
        fill_rows = [row for kind, row, _, _, _ in records if kind == FILL]
        for kind, groups in enumerate(plan(records)):
            if kind == FILL:
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


class PgCommitPath:
    """One READ COMMITTED transaction per batch on the journal's own connection, and the
    transaction left in doubt when that connection is lost during ``COMMIT``."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._statements = PgStatements()
        self._connection: AsyncConnection | None = None
        self._in_doubt: InDoubt | None = None

    async def open(self) -> None:
        """Nothing to start: the connection is taken from the pool on the first batch."""

    async def commit(self, records: Sequence[Record],
                     check: FenceCheck | None) -> Fencing | None:
        """Write ``records`` in one transaction; with ``check``, what the fence check decided
        on the tokens locked FOR SHARE (the records it left out are not written)."""
        connection = await self._get_connection()
        statements = self._statements
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
        self._in_doubt = None if xid is None else InDoubt(xid, len(records), fencing)
        try:
            await transaction.commit()
        except Exception as exc:
            if is_record_error(exc) or is_transient(exc):
                self._in_doubt = None  # the server answered: rolled back
            raise
        self._in_doubt = None
        return fencing

    async def settle(self) -> InDoubt | None:
        """Learn whether the transaction whose commit was cut off committed: if it did, the
        transaction (its records, the head of the queue, are written); None when nothing was in
        doubt or it did not commit (its records are written again)."""
        doubt = self._in_doubt
        if doubt is None:
            return None
        connection = await self._get_connection()
        async with connection.begin():
            status = (await connection.exec_driver_sql(_PG_TXID_STATUS, (doubt.xid,))).scalar()
        if status == "in progress":
            raise JournalUnavailable("commit outcome unknown")
        self._in_doubt = None
        if status == "committed":
            log.info("journal: a commit cut off by the connection loss had succeeded (%d records)",
                     doubt.count)
            return doubt
        if status != "aborted":
            log.warning("journal: the outcome of transaction %d is unknown (%s): its %d records "
                        "are written again", doubt.xid, status, doubt.count)
        return None

    async def _get_connection(self) -> AsyncConnection:
        if self._connection is None:
            connection = await self._engine.connect()
            try:  # the row locks assume READ COMMITTED
                await connection.execution_options(isolation_level="READ COMMITTED")
            except BaseException:
                await connection.close()
                raise
            self._connection = connection
        return self._connection

    async def discard(self, *, invalidate: bool) -> None:
        """Close the connection; ``invalidate``: the database failed, so it is not returned to
        the pool."""
        connection, self._connection = self._connection, None
        if connection is None:
            return
        try:
            if invalidate:
                await connection.invalidate()
            await connection.close()
        except Exception as exc:
            log.debug("journal: closing the connection failed (%s)", describe_error(exc))

    async def close(self) -> None:
        """The journal has stopped: give the connection back to the pool."""
        await self.discard(invalidate=False)


async def _rollback(transaction: AsyncTransaction) -> None:
    try:
        await transaction.rollback()
    except Exception as exc:  # the connection is gone: it is discarded anyway
        log.debug("journal: rollback failed (%s)", describe_error(exc))
