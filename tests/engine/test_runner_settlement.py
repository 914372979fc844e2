"""A live runner settles orders its venue never answered (SYS-006, SYS-011).

Real runner, bus, feed hub, journal and SQLite file; the venue is a fake that takes orders and
stays silent until it is asked to reconcile, as a venue whose acknowledgement was lost would.
"""

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any, ClassVar

import anyio
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from lts.bus import InProcessBus
from lts.domain.clock import Clock
from lts.domain.market import Bar
from lts.domain.orders import Fill, Order, OrderStatus, OrderStatusReport
from lts.engine.clock import LiveClock
from lts.engine.feeds import FeedHub
from lts.engine.runner import PortfolioRunner, RunnerContext
from lts.persistence import repositories as repo
from lts.persistence.journal import Journal
from lts.persistence.tables import order_events, orders
from lts.plugins.base import PluginBase
from lts.plugins.broker import BrokerReports
from lts.plugins.registry import Registry

pytestmark = pytest.mark.anyio


class SilentVenue(PluginBase):
    """Takes orders and never answers; reconciliation reports each one filled."""

    plugin_name = "silent"
    instances: ClassVar[list["SilentVenue"]] = []

    def __init__(self, **params: object) -> None:
        super().__init__(**params)
        self.name = "silent"
        self.sent: list[Order] = []
        self.reconciled: list[str] = []
        SilentVenue.instances.append(self)

    def bind(self, reports: BrokerReports, clock: Clock) -> None:
        self.clock = clock

    def submit(self, order: Order) -> None:
        self.sent.append(order)

    def cancel(self, client_order_id: str) -> None:
        pass

    def on_bar(self, bar: Bar) -> None:
        pass

    async def reconcile(self, orders: Sequence[Order]) -> list[OrderStatusReport]:
        out = []
        for o in orders:
            self.reconciled.append(o.client_order_id)
            fill = Fill(o.portfolio_id, o.client_order_id, self.name, f"X-{o.client_order_id}",
                        o.symbol, o.side, o.quantity, Decimal("101.5"), Decimal(0),
                        self.clock.now_ns())
            out.append(OrderStatusReport(o.client_order_id, OrderStatus.FILLED, (fill,)))
        return out


@dataclass
class LiveBars:
    """A live feed: one bar every 20 ms."""

    historical: bool = False

    async def bars(self, symbol: str, clock: Clock) -> AsyncIterator[Sequence[Bar]]:
        while True:
            await anyio.sleep(0.02)
            yield [Bar(symbol, clock.now_ns(), 101.0, 102.0, 100.0, 101.5, 10.0)]


async def _wait_for(condition: Any, what: str, limit: float = 10.0) -> None:
    with anyio.move_on_after(limit):
        while not condition():  # noqa: ASYNC110 - polls the runner's state, no event to wait on
            await anyio.sleep(0.02)
        return
    raise AssertionError(f"timed out waiting for {what}")


async def test_an_unanswered_order_becomes_unknown_then_is_reconciled_filled(
        migrated_engine: AsyncEngine, tmp_path: Path) -> None:
    SilentVenue.instances.clear()
    registry = Registry.discover()
    registry.register("broker", "silent", SilentVenue)
    pid = await repo.create_portfolio(migrated_engine, repo.PortfolioSpec(
        name="p", initial_cash=Decimal(10_000), assets=(repo.AssetSpec(
            symbol="AAA", strategy_plugin="buy_and_hold", strategy_params={"quantity": "3"},
            broker_plugin="silent", pipeline_plugin="live-test"),)))
    spec = await repo.load_portfolio(migrated_engine, pid)
    bus, journal = InProcessBus(), Journal(migrated_engine)
    async with anyio.create_task_group() as tg:
        await tg.start(journal.run)
        feeds = FeedHub(registry, bus, LiveClock(), tg)
        feeds.provide("live-test", {}, "AAA", LiveBars())
        ctx = RunnerContext(registry=registry, bus=bus, journal=journal, db=migrated_engine,
                            feeds=feeds, clock=LiveClock(), durable=True, ack_timeout=0.2)
        runner = PortfolioRunner(spec, ctx)
        tg.start_soon(runner.run)
        await _wait_for(lambda: SilentVenue.instances and SilentVenue.instances[0].reconciled,
                        "reconciliation of the unanswered order")
        await _wait_for(lambda: not runner.open_orders, "the order to leave the open book")
        await journal.flush()
        tg.cancel_scope.cancel()

    venue = SilentVenue.instances[0]
    assert [o.client_order_id for o in venue.sent] == [f"{pid}-1"]  # sent once, never again
    assert venue.reconciled == [f"{pid}-1"]
    assert runner.ledger.position("AAA") == Decimal(3)
    async with migrated_engine.connect() as conn:
        row = (await conn.execute(select(orders.c.status, orders.c.filled_quantity))).one()
        kinds = (await conn.execute(select(order_events.c.type)
                                    .order_by(order_events.c.seq))).scalars().all()
    assert (row.status, row.filled_quantity) == ("filled", Decimal(3))
    assert kinds == ["order.submitted", "order.unknown", "order.filled"]
