"""Leases: which engine may trade which portfolio.

Where it sits in the flow: the engine starts a :class:`LeaseManager` after the schema check and
before any portfolio runner, acquires each portfolio's lease before starting that portfolio's
runner and hands the lease's token to the journal, which checks every write of the portfolio
against ``portfolios.lease_token`` (fencing: an engine that lost a portfolio can no longer write
it, even if it has not noticed yet). The keeper, :meth:`LeaseManager.run`, runs in the engine's
task group; the manager is closed after the runners and the journal have stopped.

Taking a lease always bumps ``portfolios.lease_token`` (committed, with ``lease_owner``) and the
:class:`Lease` carries the new token. Nothing expires: a lease ends when its engine releases it
or dies, so a killed engine's restart takes its portfolios back at once.

Per store:

- SQLite file: one engine per database file. :meth:`LeaseManager.start` takes an exclusive,
  non-blocking ``flock`` on ``<database>.lock`` and writes who holds it (pid, host, owner, since,
  API port) into it; a second engine (another process, or another manager in this process: an
  ``flock`` belongs to an open file description) gets :class:`~lts.errors.LeaseHeld` with one line
  naming the holder. The kernel drops the lock when its process dies, even by SIGKILL. Leases are
  then only bookkeeping, but they bump the token the same way. The lock file stays on disk:
  never delete it while an engine runs (a new file would be a new lock). Needs a local file
  system (``flock`` on NFS is emulated with POSIX locks, which do not exclude within a process).
- SQLite in memory: nothing is shared; no lock.
- PostgreSQL: per portfolio, so several engines can share a database and split the portfolios.
  A lease is a session-level advisory lock ``pg_try_advisory_lock(LOCK_NAMESPACE, portfolio_id)``
  held by one dedicated connection of the manager (taken from the engine's pool for the whole
  run and never given back to it: it is invalidated at the end, so no lock can outlive the
  manager in a pooled connection). When that session ends (the engine dies, the server restarts,
  the network drops) the server frees its locks. The keeper pings the connection every
  ``check_interval`` seconds; when the ping fails or takes longer than ``timeout`` it reconnects
  with a backoff (0.1 s doubling to 5 s), terminates its own abandoned sessions that the server
  still keeps (a partition: the server has not noticed the drop; a session is recognised by
  backend pid and start time, so a reused pid is never hit) and takes each lease back: kept
  with the SAME token when the lock is free and ``lease_token`` is unchanged (nobody took the
  portfolio meanwhile, so the journal's queued writes still pass); otherwise the lease is lost,
  dropped from :attr:`LeaseManager.held` and reported through ``on_lost(portfolio_id)``.

PostgreSQL limits: advisory locks live in the server's shared lock table, which holds about
``max_locks_per_transaction * (max_connections + max_prepared_transactions)`` locks in total
(64 * 100 by default) for every session and transaction together; each held lease uses one
slot, so thousands of leases per server need that setting raised. The lock connection counts
against ``max_connections`` and takes one connection of the engine's pool for the whole run.
``idle_session_timeout`` must exceed ``check_interval`` (the ping keeps the session busy) and
``idle_in_transaction_session_timeout`` does not apply (the connection runs in autocommit).
Advisory locks are per database: engines sharing portfolios must use the same database.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import socket
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import MappingProxyType, TracebackType
from typing import Any, Final

import anyio
import anyio.abc
from sqlalchemy import select, text, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from lts.errors import ConfigError, Conflict, LeaseHeld
from lts.persistence.tables import portfolios

__all__ = ["LOCK_NAMESPACE", "Lease", "LeaseManager", "default_owner"]

log = logging.getLogger("lts.leases")

#: The first key of every lease's advisory lock ("LTS" in ASCII); the second is the portfolio id.
LOCK_NAMESPACE: Final = 0x4C5453
OWNER_MAX: Final = 128  # portfolios.lease_owner is VARCHAR(128)
RECONNECT_MIN: Final = 0.1
RECONNECT_MAX: Final = 5.0
STALE_KEPT: Final = 8  # abandoned sessions remembered for eviction

#: What ends the lock connection's usefulness: database errors, and OSError (which includes the
#: TimeoutError of a bounded wait).
_LOST: Final = (SQLAlchemyError, OSError)


@dataclass(frozen=True, slots=True)
class Lease:
    """The right of this engine to trade one portfolio; ``token`` fences its journal writes."""

    portfolio_id: int
    token: int
    owner: str


def default_owner() -> str:
    """``host:pid``: who holds a lease, as the operator reads it."""
    return f"{socket.gethostname()}:{os.getpid()}"


def _database_file(engine: AsyncEngine) -> Path | None:
    """The file of a SQLite file database; None in memory and for other databases."""
    url = engine.url
    if url.get_backend_name() != "sqlite" or _in_memory(url.database, url.query):
        return None
    assert url.database is not None
    return Path(url.database)


def _in_memory(database: str | None, query: Mapping[str, Any]) -> bool:
    return database in (None, "", ":memory:") or query.get("mode") == "memory"


def _one_line(message: str) -> str:
    return " ".join(message.split())


def _utc_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# -- SQLite: the database file's lock ---------------------------------------------------------


class _LockFile:
    """An exclusive ``flock`` on ``<database>.lock``, holding who took it as JSON.

    Every method does blocking file I/O: call it in a worker thread.
    """

    def __init__(self, database: Path) -> None:
        self.database = database
        self.path = database.with_name(database.name + ".lock")
        self._fd: int | None = None

    def take(self, info: Mapping[str, object]) -> None:
        """Lock and write ``info``; :class:`LeaseHeld` naming the holder when it is taken."""
        # one lock file per database, whatever path (relative, through a symlink) names it
        self.database = self.database.expanduser().resolve()
        self.path = self.database.with_name(self.database.name + ".lock")
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as err:
            raise ConfigError(f"database {self.database}: cannot open the lock file "
                              f"{self.path}: {err.strerror}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_holder(fd)
            os.close(fd)
            raise LeaseHeld(self._refusal(holder)) from None
        except OSError as err:
            os.close(fd)
            raise ConfigError(f"database {self.database}: cannot lock {self.path}: "
                              f"{err.strerror}") from None
        self._fd = fd
        self.write(info)

    def write(self, info: Mapping[str, object]) -> None:
        if self._fd is not None:
            os.ftruncate(self._fd, 0)
            os.pwrite(self._fd, json.dumps(info).encode(), 0)

    def drop(self) -> None:
        """Unlock (closing the descriptor releases the flock); the file stays."""
        fd, self._fd = self._fd, None
        if fd is not None:
            try:
                os.ftruncate(fd, 0)
            finally:
                os.close(fd)

    def _refusal(self, holder: Mapping[str, Any] | None) -> str:
        if holder is None:
            return _one_line(f"database {self.database} is in use by another engine "
                             f"(lock file {self.path})")
        details = [f"pid {holder.get('pid', '?')} on host {holder.get('host', '?')}"]
        if holder.get("api_port") is not None:
            details.append(f"API port {holder['api_port']}")
        if holder.get("since"):
            details.append(f"since {holder['since']}")
        return _one_line(f"database {self.database} is in use by another engine "
                         f"({', '.join(details)})")


def _read_holder(fd: int, attempts: int = 20) -> Mapping[str, Any] | None:
    """The holder's JSON; retried briefly, as the holder may be between truncate and write."""
    for _ in range(attempts):
        try:
            holder = json.loads(os.pread(fd, 4096, 0))
        except ValueError:
            time.sleep(0.025)  # a worker thread, never the event loop
            continue
        return holder if isinstance(holder, dict) else None
    return None


