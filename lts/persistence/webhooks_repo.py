"""Webhook rows and their delivery log: the API's CRUD and the notifier's reads and writes.

Where it sits: under ``lts.api.routes.webhooks`` (each user's own webhooks; reads through the
:class:`~lts.persistence.reader.Reader`, off the loop) and the notifier (:mod:`lts.notify`),
which reads the active webhooks with their owners' roles and the portfolios' owners, and writes
one ``webhook_deliveries`` row per delivery attempt, in batches. One unit of work per call.
"""

import secrets
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import Select, delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from lts.domain.events import NOTIFICATION_TYPES
from lts.persistence.reader import Reader
from lts.persistence.tables import portfolios, users, webhook_deliveries, webhooks

__all__ = [
    "NOTIFICATION_TYPES",
    "active_routes",
    "count_webhooks",
    "create_webhook",
    "delete_webhook",
    "get_webhook",
    "list_deliveries",
    "list_webhooks",
    "new_secret",
    "portfolio_directory",
    "prune_deliveries",
    "record_deliveries",
    "update_webhook",
    "users_named",
]

Row = dict[str, Any]



def new_secret() -> str:
    """A fresh webhook signing secret (256 random bits), shown once to its owner."""
    return "whsec_" + secrets.token_urlsafe(32)


def _mine(user_id: int) -> Select[Any]:
    return select(webhooks).where(webhooks.c.user_id == user_id)


async def list_webhooks(reader: Reader, user_id: int) -> list[Row]:
    return await reader.all(_mine(user_id).order_by(webhooks.c.id))


async def get_webhook(reader: Reader, user_id: int, webhook_id: int) -> Row | None:
    return await reader.first(_mine(user_id).where(webhooks.c.id == webhook_id))


async def count_webhooks(db: AsyncEngine, user_id: int) -> int:
    async with db.connect() as conn:
        n = await conn.scalar(select(func.count()).select_from(webhooks)
                              .where(webhooks.c.user_id == user_id))
    return int(n or 0)


async def create_webhook(db: AsyncEngine, values: Mapping[str, Any]) -> Row:
    async with db.begin() as conn:
        row = (await conn.execute(insert(webhooks).values(**values)
                                  .returning(*webhooks.c))).mappings().one()
    return dict(row)


async def update_webhook(db: AsyncEngine, user_id: int, webhook_id: int,
                         values: Mapping[str, Any]) -> Row | None:
    """The row after the change; None when the user has no such webhook."""
    async with db.begin() as conn:
        row = (await conn.execute(
            update(webhooks).where(webhooks.c.id == webhook_id, webhooks.c.user_id == user_id)
            .values(**values, updated_at=func.current_timestamp())
            .returning(*webhooks.c))).mappings().first()
    return None if row is None else dict(row)


async def delete_webhook(db: AsyncEngine, user_id: int, webhook_id: int) -> bool:
    async with db.begin() as conn:
        result = await conn.execute(delete(webhooks).where(
            webhooks.c.id == webhook_id, webhooks.c.user_id == user_id))
    return bool(result.rowcount)


async def list_deliveries(reader: Reader, webhook_id: int, *, limit: int,
                          before_id: int | None = None) -> list[Row]:
    """The latest attempts first (``before_id``: the page after the one that ended there)."""
    query = select(webhook_deliveries).where(webhook_deliveries.c.webhook_id == webhook_id)
    if before_id is not None:
        query = query.where(webhook_deliveries.c.id < before_id)
    return await reader.all(query.order_by(webhook_deliveries.c.id.desc()).limit(limit))


# -- the notifier's side ------------------------------------------------------------------------

async def active_routes(db: AsyncEngine) -> list[Row]:
    """Active webhooks of active users, with the owner's role."""
    query = (select(webhooks.c.id, webhooks.c.user_id, webhooks.c.url, webhooks.c.secret,
                    webhooks.c.event_types, webhooks.c.portfolio_id, users.c.role)
             .join(users, users.c.id == webhooks.c.user_id)
             .where(webhooks.c.active.is_(True), users.c.is_active.is_(True))
             .order_by(webhooks.c.id))
    async with db.connect() as conn:
        return [dict(r) for r in (await conn.execute(query)).mappings()]


async def portfolio_directory(db: AsyncEngine) -> dict[int, tuple[int | None, str]]:
    """Every portfolio's owner id and name."""
    query = select(portfolios.c.id, portfolios.c.owner_id, portfolios.c.name)
    async with db.connect() as conn:
        return {r.id: (r.owner_id, r.name) for r in await conn.execute(query)}


async def users_named(db: AsyncEngine, names: Iterable[str]) -> dict[str, tuple[int, str]]:
    """Active users among ``names``: name -> (id, role)."""
    wanted = sorted(set(names))
    if not wanted:
        return {}
    query = select(users.c.id, users.c.username, users.c.role).where(
        users.c.username.in_(wanted), users.c.is_active.is_(True))
    async with db.connect() as conn:
        return {r.username: (r.id, r.role) for r in await conn.execute(query)}


async def record_deliveries(db: AsyncEngine, rows: Sequence[Mapping[str, Any]]) -> int:
    """Insert attempt rows; rows of webhooks deleted meanwhile are left out. Returns how many
    were written."""
    if not rows:
        return 0
    ids = {r["webhook_id"] for r in rows}
    try:
        async with db.begin() as conn:
            alive = set((await conn.scalars(select(webhooks.c.id)
                                            .where(webhooks.c.id.in_(ids)))).all())
            kept = [r for r in rows if r["webhook_id"] in alive]
            if kept:
                await conn.execute(insert(webhook_deliveries), kept)
        return len(kept)
    except IntegrityError:  # one was deleted between the look and the insert: one by one
        return await _one_by_one(db, rows)


async def _one_by_one(db: AsyncEngine, rows: Iterable[Mapping[str, Any]]) -> int:
    written = 0
    for row in rows:
        try:
            async with db.begin() as conn:
                await conn.execute(insert(webhook_deliveries), [row])
            written += 1
        except IntegrityError:
            continue
    return written


async def prune_deliveries(db: AsyncEngine, webhook_ids: Iterable[int], keep: int) -> int:
    """Keep the latest ``keep`` attempts of each webhook named; returns the rows deleted."""
    deleted = 0
    d = webhook_deliveries
    async with db.begin() as conn:
        for wid in webhook_ids:
            cut = await conn.scalar(select(d.c.id).where(d.c.webhook_id == wid)
                                    .order_by(d.c.id.desc()).offset(keep).limit(1))
            if cut is not None:
                result = await conn.execute(delete(d).where(d.c.webhook_id == wid,
                                                            d.c.id <= cut))
                deleted += result.rowcount
    return deleted
