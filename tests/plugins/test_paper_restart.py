"""The paper venue across real restarts (issue 9): its resting orders survive them.

Before issue 9 the paper venue's book lived only in memory: at the next start every order the
journal still held open was canceled as "unknown to the paper venue", so a GTC limit order never
outlived a deactivate or an engine restart. Now the runner gives the venue the journal's open
orders (``restore``) and a later bar that crosses the limit fills it, numbering its trades on.

The real engine runs in this process on SQLite and on PostgreSQL (the engine desk of
:mod:`tests.engine.desk`: supervisor, leases, runner, order manager, risk, journal, bus), with
the real ``paper`` broker; only the market data is the test's (the desk's manual feed). Orders
go in through the engine's facade, as the API sends them.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from decimal import Decimal
from typing import Any

import anyio
import pytest
from engine.desk import WAIT, EngineDesk, make_registry
from engine.venue import CHANNELS, FeedChannel, VenueWorld

from lts.bus import Mailbox, Overflow
from lts.domain.commands import Accepted, SubmitOrder
from lts.domain.events import OrderEvent
from lts.domain.orders import OrderRequest, OrderType, Side
from lts.domain.portfolio_spec import AssetSpec, PortfolioSpec
from lts.engine.engine import Engine
from lts.persistence import repositories as repo
from lts.persistence.db import make_engine
from lts.persistence.tables import fills, orders, positions
from lts.settings import load_settings

pytestmark = pytest.mark.anyio

LIMIT = OrderType.LIMIT


async def create_paper_portfolio(db_url: str, channel: str, **broker_params: Any) -> int:
    """One portfolio of ``AAA`` (tick 0.01, lot 1, $100,000) on the ``paper`` broker, its bars
    from the manual feed ``channel``."""
    db = make_engine(db_url)
    try:
        return await repo.create_portfolio(db, PortfolioSpec(
            name=f"paper-{channel}", initial_cash=Decimal(100_000),
            assets=(AssetSpec(symbol="AAA", strategy_plugin="quiet",
                                   broker_plugin="paper", broker_params=broker_params,
                                   pipeline_plugin="manual",
                                   pipeline_params={"channel": channel}),)))
    finally:
        await db.dispose()


@asynccontextmanager
async def paper_engine(db_url: str, pid: int, channel: str) -> AsyncIterator[EngineDesk]:
    """An engine on ``db_url`` running portfolio ``pid`` until the block ends (a graceful
    stop). The desk's scripted venue stands unused: the portfolio trades on ``paper``."""
    settings = load_settings(overrides={
        "database": {"url": db_url}, "demo": {"enabled": False}, "api": {"enabled": False},
        "engine": {"restart_initial_delay": 0.05, "restart_max_delay": 0.2,
                   "stop_timeout": 2.0, "lease_retry": 0.2}})
    running = Engine(settings, registry=make_registry())
    failed: Exception | None = None
    async with anyio.create_task_group() as tg:
        tg.start_soon(running.run)
        try:
            with anyio.fail_after(WAIT):
                await running.started.wait()
            events: Mailbox[OrderEvent] = Mailbox(100_000, Overflow.BLOCK, name="paper")
            running.facade.subscribe_events(events, pid)
            desk = EngineDesk(running, pid, VenueWorld("unused"), CHANNELS[channel],
                              ("AAA",), events)
            await desk.running()
            yield desk
        except Exception as exc:  # a failed test: still a graceful stop, then its error
            failed = exc
        running.stop()
    if failed is not None:
        raise failed


@asynccontextmanager
async def paper_channel() -> AsyncIterator[str]:
    key = uuid.uuid4().hex[:10]
    CHANNELS[key] = FeedChannel()
    try:
        yield key
    finally:
        CHANNELS.pop(key, None)


async def submit_limit_buy(desk: EngineDesk, quantity: int, limit: str) -> str:
    reply = await desk.command(SubmitOrder(OrderRequest(
        "AAA", Side.BUY, Decimal(quantity), LIMIT, limit_price=Decimal(limit))))
    assert isinstance(reply, Accepted), reply
    assert reply.order is not None
    coid = reply.order.client_order_id
    await desk.until(lambda: any(e.client_order_id == coid and e.status == "accepted"
                                 for e in desk.committed()), "the venue to accept the order")
    return coid


