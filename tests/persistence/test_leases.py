"""Leases: which engine may trade which portfolio (:mod:`lts.persistence.leases`).

Real components only: SQLite files, the PostgreSQL server, other engines as real processes
(``_lease_holder.py``) killed with SIGKILL, connections ended from outside with
``pg_terminate_backend``, a network partition made by a TCP relay that stops forwarding
without closing anything. Waits poll a condition until a deadline; nothing asserts on time.
"""

import contextlib
import json
import os
import signal
import socket
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from decimal import Decimal
from pathlib import Path

import anyio
import anyio.abc
import pytest
from sqlalchemy import insert, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from lts.errors import Conflict, LeaseHeld
from lts.persistence.db import make_engine
from lts.persistence.leases import LOCK_NAMESPACE, Lease, LeaseManager
from lts.persistence.tables import metadata, portfolios

pytestmark = pytest.mark.anyio

ON_SQLITE = pytest.mark.parametrize("backend", ["sqlite"])
ON_POSTGRES = pytest.mark.parametrize(
    "backend", [pytest.param("postgresql", marks=pytest.mark.postgres)])

#: Bound of every wait (running out fails the test with what it waited for).
WAIT = 20.0
HOLDER = Path(__file__).with_name("_lease_holder.py")
ROOT = Path(__file__).resolve().parents[2]


async def until(check: Callable[[], Awaitable[bool]], what: str) -> None:
    with anyio.move_on_after(WAIT) as scope:
        while not await check():  # noqa: ASYNC110 - polls another process or the server
            await anyio.sleep(0.02)
    if scope.cancelled_caught:
        pytest.fail(f"timed out waiting for {what}")


async def add_portfolios(engine: AsyncEngine, count: int) -> list[int]:
    async with engine.begin() as conn:
        rows = await conn.execute(insert(portfolios).returning(portfolios.c.id), [
            {"name": f"p{i}", "initial_cash": Decimal(1000)} for i in range(count)])
        return sorted(int(r) for r in rows.scalars())


async def stored(engine: AsyncEngine, portfolio_id: int) -> tuple[int, str | None]:
    """The portfolio's ``(lease_token, lease_owner)``."""
    async with engine.connect() as conn:
        row = (await conn.execute(select(portfolios.c.lease_token, portfolios.c.lease_owner)
                                  .where(portfolios.c.id == portfolio_id))).one()
    return int(row[0]), row[1]


# -- engines in processes of their own --------------------------------------------------------


class Holder:
    """A ``_lease_holder.py`` process and what it printed."""

    def __init__(self, process: anyio.abc.Process, report: dict[str, object]) -> None:
        self.process = process
        self.report = report

    @property
    def tokens(self) -> dict[int, int | None]:
        tokens = self.report["tokens"]
        assert isinstance(tokens, dict)
        return {int(k): v for k, v in tokens.items()}

    async def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        await self.process.wait()


async def read_line(stream: anyio.abc.ByteReceiveStream) -> bytes:
    data = b""
    with anyio.fail_after(WAIT):
        while not data.endswith(b"\n"):
            data += await stream.receive()
    return data


