"""The journal when the database cannot write: it holds and retries, fails nothing, and writes
every record exactly once when the database is back.

Real outages only: a private PostgreSQL server stopped and started (``pg_cluster``: the shared
server on 5432 serves the other workers), a TCP proxy that cuts the connection around a
``COMMIT``, a SQLite file on a small tmpfs filled up (mounting needs root: skipped otherwise),
and a port nothing listens on.
"""

import asyncio
import errno
import logging
import os
import re
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Literal

import anyio
import anyio.lowlevel
import anyio.to_thread
import pytest
from pg_cluster import PgCluster
from sqlalchemy import func, insert, select
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine
from test_journal import (
    audit_row,
    count,
    fill_row,
    free_port,
    order_row,
    position_row,
    postgres_only,
    until,
)

from lts.errors import JournalUnavailable
from lts.persistence.db import make_engine
from lts.persistence.journal import Journal
from lts.persistence.migrations import upgrade_to_head
from lts.persistence.tables import audit_logs, fills, order_events, orders, portfolios, positions

pytestmark = pytest.mark.anyio

LOGGER = "lts.persistence.journal"


async def add_portfolio(engine: AsyncEngine) -> None:
    async with engine.begin() as connection:
        await connection.execute(insert(portfolios), {"name": "p1", "initial_cash": Decimal(1)})


class Producers:
    """Producers that keep enqueueing (fire and forget) until stopped: per step an order, its
    fill (and position), an order event and an audit row, all distinct."""

    def __init__(self, journal: Journal) -> None:
        self.journal = journal
        self.futures: list[asyncio.Future[None]] = []
        self.coids: list[str] = []
        self._stop = anyio.Event()
        self._seq = 0

    def step(self, p: int, i: int) -> None:
        coid = f"p{p}-{i}"
        self._seq += 1
        self.coids.append(coid)
        quantity = Decimal("0.25") * len(self.coids)
        self.futures += [
            self.journal.insert_order(order_row(coid)),
            self.journal.insert_fill(fill_row(coid, coid, ts=self._seq),
                                     position_row(str(quantity), "0.01", self._seq)),
            self.journal.insert_order_event({
                "portfolio_id": 1, "seq": self._seq, "type": "OrderSubmitted",
                "client_order_id": coid, "payload": {"i": i}, "ts_event": self._seq}),
            self.journal.insert_audit(audit_row(coid)),
        ]

    async def run(self, p: int) -> None:
        i = 0
        while not self._stop.is_set():
            self.step(p, i)
            i += 1
            await anyio.sleep(0.002)  # a producer's pace, not a wait for a condition

    def stop(self) -> None:
        self._stop.set()

    def failed(self) -> list[BaseException]:
        return [e for f in self.futures if f.done() and (e := f.exception()) is not None]


async def assert_written_once(engine: AsyncEngine, coids: list[str]) -> None:
    """Every order, fill, event and audit row exactly once; the position sums the fills."""
    async with engine.connect() as connection:
        for table, column in [(orders, orders.c.client_order_id), (fills, fills.c.trade_id),
                              (order_events, order_events.c.client_order_id),
                              (audit_logs, audit_logs.c.target)]:
            found = list((await connection.execute(select(column))).scalars())
            assert len(found) == len(coids), table.name
            assert sorted(found) == sorted(coids), table.name
        quantity = (await connection.execute(
            select(func.sum(positions.c.quantity)))).scalar_one()
    assert Decimal(quantity) == Decimal("0.25") * len(coids)


def transitions(caplog: pytest.LogCaptureFixture) -> list[tuple[str, str]]:
    return [(r.levelname, r.getMessage()) for r in caplog.records
            if r.name == LOGGER and r.levelno >= logging.INFO]


# -- PostgreSQL stopped and started -------------------------------------------------------------