async def status_of(desk: EngineDesk, coid: str) -> str:
    [row] = await desk.rows(orders, client_order_id=coid)
    return str(row["status"])


async def fill_rows(desk: EngineDesk, coid: str, count: int) -> list[dict[str, Any]]:
    """The journal's fills of ``coid``, once there are ``count``."""
    async def enough() -> list[dict[str, Any]] | None:
        rows = await desk.rows(fills, client_order_id=coid)
        return rows if len(rows) >= count else None
    rows: list[dict[str, Any]] = await desk.until_async(enough, f"{count} fill(s) of {coid}")
    return rows


async def position(desk: EngineDesk) -> Decimal:
    [row] = await desk.rows(positions, portfolio_id=desk.portfolio_id, symbol="AAA")
    return Decimal(row["quantity"])


async def test_a_resting_gtc_limit_survives_deactivate_and_activate_and_fills(
        migrated_url: str) -> None:
    async with paper_channel() as channel:
        pid = await create_paper_portfolio(migrated_url, channel)
        async with paper_engine(migrated_url, pid, channel) as desk:
            desk.feed.push("AAA", 100.0, high=100.5, low=99.5)
            await desk.until(lambda: desk.state().bars >= 1, "the first bar")
            coid = await submit_limit_buy(desk, 5, "95")
            desk.feed.push("AAA", 97.0, high=100.0, low=96.0)  # not down to the limit
            await desk.until(lambda: desk.state().bars >= 2, "the second bar")
            assert desk.state().open_orders == 1

            await desk.restart()  # deactivate, activate: a new runner, a new paper venue

            assert await status_of(desk, coid) == "accepted"  # not "canceled ... unknown"
            assert desk.state().open_orders == 1
            desk.feed.push("AAA", 96.0, high=97.0, low=94.0)  # through the limit
            [fill] = await fill_rows(desk, coid, 1)
            assert (fill["trade_id"], fill["broker"]) == (f"{coid}@5", "paper")
            assert (Decimal(fill["quantity"]), Decimal(fill["price"])) == (5, Decimal(95))
            await desk.until(lambda: desk.state().open_orders == 0, "the order to close")
            assert await status_of(desk, coid) == "filled"
            assert await position(desk) == 5
            assert desk.state().anomalies == 0
            assert [e.status for e in desk.committed() if e.client_order_id == coid] == [
                "submitted", "accepted", "filled"]


async def test_a_partly_filled_order_fills_on_across_an_engine_restart(
        migrated_url: str) -> None:
    """A stop of the engine and a new engine on the same database: the order that had filled 4
    of 10 (volume cap) works on, its trade ids going on from 4 with none repeated."""
    async with paper_channel() as channel:
        pid = await create_paper_portfolio(migrated_url, channel, volume_cap=0.5)
        async with paper_engine(migrated_url, pid, channel) as first:
            first.feed.push("AAA", 100.0, high=100.5, low=99.5)
            await first.until(lambda: first.state().bars >= 1, "the first bar")
            coid = await submit_limit_buy(first, 10, "95")
            first.feed.push("AAA", 96.0, high=100.0, low=94.0, volume=8.0)  # cap: 4
            await fill_rows(first, coid, 1)
            await first.until(lambda: first.state().fills >= 1, "the fill to commit")
            assert await status_of(first, coid) == "partially_filled"

        async with paper_engine(migrated_url, pid, channel) as second:
            assert second.state().open_orders == 1
            assert await status_of(second, coid) == "partially_filled"
            second.feed.push("AAA", 96.0, high=97.0, low=94.0, volume=8.0)  # 4 more
            await fill_rows(second, coid, 2)
            second.feed.push("AAA", 96.0, high=97.0, low=94.0, volume=8.0)  # the last 2
            rows = await fill_rows(second, coid, 3)
            assert [(r["trade_id"], Decimal(r["quantity"])) for r in rows] == [
                (f"{coid}@4", 4), (f"{coid}@8", 4), (f"{coid}@10", 2)]
            await second.until(lambda: second.state().open_orders == 0, "the order to close")
            assert await status_of(second, coid) == "filled"
            assert await position(second) == 10
            assert second.state().anomalies == 0
