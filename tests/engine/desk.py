"""An engine desk: the real engine in this process, one portfolio, a scripted venue.

Everything is LTS's own and real (the engine, its supervisor, leases, runner, inbox, order
manager, risk, ledger, journal on a real SQLite file or PostgreSQL database, the bus); only the
venue (:class:`~tests.engine.venue.VenueWorld`) and the market data (a
:class:`~tests.engine.venue.FeedChannel`) are the test's. The test talks to the engine as the API
does, through its facade: commands with answers, committed events, activate and deactivate.
"""

from __future__ import annotations

import asyncio
import itertools
import sqlite3
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import anyio
import psycopg
from sqlalchemy import select
from sqlalchemy.engine import make_url

from lts.bus import Mailbox, Overflow
from lts.domain.commands import Reply, SubmitOrder
from lts.domain.events import OrderEvent
from lts.domain.orders import OrderRequest, OrderType, Side, TimeInForce
from lts.domain.portfolio_spec import AssetSpec, PortfolioSpec
from lts.engine.engine import Engine
from lts.engine.facade import EngineFacade, PortfolioState
from lts.persistence import repositories as repo
from lts.persistence.db import make_engine
from lts.plugins.registry import Registry
from lts.settings import load_settings, merge

from .venue import CHANNELS, WORLDS, FeedChannel, ManualFeed, Quiet, ScriptedVenue, VenueWorld

__all__ = ["EngineDesk", "OwnConnection", "running_desk"]

WAIT = 15.0  # seconds a condition may take before the test fails (never asserted on)

#: The tables the journal writes (held together by :meth:`EngineDesk.journal_held`).
_JOURNAL_TABLES = "orders, order_events, fills, positions, portfolios, audit_logs"
_triggers = itertools.count(1)


