"""Fills of one position over several connections (issue 4): the row is the sum of the fills.

Several :class:`Journal` instances, each on its own ``AsyncEngine`` (its own connection), stand
for several engines filling one ``(portfolio, symbol)`` at once. Each sends what a real engine
sends: the fill and its own ledger's position, which knows only its own fills. On PostgreSQL the
position is recomputed under a row lock, so its quantity and fees are the sums of all the fills,
and quantity, cost, realized P&L and fees equal a replay of the fills in the order the writers
applied them, which is their id order. (With one writer the row equals the writer's ledger, on
both stores: tests/engine/test_position_row.py, through the real engine.)
"""

import asyncio
import random
from collections.abc import Iterable
from decimal import ROUND_HALF_UP, Decimal
from itertools import pairwise
from typing import Any

import anyio
import pytest
from sqlalchemy import insert, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from lts.domain.orders import Side
from lts.domain.position import Position
from lts.persistence.db import make_engine
from lts.persistence.journal import Journal
from lts.persistence.tables import fills, orders, portfolios, positions

pytestmark = pytest.mark.anyio

postgres_only = pytest.mark.parametrize(
    "backend", [pytest.param("postgresql", marks=pytest.mark.postgres)], indirect=True)

SYMBOL = "BTC-USD"
STATE = ("quantity", "cost", "realized_pnl", "fees")


def order_row(coid: str) -> dict[str, Any]:
    return {
        "client_order_id": coid, "portfolio_id": 1, "symbol": SYMBOL, "side": "buy",
        "order_type": "market", "time_in_force": "gtc", "quantity": Decimal(1),
        "limit_price": None, "stop_price": None, "status": "ACCEPTED",
        "filled_quantity": Decimal(0), "avg_fill_price": None, "broker": "venue",
        "broker_order_id": None, "reason": "", "tag": "", "ts_init": 1, "ts_last": 1,
    }


def random_fills(rng: random.Random, coid: str, n: int, *,
                 buys_only: bool = False) -> list[dict[str, Any]]:
    """``n`` fills of order ``coid``: quantities of 3 places, prices of 5, fees of 4."""
    return [{
        "portfolio_id": 1, "client_order_id": coid, "broker": "venue", "trade_id": f"{coid}-{i}",
        "symbol": SYMBOL, "side": "buy" if buys_only or rng.random() < 0.5 else "sell",
        "quantity": Decimal(rng.randint(1, 5_000)) / 1_000,
        "price": Decimal(rng.randint(9_000_000, 11_000_000)) / 100_000,
        "fee": Decimal(rng.randint(0, 100)) / 10_000, "ts_event": i,
    } for i in range(n)]


def replay(rows: Iterable[Any]) -> Position:
    pos = Position(symbol=SYMBOL)
    for f in rows:
        pos.apply_fill(Side(f["side"]), f["quantity"], f["price"], f["fee"])
    return pos


def signed(f: Any) -> Decimal:
    return Decimal(f["quantity"]) if f["side"] == "buy" else -Decimal(f["quantity"])


class Writer:
    """One engine's view: its own AsyncEngine and Journal, and a ledger of only its own fills."""

    def __init__(self, url: str) -> None:
        self.db = make_engine(url)
        self.journal = Journal(self.db)
        self.ledger = Position(symbol=SYMBOL)

    def send(self, fill: dict[str, Any]) -> asyncio.Future[None]:
        self.ledger.apply_fill(Side(fill["side"]), fill["quantity"], fill["price"], fill["fee"])
        state = {"portfolio_id": 1, "symbol": SYMBOL, "quantity": self.ledger.quantity,
                 "cost": self.ledger.cost, "avg_price": self.ledger.avg_price,
                 "realized_pnl": self.ledger.realized_pnl, "fees": self.ledger.fees,
                 "ts_last": fill["ts_event"]}
        return self.journal.insert_fill(fill, state)


@pytest.fixture
async def db(migrated_engine: AsyncEngine) -> AsyncEngine:
    async with migrated_engine.begin() as connection:
        await connection.execute(insert(portfolios), {"name": "p1", "initial_cash": Decimal(1)})
    return migrated_engine


async def run_writers(url: str, work: list[list[dict[str, Any]]],
                      producers_per_writer: int = 8) -> list[Writer]:
    """One writer per list of fills, all at once; each writer's fills are sent by several
    producers that await each durable write, so batches hold several fills."""
    writers = [Writer(url) for _ in work]
    try:
        async with anyio.create_task_group() as journals:
            for w in writers:
                await journals.start(w.journal.run)

            async def produce(w: Writer, mine: list[dict[str, Any]]) -> None:
                for fill in mine:
                    await w.send(fill)

            async with anyio.create_task_group() as tg:
                for w, fills_of_w in zip(writers, work, strict=True):
                    for p in range(producers_per_writer):
                        tg.start_soon(produce, w, fills_of_w[p::producers_per_writer])
            journals.cancel_scope.cancel()
    finally:
        for w in writers:
            await w.db.dispose()
    return writers


