"""The engine: the root task group and the lifecycle of one LTS process.

Start-up: check the schema (migrating it where allowed: :mod:`lts.persistence.migrations`), create
the admin user and the demo portfolio on first start, discover plugins, start the journal
writer, then one supervised runner per active portfolio (each in its own cancel scope, so one
can be stopped or restarted without touching the others).
Shutdown (SIGINT, SIGTERM, ``--run-for``): runners and feeds are cancelled first, then the
journal commits what is queued, portfolios are marked stopped, and the database is closed.
"""

import logging
import signal
from collections.abc import Callable
from dataclasses import dataclass, field

import anyio
from anyio.abc import TaskGroup
from sqlalchemy.ext.asyncio import AsyncEngine

from lts.bus import InProcessBus
from lts.engine import bootstrap
from lts.engine.clock import LiveClock
from lts.engine.feeds import FeedHub
from lts.engine.heap import freeze_startup_heap
from lts.engine.risk import TradingState
from lts.engine.runner import PortfolioRunner, RunnerContext
from lts.engine.supervisor import RestartPolicy, SupervisedState, supervise
from lts.persistence import repositories as repo
from lts.persistence.db import check_url, default_sqlite_url, make_engine
from lts.persistence.journal import Journal
from lts.persistence.migrations import ensure_schema
from lts.plugins.registry import Registry
from lts.settings import Settings, with_runtime_overrides

log = logging.getLogger("lts.engine")


@dataclass
class PortfolioHandle:
    scope: anyio.CancelScope
    state: SupervisedState = field(default_factory=SupervisedState)
    runner: PortfolioRunner | None = None
    finished: anyio.Event = field(default_factory=anyio.Event)


