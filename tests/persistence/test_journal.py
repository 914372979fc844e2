"""The group-commit journal writer, on a real SQLite file and on the real PostgreSQL server."""

import asyncio
import logging
import re
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import anyio
import pytest
from sqlalchemy import func, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from lts.persistence.journal import Journal, JournalClosedError
from lts.persistence.tables import (
    audit_logs,
    fills,
    order_events,
    orders,
    portfolios,
    positions,
)

pytestmark = pytest.mark.anyio


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


async def count(engine: AsyncEngine, table: Any) -> int:
    async with engine.connect() as connection:
        return int((await connection.execute(select(func.count()).select_from(table))).scalar_one())


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
        await anyio.sleep(0.01)
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