@pytest.mark.postgres
async def test_a_postgresql_outage_holds_everything_and_writes_it_once(
        pg_cluster: PgCluster, caplog: pytest.LogCaptureFixture) -> None:
    url = await anyio.to_thread.run_sync(pg_cluster.create_database, "lts")
    await upgrade_to_head(url)
    engine = make_engine(url)
    journal = Journal(engine)
    producers = Producers(journal)
    caplog.set_level(logging.INFO, logger=LOGGER)
    try:
        await add_portfolio(engine)
        async with anyio.create_task_group() as tg:
            await tg.start(journal.run)
            for p in range(2):
                tg.start_soon(producers.run, p)
            await until(lambda: journal.records_written >= 200, 10, "writes before the outage")

            await anyio.to_thread.run_sync(pg_cluster.stop)
            await until(lambda: not journal.available, 10, "the journal notices the outage")
            reason = journal.unavailable_reason
            assert reason is not None
            assert reason.startswith(("connection lost: ", "database unreachable: ",
                                      "database starting up or shutting down")), reason
            assert journal.unavailable_since is not None
            held_from = len(producers.futures)
            await until(lambda: time.monotonic() - (journal.unavailable_since or 0) >= 3
                        and len(producers.futures) > held_from + 400, 20,
                        "three seconds of outage while producers go on")
            assert producers.failed() == []
            assert not journal.available

            await anyio.to_thread.run_sync(pg_cluster.start)
            producers.stop()
            with anyio.fail_after(2):  # the contract: queued records commit within 2 s
                await journal.flush()
            await journal.wait_available()
            tg.cancel_scope.cancel()
        assert producers.failed() == []
        assert all(f.done() for f in producers.futures)
        assert journal.available
        assert journal.unavailable_reason is None
        assert journal.unavailable_since is None
        await assert_written_once(engine, producers.coids)
    finally:
        await engine.dispose()
    levels = [level for level, message in transitions(caplog)]
    assert levels == ["WARNING", "INFO"], transitions(caplog)  # once each, not per retry


@pytest.mark.postgres
async def test_stopping_while_the_database_is_down_fails_what_is_left(
        pg_cluster: PgCluster) -> None:
    url = await anyio.to_thread.run_sync(pg_cluster.create_database, "lts")
    await upgrade_to_head(url)
    engine = make_engine(url)
    journal = Journal(engine, stop_timeout=0.3)
    try:
        await add_portfolio(engine)
        async with anyio.create_task_group() as tg:
            await tg.start(journal.run)
            await journal.insert_order(order_row("before"))
            await anyio.to_thread.run_sync(pg_cluster.stop)
            pending = [journal.insert_order(order_row(f"c{i}")) for i in range(10)]
            await until(lambda: not journal.available, 10, "the journal notices the outage")
            tg.cancel_scope.cancel()
        assert all(isinstance(f.exception(), JournalUnavailable) for f in pending)
        assert journal.backlog == 0
    finally:
        await engine.dispose()


async def test_an_unreachable_database_holds_then_fails_only_when_stopping() -> None:
    engine = make_engine(f"postgresql+asyncpg://postgres@127.0.0.1:{free_port()}/none")
    journal = Journal(engine, stop_timeout=0.2)
    try:
        async with anyio.create_task_group() as tg:
            await tg.start(journal.run)
            future = journal.insert_order(order_row("c1"))
            await until(lambda: not journal.available, 10, "unavailable")
            assert journal.unavailable_reason == "database unreachable: ConnectionRefusedError"
            assert not future.done()
            waiter = asyncio.ensure_future(journal.wait_available())
            await anyio.lowlevel.checkpoint()
            assert not waiter.done()
            waiter.cancel()
            tg.cancel_scope.cancel()
        with pytest.raises(JournalUnavailable, match="ConnectionRefusedError"):
            await future
    finally:
        await engine.dispose()


# -- a COMMIT cut off ---------------------------------------------------------------------------

Cut = Literal["the answer", "the request"]
# The simple-query message COMMIT (asyncpg's Transaction.commit), not BEGIN ... READ COMMITTED.
_COMMIT = re.compile(rb"Q.{4}COMMIT;?\x00", re.DOTALL)


class CommitCutter:
    """A TCP proxy to PostgreSQL that, when armed, cuts the next connection sending ``COMMIT``:
    after the server has answered, before the client gets the answer ("the answer": the
    transaction committed, the client cannot know), or before the server gets it ("the
    request": the transaction is rolled back)."""

    def __init__(self, host: str, port: int) -> None:
        self._upstream = (host, port)
        self._server: asyncio.Server | None = None
        self.armed: Cut | None = None
        self.cuts = 0
        self.port = 0

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = int(self._server.sockets[0].getsockname()[1])

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _serve(self, client_r: asyncio.StreamReader,
                     client_w: asyncio.StreamWriter) -> None:
        server_r, server_w = await asyncio.open_connection(*self._upstream)
        swallow = asyncio.Event()  # the server's next answer is not passed on

        def cut() -> None:
            self.cuts += 1
            for writer in (client_w, server_w):
                writer.transport.abort()

        async def to_server() -> None:
            while data := await client_r.read(65536):
                if self.armed is not None and _COMMIT.search(data):
                    mode, self.armed = self.armed, None
                    if mode == "the request":
                        cut()
                        return
                    swallow.set()
                server_w.write(data)
                await server_w.drain()

        async def to_client() -> None:
            while data := await server_r.read(65536):
                if swallow.is_set():
                    cut()
                    return
                client_w.write(data)
                await client_w.drain()

        pumps = [asyncio.ensure_future(to_server()), asyncio.ensure_future(to_client())]
        try:  # one side closed: close the other
            await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for writer in (client_w, server_w):
                writer.transport.abort()
            for pump in pumps:
                pump.cancel()
            await asyncio.gather(*pumps, return_exceptions=True)


