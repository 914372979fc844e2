"""The engine factory (SQLite pragmas) and exact money on SQLite."""

from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import insert, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from lts.persistence.db import default_sqlite_url, make_engine
from lts.persistence.tables import orders, portfolios, statistics

pytestmark = pytest.mark.anyio


def test_default_sqlite_url_is_absolute_and_creates_the_directory(tmp_path: Path) -> None:
    data = tmp_path / "nested" / "data"
    url = default_sqlite_url(data)
    assert data.is_dir()
    assert url == f"sqlite+aiosqlite:///{data.resolve() / 'lts.db'}"


def test_make_engine_refuses_other_backends() -> None:
    with pytest.raises(ValueError, match="unsupported"):
        make_engine("mysql+aiomysql://u@h/db")


async def _pragmas(engine: AsyncEngine) -> dict[str, object]:
    async with engine.connect() as connection:
        return {
            name: (await connection.execute(text(f"PRAGMA {name}"))).scalar()
            for name in ("journal_mode", "synchronous", "foreign_keys", "busy_timeout")
        }


async def test_sqlite_pragmas_default_full(sqlite_url: str) -> None:
    engine = make_engine(sqlite_url)
    try:
        assert await _pragmas(engine) == {
            "journal_mode": "wal", "synchronous": 2, "foreign_keys": 1, "busy_timeout": 10_000,
        }
    finally:
        await engine.dispose()


async def test_sqlite_synchronous_is_configurable(sqlite_url: str) -> None:
    engine = make_engine(sqlite_url, sqlite_synchronous="NORMAL")
    try:
        assert (await _pragmas(engine))["synchronous"] == 1
    finally:
        await engine.dispose()


async def test_money_round_trips_exactly(migrated_engine: AsyncEngine) -> None:
    values = [Decimal("0.1"), Decimal("12345678901234.123456789"), Decimal("-0.000000001")]
    async with migrated_engine.begin() as connection:
        await connection.execute(
            insert(statistics), [{"name": f"s{i}", "value": v} for i, v in enumerate(values)])
    async with migrated_engine.connect() as connection:
        read = (await connection.execute(select(statistics.c.value).order_by(statistics.c.id)))
        got = list(read.scalars())
    assert got == values
    assert [str(v) for v in got] == [str(v) for v in values]
    assert all(isinstance(v, Decimal) for v in got)


@pytest.mark.parametrize("quantity", ["0", "0.00", "0E-8", "-1"])
async def test_quantity_check_rejects_non_positive_text(
        migrated_engine: AsyncEngine, quantity: str) -> None:
    async with migrated_engine.begin() as connection:
        await connection.execute(insert(portfolios), {"name": "p", "initial_cash": Decimal(1)})
    row = {
        "client_order_id": "c1", "portfolio_id": 1, "symbol": "X", "side": "buy",
        "order_type": "market", "time_in_force": "day", "quantity": Decimal(quantity),
        "status": "PENDING_SUBMIT", "filled_quantity": Decimal(0), "broker": "paper",
        "ts_init": 1, "ts_last": 1,
    }
    with pytest.raises(IntegrityError, match=r"CHECK|check constraint"):
        async with migrated_engine.begin() as connection:
            await connection.execute(insert(orders), row)


async def test_foreign_keys_are_enforced(migrated_engine: AsyncEngine) -> None:
    with pytest.raises(IntegrityError, match=r"FOREIGN KEY|foreign key constraint"):
        async with migrated_engine.begin() as connection:
            await connection.execute(insert(statistics), {"portfolio_id": 99, "name": "x",
                                                          "value": Decimal(1)})
