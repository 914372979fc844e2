"""Repositories: what start-up, recovery and the CLI read and write outside the hot path.

The journal owns the per-order writes; these functions load a portfolio's spec, its orders and
fills (recovery), and create users and portfolios. Each call is one unit of work on its own
connection.
"""

from decimal import Decimal
from typing import Any

from sqlalchemy import func, insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from lts.domain.contingency import BRACKET_PREFIX, OCO_PREFIX
from lts.domain.orders import (
    OPEN_STATUSES,
    Fill,
    FillAnomaly,
    Order,
    OrderStatus,
    OrderType,
    Side,
    TimeInForce,
)
from lts.domain.portfolio_spec import AssetSpec, PortfolioSpec
from lts.persistence.tables import (
    assets,
    configuration,
    fills,
    order_events,
    orders,
    portfolios,
    positions,
    users,
)


async def create_portfolio(engine: AsyncEngine, spec: PortfolioSpec) -> int:
    async with engine.begin() as conn:
        pid = (await conn.execute(insert(portfolios).values(
            name=spec.name, owner_id=spec.owner_id, portfolio_plugin=spec.portfolio_plugin,
            portfolio_params=spec.portfolio_params, initial_cash=spec.initial_cash,
            risk_params=spec.risk_params, trading_state=spec.trading_state,
        ).returning(portfolios.c.id))).scalar_one()
        await conn.execute(insert(assets), [{
            "portfolio_id": pid, "symbol": a.symbol, "strategy_plugin": a.strategy_plugin,
            "strategy_params": a.strategy_params, "broker_plugin": a.broker_plugin,
            "broker_params": a.broker_params, "pipeline_plugin": a.pipeline_plugin,
            "pipeline_params": a.pipeline_params, "tick_size": a.tick_size,
            "lot_size": a.lot_size, "min_quantity": a.min_quantity,
            "min_notional": a.min_notional} for a in spec.assets])
    return int(pid)


async def portfolio_id_by_name(engine: AsyncEngine, name: str) -> int | None:
    async with engine.connect() as conn:
        pid = (await conn.execute(select(portfolios.c.id).where(portfolios.c.name == name))
               ).scalar_one_or_none()
    return None if pid is None else int(pid)


async def active_portfolio_ids(engine: AsyncEngine) -> list[int]:
    async with engine.connect() as conn:
        rows = await conn.execute(select(portfolios.c.id).where(portfolios.c.is_active)
                                  .order_by(portfolios.c.id))
    return [int(r) for r in rows.scalars()]


async def load_portfolio(engine: AsyncEngine, portfolio_id: int) -> PortfolioSpec:
    async with engine.connect() as conn:
        p = (await conn.execute(select(portfolios).where(portfolios.c.id == portfolio_id))
             ).mappings().one()
        rows = (await conn.execute(select(assets).where(
            assets.c.portfolio_id == portfolio_id, assets.c.is_active).order_by(assets.c.id))
        ).mappings().all()
    return PortfolioSpec(
        id=p["id"], name=p["name"], initial_cash=p["initial_cash"], owner_id=p["owner_id"],
        portfolio_plugin=p["portfolio_plugin"], portfolio_params=p["portfolio_params"] or {},
        risk_params=p["risk_params"] or {}, trading_state=p["trading_state"],
        assets=tuple(AssetSpec(
            id=a["id"], symbol=a["symbol"], strategy_plugin=a["strategy_plugin"],
            strategy_params=a["strategy_params"] or {}, broker_plugin=a["broker_plugin"],
            broker_params=a["broker_params"] or {}, pipeline_plugin=a["pipeline_plugin"],
            pipeline_params=a["pipeline_params"] or {}, tick_size=a["tick_size"],
            lot_size=a["lot_size"], min_quantity=a["min_quantity"],
            min_notional=a["min_notional"]) for a in rows))


def _order(r: Any) -> Order:
    return Order(client_order_id=r["client_order_id"], portfolio_id=r["portfolio_id"],
                 symbol=r["symbol"], side=Side(r["side"]), quantity=r["quantity"],
                 order_type=OrderType(r["order_type"]),
                 time_in_force=TimeInForce(r["time_in_force"]), limit_price=r["limit_price"],
                 stop_price=r["stop_price"], status=OrderStatus(r["status"]),
                 filled_quantity=r["filled_quantity"], avg_fill_price=r["avg_fill_price"],
                 broker_order_id=r["broker_order_id"], reason=r["reason"], tag=r["tag"],
                 ts_init=r["ts_init"], ts_last=r["ts_last"],
                 anomaly=FillAnomaly(r["anomaly"]) if r["anomaly"] else None)


