"""The group-commit journal writer, on a real SQLite file and on the real PostgreSQL server:
group commit, bad records isolated, fencing, FIFO resolution, futures nobody awaits, and the
classification of real database errors. (Outages: ``test_journal_outage.py``.)"""

import asyncio
import gc
import logging
import re
import socket
import sqlite3
import time
from collections.abc import AsyncIterator, Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel
import asyncpg
import pytest
from sqlalchemy import func, insert, select, text, update
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from lts.errors import LeaseLost
from lts.persistence.db import make_engine
from lts.persistence.journal import Journal, JournalClosedError, unavailable_reason
from lts.persistence.tables import (
    audit_logs,
    fills,
    order_events,
    orders,
    portfolios,
    positions,
)

pytestmark = pytest.mark.anyio

postgres_only = pytest.mark.parametrize(
    "backend", [pytest.param("postgresql", marks=pytest.mark.postgres)], indirect=True)


def order_row(coid: str, portfolio_id: int = 1) -> dict[str, Any]:
    return {
        "client_order_id": coid, "portfolio_id": portfolio_id, "symbol": "BTC-USD", "side": "buy",
        "order_type": "limit", "time_in_force": "gtc", "quantity": Decimal("0.5"),
        "limit_price": Decimal("100.25"), "stop_price": None, "status": "PENDING_SUBMIT",
        "filled_quantity": Decimal(0), "avg_fill_price": None, "broker": "paper",
        "broker_order_id": None, "reason": "", "tag": "", "ts_init": 1, "ts_last": 1,
    }


def fill_row(coid: str, trade_id: str, quantity: str = "0.25", ts: int = 2) -> dict[str, Any]:
    return {
        "portfolio_id": 1, "client_order_id": coid, "broker": "paper", "trade_id": trade_id,
        "symbol": "BTC-USD", "side": "buy", "quantity": Decimal(quantity),
        "price": Decimal("100.25"), "fee": Decimal("0.01"), "ts_event": ts,
    }


def position_row(quantity: str, fees: str, ts: int) -> dict[str, Any]:
    """The state of a long bought at 100.25 in ``fees / 0.01`` fills (what a ledger sends)."""
    return {
        "portfolio_id": 1, "symbol": "BTC-USD", "quantity": Decimal(quantity),
        "cost": Decimal(quantity) * Decimal("100.25"), "avg_price": Decimal("100.25"),
        "realized_pnl": Decimal(0), "fees": Decimal(fees), "ts_last": ts,
    }


def audit_row(target: str) -> dict[str, Any]:
    return {"actor": "system", "action": "test", "target": target, "client_address": None,
            "outcome": "ok", "detail": {"target": target}}


async def count(engine: AsyncEngine, table: Any) -> int:
    async with engine.connect() as connection:
        return int((await connection.execute(select(func.count()).select_from(table))).scalar_one())


async def until(condition: Callable[[], bool], within: float, what: str) -> None:
    """Wait until ``condition()`` holds; fail after ``within`` seconds."""
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() >= deadline:
            pytest.fail(f"not within {within} s: {what}")
        await anyio.sleep(0.005)


