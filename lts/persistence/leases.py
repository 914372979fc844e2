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

Where the parts live: this module is the front (:class:`LeaseManager`, with :class:`Lease` and
:data:`LOCK_NAMESPACE` importable from here); :mod:`~lts.persistence.lease_file` has the SQLite
lock file, :mod:`~lts.persistence.lease_locks` the PostgreSQL advisory locks and the keeper's
check, :mod:`~lts.persistence.lease_tokens` the lease and what taking and releasing it write in
``portfolios``.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from types import MappingProxyType, TracebackType
from typing import Final

import anyio
import anyio.abc
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from lts.errors import ConfigError, Conflict
from lts.persistence.lease_file import LockFile, database_file
from lts.persistence.lease_locks import LOCK_NAMESPACE, AdvisoryLocks
from lts.persistence.lease_tokens import LOST, Lease, bump_token, clear_owner, why
from lts.persistence.tables import portfolios

__all__ = ["LOCK_NAMESPACE", "Lease", "LeaseManager", "default_owner"]

log = logging.getLogger("lts.leases")

OWNER_MAX: Final = 128  # portfolios.lease_owner is VARCHAR(128)
RECONNECT_MIN: Final = 0.1
RECONNECT_MAX: Final = 5.0


def default_owner() -> str:
    """``host:pid``: who holds a lease, as the operator reads it."""
    return f"{socket.gethostname()}:{os.getpid()}"


def _utc_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


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
        self._api_port = api_port
        self._interval = check_interval
        self._timeout = timeout
        self._held: dict[int, Lease] = {}
        database = database_file(engine)
        self._lock_file = None if database is None else LockFile(database)
        self._locks = (AdvisoryLocks(engine, self._held, on_lost=on_lost, timeout=timeout)
                       if engine.dialect.name == "postgresql" else None)
        self._since = _utc_now()
        self._op = anyio.Lock()
        self._started = False
        self._closed = False
        #: SQLite: every portfolio's token, bumped in one statement at start (the file is this
        #: engine's alone), handed out by acquire without a write each
        self._file_tokens: dict[int, int] = {}

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
            self._file_tokens = await self._bump_all()
        elif self._locks is not None:
            async with self._op:
                await self._locks.open()
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
                    if self._locks is not None:
                        await self._locks.close()
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
            token = await (self._locks.take(portfolio_id, self.owner) if self._locks is not None
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
            if self._locks is not None:
                await self._locks.release(lease)
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
        locks = self._locks
        if locks is None:
            await anyio.sleep_forever()
            return
        failures = 0
        while not self._closed:
            await anyio.sleep(self._pause(failures))
            failures = 0 if await self._keep(locks) else failures + 1

    def _pause(self, failures: int) -> float:
        """Until the next check: ``check_interval`` while healthy, else a doubling backoff."""
        if failures == 0:
            return self._interval
        return float(min(RECONNECT_MIN * 2 ** (failures - 1), RECONNECT_MAX))

    async def _keep(self, locks: AdvisoryLocks) -> bool:
        """One check, between the other operations; True when the lock connection is up
        (again)."""
        async with self._op:
            if self._closed:
                return True
            return await locks.check()

    # -- SQLite --------------------------------------------------------------------------------

    async def _bump_all(self) -> dict[int, int]:
        """Every portfolio's token bumped, in one transaction (SQLite, under the file lock)."""
        async with self._engine.begin() as conn:
            rows = await conn.execute(
                update(portfolios).values(lease_token=portfolios.c.lease_token + 1,
                                          lease_owner=self.owner)
                .returning(portfolios.c.id, portfolios.c.lease_token))
            return {int(pid): int(token) for pid, token in rows}

    async def _take_sqlite(self, portfolio_id: int) -> int:
        token = self._file_tokens.pop(portfolio_id, None)
        if token is not None:  # bumped at start: no write per portfolio
            return token
        async with self._engine.connect() as conn:
            token = await bump_token(conn, portfolio_id, self.owner)
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
                        await clear_owner(conn, lease)
        except LOST as err:
            log.warning("releasing leases: %s", why(err))

    # -- helpers -------------------------------------------------------------------------------

    def _check_open(self) -> None:
        if not self._started or self._closed:
            raise RuntimeError("the lease manager is not running: start() first, not after "
                               "close()")

    def _info(self) -> dict[str, object]:
        return {"pid": os.getpid(), "host": socket.gethostname(), "owner": self.owner,
                "since": self._since, "api_port": self._api_port}