# -- PostgreSQL: the lock connection -----------------------------------------------------------


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
            return await _bump(self.conn, portfolio_id, owner)

    async def token(self, portfolio_id: int) -> int | None:
        with anyio.fail_after(self._timeout):
            token = (await self.conn.execute(select(portfolios.c.lease_token).where(
                portfolios.c.id == portfolio_id))).scalar()
        return None if token is None else int(token)

    async def clear_owner(self, lease: Lease) -> None:
        with anyio.fail_after(self._timeout):
            await _clear_owner(self.conn, lease)

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
        except _LOST as err:
            log.debug("closing the lease connection: %s", err)


async def _bump(conn: AsyncConnection, portfolio_id: int, owner: str) -> int | None:
    """Take the portfolio's fencing token: +1, recorded with the owner; None: no portfolio."""
    token = (await conn.execute(
        update(portfolios).where(portfolios.c.id == portfolio_id)
        .values(lease_token=portfolios.c.lease_token + 1, lease_owner=owner)
        .returning(portfolios.c.lease_token))).scalar()
    await conn.commit()
    return None if token is None else int(token)


async def _clear_owner(conn: AsyncConnection, lease: Lease) -> None:
    """Forget the owner of a released lease, unless someone took the portfolio since."""
    await conn.execute(update(portfolios).where(
        portfolios.c.id == lease.portfolio_id, portfolios.c.lease_token == lease.token,
    ).values(lease_owner=None))
    await conn.commit()


# -- the manager -------------------------------------------------------------------------------