class OwnConnection:
    """A blocking connection of the test's own to the desk's database (sqlite3 or psycopg, in
    autocommit), as another process sees it. ``?`` placeholders on either store."""

    def __init__(self, url: str) -> None:
        parsed = make_url(url)
        self.sqlite = parsed.get_backend_name() == "sqlite"
        self._sqlite: sqlite3.Connection | None = None
        self._pg: psycopg.Connection[Any] | None = None
        if self.sqlite:
            self._sqlite = sqlite3.connect(str(parsed.database), isolation_level=None,
                                           timeout=10, check_same_thread=False)
        else:
            self._pg = psycopg.connect(parsed.set(drivername="postgresql").render_as_string(
                hide_password=False), autocommit=True)

    def execute(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        if self._sqlite is not None:
            cursor = self._sqlite.execute(sql, params)
            return cursor.fetchall() if cursor.description else []
        assert self._pg is not None
        pg_cursor = self._pg.execute(sql.replace("?", "%s") if params else sql,  # type: ignore[arg-type]
                                     params or None)
        return pg_cursor.fetchall() if pg_cursor.description else []

    def scalar(self, sql: str, *params: Any) -> Any:
        rows = self.execute(sql, *params)
        return rows[0][0] if rows else None

    def close(self) -> None:
        if self._sqlite is not None:
            self._sqlite.close()
        if self._pg is not None:
            self._pg.close()


@dataclass
class EngineDesk:
    engine: Engine
    portfolio_id: int
    venue: VenueWorld
    feed: FeedChannel
    symbols: tuple[str, ...]
    events: Mailbox[OrderEvent]
    seen: list[OrderEvent] = field(default_factory=list)

    @property
    def facade(self) -> EngineFacade:
        return self.engine.facade

    def state(self) -> PortfolioState:
        state = self.facade.state(self.portfolio_id)
        assert state is not None
        return state

    async def command(self, command: Any, within: float | None = None) -> Reply:
        return await self.facade.command(self.portfolio_id, command, within)

    async def submit(self, side: Side = Side.BUY, quantity: str | int = 1, *,
                     symbol: str | None = None, order_type: OrderType = OrderType.MARKET,
                     limit: str | None = None, stop: str | None = None,
                     tif: TimeInForce = TimeInForce.GTC) -> Reply:
        request = OrderRequest(symbol or self.symbols[0], side, Decimal(quantity), order_type,
                               tif, None if limit is None else Decimal(limit),
                               None if stop is None else Decimal(stop))
        return await self.command(SubmitOrder(request))

    def committed(self) -> list[OrderEvent]:
        """Every committed event delivered so far (in the order delivered)."""
        self.seen.extend(self.events.drain())
        return self.seen

    async def until(self, check: Callable[[], Any], what: str, limit: float = WAIT) -> Any:
        """Wait until ``check()`` is truthy (returns it); fail naming ``what`` after ``limit``."""
        with anyio.move_on_after(limit):
            while True:
                result = check()
                if result:
                    return result
                await anyio.sleep(0.005)
        raise AssertionError(f"timed out after {limit:.0f}s waiting for {what}")

    async def until_async(self, check: Callable[[], Any], what: str,
                          limit: float = WAIT) -> Any:
        with anyio.move_on_after(limit):
            while True:
                result = await check()
                if result:
                    return result
                await anyio.sleep(0.01)
        raise AssertionError(f"timed out after {limit:.0f}s waiting for {what}")

    async def rows(self, table: Any, **where: Any) -> list[dict[str, Any]]:
        """Committed rows of ``table`` (after a journal flush), oldest first."""
        await self.facade.flush()
        query = select(table).order_by(table.c.id)
        for column, value in where.items():
            query = query.where(table.c[column] == value)
        async with self.engine.db.connect() as conn:
            return [dict(r) for r in (await conn.execute(query)).mappings()]

    async def running(self) -> None:
        await self.until(lambda: self.facade.state(self.portfolio_id) is not None
                         and self.state().status == "running", "the portfolio to run")

    async def restart(self) -> None:
        """Deactivate (a graceful stop) and activate again: a new runner from the journal."""
        await self.facade.deactivate(self.portfolio_id)
        self.facade.activate(self.portfolio_id)
        await self.running()

    def tick(self, close: float, symbol: str | None = None) -> None:
        self.feed.push(symbol or self.symbols[0], close)

    async def marked(self, price: float = 100.0) -> None:
        """A bar at ``price`` for every symbol, taken by the runner (a restarted runner has no
        last price until its first bar, and denies market orders until then)."""
        for symbol in self.symbols:
            self.tick(price, symbol)
        want = {s: Decimal(repr(price)) for s in self.symbols}
        await self.until(lambda: self.facade.last_prices(self.portfolio_id) == want,
                         f"the runner to mark {', '.join(self.symbols)} at {price}")

    def duplicate_fills(self) -> int:
        """Fills the running runner has recognised as duplicates. A wait condition only (the
        facade does not count them): a duplicate for a closed order is checked against the
        journal in a task, so a test waits for this before asserting that nothing changed."""
        runner = self.engine.runner_of(self.portfolio_id)
        orders = None if runner is None else runner.orders
        return 0 if orders is None else int(orders.duplicate_fills)

    # -- more of the outside world ---------------------------------------------------------------
    @property
    def url(self) -> str:
        return self.engine.url

    @property
    def backend(self) -> str:
        """``sqlite`` or ``postgresql``."""
        return make_url(self.url).get_backend_name()

    def own_connection(self) -> OwnConnection:
        """A connection of the test's own (close it; see :class:`OwnConnection`)."""
        return OwnConnection(self.url)

    def send(self, command: Any, within: float | None = None) -> asyncio.Task[Reply]:
        """Send ``command`` without waiting for the answer: a task to await later (it posts
        the command at its first step, in the order of the calls)."""
        return asyncio.ensure_future(self.command(command, within))

    @asynccontextmanager
    async def journal_held(self) -> AsyncIterator[None]:
        """Inside, the journal cannot commit: another connection holds the write lock (SQLite:
        ``BEGIN IMMEDIATE``; PostgreSQL: the journal's tables locked ``IN EXCLUSIVE MODE``, which
        still lets reads through). The journal's writes wait, none fails; keep it short (SQLite's
        busy timeout is 10 s)."""
        own = self.own_connection()
        try:
            if own.sqlite:
                await anyio.to_thread.run_sync(own.execute, "BEGIN IMMEDIATE")
            else:
                while True:
                    own.execute("BEGIN")
                    try:  # in a thread: the journal may be mid-batch, committing on this loop
                        await anyio.to_thread.run_sync(
                            own.execute, f"LOCK TABLE {_JOURNAL_TABLES} IN EXCLUSIVE MODE")
                        break
                    except psycopg.errors.DeadlockDetected:
                        # the batch holds one table and wants one already locked here: the
                        # server chose this side; the batch commits, then lock again
                        own.execute("ROLLBACK")
            yield
        finally:
            own.execute("ROLLBACK")
            own.close()

    async def refuse_inserts(self, table: str, when: str) -> str:
        """From now on the database refuses the rows of ``table`` for which ``when`` holds
        (SQL over ``NEW``, valid on both stores): a trigger raising a constraint error, as a
        column limit or a check the engine did not expect would. Returns the trigger's name
        (:meth:`accept_inserts` lifts it). The DDL runs in a thread: it waits for the table's
        lock, which a journal transaction the engine's loop is finishing may hold."""
        name = f"refuse_{table}_{next(_triggers)}"
        if self.backend == "sqlite":
            statements = [f"CREATE TRIGGER {name} BEFORE INSERT ON {table} WHEN {when} "
                          f"BEGIN SELECT RAISE(ABORT, 'refused by {name}'); END"]
        else:
            statements = [
                f"CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                f"IF {when} THEN RAISE EXCEPTION 'refused by {name}' "
                f"USING ERRCODE = 'check_violation'; END IF; RETURN NEW; END $$",
                f"CREATE TRIGGER {name} BEFORE INSERT ON {table} FOR EACH ROW "
                f"EXECUTE FUNCTION {name}()"]
        await anyio.to_thread.run_sync(self._ddl, statements)
        return name

    async def accept_inserts(self, table: str, trigger: str) -> None:
        """Lift a refusal of :meth:`refuse_inserts` (in a thread, as it was made)."""
        sqlite = self.backend == "sqlite"
        await anyio.to_thread.run_sync(self._ddl, [f"DROP TRIGGER {trigger}" if sqlite else
                                                   f"DROP TRIGGER {trigger} ON {table}"])

    def _ddl(self, statements: list[str]) -> None:
        own = self.own_connection()
        try:
            for sql in statements:
                own.execute(sql)
        finally:
            own.close()


def make_registry() -> Registry:
    registry = Registry.discover()
    registry.register("broker", "scripted", ScriptedVenue)
    registry.register("pipeline", "manual", ManualFeed)
    registry.register("strategy", "quiet", Quiet)
    return registry


@asynccontextmanager
async def running_desk(db_url: str, *, symbols: tuple[str, ...] = ("AAA",),
                       cash: str = "100000", risk: dict[str, Any] | None = None,
                       engine: dict[str, Any] | None = None, price: float = 100.0,
                       trading_state: str = "ACTIVE",
                       before_start: Callable[[VenueWorld], None] | None = None,
                       owner_id: int | None = None, settings: dict[str, Any] | None = None,
                       wait_running: bool = True, lot_size: str = "1",
                       broker: tuple[str, dict[str, Any]] | None = None,
                       pipeline: tuple[str, dict[str, Any]] | None = None,
                       strategy: tuple[str, dict[str, Any]] | None = None,
                       ) -> AsyncIterator[EngineDesk]:
    """The engine running one portfolio of ``symbols`` (tick 0.01, lot 1) on ``db_url`` (a
    migrated database), each symbol marked at ``price`` before the desk is handed over.
    ``broker``, ``pipeline``, ``strategy`` (plugin, params) replace the scripted venue, the
    test's feed and the quiet strategy (a local venue's, its market data, a real strategy)."""
    key = uuid.uuid4().hex[:10]
    world = WORLDS[key] = VenueWorld("venue")
    channel = CHANNELS[key] = FeedChannel()
    if before_start is not None:
        before_start(world)
    db = make_engine(db_url)
    try:
        pid = await repo.create_portfolio(db, PortfolioSpec(
            name=f"desk-{key}", initial_cash=Decimal(cash), risk_params=risk or {},
            trading_state=trading_state, owner_id=owner_id,
            assets=tuple(AssetSpec(
                symbol=s, strategy_plugin=strategy[0] if strategy else "quiet",
                strategy_params=strategy[1] if strategy else {},
                broker_plugin=broker[0] if broker else "scripted",
                broker_params=broker[1] if broker else {"world": key},
                pipeline_plugin=pipeline[0] if pipeline else "manual",
                pipeline_params=pipeline[1] if pipeline else {"channel": key},
                lot_size=Decimal(lot_size))
                for s in symbols)))
    finally:
        await db.dispose()
    settings = load_settings(overrides=merge(merge({
        "database": {"url": db_url}, "demo": {"enabled": False}, "api": {"enabled": False},
        "engine": {"restart_initial_delay": 0.05, "restart_max_delay": 0.2,
                   "stop_timeout": 2.0, "lease_retry": 0.2},
    }, {"engine": engine or {}}), settings or {}))
    running = Engine(settings, registry=make_registry())
    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(running.run)
            with anyio.fail_after(WAIT):
                await running.started.wait()
            events: Mailbox[OrderEvent] = Mailbox(100_000, Overflow.BLOCK, name="desk")
            running.facade.subscribe_events(events, pid)
            desk = EngineDesk(running, pid, world, channel, symbols, events)
            if wait_running:
                await desk.running()
                for symbol in symbols:
                    desk.tick(price, symbol)
                await desk.until(lambda: desk.state().bars >= len(symbols), "the first bars")
            yield desk
            running.stop()
    finally:
        WORLDS.pop(key, None)
        CHANNELS.pop(key, None)
