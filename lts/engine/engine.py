"""The engine: the root task group and the lifecycle of one LTS process.

Start-up: check the schema (migrating it where allowed: :mod:`lts.persistence.migrations`), take
the engine's leases (SQLite: the database file is this engine's alone; a second engine refuses
to start naming the holder), create the admin user and the demo portfolio on first start,
discover plugins, start the journal writer and the core services (the API, wired with the
engine's :class:`~lts.engine.facade.EngineFacade`), then one supervisor per active portfolio
(:mod:`lts.engine.supervisor`).

Shutdown (SIGINT, SIGTERM, ``--run-for``): every portfolio is stopped gracefully and at once
(nothing new is sent, what is in flight is settled, within ``engine.stop_timeout``), then the
services and feeds are cancelled, the journal commits what is queued, and the database closes.
"""

import contextlib
import logging
import signal
import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import anyio
import anyio.lowlevel
from anyio.abc import TaskGroup
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from lts.bus import InProcessBus
from lts.engine import bootstrap
from lts.engine.clock import LiveClock
from lts.engine.facade import EngineFacade
from lts.engine.feeds import FeedHub
from lts.engine.heap import freeze_startup_heap
from lts.engine.outcomes import HOUSEKEEPING
from lts.engine.runner import PortfolioRunner, RunnerContext, housekeeping_period
from lts.engine.supervisor import PortfolioStatus, PortfolioSupervisor, RestartPolicy
from lts.errors import ConfigError
from lts.persistence import repositories as repo
from lts.persistence.credentials import BrokerCredentials, CredentialStore
from lts.persistence.db import check_url, default_sqlite_url, make_engine, unreachable
from lts.persistence.journal import Journal
from lts.persistence.keyring import Keyring
from lts.persistence.leases import LeaseManager
from lts.persistence.migrations import ensure_schema
from lts.plugins.registry import Registry
from lts.settings import Settings, with_runtime_overrides

__all__ = ["Engine", "EngineObservers"]

log = logging.getLogger("lts.engine")

_SHUTDOWN_MARGIN = 5.0  # seconds beyond engine.stop_timeout before portfolios are cut off
_RECOVERIES = 16


@contextlib.contextmanager
def _first_contact(url: str) -> Iterator[None]:
    """The start's first use of the database: one that cannot be reached (no server, a wrong
    port), or that refuses (an unknown role or database, a wrong password), stops the start with
    one line naming it (password hidden) and the cause; the CLI prints it and exits 2. The
    traceback goes to the log at DEBUG. Later outages are the journal's business."""
    try:
        yield
    except Exception as exc:
        error = unreachable(url, exc)
        if error is None:
            raise
        log.debug("the database refused the start", exc_info=True)
        raise error from None