@contextlib.asynccontextmanager
async def holder(url: str, *portfolio_ids: int) -> AsyncIterator[Holder]:
    """A lease holder process that has started and acquired ``portfolio_ids``."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])}
    process = await anyio.open_process(
        [sys.executable, str(HOLDER), url, *map(str, portfolio_ids)], env=env,
        stdin=None, stderr=None)
    try:
        assert process.stdout is not None
        yield Holder(process, json.loads(await read_line(process.stdout)))
    finally:
        if process.returncode is None:
            process.kill()
        with anyio.CancelScope(shield=True):
            await process.aclose()


# -- SQLite ------------------------------------------------------------------------------------


@ON_SQLITE
async def test_sqlite_a_second_engine_is_refused_with_one_line_naming_the_holder(
        migrated_url: str) -> None:
    """SYS-013: one engine per SQLite database; the second refuses to start and says who has
    it (pid, host, API port, since)."""
    database = make_url(migrated_url).database
    async with holder(migrated_url) as other:
        engine = make_engine(migrated_url)
        try:
            with pytest.raises(LeaseHeld) as refused:
                await LeaseManager(engine).start()
        finally:
            await engine.dispose()
    message = str(refused.value)
    assert "\n" not in message
    assert message.startswith(f"database {database} is in use by another engine (pid "
                              f"{other.process.pid} on host {socket.gethostname()}, "
                              "API port 8123, since ")
    assert message.endswith("Z)")


@ON_SQLITE
async def test_sqlite_a_killed_engine_frees_the_database_at_once(migrated_url: str,
                                                                 migrated_engine: AsyncEngine,
                                                                 ) -> None:
    """SYS-011: the restart of a SIGKILLed engine starts at once (the kernel dropped its lock;
    nothing expires) and takes its portfolio with a higher token."""
    (pid,) = await add_portfolios(migrated_engine, 1)
    async with holder(migrated_url, pid) as killed:
        assert killed.tokens == {pid: 1}
        await killed.kill()
    restarted = LeaseManager(migrated_engine, "restarted")

    async def starts() -> bool:
        try:
            await restarted.start()
        except LeaseHeld:
            return False
        return True

    await until(starts, "the restarted engine to start")
    try:
        assert await restarted.acquire(pid) == Lease(pid, 2, "restarted")
    finally:
        await restarted.close()


@ON_SQLITE
async def test_sqlite_a_second_manager_in_the_same_process_is_refused(
        migrated_engine: AsyncEngine) -> None:
    """SYS-013: the lock is per open file, so two managers in one process exclude each other
    too; closing the first lets the second start."""
    first, second = LeaseManager(migrated_engine), LeaseManager(migrated_engine)
    await first.start()
    assert first.lock_file is not None
    assert first.lock_file.exists()
    with pytest.raises(LeaseHeld, match=f"pid {os.getpid()} on host "):
        await second.start()
    await first.close()
    await second.start()
    await second.close()


async def test_sqlite_in_memory_takes_no_lock() -> None:
    engine = create_async_engine("sqlite+aiosqlite:///:memory:")
    try:
        async with engine.begin() as conn:
            await conn.run_sync(metadata.create_all)
        (pid,) = await add_portfolios(engine, 1)
        async with LeaseManager(engine, "one") as one, LeaseManager(engine, "two") as two:
            assert one.lock_file is None
            assert await one.acquire(pid) == Lease(pid, 1, "one")
            assert await two.acquire(pid) == Lease(pid, 2, "two")
    finally:
        await engine.dispose()


# -- both stores -------------------------------------------------------------------------------


async def test_taking_a_lease_bumps_the_token_and_records_the_owner(
        migrated_engine: AsyncEngine) -> None:
    """SYS-013: every take bumps the fencing token; the same lease while held; release forgets
    the owner; close releases everything."""
    first, second = await add_portfolios(migrated_engine, 2)
    async with LeaseManager(migrated_engine, "engine-a") as leases:
        lease = await leases.acquire(first)
        assert lease == Lease(first, 1, "engine-a")
        assert await leases.acquire(first) is lease
        assert await stored(migrated_engine, first) == (1, "engine-a")
        assert await leases.holder(first) == "engine-a"
        await leases.release(first)
        await leases.release(first)
        assert await leases.holder(first) is None
        assert await leases.acquire(first) == Lease(first, 2, "engine-a")
        assert await leases.acquire(second) == Lease(second, 1, "engine-a")
        assert dict(leases.held) == {first: Lease(first, 2, "engine-a"),
                                     second: Lease(second, 1, "engine-a")}
    assert leases.held == {}
    assert await stored(migrated_engine, first) == (2, None)
    assert await stored(migrated_engine, second) == (1, None)


async def test_an_unknown_portfolio_is_a_conflict(migrated_engine: AsyncEngine,
                                                  backend: str) -> None:
    async with LeaseManager(migrated_engine) as leases:
        with pytest.raises(Conflict, match="portfolio 999 does not exist"):
            await leases.acquire(999)
        assert leases.held == {}
        if backend == "postgresql":
            assert await lock_holder(migrated_engine, 999) is None


# -- PostgreSQL: helpers -----------------------------------------------------------------------


async def lock_holder(engine: AsyncEngine, portfolio_id: int) -> int | None:
    """The backend pid holding the portfolio's advisory lock, seen from outside."""
    async with engine.connect() as conn:
        pid = (await conn.execute(text(
            "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted "
            "AND database = (SELECT oid FROM pg_database WHERE datname = current_database()) "
            "AND classid = :ns AND objid = :id AND objsubid = 2"),
            {"ns": LOCK_NAMESPACE, "id": portfolio_id})).scalar()
    return None if pid is None else int(pid)