def free_port() -> int:
    """A port on 127.0.0.1 nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
async def engine(migrated_engine: AsyncEngine) -> AsyncEngine:
    async with migrated_engine.begin() as connection:
        await connection.execute(insert(portfolios), {"name": "p1", "initial_cash": Decimal(1000)})
    return migrated_engine


@pytest.fixture
async def journal(engine: AsyncEngine) -> AsyncIterator[Journal]:
    journal = Journal(engine)
    async with anyio.create_task_group() as tg:
        await tg.start(journal.run)
        yield journal
        tg.cancel_scope.cancel()


async def test_group_commit_of_concurrent_producers(engine: AsyncEngine,
                                                    journal: Journal) -> None:
    producers, per_producer = 50, 200

    async def produce(p: int) -> None:
        for i in range(per_producer):
            await journal.insert_order(order_row(f"p{p}-{i}"))

    async with anyio.create_task_group() as tg:
        for p in range(producers):
            tg.start_soon(produce, p)

    total = producers * per_producer
    async with engine.connect() as connection:
        coids = list((await connection.execute(select(orders.c.client_order_id))).scalars())
    assert len(coids) == total
    assert len(set(coids)) == total
    assert journal.records_written == total
    assert journal.records_failed == 0
    assert 0 < journal.commits < total
    assert journal.backlog == 0


async def test_fill_is_idempotent_and_position_follows_the_fills(engine: AsyncEngine,
                                                                  journal: Journal) -> None:
    await journal.insert_order(order_row("c1"))
    # Same batch: the duplicate and two position states.
    same_batch = [
        journal.insert_fill(fill_row("c1", "t1"), position_row("0.25", "0.01", 2)),
        journal.insert_fill(fill_row("c1", "t1"), position_row("0.25", "0.01", 2)),
        journal.insert_fill(fill_row("c1", "t2", ts=3), position_row("0.5", "0.02", 3)),
    ]
    await asyncio.gather(*same_batch)
    # A later batch: a replayed duplicate and a new fill.
    await journal.insert_fill(fill_row("c1", "t2", ts=3), position_row("0.5", "0.02", 3))
    await journal.insert_fill(fill_row("c1", "t3", "0.1", ts=4), position_row("0.6", "0.03", 4))

    async with engine.connect() as connection:
        trades = list((await connection.execute(
            select(fills.c.trade_id).order_by(fills.c.id))).scalars())
        rows = (await connection.execute(select(positions))).mappings().all()
    assert trades == ["t1", "t2", "t3"]
    assert len(rows) == 1
    assert {k: rows[0][k] for k in position_row("0", "0", 0)} == position_row("0.6", "0.03", 4)


async def test_a_bad_record_fails_alone(engine: AsyncEngine, journal: Journal,
                                        caplog: pytest.LogCaptureFixture) -> None:
    good = [journal.insert_order(order_row(f"g{i}")) for i in range(50)]
    bad = journal.insert_fill(fill_row("no-such-order", "tx"), position_row("1", "0.01", 9))
    good += [journal.insert_order(order_row(f"h{i}")) for i in range(50)]
    with caplog.at_level(logging.ERROR, logger="lts.persistence.journal"):
        results = await asyncio.gather(*good, bad, return_exceptions=True)
    assert results[:-1] == [None] * 100
    assert isinstance(results[-1], IntegrityError)
    assert re.search("FOREIGN KEY|foreign key constraint", str(results[-1]))
    assert any("no-such-order" in r.getMessage() for r in caplog.records)
    assert await count(engine, orders) == 100
    assert await count(engine, fills) == 0
    assert await count(engine, positions) == 0
    assert journal.records_failed == 1
    assert journal.records_written == 100
    assert journal.commits < 20  # bisected, not one transaction per record


async def test_updates_events_and_audit(engine: AsyncEngine, journal: Journal) -> None:
    journal.insert_order(order_row("c1"))
    journal.update_order({
        "client_order_id": "c1", "status": "FILLED", "filled_quantity": Decimal("0.5"),
        "avg_fill_price": Decimal("100.2"), "broker_order_id": "b-1", "reason": "",
        "ts_last": 7,
    })
    journal.insert_order_event({"portfolio_id": 1, "seq": 1, "type": "OrderFilled",
                                "client_order_id": "c1", "payload": {"qty": "0.5"},
                                "ts_event": 7})
    journal.insert_audit({"actor": "alice", "action": "portfolio.halt", "target": "p1",
                          "client_address": "127.0.0.1", "outcome": "ok",
                          "detail": {"why": "test"}})
    journal.update_portfolio({"id": 1, "trading_state": "HALTED"})
    journal.update_portfolio({"id": 1, "status": "error", "last_error": "boom"})
    await journal.flush()

    async with engine.connect() as connection:
        order = (await connection.execute(select(orders))).mappings().one()
        event = (await connection.execute(select(order_events))).mappings().one()
        audit = (await connection.execute(select(audit_logs))).mappings().one()
        portfolio = (await connection.execute(select(portfolios))).mappings().one()
    assert (order["status"], order["filled_quantity"], order["avg_fill_price"],
            order["broker_order_id"], order["ts_last"]) == (
        "FILLED", Decimal("0.5"), Decimal("100.2"), "b-1", 7)
    assert order["quantity"] == Decimal("0.5")
    assert (event["type"], event["payload"]) == ("OrderFilled", {"qty": "0.5"})
    assert (audit["actor"], audit["detail"]) == ("alice", {"why": "test"})
    assert (portfolio["trading_state"], portfolio["status"], portfolio["last_error"]) == (
        "HALTED", "error", "boom")


async def test_flush_waits_for_everything_queued(engine: AsyncEngine,
                                                 journal: Journal) -> None:
    futures = [journal.insert_order(order_row(f"c{i}")) for i in range(1000)]
    assert journal.backlog == 1000
    await journal.flush()
    assert all(f.done() and f.exception() is None for f in futures)
    assert journal.backlog == 0
    assert await count(engine, orders) == 1000
    await journal.flush()  # nothing queued: returns at once


async def test_max_batch_bounds_a_transaction(engine: AsyncEngine) -> None:
    journal = Journal(engine, max_batch=100)
    for i in range(1000):
        journal.insert_order(order_row(f"c{i}"))  # queued before the writer starts
    async with anyio.create_task_group() as tg:
        await tg.start(journal.run)
        await journal.flush()
        tg.cancel_scope.cancel()
    assert journal.commits == 10
    assert journal.last_batch_size == 100
    assert journal.last_commit_latency > 0
    assert await count(engine, orders) == 1000


async def test_back_pressure_waits_until_below_high_water(engine: AsyncEngine) -> None:
    journal = Journal(engine, max_batch=10, high_water=50)
    for i in range(60):
        journal.insert_order(order_row(f"c{i}"))
    async with anyio.create_task_group() as tg:
        waited = False

        async def producer() -> None:
            nonlocal waited
            await journal.wait_below_high_water()
            waited = True
            assert journal.backlog < 50

        tg.start_soon(producer)
        await anyio.wait_all_tasks_blocked()  # the producer is at its wait
        assert not waited  # the writer is not running: the producer waits, nothing dropped
        await tg.start(journal.run)
        await journal.flush()
        assert waited
        tg.cancel_scope.cancel()
    assert await count(engine, orders) == 60


async def test_cancellation_commits_what_is_queued(engine: AsyncEngine) -> None:
    journal = Journal(engine)
    async with anyio.create_task_group() as tg:
        await tg.start(journal.run)
        futures = [journal.insert_order(order_row(f"c{i}")) for i in range(500)]
        tg.cancel_scope.cancel()  # before the writer got to run
    assert all(f.done() and f.exception() is None for f in futures)
    assert await count(engine, orders) == 500
    with pytest.raises(JournalClosedError):
        journal.insert_order(order_row("late"))
    await journal.flush()  # nothing pending: returns


async def test_a_cancelled_waiter_does_not_unqueue_its_record(engine: AsyncEngine,
                                                                journal: Journal) -> None:
    abandoned = journal.insert_order(order_row("c1"))
    abandoned.cancel()
    await journal.insert_order(order_row("c2"))
    assert await count(engine, orders) == 2


async def test_run_refuses_a_second_start(engine: AsyncEngine, journal: Journal) -> None:
    with pytest.raises(RuntimeError, match="once"):
        await journal.run()


# -- bad records --------------------------------------------------------------------------------

async def test_bad_records_of_every_kind_fail_alone(backend: str, engine: AsyncEngine,
                                                    journal: Journal) -> None:
    good = [journal.insert_order(order_row(f"g{i}")) for i in range(40)]
    bad: dict[str, asyncio.Future[None]] = {
        "duplicate": journal.insert_order(order_row("g3")),
        "unbindable": journal.insert_order({**order_row("x1"), "quantity": object()}),
        "row without its key": journal.update_order({"status": "FILLED"}),
        "foreign key": journal.insert_fill(fill_row("no-such-order", "t"),
                                           position_row("1", "0.01", 9)),
    }
    if backend == "postgresql":  # NUMERIC(38, 18): SQLSTATE 22003 (SQLite stores the text)
        bad["numeric overflow"] = journal.insert_order({**order_row("x2"),
                                                        "quantity": Decimal("1e30")})
    good += [journal.insert_audit(audit_row(f"a{i}")) for i in range(40)]
    await journal.flush()

    assert all(f.exception() is None for f in good)
    errors = {name: f.exception() for name, f in bad.items()}
    assert all(e is not None for e in errors.values()), errors
    assert isinstance(errors["duplicate"], IntegrityError)
    assert isinstance(errors["foreign key"], IntegrityError)
    assert isinstance(errors["row without its key"], KeyError)
    assert all(unavailable_reason(e) is None for e in errors.values() if e is not None)
    assert journal.available
    assert journal.records_failed == len(bad)
    assert await count(engine, orders) == 40
    assert await count(engine, audit_logs) == 40
    assert await count(engine, fills) == 0


# -- fencing ------------------------------------------------------------------------------------

async def set_token(engine: AsyncEngine, portfolio_id: int, token: int) -> None:
    """What an engine taking the portfolio's lease does, behind the journal's back."""
    async with engine.begin() as connection:
        await connection.execute(update(portfolios).where(portfolios.c.id == portfolio_id)
                                 .values(lease_token=token))


async def portfolio_orders(engine: AsyncEngine, portfolio_id: int) -> list[str]:
    async with engine.connect() as connection:
        return sorted((await connection.execute(
            select(orders.c.client_order_id).where(orders.c.portfolio_id == portfolio_id)))
            .scalars())


@pytest.fixture
async def two_portfolios(engine: AsyncEngine) -> AsyncEngine:
    async with engine.begin() as connection:
        await connection.execute(insert(portfolios), {"name": "p2", "initial_cash": Decimal(1)})
    await set_token(engine, 1, 5)
    await set_token(engine, 2, 7)
    return engine


async def test_a_lease_taken_over_fails_only_that_portfolios_records(
        two_portfolios: AsyncEngine, journal: Journal) -> None:
    engine = two_portfolios
    lost: list[int] = []
    journal.on_lease_lost = lost.append
    journal.fence(1, 5)
    journal.fence(2, 7)
    await asyncio.gather(journal.insert_order(order_row("a0", 1), fence=1),
                         journal.insert_order(order_row("b0", 2), fence=2))

    await set_token(engine, 1, 6)  # another engine took portfolio 1
    mine = [journal.insert_order(order_row(f"a{i}", 1), fence=1) for i in range(1, 30)]
    mine.append(journal.insert_order_event({
        "portfolio_id": 1, "seq": 1, "type": "OrderSubmitted", "client_order_id": "a1",
        "payload": {}, "ts_event": 1}, fence=1))
    theirs = [journal.insert_order(order_row(f"b{i}", 2), fence=2) for i in range(1, 30)]
    unfenced = journal.insert_audit(audit_row("not fenced"))
    await journal.flush()

    assert all(isinstance(f.exception(), LeaseLost) for f in mine)
    assert all(f.exception() is None for f in [*theirs, unfenced])
    assert lost == [1]
    # Later records of the portfolio fail too, without a second call.
    with pytest.raises(LeaseLost):
        await journal.insert_order(order_row("a99", 1), fence=1)
    await journal.insert_order(order_row("b99", 2), fence=2)
    assert lost == [1]
    assert journal.records_lease_lost == len(mine) + 1
    assert await portfolio_orders(engine, 1) == ["a0"]
    assert len(await portfolio_orders(engine, 2)) == 31
    assert await count(engine, order_events) == 0


async def test_records_of_a_portfolio_unfenced_before_the_write_are_lost(
        two_portfolios: AsyncEngine) -> None:
    engine = two_portfolios
    journal = Journal(engine)
    lost: list[int] = []
    journal.on_lease_lost = lost.append
    journal.fence(1, 5)
    journal.fence(2, 7)
    unfenced_later = journal.insert_order(order_row("a1", 1), fence=1)
    refenced_later = journal.insert_order(order_row("b1", 2), fence=2)
    never_fenced = journal.insert_order(order_row("b2", 2), fence=3)
    journal.unfence(1)
    journal.fence(2, 8)  # a new lease: records of the old one are not written
    await set_token(engine, 2, 8)
    fresh = journal.insert_order(order_row("b3", 2), fence=2)
    async with anyio.create_task_group() as tg:
        await tg.start(journal.run)
        await journal.flush()
        tg.cancel_scope.cancel()
    assert isinstance(unfenced_later.exception(), LeaseLost)
    assert isinstance(refenced_later.exception(), LeaseLost)
    assert isinstance(never_fenced.exception(), LeaseLost)
    assert fresh.exception() is None
    assert lost == []  # nothing was taken over: the owner changed its own fences
    assert await portfolio_orders(engine, 1) == []
    assert await portfolio_orders(engine, 2) == ["b3"]


@postgres_only
async def test_a_batch_waits_for_a_take_over_in_progress(two_portfolios: AsyncEngine,
                                                        journal: Journal) -> None:
    """The tokens are read FOR SHARE: a batch queues behind the lease's row lock, so it sees
    the new token once the take-over commits (and a take-over would wait for a batch)."""
    engine = two_portfolios
    journal.fence(1, 5)
    await journal.insert_order(order_row("a0", 1), fence=1)
    async with engine.connect() as take_over, engine.connect() as observer:
        await take_over.execute(update(portfolios).where(portfolios.c.id == 1)
                                .values(lease_token=6))  # not committed yet
        write = journal.insert_order(order_row("a1", 1), fence=1)
        waiting = 0
        deadline = time.monotonic() + 10
        while waiting == 0:
            assert time.monotonic() < deadline, "the journal never waited on the lease's lock"
            waiting = int((await observer.execute(text(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND wait_event_type = 'Lock'"))).scalar_one())
            await observer.rollback()
            await anyio.sleep(0.005)
        assert not write.done()
        await take_over.commit()
    with pytest.raises(LeaseLost):
        await write
    assert await portfolio_orders(engine, 1) == ["a0"]


# -- order and futures --------------------------------------------------------------------------

class CommittedProbe:
    """Reads the database from a connection of its own, synchronously (from a done callback)."""

    def __init__(self, url: str) -> None:
        parsed = make_url(url)
        self._sqlite: sqlite3.Connection | None = None
        self._pg: Any = None
        if parsed.get_backend_name() == "sqlite":
            assert parsed.database is not None
            self._sqlite = sqlite3.connect(parsed.database, isolation_level=None)
        else:
            import psycopg

            dsn = parsed.set(drivername="postgresql").render_as_string(hide_password=False)
            self._pg = psycopg.connect(dsn, autocommit=True)

    def has_order(self, coid: str) -> bool:
        sql = "SELECT count(*) FROM orders WHERE client_order_id = "
        if self._sqlite is not None:
            return bool(self._sqlite.execute(sql + "?", (coid,)).fetchone()[0])
        return bool(self._pg.execute(sql + "%s", (coid,)).fetchone()[0])

    def close(self) -> None:
        if self._sqlite is not None:
            self._sqlite.close()
        if self._pg is not None:
            self._pg.close()


async def test_futures_resolve_in_order_after_their_commit(
        migrated_url: str, two_portfolios: AsyncEngine) -> None:
    engine = two_portfolios
    journal = Journal(engine, max_batch=7)  # several batches, one with a bad record
    journal.fence(1, 5)
    probe = CommittedProbe(migrated_url)
    seen: list[tuple[int, bool, bool]] = []  # (index, failed, the order is committed)

    def on_done(i: int, coid: str) -> Callable[[asyncio.Future[None]], None]:
        def done(future: asyncio.Future[None]) -> None:
            seen.append((i, future.exception() is not None, probe.has_order(coid)))
        return done

    futures = []
    for i in range(30):
        coid = f"c{i}"
        if i == 11:
            future = journal.insert_order(order_row("c3"))  # a duplicate: fails alone
        elif i == 20:
            journal.unfence(1)
            future = journal.insert_order(order_row(coid), fence=1)  # lost
        else:
            future = journal.insert_order(order_row(coid))
        future.add_done_callback(on_done(i, coid))
        futures.append(future)
    try:
        async with anyio.create_task_group() as tg:
            await tg.start(journal.run)
            await journal.flush()
            tg.cancel_scope.cancel()
    finally:
        probe.close()
    assert [i for i, _, _ in seen] == list(range(30))
    assert [i for i, failed, _ in seen if failed] == [11, 20]
    assert all(committed for i, failed, committed in seen if not failed)


async def test_a_failed_write_nobody_awaits_logs_no_never_retrieved(
        engine: AsyncEngine, journal: Journal, caplog: pytest.LogCaptureFixture) -> None:
    loop = asyncio.get_running_loop()
    reported: list[dict[str, Any]] = []
    previous = loop.get_exception_handler()
    loop.set_exception_handler(lambda _loop, context: reported.append(context))
    try:
        with caplog.at_level(logging.ERROR, logger="lts.persistence.journal"):
            journal.insert_fill(fill_row("no-such-order", "t1"), position_row("1", "0.01", 1))
            journal.insert_order(order_row("ok"))
            journal.fence(1, 99)  # the stored token is 0: the lease is lost
            journal.insert_order(order_row("fenced"), fence=1)
            await journal.flush()
        gc.collect()
        await anyio.lowlevel.checkpoint()  # the loop runs what the collection scheduled
    finally:
        loop.set_exception_handler(previous)
    assert reported == []
    assert any("no-such-order" in r.getMessage() for r in caplog.records)  # logged by us
    assert await count(engine, orders) == 1


# -- what a real error means --------------------------------------------------------------------

def fill_the_database(path: Path) -> sqlite3.OperationalError:
    """SQLITE_FULL from a real SQLite: a connection of our own limited to a few pages."""
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("CREATE TABLE IF NOT EXISTS filler (x)")
        conn.execute("PRAGMA max_page_count = 8")
        with pytest.raises(sqlite3.OperationalError) as caught:
            conn.executemany("INSERT INTO filler VALUES (?)", [("x" * 4000,)] * 100)
        return caught.value
    finally:
        conn.close()


async def test_real_sqlite_errors_are_classified(tmp_path: Path) -> None:
    full = fill_the_database(tmp_path / "full.db")
    assert full.sqlite_errorname == "SQLITE_FULL"
    assert unavailable_reason(full) == "disk full"

    engine = make_engine(f"sqlite+aiosqlite:///{tmp_path / 'lts.db'}")
    holder = sqlite3.connect(tmp_path / "lts.db", isolation_level=None)
    try:
        async with engine.begin() as connection:
            await connection.exec_driver_sql("CREATE TABLE t (x INTEGER PRIMARY KEY)")
        errors: dict[str, Exception] = {}
        holder.execute("BEGIN IMMEDIATE")  # another writer holds the lock
        async with engine.connect() as connection:
            await connection.exec_driver_sql("PRAGMA busy_timeout = 0")
            for name, sql, params in [
                    ("locked", "INSERT INTO t VALUES (?)", (1,)),
                    ("unbindable", "SELECT ?", (object(),))]:
                try:
                    await connection.exec_driver_sql(sql, params)
                except Exception as exc:
                    errors[name] = exc
                await connection.rollback()
        holder.execute("ROLLBACK")
        async with engine.connect() as connection:
            await connection.exec_driver_sql("PRAGMA max_page_count = 3")
            try:
                await connection.exec_driver_sql(
                    "WITH RECURSIVE s(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM s "
                    "WHERE x < 100000) INSERT INTO t SELECT x FROM s")
            except Exception as exc:
                errors["full (aiosqlite)"] = exc
            await connection.rollback()
    finally:
        holder.close()
        await engine.dispose()
    assert set(errors) == {"locked", "unbindable", "full (aiosqlite)"}
    assert unavailable_reason(errors["locked"]) == "database is locked"
    assert unavailable_reason(errors["unbindable"]) is None  # the record's value
    assert unavailable_reason(errors["full (aiosqlite)"]) == "disk full"


@postgres_only
async def test_real_postgresql_errors_are_classified(migrated_url: str,
                                                     engine: AsyncEngine) -> None:
    refused = make_url(migrated_url).set(port=free_port()).render_as_string(hide_password=False)
    down = make_engine(refused)
    try:
        with pytest.raises(ConnectionRefusedError) as unreachable:
            async with down.connect():
                pass
    finally:
        await down.dispose()
    assert unavailable_reason(unreachable.value) == "database unreachable: ConnectionRefusedError"

    errors: dict[str, Exception] = {}
    async with engine.connect() as victim:
        pid = (await victim.execute(text("SELECT pg_backend_pid()"))).scalar_one()
        await victim.commit()
        dsn = make_url(migrated_url).set(drivername="postgresql").render_as_string(
            hide_password=False)
        admin = await asyncpg.connect(dsn)
        try:
            await admin.execute("SELECT pg_terminate_backend($1)", pid)
        finally:
            await admin.close()
        try:
            await victim.execute(text("SELECT 1"))
        except Exception as exc:
            errors["terminated"] = exc
    async with engine.connect() as connection:
        for name, sql in [("overflow", "SELECT 1e30::numeric(38, 18)"),
                          ("division", "SELECT 1 / 0")]:
            try:
                await connection.execute(text(sql))
            except Exception as exc:
                errors[name] = exc
            await connection.rollback()
    reason = unavailable_reason(errors["terminated"])
    assert reason is not None
    assert reason.startswith("connection lost: "), reason
    assert unavailable_reason(errors["overflow"]) is None  # SQLSTATE 22003: the record's value
    assert unavailable_reason(errors["division"]) is None  # 22012
    assert re.fullmatch(r"[\w :.-]+", reason)  # one short line, no message