@pytest.fixture
async def cutter(migrated_url: str) -> AsyncIterator[CommitCutter]:
    parsed = make_url(migrated_url)
    proxy = CommitCutter(parsed.host or "127.0.0.1", parsed.port or 5432)
    await proxy.start()
    try:
        yield proxy
    finally:
        await proxy.close()


@postgres_only
@pytest.mark.parametrize("cut", ["the answer", "the request"])
async def test_a_commit_cut_off_is_settled_not_written_twice(
        migrated_url: str, migrated_engine: AsyncEngine, cutter: CommitCutter, cut: Cut,
        caplog: pytest.LogCaptureFixture) -> None:
    await add_portfolio(migrated_engine)
    proxied = make_url(migrated_url).set(port=cutter.port).render_as_string(hide_password=False)
    engine = make_engine(proxied)
    journal = Journal(engine)
    producers = Producers(journal)
    caplog.set_level(logging.INFO, logger=LOGGER)
    try:
        async with anyio.create_task_group() as tg:
            await tg.start(journal.run)
            producers.step(0, 0)
            await journal.flush()  # connected and warm
            cutter.armed = cut
            for i in range(1, 50):
                producers.step(0, i)
            await journal.flush()
            tg.cancel_scope.cancel()
    finally:
        await engine.dispose()
    assert cutter.cuts == 1
    assert producers.failed() == []
    assert journal.available
    await assert_written_once(migrated_engine, producers.coids)
    messages = [message for _, message in transitions(caplog)]
    settled = [m for m in messages if "had succeeded" in m]
    assert len(settled) == (1 if cut == "the answer" else 0), messages


# -- SQLite on a full disk ----------------------------------------------------------------------

@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 4 MiB tmpfs mounted for the test (root only), unmounted after it."""
    mountpoint = tmp_path / "small"
    mountpoint.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a small filesystem needs root")
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=4m,mode=0700", "tmpfs", str(mountpoint)],
        capture_output=True, text=True, check=False)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield mountpoint
    finally:
        done = subprocess.run(["umount", str(mountpoint)],
                              capture_output=True, check=False)
        if done.returncode != 0:
            subprocess.run(["umount", "-l", str(mountpoint)],
                           capture_output=True, check=False)


def fill_up(directory: Path) -> Path:
    """Take every free byte of the filesystem of ``directory`` with one file; its path."""
    filler = directory / "filler"
    with filler.open("wb", buffering=0) as f:
        for chunk in (1 << 16, 1 << 12, 1 << 9, 1):
            try:
                while True:
                    f.write(b"\0" * chunk)
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise
    return filler


async def test_a_full_disk_holds_sqlite_writes_until_there_is_room(
        small_disk: Path, caplog: pytest.LogCaptureFixture) -> None:
    url = f"sqlite+aiosqlite:///{small_disk / 'lts.db'}"
    await upgrade_to_head(url)
    engine = make_engine(url)
    journal = Journal(engine)
    caplog.set_level(logging.INFO, logger=LOGGER)
    big = {"blob": "x" * 50_000}  # a few of these need new pages of the WAL
    try:
        await add_portfolio(engine)
        async with anyio.create_task_group() as tg:
            await tg.start(journal.run)
            await journal.insert_order(order_row("before"))
            filler = await anyio.to_thread.run_sync(fill_up, small_disk)
            futures = [journal.insert_audit({**audit_row(f"a{i}"), "detail": big})
                       for i in range(20)]
            futures += [journal.insert_order(order_row(f"c{i}")) for i in range(20)]
            await until(lambda: not journal.available, 10, "the journal notices the full disk")
            assert journal.unavailable_reason == "disk full"
            assert not any(f.done() for f in futures)

            filler.unlink()
            await until(lambda: all(f.done() for f in futures), 10, "written once there is room")
            assert journal.available
            tg.cancel_scope.cancel()
        assert all(f.exception() is None for f in futures)
        assert await count(engine, orders) == 21
        async with engine.connect() as connection:
            targets = list((await connection.execute(select(audit_logs.c.target))).scalars())
        assert sorted(targets) == sorted(f"a{i}" for i in range(20))
    finally:
        await engine.dispose()
    assert [level for level, _ in transitions(caplog)] == ["WARNING", "INFO"]