class LeaseManager:
    """This engine's leases on one database (see the module docstring for each store).

    ``owner`` is recorded in ``portfolios.lease_owner`` (default ``host:pid``, at most 128
    characters); ``api_port`` goes into the SQLite lock file for another engine's refusal
    message (also :meth:`set_api_port`). PostgreSQL: the keeper pings every ``check_interval``
    seconds and every database call on the lock connection is bounded by ``timeout`` seconds.
    ``on_lost(portfolio_id)`` is called (PostgreSQL only) when the keeper finds that a lease it
    held went to another engine while its connection was down; the engine stops that portfolio's
    runner. Database errors of :meth:`acquire` and :meth:`release` propagate; the lock connection
    is then discarded and the keeper restores it.
    """

    def __init__(self, engine: AsyncEngine, owner: str | None = None, *,
                 on_lost: Callable[[int], None] | None = None, api_port: int | None = None,
                 check_interval: float = 1.0, timeout: float = 5.0) -> None:
        self.owner = owner if owner is not None else default_owner()
        if not self.owner or len(self.owner) > OWNER_MAX:
            raise ConfigError(f"lease owner {self.owner!r}: 1 to {OWNER_MAX} characters")
        self._engine = engine
        self._on_lost = on_lost
        self._api_port = api_port
        self._interval = check_interval
        self._timeout = timeout
        self._postgres = engine.dialect.name == "postgresql"
        database = _database_file(engine)
        self._lock_file = None if database is None else _LockFile(database)
        self._since = _utc_now()
        self._held: dict[int, Lease] = {}
        self._conn: _LockConnection | None = None
        self._stale: list[_Session] = []  # abandoned sessions the server may still keep
        self._op = anyio.Lock()
        self._started = False
        self._closed = False

    @property
    def held(self) -> Mapping[int, Lease]:
        """The leases held, by portfolio id (a live read-only view)."""
        return MappingProxyType(self._held)

    @property
    def lock_file(self) -> Path | None:
        """The SQLite lock file (``<database>.lock``); None in memory and on PostgreSQL."""
        return None if self._lock_file is None else self._lock_file.path

    async def __aenter__(self) -> LeaseManager:
        await self.start()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.close()

    # -- lifecycle -----------------------------------------------------------------------------

    async def start(self) -> None:
        """Claim the database (SQLite file: :class:`LeaseHeld` if another engine has it) or open
        the lock connection (PostgreSQL)."""
        if self._closed:
            raise RuntimeError("this lease manager is closed")
        if self._started:
            return
        self._since = _utc_now()
        if self._lock_file is not None:
            await anyio.to_thread.run_sync(self._lock_file.take, self._info())
        elif self._postgres:
            async with self._op:
                self._conn = await _LockConnection.open(self._engine, self._timeout)
        self._started = True
        log.info("leases started as %s", self.owner)

    async def set_api_port(self, port: int | None) -> None:
        """Where this engine's API listens, for another engine's refusal message."""
        async with self._op:  # never racing close() for the descriptor
            self._api_port = port
            if self._lock_file is not None and self._started and not self._closed:
                await anyio.to_thread.run_sync(self._lock_file.write, self._info())

    async def close(self) -> None:
        """Release every lease, close the lock connection, release the database file's lock.
        Shielded from cancellation and bounded; idempotent."""
        with anyio.CancelScope(shield=True):
            async with self._op:
                if self._closed:
                    return
                self._closed = True
                leases = list(self._held.values())
                self._held.clear()
                try:
                    if self._postgres:
                        await self._close_postgres()
                    await self._clear_owners(leases)
                finally:
                    if self._lock_file is not None:
                        await anyio.to_thread.run_sync(self._lock_file.drop)

    # -- leases --------------------------------------------------------------------------------

    async def acquire(self, portfolio_id: int) -> Lease | None:
        """Take the portfolio's lease and bump its fencing token; None if another engine holds
        it. Already held: the same lease. :class:`~lts.errors.Conflict` for an unknown
        portfolio."""
        self._check_open()
        async with self._op:
            lease = self._held.get(portfolio_id)
            if lease is not None:
                return lease
            token = await (self._take_postgres(portfolio_id) if self._postgres
                           else self._take_sqlite(portfolio_id))
            if token is None:
                return None
            lease = self._held[portfolio_id] = Lease(portfolio_id, token, self.owner)
            log.info("lease of portfolio %d taken (token %d)", portfolio_id, token)
            return lease

    async def holder(self, portfolio_id: int) -> str | None:
        """The owner recorded by the engine that took the portfolio last (``host:pid``); None
        when it was released or never taken."""
        async with self._engine.connect() as conn:
            owner = (await conn.execute(select(portfolios.c.lease_owner).where(
                portfolios.c.id == portfolio_id))).scalar()
        return None if owner is None else str(owner)

    async def release(self, portfolio_id: int) -> None:
        """Give the lease up (a no-op when not held)."""
        async with self._op:
            lease = self._held.pop(portfolio_id, None)
            if lease is None:
                return
            if self._postgres:
                await self._release_postgres(lease)
            else:
                await self._clear_owners([lease])
            log.info("lease of portfolio %d released", portfolio_id)

    # -- the keeper ----------------------------------------------------------------------------

    async def run(self, *,
                  task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """The keeper (PostgreSQL): checks the lock connection every ``check_interval`` and
        restores it and its leases when it is lost. Returns once the manager is closed; on
        SQLite it only waits (nothing can take the file lock from a live process)."""
        self._check_open()
        task_status.started()
        if not self._postgres:
            await anyio.sleep_forever()
        failures = 0
        while not self._closed:
            await anyio.sleep(self._pause(failures))
            failures = 0 if await self._keep() else failures + 1

    def _pause(self, failures: int) -> float:
        """Until the next check: ``check_interval`` while healthy, else a doubling backoff."""
        if failures == 0:
            return self._interval
        return float(min(RECONNECT_MIN * 2 ** (failures - 1), RECONNECT_MAX))

    async def _keep(self) -> bool:
        """One check; True when the lock connection is up (again)."""
        async with self._op:
            if self._closed:
                return True
            if self._conn is not None:
                try:
                    await self._conn.ping()
                    return True
                except _LOST as err:
                    log.warning("lease connection lost (%s); reconnecting", _why(err))
                    await self._abandon()
            try:
                await self._restore()
            except _LOST as err:
                log.warning("lease connection: reconnecting failed (%s)", _why(err))
                return False
            return True

    # -- PostgreSQL ----------------------------------------------------------------------------

    async def _live(self) -> _LockConnection:
        if self._conn is None:
            await self._restore()
        assert self._conn is not None
        return self._conn

    async def _take_postgres(self, portfolio_id: int) -> int | None:
        conn = await self._live()
        try:
            if not await conn.try_lock(portfolio_id):
                return None
            token = await conn.bump(portfolio_id, self.owner)
            if token is None:
                await conn.unlock(portfolio_id)
        except _LOST:
            await self._abandon()
            raise
        if token is None:
            raise Conflict(f"portfolio {portfolio_id} does not exist")
        return token

    async def _release_postgres(self, lease: Lease) -> None:
        if self._conn is None:
            return  # the session is gone and its locks with it (a stale one is evicted later)
        try:
            await self._conn.clear_owner(lease)
            await self._conn.unlock(lease.portfolio_id)
        except _LOST as err:
            log.warning("lease of portfolio %d: unlock failed (%s); dropping the connection",
                        lease.portfolio_id, _why(err))
            await self._abandon()

    async def _close_postgres(self) -> None:
        """End the lock session (its locks go with it) and any abandoned one still running."""
        try:
            conn = self._conn or (await self._open_for_eviction() if self._stale else None)
            self._conn = conn
            if conn is not None:
                await self._evict_stale(conn)
        except _LOST as err:
            log.warning("closing leases: %s", _why(err))
        finally:
            if self._conn is not None:
                await self._conn.discard()
                self._conn = None

    async def _open_for_eviction(self) -> _LockConnection | None:
        try:
            return await _LockConnection.open(self._engine, self._timeout)
        except _LOST as err:
            log.warning("closing leases: cannot reach the database to end stale sessions (%s)",
                        _why(err))
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
        except _LOST:
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

    # -- SQLite --------------------------------------------------------------------------------

    async def _take_sqlite(self, portfolio_id: int) -> int:
        async with self._engine.connect() as conn:
            token = await _bump(conn, portfolio_id, self.owner)
        if token is None:
            raise Conflict(f"portfolio {portfolio_id} does not exist")
        return token

    async def _clear_owners(self, leases: list[Lease]) -> None:
        """Best effort, bounded: a recorded owner is only what the operator reads."""
        if not leases:
            return
        try:
            with anyio.fail_after(self._timeout):
                async with self._engine.connect() as conn:
                    for lease in leases:
                        await _clear_owner(conn, lease)
        except _LOST as err:
            log.warning("releasing leases: %s", _why(err))

    # -- helpers -------------------------------------------------------------------------------

    def _check_open(self) -> None:
        if not self._started or self._closed:
            raise RuntimeError("the lease manager is not running: start() first, not after "
                               "close()")

    def _info(self) -> dict[str, object]:
        return {"pid": os.getpid(), "host": socket.gethostname(), "owner": self.owner,
                "since": self._since, "api_port": self._api_port}


def _why(err: BaseException) -> str:
    return _one_line(str(err).split("\n", 1)[0]) or type(err).__name__
