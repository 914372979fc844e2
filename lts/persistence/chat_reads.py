"""What the Telegram bot's commands and the daily summary read: portfolios, their positions, open
orders and the day's fills.

Where it sits: under :mod:`lts.notify.telegram` (``/status``, ``/positions``, ``/profit``,
``/balance``, ``/orders``); live figures (status, equity) come from the engine's facade, the
rest from here. One unit of work per call, bounded answers (a chat message is short).
"""

from collections.abc import Sequence
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from lts.domain.orders import OPEN_STATUSES
from lts.persistence.tables import fills, orders, portfolios, positions

__all__ = ["fills_between", "open_orders", "portfolios_of", "positions_of"]

Row = dict[str, Any]
_OPEN = sorted(s.value for s in OPEN_STATUSES)


async def portfolios_of(db: AsyncEngine, owner_id: int | None) -> list[Row]:
    """Every portfolio (``owner_id`` None: an admin's view) or those ``owner_id`` owns."""
    query = select(portfolios.c.id, portfolios.c.name, portfolios.c.owner_id,
                   portfolios.c.initial_cash, portfolios.c.trading_state, portfolios.c.status,
                   portfolios.c.last_error).order_by(portfolios.c.id)
    if owner_id is not None:
        query = query.where(portfolios.c.owner_id == owner_id)
    async with db.connect() as conn:
        return [dict(r) for r in (await conn.execute(query)).mappings()]


async def positions_of(db: AsyncEngine, portfolio_ids: Sequence[int]) -> list[Row]:
    """Non-flat positions of the portfolios, by portfolio and symbol."""
    query = (select(positions).where(positions.c.portfolio_id.in_(portfolio_ids))
             .order_by(positions.c.portfolio_id, positions.c.symbol))
    async with db.connect() as conn:
        return [dict(r) for r in (await conn.execute(query)).mappings() if r["quantity"] != 0]


async def open_orders(db: AsyncEngine, portfolio_ids: Sequence[int], limit: int) -> list[Row]:
    query = (select(orders.c.portfolio_id, orders.c.client_order_id, orders.c.symbol,
                    orders.c.side, orders.c.order_type, orders.c.quantity,
                    orders.c.filled_quantity, orders.c.limit_price, orders.c.stop_price,
                    orders.c.status)
             .where(orders.c.portfolio_id.in_(portfolio_ids), orders.c.status.in_(_OPEN))
             .order_by(orders.c.portfolio_id, orders.c.id).limit(limit))
    async with db.connect() as conn:
        return [dict(r) for r in (await conn.execute(query)).mappings()]


async def fills_between(db: AsyncEngine, start_ns: int, end_ns: int) -> dict[int, int]:
    """How many fills each portfolio had with ``start_ns <= ts_event < end_ns``."""
    query = (select(fills.c.portfolio_id, func.count())
             .where(fills.c.ts_event >= start_ns, fills.c.ts_event < end_ns)
             .group_by(fills.c.portfolio_id))
    async with db.connect() as conn:
        return {int(pid): int(n) for pid, n in await conn.execute(query)}
