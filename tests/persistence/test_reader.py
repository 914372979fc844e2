"""The API's reader (architecture §4: heavy reads off the loop): it sees what the async engine
committed, as the same values, and cannot write; on both stores."""

from decimal import Decimal

import pytest
from sqlalchemy import insert, select, text
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine

from lts.domain.portfolio_spec import AssetSpec, PortfolioSpec
from lts.persistence import portfolio_store as store
from lts.persistence import repositories as repo
from lts.persistence.db import make_engine
from lts.persistence.reader import Reader
from lts.persistence.tables import orders, positions

pytestmark = pytest.mark.anyio


async def test_reads_what_the_engine_committed_as_the_same_values(
        migrated_engine: AsyncEngine) -> None:
    uid = await repo.create_user(migrated_engine, "alice", "$2b$04$hash", "trader", "a@x.org")
    pid = await repo.create_portfolio(migrated_engine, PortfolioSpec(
        name="p1", initial_cash=Decimal("100000.25"), owner_id=uid,
        portfolio_params={"fraction": "0.1"},
        assets=(AssetSpec(symbol="AAA", strategy_plugin="buy_and_hold",
                               broker_plugin="paper", pipeline_plugin="synthetic"),)))
    async with migrated_engine.begin() as conn:
        await conn.execute(insert(positions).values(
            portfolio_id=pid, symbol="AAA", quantity=Decimal("3"), avg_price=Decimal("10.125"),
            cost=Decimal("30.375"), realized_pnl=Decimal("-1.5"), fees=Decimal("0.01"),
            ts_last=7))
    reader = Reader(migrated_engine)
    try:
        assert reader.sync is not None  # a real second engine, not the loop's
        [row] = await store.list_positions(reader, pid)
        async with migrated_engine.connect() as conn:
            [expected] = (await conn.execute(select(positions))).mappings().all()
        assert row == dict(expected)
        assert (row["quantity"], row["avg_price"]) == (Decimal("3"), Decimal("10.125"))
        portfolio = await store.get_portfolio(reader, pid)
        assert portfolio is not None
        assert (portfolio["name"], portfolio["portfolio_params"]) == ("p1", {"fraction": "0.1"})
        assert await store.get_portfolio(reader, pid + 1) is None
        assert [p["id"] for p in await store.list_portfolios(reader, uid)] == [pid]
        assert await store.list_portfolios(reader, uid + 1) == []
    finally:
        reader.dispose()


async def test_cannot_write(migrated_engine: AsyncEngine) -> None:
    reader = Reader(migrated_engine)
    try:
        with pytest.raises((OperationalError, DBAPIError), match=r"(?i)read.only|readonly"):
            await reader.run(lambda conn: conn.execute(insert(orders).values(
                client_order_id="x-1", portfolio_id=1, symbol="AAA", side="buy",
                order_type="market", time_in_force="gtc", quantity=Decimal(1),
                filled_quantity=Decimal(0), status="PENDING_SUBMIT", broker="paper",
                ts_init=1, ts_last=1)))
        async with migrated_engine.connect() as conn:
            assert (await conn.execute(text("SELECT count(*) FROM orders"))).scalar_one() == 0
    finally:
        reader.dispose()


async def test_an_in_memory_database_is_read_through_the_async_engine() -> None:
    db = make_engine("sqlite+aiosqlite:///:memory:")
    try:
        reader = Reader(db)
        assert reader.sync is None
        assert await reader.first(select(text("41 + 1 AS answer"))) == {"answer": 42}
    finally:
        await db.dispose()