class Engine:
    def __init__(self, settings: Settings, *, registry: Registry | None = None) -> None:
        self.settings = settings
        self.registry = registry or Registry.discover()
        self.bus = InProcessBus()
        self.clock = LiveClock()
        self.portfolios: dict[int, PortfolioHandle] = {}
        self._trading: TaskGroup | None = None
        self._db: AsyncEngine | None = None
        self._journal: Journal | None = None
        self._feeds: FeedHub | None = None
        self.started = anyio.Event()
        self.running = False
        self.api_port: int | None = None  # where the API listens, once it does
        self.observe_tick_to_order: Callable[[float], None] | None = None  # set by the API

    @property
    def db(self) -> AsyncEngine:
        assert self._db is not None, "engine not started"
        return self._db

    @property
    def journal(self) -> Journal:
        assert self._journal is not None, "engine not started"
        return self._journal

    @property
    def journal_or_none(self) -> Journal | None:
        return self._journal

    @property
    def url(self) -> str:
        db = self.settings.database
        return db.url or default_sqlite_url(db.data_dir)

    async def run(self) -> None:
        s = self.settings
        check_url(self.url)
        self._db = make_engine(self.url, sqlite_synchronous=s.database.sqlite_synchronous)
        try:
            await ensure_schema(self.db, self.url, auto_migrate=s.database.auto_migrate)
            self.settings = s = with_runtime_overrides(
                s, await repo.load_configuration(self.db))
            await bootstrap.ensure_admin(self.db, s)
            if s.demo.enabled:
                await bootstrap.ensure_demo(self.db, s.demo, s.admin_username)
            self._journal = Journal(self.db)
            async with anyio.create_task_group() as root:
                await root.start(self.journal.run)
                await self._trade()
                await self.journal.flush()
                root.cancel_scope.cancel()
        finally:
            await self.db.dispose()
        log.info("engine stopped")

    async def _trade(self) -> None:
        s = self.settings
        async with anyio.create_task_group() as trading:
            self._trading = trading
            self._feeds = FeedHub(self.registry, self.bus, self.clock, trading)
            trading.start_soon(self._watch_signals, name="signals")
            if s.api.enabled:
                api = self.registry.create("core", "api")
                await trading.start(api.serve, self, name="api")
            if s.engine.run_for is not None:
                trading.start_soon(self._stop_after, s.engine.run_for, name="run-for")
            skip = set() if s.demo.enabled else {await repo.portfolio_id_by_name(self.db,
                                                                               s.demo.name)}
            for pid in await repo.active_portfolio_ids(self.db):
                if pid not in skip:
                    self.start_portfolio(pid)
            trading.start_soon(self._freeze_after_startup, name="heap freeze")
            log.info("engine running: %d portfolio(s), database %s", len(self.portfolios),
                     self.db.url.render_as_string(hide_password=True))
            self.running = True
            self.started.set()
        self.running = False
        self._trading = None
        for pid, handle in self.portfolios.items():
            if handle.state.status != "error":
                self.journal.update_portfolio({"id": pid, "status": "stopped"})

    async def _freeze_after_startup(self, limit: float = 60.0) -> None:
        """Once every portfolio has recovered (or failed), keep the start-up heap out of later
        garbage collections (see :mod:`lts.engine.heap`)."""
        with anyio.move_on_after(limit):
            # a poll: the set of portfolios and their outcomes (running or error) both change
            while any(  # noqa: ASYNC110
                    h.state.status != "error" and (h.runner is None or h.runner.orders is None)
                    for h in self.portfolios.values()):
                await anyio.sleep(0.1)
        freeze_startup_heap()

    def stop(self) -> None:
        """Begin a graceful shutdown."""
        if self._trading is not None:
            log.info("stopping")
            self._trading.cancel_scope.cancel()

    async def _watch_signals(self) -> None:
        with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async for signum in signals:
                log.info("received %s", signal.Signals(signum).name)
                self.stop()
                return

    async def _stop_after(self, seconds: float) -> None:
        await anyio.sleep(seconds)
        log.info("--run-for %.1fs elapsed", seconds)
        self.stop()

    # -- portfolio lifecycle ------------------------------------------------------------------
    def start_portfolio(self, portfolio_id: int) -> None:
        if self._trading is None:
            raise RuntimeError("engine is not running")
        if portfolio_id in self.portfolios and \
                self.portfolios[portfolio_id].state.status in ("running", "starting"):
            return
        handle = PortfolioHandle(anyio.CancelScope())
        self.portfolios[portfolio_id] = handle
        self._trading.start_soon(self._portfolio_task, portfolio_id, handle,
                                 name=f"portfolio {portfolio_id}")

    async def stop_portfolio(self, portfolio_id: int) -> None:
        """Stop one portfolio's runner (nothing else) and wait until it has stopped."""
        handle = self.portfolios.get(portfolio_id)
        if handle is not None:
            handle.scope.cancel()
            await handle.finished.wait()

    async def restart_portfolio(self, portfolio_id: int) -> None:
        """Stop, then start again from the database (after its spec changed)."""
        await self.stop_portfolio(portfolio_id)
        self.start_portfolio(portfolio_id)

    def set_trading_state(self, portfolio_id: int, state: TradingState) -> None:
        handle = self.portfolios.get(portfolio_id)
        if handle is not None and handle.runner is not None:
            handle.runner.set_trading_state(state)

    async def _portfolio_task(self, portfolio_id: int, handle: PortfolioHandle) -> None:
        assert self._feeds is not None
        s = self.settings
        ctx = RunnerContext(registry=self.registry, bus=self.bus, journal=self.journal,
                            db=self.db, feeds=self._feeds, clock=self.clock, durable=True,
                            mailbox_capacity=s.engine.mailbox_capacity,
                            ack_timeout=s.engine.ack_timeout, default_risk=s.risk,
                            observe_tick_to_order=self.observe_tick_to_order)

        async def run_once() -> None:
            spec = await repo.load_portfolio(self.db, portfolio_id)
            handle.runner = PortfolioRunner(spec, ctx)
            log.info("portfolio %s %r starting with %d asset(s)", portfolio_id, spec.name,
                     len(spec.assets))
            await handle.runner.run()

        policy = RestartPolicy(s.engine.restart_initial_delay, s.engine.restart_max_delay,
                               s.engine.max_restarts)
        try:
            with handle.scope:
                await supervise(portfolio_id, run_once, self.journal, policy, handle.state)
            if handle.scope.cancel_called:
                handle.state.status = "stopped"
                if self._trading is not None:  # stopped alone, the engine runs on
                    self.journal.update_portfolio({"id": portfolio_id, "status": "stopped"})
        finally:
            handle.finished.set()