async def terminate(engine: AsyncEngine, backend_pid: int) -> None:
    async with engine.connect() as conn:
        assert (await conn.execute(text("SELECT pg_terminate_backend(:pid)"),
                                   {"pid": backend_pid})).scalar()


async def session_exists(engine: AsyncEngine, backend_pid: int) -> bool:
    async with engine.connect() as conn:
        return bool((await conn.execute(text(
            "SELECT count(*) FROM pg_stat_activity WHERE pid = :pid"),
            {"pid": backend_pid})).scalar())


@pytest.fixture
async def other_engine(migrated_url: str) -> AsyncIterator[AsyncEngine]:
    """A second engine on the same database: another LTS process, or an operator's psql."""
    engine = make_engine(migrated_url)
    try:
        yield engine
    finally:
        await engine.dispose()


@contextlib.asynccontextmanager
async def keeping(leases: LeaseManager) -> AsyncIterator[None]:
    """The manager's keeper running, as in the engine's task group."""
    async with anyio.create_task_group() as tg:
        await tg.start(leases.run)
        yield
        tg.cancel_scope.cancel()


# -- PostgreSQL: sharing a database ------------------------------------------------------------


@ON_POSTGRES
async def test_each_portfolio_goes_to_exactly_one_engine(migrated_engine: AsyncEngine,
                                                         other_engine: AsyncEngine) -> None:
    """SYS-013: engines sharing a database split the portfolios; a portfolio is never traded
    by two."""
    pids = await add_portfolios(migrated_engine, 6)
    won: dict[str, list[Lease | None]] = {}
    async with LeaseManager(migrated_engine, "engine-a") as a, \
            LeaseManager(other_engine, "engine-b") as b:

        async def take_all(leases: LeaseManager) -> None:
            won[leases.owner] = [await leases.acquire(pid) for pid in pids]

        async with anyio.create_task_group() as tg:
            tg.start_soon(take_all, a)
            tg.start_soon(take_all, b)
        for i, pid in enumerate(pids):
            winners = [owner for owner, leases in won.items() if leases[i] is not None]
            assert len(winners) == 1, (pid, winners)
            assert await a.holder(pid) == winners[0]
            assert await stored(migrated_engine, pid) == (1, winners[0])
        assert len(a.held) + len(b.held) == len(pids)


@ON_POSTGRES
async def test_a_released_lease_goes_to_the_other_engine_with_a_higher_token(
        migrated_engine: AsyncEngine, other_engine: AsyncEngine) -> None:
    """SYS-013: release (and close) free a portfolio for another engine, whose take bumps the
    token so the first engine's writes would be fenced off."""
    first, second = await add_portfolios(migrated_engine, 2)
    async with LeaseManager(other_engine, "engine-b") as b:
        async with LeaseManager(migrated_engine, "engine-a") as a:
            assert await a.acquire(first) == Lease(first, 1, "engine-a")
            assert await a.acquire(second) == Lease(second, 1, "engine-a")
            assert await b.acquire(first) is None
            assert await b.holder(first) == "engine-a"
            await a.release(first)
            assert await b.acquire(first) == Lease(first, 2, "engine-b")
            assert await a.acquire(first) is None
            assert await b.acquire(second) is None
        assert await b.acquire(second) == Lease(second, 2, "engine-b")


