"""PostgreSQL leases: advisory locks held by one dedicated session, and the keeper's check of it.

Where it sits: under :class:`lts.persistence.leases.LeaseManager` on PostgreSQL, which calls
every method of :class:`AdvisoryLocks` under its own operation lock. A lease is the session-level
advisory lock ``pg_try_advisory_lock(LOCK_NAMESPACE, portfolio_id)`` of the lock connection (taken
from the engine's pool, never given back: it is invalidated at the end); the token is bumped on
that connection too (:mod:`lts.persistence.lease_tokens`). The keeper (:meth:`LeaseManager.run
<lts.persistence.leases.LeaseManager.run>`) calls :meth:`AdvisoryLocks.check` every
``check_interval``: a ping, or when the connection is lost a reconnect that ends this engine's
abandoned sessions the server still keeps and takes each lease back with the same token, or
reports it lost. The details and the server's limits are in :mod:`lts.persistence.leases`'s
docstring.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

import anyio
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from lts.errors import Conflict
from lts.persistence.lease_tokens import LOST, Lease, bump_token, clear_owner, why
from lts.persistence.tables import portfolios

__all__ = ["LOCK_NAMESPACE", "AdvisoryLocks"]

log = logging.getLogger("lts.leases")

#: The first key of every lease's advisory lock ("LTS" in ASCII); the second is the portfolio id.
LOCK_NAMESPACE: Final = 0x4C5453
STALE_KEPT: Final = 8  # abandoned sessions remembered for eviction


@dataclass(frozen=True)
class _Session:
    """A PostgreSQL session, recognised by backend pid and start time (pids are reused)."""

    pid: int
    started: datetime


class _LockConnection:
    """The dedicated autocommit connection whose session holds the advisory locks.

    Every call is bounded by ``timeout`` (TimeoutError); any error means the connection must be
    discarded.
    """

    def __init__(self, conn: AsyncConnection, session: _Session, timeout: float) -> None:
        self.conn = conn
        self.session = session
        self._timeout = timeout

    @classmethod
    async def open(cls, engine: AsyncEngine, limit: float) -> _LockConnection:
        """Connect (each step bounded by ``limit`` seconds) and identify the session."""
        with anyio.fail_after(limit):
            conn = await engine.connect()
        try:
            with anyio.fail_after(limit):
                await conn.execution_options(isolation_level="AUTOCOMMIT")
                row = (await conn.execute(text(
                    "SELECT pid, backend_start FROM pg_stat_activity "
                    "WHERE pid = pg_backend_pid()"))).one()
        except BaseException:
            await _discard(conn)
            raise
        return cls(conn, _Session(int(row[0]), row[1]), limit)

    async def scalar(self, sql: str, **params: object) -> Any:
        with anyio.fail_after(self._timeout):
            return (await self.conn.execute(text(sql), params)).scalar()

    async def ping(self) -> None:
        await self.scalar("SELECT 1")

    async def try_lock(self, portfolio_id: int) -> bool:
        return bool(await self.scalar("SELECT pg_try_advisory_lock(:ns, :id)",
                                      ns=LOCK_NAMESPACE, id=portfolio_id))

    async def unlock(self, portfolio_id: int) -> None:
        await self.scalar("SELECT pg_advisory_unlock(:ns, :id)",
                          ns=LOCK_NAMESPACE, id=portfolio_id)

    async def bump(self, portfolio_id: int, owner: str) -> int | None:
        with anyio.fail_after(self._timeout):
            return await bump_token(self.conn, portfolio_id, owner)

    async def token(self, portfolio_id: int) -> int | None:
        with anyio.fail_after(self._timeout):
            token = (await self.conn.execute(select(portfolios.c.lease_token).where(
                portfolios.c.id == portfolio_id))).scalar()
        return None if token is None else int(token)

    async def clear_owner(self, lease: Lease) -> None:
        with anyio.fail_after(self._timeout):
            await clear_owner(self.conn, lease)

    async def terminate(self, session: _Session) -> bool:
        """End ``session`` if it still runs; False when it is gone."""
        return bool(await self.scalar(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE pid = :pid AND backend_start = :started",
            pid=session.pid, started=session.started))

    async def alive(self, session: _Session) -> bool:
        return bool(await self.scalar(
            "SELECT count(*) FROM pg_stat_activity WHERE pid = :pid AND backend_start = :started",
            pid=session.pid, started=session.started))

    async def discard(self) -> None:
        await _discard(self.conn)


async def _discard(conn: AsyncConnection) -> None:
    """Close the DBAPI connection for good (never back to the pool): the session ends and the
    server frees its locks. Bounded and shielded: it runs on error and cancellation paths."""
    with anyio.CancelScope(shield=True), anyio.move_on_after(5):
        try:
            await conn.invalidate()
            await conn.close()
        except LOST as err:
            log.debug("closing the lease connection: %s", err)


class AdvisoryLocks:
    """The leases' advisory locks on one lock connection, restored after it is lost.

    ``held`` is the manager's dict of leases by portfolio id: :meth:`check` drops from it the
    leases another engine took while the connection was down and reports each through
    ``on_lost(portfolio_id)``. Every call is bounded by ``timeout`` seconds per database call; a
    database error propagates after the connection is dropped (the next call reconnects).
    """

    def __init__(self, engine: AsyncEngine, held: dict[int, Lease], *,
                 on_lost: Callable[[int], None] | None, timeout: float) -> None:
        self._engine = engine
        self._held = held
        self._on_lost = on_lost
        self._timeout = timeout
        self._conn: _LockConnection | None = None
        self._stale: list[_Session] = []  # abandoned sessions the server may still keep

    async def open(self) -> None:
        """Open the lock connection."""
        self._conn = await _LockConnection.open(self._engine, self._timeout)

    async def take(self, portfolio_id: int, owner: str) -> int | None:
        """Lock the portfolio and bump its token; None when another engine holds it."""
        conn = await self._live()
        try:
            if not await conn.try_lock(portfolio_id):
                return None
            token = await conn.bump(portfolio_id, owner)
            if token is None:
                await conn.unlock(portfolio_id)
        except LOST:
            await self._abandon()
            raise
        if token is None:
            raise Conflict(f"portfolio {portfolio_id} does not exist")
        return token

    async def release(self, lease: Lease) -> None:
        """Forget the owner and unlock; a failure drops the connection (and the lock with it)."""
        if self._conn is None:
            return  # the session is gone and its locks with it (a stale one is evicted later)
        try:
            await self._conn.clear_owner(lease)
            await self._conn.unlock(lease.portfolio_id)
        except LOST as err:
            log.warning("lease of portfolio %d: unlock failed (%s); dropping the connection",
                        lease.portfolio_id, why(err))
            await self._abandon()

    async def close(self) -> None:
        """End the lock session (its locks go with it) and any abandoned one still running."""
        try:
            conn = self._conn or (await self._open_for_eviction() if self._stale else None)
            self._conn = conn
            if conn is not None:
                await self._evict_stale(conn)
        except LOST as err:
            log.warning("closing leases: %s", why(err))
        finally:
            if self._conn is not None:
                await self._conn.discard()
                self._conn = None

    async def check(self) -> bool:
        """The keeper's check; True when the lock connection is up (again)."""
        if self._conn is not None:
            try:
                await self._conn.ping()
                return True
            except LOST as err:
                log.warning("lease connection lost (%s); reconnecting", why(err))
                await self._abandon()
        try:
            await self._restore()
        except LOST as err:
            log.warning("lease connection: reconnecting failed (%s)", why(err))
            return False
        return True

    async def _live(self) -> _LockConnection:
        if self._conn is None:
            await self._restore()
        assert self._conn is not None
        return self._conn

    async def _open_for_eviction(self) -> _LockConnection | None:
        try:
            return await _LockConnection.open(self._engine, self._timeout)
        except LOST as err:
            log.warning("closing leases: cannot reach the database to end stale sessions (%s)",
                        why(err))
            return None

    async def _abandon(self) -> None:
        """Drop the lock connection; remember its session in case the server still keeps it."""
        conn, self._conn = self._conn, None
        if conn is not None:
            self._stale = [*self._stale[-(STALE_KEPT - 1):], conn.session]
            await conn.discard()

    async def _restore(self) -> None:
        """Reconnect, end our abandoned sessions, take back each lease or report it lost."""
        conn = await _LockConnection.open(self._engine, self._timeout)
        self._conn = conn
        lost: list[int] = []
        try:
            await self._evict_stale(conn)
            for lease in list(self._held.values()):
                if not await self._reclaim(conn, lease):
                    del self._held[lease.portfolio_id]
                    lost.append(lease.portfolio_id)
        except LOST:
            await self._abandon()
            raise
        finally:
            self._report_lost(lost)
        log.info("lease connection restored; %d lease(s) kept", len(self._held))

    async def _evict_stale(self, conn: _LockConnection) -> None:
        """Terminate our abandoned sessions the server still runs and wait until they end."""
        for session in self._stale:
            if await conn.terminate(session):
                log.warning("ended this engine's abandoned database session (pid %d)",
                            session.pid)
        deadline = anyio.current_time() + self._timeout
        pause = 0.01
        while self._stale:
            self._stale = [s for s in self._stale if await conn.alive(s)]
            if not self._stale or anyio.current_time() > deadline:
                break
            await anyio.sleep(pause)
            pause = min(pause * 2, 0.2)

    async def _reclaim(self, conn: _LockConnection, lease: Lease) -> bool:
        """Retake a lease after a reconnect, keeping its token; False when it was taken."""
        if not await conn.try_lock(lease.portfolio_id):
            return False
        if await conn.token(lease.portfolio_id) == lease.token:
            return True
        await conn.unlock(lease.portfolio_id)
        return False

    def _report_lost(self, lost: list[int]) -> None:
        for portfolio_id in lost:
            log.error("lease of portfolio %d lost: another engine took it while the lease "
                      "connection was down", portfolio_id)
            if self._on_lost is None:
                continue
            try:
                self._on_lost(portfolio_id)
            except Exception:
                log.exception("on_lost(%d) failed", portfolio_id)