def _open_sqlite(url: str) -> None:
    """A SQLite file is opened once with the standard module before the async driver opens it
    (making it if missing, as the driver would): a path that is no database file fails here,
    in one line, rather than in aiosqlite, whose failed connect leaves its worker thread to
    report to an event loop that has closed (a stray traceback after the error)."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return
    with contextlib.closing(sqlite3.connect(parsed.database)) as conn:
        conn.execute("PRAGMA schema_version").fetchone()


@dataclass
class EngineObservers:
    """Callbacks a core service (the API's metrics) registers through the facade."""

    tick_to_order: Callable[[float], None] | None = None
    journal_commit: Callable[[float, int], None] | None = None


class Engine:
    def __init__(self, settings: Settings, *, registry: Registry | None = None) -> None:
        self.settings = settings
        self.registry = registry or Registry.discover()
        self.bus = InProcessBus()
        self.clock = LiveClock()
        self.supervisors: dict[int, PortfolioSupervisor] = {}
        self.observers = EngineObservers()
        self.facade = EngineFacade(self)
        self._trading: TaskGroup | None = None
        self._db: AsyncEngine | None = None
        self._journal: Journal | None = None
        self._feeds: FeedHub | None = None
        self._leases: LeaseManager | None = None
        self._stop_asked = anyio.Event()
        #: portfolios connecting and reconciling at once (start-up of many portfolios: the
        #: ones that recovered trade while the others wait their turn, not all at once)
        self._recoveries = anyio.Semaphore(_RECOVERIES)
        self._trading_opens = anyio.Event()
        self.started = anyio.Event()
        self.running = False
        self.api_port: int | None = None  # where the API listens, once it does

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
    def leases(self) -> LeaseManager | None:
        return self._leases

    @property
    def url(self) -> str:
        db = self.settings.database
        return db.url or default_sqlite_url(db.data_dir)

    async def run(self) -> None:
        s = self.settings
        check_url(self.url)
        with _first_contact(self.url):
            _open_sqlite(self.url)
        self._db = make_engine(self.url, sqlite_synchronous=s.database.sqlite_synchronous)
        try:
            with _first_contact(self.url):
                await ensure_schema(self.db, self.url, auto_migrate=s.database.auto_migrate)
            self._leases = LeaseManager(self.db, on_lost=self._lease_lost)
            await self._leases.start()
            try:
                await self._run_started()
            finally:
                with anyio.CancelScope(shield=True):
                    await self._leases.close()
        finally:
            with anyio.CancelScope(shield=True):  # closed even when the engine is cancelled
                await self.db.dispose()
        log.info("engine stopped")

    async def _run_started(self) -> None:
        s = self.settings = with_runtime_overrides(self.settings,
                                                   await repo.load_configuration(self.db))
        await bootstrap.ensure_admin(self.db, s)
        if s.demo.enabled:
            await bootstrap.ensure_demo_credentials(self.db, s.demo, s.admin_username,
                                                    Keyring.from_setting(s.master_key))
            await bootstrap.ensure_demo(self.db, s.demo, s.admin_username)
        self._journal = Journal(self.db, stop_timeout=s.engine.stop_timeout + _SHUTDOWN_MARGIN)
        self._journal.on_commit = self._observe_commit
        self._journal.on_lease_lost = self._lease_lost
        async with anyio.create_task_group() as root:
            await root.start(self.journal.run)
            assert self._leases is not None
            await root.start(self._leases.run)
            await self._trade()
            with anyio.move_on_after(s.engine.stop_timeout + _SHUTDOWN_MARGIN):
                await self.journal.flush()
            root.cancel_scope.cancel()

    def _observe_commit(self, seconds: float, records: int) -> None:
        observe = self.observers.journal_commit
        if observe is not None:
            observe(seconds, records)

    def _observe_tick_to_order(self, seconds: float) -> None:
        observe = self.observers.tick_to_order
        if observe is not None:
            observe(seconds)

    async def _trade(self) -> None:
        s = self.settings
        async with anyio.create_task_group() as trading:
            self._trading = trading
            self._feeds = FeedHub(self.registry, self.bus, self.clock, trading)
            trading.start_soon(self._watch_signals, name="signals")
            if s.api.enabled:
                api = self.registry.create("core", "api")
                await trading.start(api.serve, self.facade, name="api")
            if s.notify.enabled:  # webhooks and the Telegram bot (lts.notify)
                notifier = self.registry.create("core", "notify")
                await trading.start(notifier.serve, self.facade, name="notify")
            if s.engine.run_for is not None:
                trading.start_soon(self._stop_after, s.engine.run_for, name="run-for")
            skip = set() if s.demo.enabled else {await repo.portfolio_id_by_name(self.db,
                                                                               s.demo.name)}
            for pid in await repo.active_portfolio_ids(self.db):
                if pid not in skip:
                    self.activate(pid)
            trading.start_soon(self._open_trading, name="open trading")
            trading.start_soon(self._housekeeping, name="housekeeping")
            log.info("engine running: %d portfolio(s), database %s", len(self.supervisors),
                     self.db.url.render_as_string(hide_password=True))
            self.running = True
            self.started.set()
            await self._stop_asked.wait()
            await self._stop_portfolios()
            trading.cancel_scope.cancel()
        self.running = False
        self._trading = None

    async def _stop_portfolios(self) -> None:
        """Every portfolio gracefully and at once; those that overrun are cut off."""
        grace = self.settings.engine.stop_timeout + _SHUTDOWN_MARGIN
        with anyio.move_on_after(grace):
            async with anyio.create_task_group() as tg:
                for sup in self.supervisors.values():
                    tg.start_soon(sup.deactivate, "engine stopping")
        for sup in self.supervisors.values():
            if sup.task_running:
                log.warning("portfolio %s did not stop within %.0fs; cut off",
                            sup.portfolio_id, grace)
                sup.cancel()

    async def _open_trading(self, limit: float = 120.0) -> None:
        """Once every portfolio's first start has an outcome (running, error, standby), or
        after ``limit`` seconds: keep the start-up heap out of later garbage collections (see
        :mod:`lts.engine.heap`), then let market data flow to every portfolio at once."""
        with anyio.move_on_after(limit):
            for sup in list(self.supervisors.values()):
                await sup.settled.wait()
        freeze_startup_heap()
        self._trading_opens.set()

    async def _housekeeping(self) -> None:
        """The nudge a portfolio gets when it has something to look after (orders awaiting a
        venue, orders to reconcile, a daily-loss limit) and no market data to do it on:
        acknowledgement timeouts, queries, the day's equity. A runner that has bars does its
        housekeeping on them (at their own phases, not all at once); one that has had none for
        two periods is nudged here, a hundred per loop iteration."""
        while True:
            period = housekeeping_period(self.settings.engine.ack_timeout)
            await anyio.sleep(period)
            now, nudged = anyio.current_time(), 0
            for sup in list(self.supervisors.values()):
                runner = sup.runner
                if runner is not None and runner.inbox is not None and \
                        sup.status is PortfolioStatus.RUNNING and \
                        runner.housekeeping_due(now, 2 * period):
                    runner.inbox(HOUSEKEEPING)
                    nudged += 1
                    if nudged % 100 == 0:
                        await anyio.lowlevel.checkpoint()  # the nudged run first

    def stop(self) -> None:
        """Begin a graceful shutdown."""
        if not self._stop_asked.is_set():
            log.info("stopping")
            self._stop_asked.set()

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

    # -- portfolio lifecycle (the facade's verbs) -----------------------------------------------
    def activate(self, portfolio_id: int) -> None:
        """Run the portfolio: start its supervisor, or wake the one it has (never a second)."""
        if self._trading is None:
            raise RuntimeError("engine is not running")
        sup = self.supervisors.get(portfolio_id)
        if sup is None:
            sup = self.supervisors[portfolio_id] = self._supervisor(portfolio_id)
        if sup.activate():
            self._trading.start_soon(sup.run, name=f"portfolio {portfolio_id}")

    async def deactivate(self, portfolio_id: int) -> None:
        """Stop one portfolio gracefully (nothing else) and wait until it has stopped."""
        sup = self.supervisors.get(portfolio_id)
        if sup is not None:
            await sup.deactivate()

    async def restart(self, portfolio_id: int) -> None:
        """Stop, then start again from the database (after its spec changed)."""
        sup = self.supervisors.get(portfolio_id)
        if sup is not None and (sup.want_running or sup.task_running):
            await sup.deactivate("restarting")
            self.activate(portfolio_id)

    def _lease_lost(self, portfolio_id: int) -> None:
        sup = self.supervisors.get(portfolio_id)
        if sup is not None:
            sup.lease_lost()

    def _supervisor(self, portfolio_id: int) -> PortfolioSupervisor:
        e = self.settings.engine
        policy = RestartPolicy(e.restart_initial_delay, e.restart_max_delay, e.max_restarts,
                               e.restart_reset_after, e.lease_retry)

        async def make_runner(fence: int | None, restart: bool) -> PortfolioRunner:
            assert self._feeds is not None
            spec = await repo.load_portfolio(self.db, portfolio_id)
            log.info("portfolio %s %r starting with %d asset(s)", portfolio_id, spec.name,
                     len(spec.assets))
            return PortfolioRunner(spec, self._runner_context(), fence=fence, restart=restart)

        return PortfolioSupervisor(portfolio_id, make_runner, journal=self.journal,
                                   leases=self._leases, policy=policy, bus=self.bus)

    async def _credentials(self, user_id: int, broker: str) -> BrokerCredentials | None:
        """A user's keys for ``broker`` from the sealed store (needs the master key)."""
        key = self.settings.master_key
        if key is None:
            raise ConfigError("a broker needs credentials: set master_key (LTS_MASTER_KEY) to "
                              "read the sealed credential store")
        return await CredentialStore(self.db, Keyring.from_setting(key)).get(user_id, broker)

    def _runner_context(self) -> RunnerContext:
        assert self._feeds is not None
        s = self.settings
        return RunnerContext(registry=self.registry, bus=self.bus, journal=self.journal,
                             db=self.db, feeds=self._feeds, clock=self.clock, durable=True,
                             mailbox_capacity=s.engine.mailbox_capacity,
                             ack_timeout=lambda: self.settings.engine.ack_timeout,
                             feed_stale_after=lambda: self.settings.engine.feed_stale_seconds,
                             stop_timeout=s.engine.stop_timeout, default_risk=s.risk,
                             observe_tick_to_order=self._observe_tick_to_order,
                             credentials=self._credentials, recoveries=self._recoveries,
                             trading_opens=self._trading_opens)

    def runner_of(self, portfolio_id: int) -> Any:
        sup = self.supervisors.get(portfolio_id)
        return None if sup is None else sup.runner