async def load_open_orders(engine: AsyncEngine, portfolio_id: int) -> list[Order]:
    async with engine.connect() as conn:
        rows = (await conn.execute(select(orders).where(
            orders.c.portfolio_id == portfolio_id,
            orders.c.status.in_([s.value for s in OPEN_STATUSES])).order_by(orders.c.id))
        ).mappings().all()
    return [_order(r) for r in rows]


#: How many of a portfolio's latest bracket and exit orders a restart reads back: a bracket's
#: exits are placed after its entry, so an entry among these has its exits among them too.
LINKED_ORDERS = 1000


async def load_linked_orders(engine: AsyncEngine, portfolio_id: int,
                             limit: int = LINKED_ORDERS) -> list[Order]:
    """The portfolio's latest ``limit`` bracket entries and exit-group members, open or not,
    oldest first: what a restart ties contingent orders together from
    (:mod:`lts.engine.contingent`)."""
    async with engine.connect() as conn:
        rows = (await conn.execute(select(orders).where(
            orders.c.portfolio_id == portfolio_id,
            orders.c.tag.startswith(BRACKET_PREFIX) | orders.c.tag.startswith(OCO_PREFIX))
            .order_by(orders.c.id.desc()).limit(limit))).mappings().all()
    return [_order(r) for r in reversed(rows)]


async def load_fills(engine: AsyncEngine, portfolio_id: int) -> list[Fill]:
    async with engine.connect() as conn:
        rows = (await conn.execute(select(fills).where(fills.c.portfolio_id == portfolio_id)
                                   .order_by(fills.c.id))).mappings().all()
    return [Fill(r["portfolio_id"], r["client_order_id"], r["broker"], r["trade_id"],
                 r["symbol"], Side(r["side"]), r["quantity"], r["price"], r["fee"],
                 r["ts_event"], r["commission"]) for r in rows]


async def load_positions(engine: AsyncEngine, portfolio_id: int) -> dict[str, Decimal]:
    async with engine.connect() as conn:
        rows = await conn.execute(select(positions.c.symbol, positions.c.quantity)
                                  .where(positions.c.portfolio_id == portfolio_id))
    return {r.symbol: r.quantity for r in rows}


async def next_numbers(engine: AsyncEngine, portfolio_id: int) -> tuple[int, int]:
    """The next client order number and the last event sequence number of a portfolio."""
    prefix = f"{portfolio_id}-"
    async with engine.connect() as conn:
        coids = (await conn.execute(select(orders.c.client_order_id).where(
            orders.c.portfolio_id == portfolio_id,
            orders.c.client_order_id.startswith(prefix, autoescape=True)))).scalars()
        # adopted external orders (``ext-...``) are not numbered
        top = max((int(c[len(prefix):]) for c in coids if c[len(prefix):].isdigit()),
                  default=0)
        seq = (await conn.execute(select(func.max(order_events.c.seq))
                                  .where(order_events.c.portfolio_id == portfolio_id))
               ).scalar_one_or_none()
    return top + 1, int(seq or 0)


async def user_count(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        return int((await conn.execute(select(func.count()).select_from(users))).scalar_one())


async def create_user(engine: AsyncEngine, username: str, password_hash: str, role: str,
                      email: str | None = None) -> int:
    async with engine.begin() as conn:
        uid = (await conn.execute(insert(users).values(
            username=username, email=email, password_hash=password_hash, role=role)
            .returning(users.c.id))).scalar_one()
    return int(uid)


async def user_id_by_name(engine: AsyncEngine, username: str) -> int | None:
    async with engine.connect() as conn:
        uid = (await conn.execute(select(users.c.id).where(users.c.username == username))
               ).scalar_one_or_none()
    return None if uid is None else int(uid)


async def load_configuration(engine: AsyncEngine) -> dict[str, Any]:
    """Runtime overrides stored through the API: dotted key -> value."""
    async with engine.connect() as conn:
        rows = await conn.execute(select(configuration.c.key, configuration.c.value))
        return {r.key: r.value for r in rows}


async def late_fill_lookup(engine: AsyncEngine, portfolio_id: int, client_order_id: str
                           ) -> tuple[Order | None, set[tuple[str, str]]]:
    """The portfolio's order a venue names ``client_order_id`` (its own, or the external order
    adopted for it: ``ext-<portfolio>-<id>``) and the (broker, trade id) of its fills."""
    adopted = f"ext-{portfolio_id}-{client_order_id}"
    async with engine.connect() as conn:
        row = (await conn.execute(select(orders).where(
            orders.c.portfolio_id == portfolio_id,
            orders.c.client_order_id.in_([client_order_id, adopted]))
            .order_by(orders.c.id))).mappings().first()
        if row is None:
            return None, set()
        trades = await conn.execute(select(fills.c.broker, fills.c.trade_id).where(
            fills.c.client_order_id == row["client_order_id"]))
        return _order(row), {(t.broker, t.trade_id) for t in trades}
