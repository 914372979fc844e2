"""Portfolio and asset rows for the control API: plain reads and writes, one unit of work each.

The engine reads the same rows when a runner starts (``repositories.load_portfolio``); the API
changes them and then asks the engine to start, stop or restart the runner. Reads go through
the :class:`~lts.persistence.reader.Reader` (off the loop), writes through the ``AsyncEngine``.
"""

from collections.abc import Mapping
from typing import Any

from sqlalchemy import delete, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from lts.errors import Conflict
from lts.persistence.reader import Reader
from lts.persistence.tables import assets, portfolios, positions

Row = dict[str, Any]


async def list_portfolios(reader: Reader, owner_id: int | None) -> list[Row]:
    query = select(portfolios).order_by(portfolios.c.id)
    if owner_id is not None:
        query = query.where(portfolios.c.owner_id == owner_id)
    return await reader.all(query)


async def get_portfolio(reader: Reader, portfolio_id: int) -> Row | None:
    return await reader.first(select(portfolios).where(portfolios.c.id == portfolio_id))


async def create_portfolio(db: AsyncEngine, values: Mapping[str, Any]) -> int:
    try:
        async with db.begin() as conn:
            pid = (await conn.execute(insert(portfolios).values(**values)
                                      .returning(portfolios.c.id))).scalar_one()
    except IntegrityError:
        raise Conflict(f"a portfolio named {values.get('name')!r} exists") from None
    return int(pid)


async def update_portfolio(db: AsyncEngine, portfolio_id: int, values: Mapping[str, Any]) -> None:
    if not values:
        return
    try:
        async with db.begin() as conn:
            await conn.execute(update(portfolios).where(portfolios.c.id == portfolio_id)
                               .values(**values))
    except IntegrityError:
        raise Conflict(f"a portfolio named {values.get('name')!r} exists") from None


async def delete_portfolio(db: AsyncEngine, portfolio_id: int) -> None:
    async with db.begin() as conn:
        await conn.execute(delete(portfolios).where(portfolios.c.id == portfolio_id))


async def list_assets(reader: Reader, portfolio_id: int) -> list[Row]:
    return await reader.all(select(assets).where(assets.c.portfolio_id == portfolio_id)
                            .order_by(assets.c.id))


async def get_asset(reader: Reader, portfolio_id: int, asset_id: int) -> Row | None:
    return await reader.first(select(assets).where(assets.c.id == asset_id,
                                                   assets.c.portfolio_id == portfolio_id))


async def add_asset(db: AsyncEngine, portfolio_id: int, values: Mapping[str, Any]) -> int:
    try:
        async with db.begin() as conn:
            aid = (await conn.execute(insert(assets).values(portfolio_id=portfolio_id, **values)
                                      .returning(assets.c.id))).scalar_one()
    except IntegrityError:
        raise Conflict(f"symbol {values.get('symbol')!r} is already in this portfolio") from None
    return int(aid)


async def update_asset(db: AsyncEngine, asset_id: int, values: Mapping[str, Any]) -> None:
    if values:
        async with db.begin() as conn:
            await conn.execute(update(assets).where(assets.c.id == asset_id).values(**values))


async def delete_asset(db: AsyncEngine, asset_id: int) -> None:
    async with db.begin() as conn:
        await conn.execute(delete(assets).where(assets.c.id == asset_id))


async def list_positions(reader: Reader, portfolio_id: int) -> list[Row]:
    return await reader.all(select(positions).where(positions.c.portfolio_id == portfolio_id)
                            .order_by(positions.c.symbol))