@ON_POSTGRES
async def test_a_killed_engine_leases_go_to_the_other_engine(migrated_url: str,
                                                             migrated_engine: AsyncEngine) -> None:
    """SYS-011: a SIGKILLed engine's session ends with it, so another engine takes its
    portfolios at once (nothing to expire), with higher tokens."""
    pids = await add_portfolios(migrated_engine, 2)
    async with LeaseManager(migrated_engine, "survivor") as survivor, \
            holder(migrated_url, *pids) as killed:
        assert killed.tokens == dict.fromkeys(pids, 1)
        assert await survivor.acquire(pids[0]) is None
        assert await survivor.holder(pids[0]) == (f"{socket.gethostname()}:"
                                                  f"{killed.process.pid}")
        await killed.kill()

        async def took_all() -> bool:
            return all([await survivor.acquire(pid) is not None for pid in pids])

        await until(took_all, "the survivor to take the killed engine's portfolios")
        assert dict(survivor.held) == {pid: Lease(pid, 2, "survivor") for pid in pids}


# -- PostgreSQL: the keeper --------------------------------------------------------------------


@ON_POSTGRES
async def test_the_keeper_retakes_the_leases_with_the_same_tokens_after_a_lost_connection(
        migrated_engine: AsyncEngine, other_engine: AsyncEngine) -> None:
    """SYS-011: the lock connection's session is ended from outside (a server restart, an
    operator); the keeper reconnects and takes every lease back with the SAME token, so the
    journal's queued writes still pass; meanwhile nobody else could keep them."""
    pids = await add_portfolios(migrated_engine, 2)
    lost: list[int] = []
    async with LeaseManager(migrated_engine, "engine-a", on_lost=lost.append,
                            check_interval=0.05) as a, keeping(a):
        before = [await a.acquire(pid) for pid in pids]
        session = await lock_holder(other_engine, pids[0])
        assert session is not None
        await terminate(other_engine, session)

        async def retaken() -> bool:
            holders = {await lock_holder(other_engine, pid) for pid in pids}
            return None not in holders and session not in holders

        await until(retaken, "the keeper to take the leases back")
        assert [a.held[pid] for pid in pids] == before
        assert [await stored(other_engine, pid) for pid in pids] == [(1, "engine-a")] * 2
        async with LeaseManager(other_engine, "engine-b") as b:
            assert await b.acquire(pids[0]) is None
    assert lost == []


@ON_POSTGRES
@pytest.mark.parametrize("other_keeps_it", [True, False], ids=["still-held", "released"])
async def test_the_keeper_reports_a_lease_another_engine_took_meanwhile(
        migrated_engine: AsyncEngine, other_engine: AsyncEngine, other_keeps_it: bool) -> None:
    """SYS-011, SYS-013: while the lock connection was down another engine took a portfolio
    (its token moved on, whether or not it still holds it): the keeper drops that lease and
    calls on_lost; the untouched lease is kept with its token."""
    taken, untouched = await add_portfolios(migrated_engine, 2)
    lost: list[int] = []
    async with LeaseManager(migrated_engine, "engine-a", on_lost=lost.append,
                            check_interval=0.05) as a, \
            LeaseManager(other_engine, "engine-b") as b:
        await a.acquire(taken)
        kept = await a.acquire(untouched)
        session = await lock_holder(other_engine, taken)
        assert session is not None
        await terminate(other_engine, session)

        async def b_took_it() -> bool:
            return await b.acquire(taken) is not None

        await until(b_took_it, "engine-b to take the portfolio")
        assert b.held[taken].token == 2
        if not other_keeps_it:
            await b.release(taken)
        async with keeping(a):

            async def reported() -> bool:
                return bool(lost)

            await until(reported, "on_lost")
            await until(lambda: _retaken(other_engine, untouched, session),
                        "the untouched lease to be taken back")
        assert lost == [taken]
        assert dict(a.held) == {untouched: kept}
        assert await a.acquire(taken) == (None if other_keeps_it else Lease(taken, 3, "engine-a"))


