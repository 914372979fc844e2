"""``GET /api/v1/stats`` (any logged-in user; a non-admin sees only the portfolios they own):
counts and rates. Per portfolio: orders (total and by status, from the ``orders`` table), fills;
engine-wide: events published on the bus by type, journal commits and records. A rate is the
count divided by the uptime.

Uptime: the engine records no start time, so it is measured from the creation of the app's
metrics registry (the API plugin builds it when the engine starts serving), read from the
``_created`` sample of a metric of that registry; if that sample is unavailable (created series
switched off) it falls back to the time this module was first imported.
"""

import time
from typing import Any

from fastapi import APIRouter
from sqlalchemy import func, select

from lts.api.admin_schemas import EngineStats, PortfolioStats, Stats
from lts.api.context import ApiContext
from lts.api.deps import CurrentUser
from lts.persistence.tables import fills, orders, portfolios

router = APIRouter(prefix="/api/v1", tags=["stats"])
_IMPORTED = time.time()


def _started(ctx: ApiContext) -> float:
    for family in ctx.metrics.loop_lag.collect():
        for sample in family.samples:
            if sample.name.endswith("_created"):
                return float(sample.value)
    return _IMPORTED


def _rate(count: int, uptime: float) -> float:
    return round(count / uptime, 6) if uptime > 0 else 0.0


@router.get("/stats", response_model=Stats)
async def stats(caller: CurrentUser) -> Stats:
    ctx, who = caller
    engine = ctx.engine
    uptime = max(time.time() - _started(ctx), 1e-9)
    listed = select(portfolios.c.id, portfolios.c.name).order_by(portfolios.c.id)
    if who.role != "admin":
        listed = listed.where(portfolios.c.owner_id == who.user_id)
    async with engine.db.connect() as conn:
        rows = (await conn.execute(listed)).all()
        ids = [r.id for r in rows]
        by_status = (await conn.execute(
            select(orders.c.portfolio_id, orders.c.status, func.count())
            .where(orders.c.portfolio_id.in_(ids))
            .group_by(orders.c.portfolio_id, orders.c.status))).all()
        fill_counts = (await conn.execute(
            select(fills.c.portfolio_id, func.count()).where(fills.c.portfolio_id.in_(ids))
            .group_by(fills.c.portfolio_id))).all()
    statuses: dict[int, dict[str, int]] = {pid: {} for pid in ids}
    for pid, status, count in by_status:
        statuses[pid][status] = int(count)
    fill_count: dict[Any, int] = {pid: int(count) for pid, count in fill_counts}
    per_portfolio = []
    for row in rows:
        total = sum(statuses[row.id].values())
        state = engine.state(row.id)
        per_portfolio.append(PortfolioStats(
            id=row.id, name=row.name, runner=state.status if state else "stopped",
            orders=total, orders_by_status=dict(sorted(statuses[row.id].items())),
            fills=fill_count.get(row.id, 0), orders_per_second=_rate(total, uptime),
            fills_per_second=_rate(fill_count.get(row.id, 0), uptime)))
    counters = engine.counters()
    published = dict(sorted(counters.published.items()))
    return Stats(
        uptime_seconds=round(uptime, 3),
        engine=EngineStats(
            events_published=published,
            events_per_second={k: _rate(v, uptime) for k, v in published.items()},
            journal_commits=counters.journal_commits,
            journal_records=counters.journal_records,
            journal_commits_per_second=_rate(counters.journal_commits, uptime),
            journal_records_per_second=_rate(counters.journal_records, uptime)),
        portfolios=per_portfolio)