async def stored(db: AsyncEngine) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The position row and every fill, in id order."""
    async with db.connect() as conn:
        [row] = (await conn.execute(select(positions))).mappings().all()
        rows = (await conn.execute(select(fills).order_by(fills.c.id))).mappings().all()
    return dict(row), [dict(r) for r in rows]


def state(pos: Position) -> tuple[Decimal, ...]:
    return tuple(getattr(pos, name) for name in STATE)


@postgres_only
async def test_concurrent_writers_give_the_sum_of_the_fills(migrated_url: str,
                                                            db: AsyncEngine) -> None:
    rng = random.Random(4)
    coids = [f"w{k}" for k in range(4)]
    async with db.begin() as conn:
        await conn.execute(insert(orders), [order_row(c) for c in coids])
    work = [random_fills(rng, coid, 150) for coid in coids]

    writers = await run_writers(migrated_url, work)

    row, applied = await stored(db)
    sent = [f for mine in work for f in mine]
    assert len(applied) == len(sent) == 600
    assert row["quantity"] == sum(map(signed, sent))
    assert row["fees"] == sum(f["fee"] for f in sent)
    assert tuple(row[name] for name in STATE) == state(replay(applied))
    assert row["avg_price"] == (row["cost"] / row["quantity"]).quantize(
        Decimal("1e-18"), ROUND_HALF_UP)
    # The writers really interleaved on the row (else this test proves nothing) and none of
    # them holds the whole position in its own ledger.
    turns = sum(a["client_order_id"] != b["client_order_id"]
                for a, b in pairwise(applied))
    assert turns > len(writers)
    assert all(w.ledger.quantity != row["quantity"] for w in writers)
    assert all(w.journal.records_failed == 0 for w in writers)


@postgres_only
async def test_concurrent_buys_cost_exactly_the_sum_of_quantity_times_price(
        migrated_url: str, db: AsyncEngine) -> None:
    rng = random.Random(5)
    coids = [f"w{k}" for k in range(3)]
    async with db.begin() as conn:
        await conn.execute(insert(orders), [order_row(c) for c in coids])
    work = [random_fills(rng, coid, 100, buys_only=True) for coid in coids]

    await run_writers(migrated_url, work)

    row, _ = await stored(db)
    sent = [f for mine in work for f in mine]
    assert row["quantity"] == sum(f["quantity"] for f in sent)
    assert row["cost"] == sum(f["quantity"] * f["price"] for f in sent)
    assert row["fees"] == sum(f["fee"] for f in sent)
    assert row["realized_pnl"] == 0


@postgres_only
async def test_a_fill_sent_by_two_writers_changes_the_position_once(migrated_url: str,
                                                                    db: AsyncEngine) -> None:
    rng = random.Random(6)
    async with db.begin() as conn:
        await conn.execute(insert(orders), order_row("w0"))
    once = random_fills(rng, "w0", 120)
    # Both writers send every fill, in opposite orders; the second also repeats some of them.
    work = [once, once[::-1] + once[:20]]

    writers = await run_writers(migrated_url, work, producers_per_writer=4)

    row, applied = await stored(db)
    assert sorted(f["trade_id"] for f in applied) == sorted(f["trade_id"] for f in once)
    assert row["quantity"] == sum(map(signed, once))
    assert row["fees"] == sum(f["fee"] for f in once)
    assert tuple(row[name] for name in STATE) == state(replay(applied))
    assert all(w.journal.records_failed == 0 for w in writers)


@postgres_only
async def test_a_deadlocked_batch_is_tried_again(migrated_url: str, db: AsyncEngine) -> None:
    """Another session holds the lock on one position of a batch and then asks for a lock the
    batch holds: PostgreSQL aborts the batch (40P01), the journal rolls back and tries again."""
    async with db.begin() as conn:
        await conn.execute(insert(orders), order_row("w0"))
        await conn.execute(insert(positions), [
            {"portfolio_id": 1, "symbol": s, "quantity": 0, "cost": 0, "avg_price": 0,
             "realized_pnl": 0, "fees": 0, "ts_last": 0} for s in ("A", "B")])
        # The journal's sessions find the deadlock; the other session waits far longer.
        name = make_url(migrated_url).database
        await conn.execute(text(f"ALTER DATABASE \"{name}\" SET deadlock_timeout = '1s'"))
    fill_a, fill_b = ({"portfolio_id": 1, "client_order_id": "w0", "broker": "venue",
                       "trade_id": f"t-{s}", "symbol": s, "side": "buy",
                       "quantity": Decimal(2), "price": Decimal("10.5"), "fee": Decimal(0),
                       "ts_event": 5} for s in ("A", "B"))
    other = make_engine(migrated_url)
    writer = Writer(migrated_url)
    try:
        async with other.connect() as blocker, anyio.create_task_group() as tg:
            await blocker.execute(text("SET deadlock_timeout = '60s'"))
            lock = "SELECT id FROM positions WHERE symbol = :s FOR UPDATE"
            await blocker.execute(text(lock), {"s": "B"})
            await tg.start(writer.journal.run)
            both = [writer.send(f) for f in (fill_a, fill_b)]  # one batch: A and B
            waiting = text("SELECT count(*) FROM pg_stat_activity WHERE "
                           "datname = current_database() AND wait_event_type = 'Lock'")
            while True:  # until the batch holds A and waits for B
                async with db.connect() as probe:  # a fresh transaction: a fresh snapshot
                    if (await probe.execute(waiting)).scalar_one():
                        break
                await anyio.sleep(0.01)
            await blocker.execute(text(lock), {"s": "A"})  # returns once the batch gave up A
            await blocker.commit()
            await asyncio.gather(*both)
            tg.cancel_scope.cancel()
    finally:
        await writer.db.dispose()
        await other.dispose()
    assert writer.journal.retries >= 1
    assert writer.journal.records_failed == 0
    async with db.connect() as conn:
        rows = (await conn.execute(select(positions).order_by(positions.c.symbol))).mappings()
        assert [(r["symbol"], r["quantity"], r["cost"]) for r in rows] == [
            ("A", 2, 21), ("B", 2, 21)]