async def _retaken(engine: AsyncEngine, portfolio_id: int, old_session: int) -> bool:
    session = await lock_holder(engine, portfolio_id)
    return session is not None and session != old_session


# -- PostgreSQL: a network partition ------------------------------------------------------------


class Relay:
    """A TCP relay to PostgreSQL. :meth:`partition` makes every open link stop forwarding
    without closing anything (neither end sees the connection drop: the server keeps the
    session and its locks); while ``refusing`` it closes new links at once (the database is
    unreachable). Links opened later work."""

    def __init__(self, port: int) -> None:
        self.target_port = port
        self.generation = 0
        self.refusing = False
        self.refused = 0

    async def serve(self, *, task_status: anyio.abc.TaskStatus[int]) -> None:
        listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
        async with listener:
            task_status.started(listener.extra(anyio.abc.SocketAttribute.local_port))
            await listener.serve(self._link)

    def partition(self) -> None:
        self.generation += 1

    async def _link(self, client: anyio.abc.SocketStream) -> None:
        async with client:
            if self.refusing:
                self.refused += 1
                return
            generation = self.generation
            async with await anyio.connect_tcp("127.0.0.1", self.target_port) as server, \
                    anyio.create_task_group() as tg:
                tg.start_soon(self._pipe, client, server, generation, tg.cancel_scope)
                tg.start_soon(self._pipe, server, client, generation, tg.cancel_scope)

    async def _pipe(self, source: anyio.abc.SocketStream, sink: anyio.abc.SocketStream,
                    generation: int, link: anyio.CancelScope) -> None:
        with contextlib.suppress(anyio.BrokenResourceError, anyio.ClosedResourceError):
            async for chunk in source:
                if generation == self.generation:
                    await sink.send(chunk)
        if generation != self.generation:
            await anyio.sleep_forever()  # cut: the other end never hears of the close
        link.cancel()


@ON_POSTGRES
async def test_the_keeper_ends_its_abandoned_session_after_a_partition(
        migrated_url: str, migrated_engine: AsyncEngine, other_engine: AsyncEngine) -> None:
    """SYS-011: the network to the database is cut without either end noticing, then the
    database is unreachable for a while. The stale session still holds the lock, so no other
    engine can take the portfolio; the keeper retries with a backoff and, once through, ends
    its abandoned session and takes the lease back with the same token."""
    (pid,) = await add_portfolios(migrated_engine, 1)
    relay = Relay(make_url(migrated_url).port or 5432)
    lost: list[int] = []
    async with anyio.create_task_group() as tg:
        port = await tg.start(relay.serve)
        engine = make_engine(make_url(migrated_url).set(host="127.0.0.1", port=port)
                             .render_as_string(hide_password=False))
        try:
            async with LeaseManager(engine, "engine-a", on_lost=lost.append,
                                    check_interval=0.05, timeout=1.0) as a, keeping(a):
                lease = await a.acquire(pid)
                stale = await lock_holder(other_engine, pid)
                assert stale is not None
                relay.refusing = True
                relay.partition()

                async def retried() -> bool:
                    return relay.refused >= 3

                await until(retried, "the keeper to retry the unreachable database")
                async with LeaseManager(other_engine, "engine-b") as b:
                    assert await b.acquire(pid) is None
                relay.refusing = False
                await until(lambda: _retaken(other_engine, pid, stale),
                            "the keeper to take the lease back")
                assert not await session_exists(other_engine, stale)
                assert a.held[pid] == lease
                assert await stored(other_engine, pid) == (lease.token, "engine-a")
        finally:
            await engine.dispose()
        tg.cancel_scope.cancel()
    assert lost == []
