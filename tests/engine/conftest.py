"""The order desk of one portfolio, wired from real parts: a migrated SQLite file, the running
Journal, an InProcessBus, a RiskCheck, a Ledger and an OrderManager. Only the venue may be fake.
"""

import sqlite3
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import closing
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import anyio
import asyncpg
import pytest
from sqlalchemy import select
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from lts.bus import InProcessBus, Mailbox, Overflow
from lts.domain.events import OrderEvent, PositionChanged
from lts.domain.market import Bar
from lts.domain.orders import Order, OrderStatusReport
from lts.engine.clock import ReplayClock
from lts.engine.ledger import Ledger
from lts.engine.order_manager import OrderManager
from lts.engine.risk import RiskCheck, RiskLimits, TradingState
from lts.persistence.journal import Journal
from lts.persistence.repositories import AssetSpec, PortfolioSpec, create_portfolio
from lts.plugins.broker import Broker, BrokerReports
from lts.plugins.broker.paper import PaperBroker

from ._support import T0

INITIAL_CASH = Decimal(100_000)


@dataclass
class RecordingVenue:
    """A fake venue (satisfies ``Broker``): records what it is sent and answers nothing unless
    the test reports through ``reports``. With ``read_status`` (a reader on a connection of its
    own, outside the engine) it records what the database holds for each order at the moment the
    order reaches it: only committed rows are visible there.
    ``refuse`` makes ``submit`` raise, as a venue client does when it cannot send."""

    name: str = "venue"
    read_status: Callable[[str], str | None] | None = None
    refuse: Exception | None = None
    orders: list[Order] = field(default_factory=list)
    cancels: list[str] = field(default_factory=list)
    bars: list[Bar] = field(default_factory=list)
    rows_at_submit: list[tuple[str, str | None]] = field(default_factory=list)
    reports: BrokerReports | None = None

    def bind(self, reports: BrokerReports, clock: Any) -> None:
        self.reports = reports

    def submit(self, order: Order) -> None:
        if self.read_status is not None:
            self.rows_at_submit.append((order.client_order_id,
                                        self.read_status(order.client_order_id)))
        if self.refuse is not None:
            raise self.refuse
        self.orders.append(order)

    def cancel(self, client_order_id: str) -> None:
        self.cancels.append(client_order_id)

    def on_bar(self, bar: Bar) -> None:
        self.bars.append(bar)

    async def reconcile(self, orders: Sequence[Order]) -> list[OrderStatusReport]:
        return []


@dataclass
class Desk:
    portfolio_id: int
    om: OrderManager
    journal: Journal
    bus: InProcessBus
    ledger: Ledger
    risk: RiskCheck
    clock: ReplayClock
    broker: Broker
    db: AsyncEngine
    events: Mailbox[OrderEvent]
    position_events: Mailbox[PositionChanged]

    def tick(self, bar: Bar) -> None:
        """What the runner does with a bar before the strategy: time, mark, broker."""
        self.clock.ts = bar.ts_event
        self.ledger.mark(bar.symbol, bar.close)
        self.broker.on_bar(bar)

    async def rows(self, table: Any, **where: Any) -> list[dict[str, Any]]:
        """Committed rows of ``table`` (after a journal flush), oldest first."""
        await self.journal.flush()
        query = select(table).order_by(table.c.id)
        for column, value in where.items():
            query = query.where(table.c[column] == value)
        async with self.db.connect() as conn:
            return [dict(r) for r in (await conn.execute(query)).mappings()]


StatusReader = Callable[[str], str | None]


@pytest.fixture
def read_status(migrated_url: str, run_in_thread: Callable[..., Any]) -> StatusReader:
    """The committed status of an order, read through a connection of its own (sqlite3 or
    asyncpg), blocking, as a venue's own process would see the database."""
    url = make_url(migrated_url)
    query = "SELECT status FROM orders WHERE client_order_id = {}"
    if url.get_backend_name() == "sqlite":
        def read_sqlite(coid: str) -> str | None:
            with closing(sqlite3.connect(str(url.database))) as conn:
                row = conn.execute(query.format("?"), (coid,)).fetchone()
            return None if row is None else str(row[0])
        return read_sqlite
    dsn = url.set(drivername="postgresql").render_as_string(hide_password=False)

    def read_pg(coid: str) -> str | None:
        async def read() -> Any:
            conn = await asyncpg.connect(dsn)
            try:
                return await conn.fetchval(query.format("$1"), coid)
            finally:
                await conn.close()
        value = run_in_thread(read)
        return None if value is None else str(value)
    return read_pg


@pytest.fixture
async def portfolio_id(migrated_engine: AsyncEngine) -> int:
    spec = PortfolioSpec(name="desk", initial_cash=INITIAL_CASH, assets=(
        AssetSpec(symbol="AAA", strategy_plugin="buy_and_hold", broker_plugin="paper",
                  pipeline_plugin="synthetic"),))
    return await create_portfolio(migrated_engine, spec)


@pytest.fixture
async def journal(migrated_engine: AsyncEngine) -> AsyncIterator[Journal]:
    journal = Journal(migrated_engine)
    async with anyio.create_task_group() as tg:
        await tg.start(journal.run)
        yield journal
        tg.cancel_scope.cancel()


DeskFactory = Callable[..., Desk]


@pytest.fixture
def make_desk(migrated_engine: AsyncEngine, journal: Journal, portfolio_id: int) -> DeskFactory:
    def make(broker: Broker | None = None, *, durable: bool = True,
             state: TradingState = TradingState.ACTIVE, limits: RiskLimits | None = None,
             next_order_number: int = 1, next_event_seq: int = 0,
             seen_trades: set[tuple[str, str]] | None = None) -> Desk:
        venue: Broker = PaperBroker() if broker is None else broker
        bus = InProcessBus()
        events: Mailbox[OrderEvent] = Mailbox(1_000, Overflow.BLOCK, name="events")
        position_events: Mailbox[PositionChanged] = Mailbox(1_000, Overflow.BLOCK,
                                                            name="positions")
        bus.subscribe(OrderEvent, events, key=portfolio_id)
        bus.subscribe(PositionChanged, position_events, key=portfolio_id)
        open_orders: dict[str, Order] = {}
        ledger = Ledger(INITIAL_CASH, {"AAA": Decimal(1)}, open_orders)
        risk = RiskCheck(limits or RiskLimits(), state)
        clock = ReplayClock(T0)
        om = OrderManager(portfolio_id, journal=journal, bus=bus, clock=clock, risk=risk,
                          ledger=ledger, open_orders=open_orders, brokers={"AAA": venue},
                          durable=durable, next_order_number=next_order_number,
                          next_event_seq=next_event_seq, seen_trades=seen_trades or set())
        venue.bind(om, clock)
        return Desk(portfolio_id, om, journal, bus, ledger, risk, clock, venue, migrated_engine,
                    events, position_events)

    return make
