"""One portfolio at work: the one task that owns its orders, ledger, risk state and strategies.

Where it sits: under the portfolio's supervisor (:mod:`lts.engine.supervisor`), in a task group
of its own that also holds its brokers' tasks and its venue calls. Everything that may change
the portfolio reaches it through its inbox (:mod:`lts.engine.inbox`): bars from the shared
feeds, commands (the API's, through the engine's facade), execution reports from its brokers and
the outcomes of its own I/O tasks. The runner takes them in batches, the control lane first
(:mod:`lts.engine.control_lane`), and runs the decision path for each bar as plain calls
(:mod:`lts.engine.bar_loop`): simulated venue (fills of resting orders) -> strategy ->
portfolio plugin -> risk -> order manager. It never waits on its decision path; it waits only
for its inbox. This module holds the runner's life (set-up, start, end) and what the engine and
its facade read of it; commands are carried out by :mod:`lts.engine.runner_commands`, what
brokers say of their connections by :mod:`lts.engine.venue_events`.

Start-up is recovery: the ledger is rebuilt from the journal's fills, the orders the journal
holds open are reconciled with their venues (queried by client order id; the paper venue takes
them back into its book) and fills the venue made since the last one seen are taken in, before
the first bar (:mod:`lts.engine.recovery`). Its strategies are then bound and warmed up
(:mod:`lts.engine.strategy_host`). When the engine starts, market data flows once every
portfolio has recovered (``trading_opens``): commands are taken meanwhile. The same resync runs
after every reconnect a broker reports.

A graceful stop (:class:`~lts.domain.commands.Stop`, :mod:`lts.engine.graceful_stop`) sends
nothing new: orders not yet handed to a venue are canceled, submits in flight get
``engine.stop_timeout`` seconds to be answered (then they are UNKNOWN, settled at the next
start), and each order still open at its venue is logged.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any, cast

import anyio
from anyio.abc import TaskGroup, TaskStatus

from lts.bus import InProcessBus, MailboxClosed, Overflow
from lts.domain.clock import Clock
from lts.domain.commands import Accepted, TradingState
from lts.domain.instruments import Instrument
from lts.domain.market import Bar
from lts.domain.orders import Order
from lts.engine.bar_loop import trade
from lts.engine.clock import ReplayClock
from lts.engine.equity_recorder import EquityRecorder
from lts.engine.feed_watch import FeedWatch
from lts.engine.feeds import FeedHub, FeedLease
from lts.engine.inbox import Envelope, PortfolioInbox
from lts.engine.ledger import Ledger
from lts.engine.order_manager import OrderManager
from lts.engine.outcomes import OPEN_FEEDS
from lts.engine.recovery import recover
from lts.engine.risk import RiskCheck
from lts.engine.strategy_host import StrategyHost
from lts.engine.venue_health import VenueHealth
from lts.errors import ConfigError
from lts.plugins.broker import Broker, NeedsCredentials, SimulatedVenue
from lts.plugins.portfolio import Allocator
from lts.plugins.registry import Registry
from lts.plugins.strategy import Strategy
from lts.settings import RiskLimits

if TYPE_CHECKING:  # a backtest runs without them: SQLAlchemy is not even imported
    from sqlalchemy.ext.asyncio import AsyncEngine

    from lts.domain.portfolio_spec import PortfolioSpec
    from lts.persistence.credentials import BrokerCredentials
    from lts.persistence.journal import Journal

__all__ = ["PortfolioRunner", "RunnerContext"]

log = logging.getLogger("lts.runner")



@dataclass
class RunnerContext:
    """What the engine hands every runner (constructor injection, no globals)."""

    registry: Registry
    bus: InProcessBus
    #: the portfolio's journal (its writes) and database (recovery's reads). Both None: a
    #: backtest's new portfolio with nothing to recover, whose books stay in memory (the
    #: architecture's faster journal mode for replay, §5: :mod:`lts.engine.backtest_book`)
    journal: Journal | None
    db: AsyncEngine | None
    feeds: FeedHub
    clock: Clock
    durable: bool = True
    mailbox_capacity: int = 10_000
    #: read at every housekeeping, so a change at run time acts on the next one
    ack_timeout: Callable[[], float] = lambda: 10.0
    #: seconds of silence after which an asset's feed is stale (None or 0: never; live only)
    feed_stale_after: Callable[[], float | None] = lambda: None
    stop_timeout: float = 5.0
    #: live only: seconds from a bar's time to its orders handed to the broker (a histogram)
    observe_tick_to_order: Callable[[float], None] | None = None
    default_risk: RiskLimits = field(default_factory=RiskLimits)
    #: the sealed credential store's reader: (user id, broker name) -> keys or None
    credentials: Callable[[int, str], Awaitable[BrokerCredentials | None]] | None = None
    #: bounds how many portfolios connect and reconcile at once (None: no bound)
    recoveries: anyio.Semaphore | None = None
    #: set once every portfolio of the engine's start has recovered: market data flows from
    #: then (None: at once); recovering 2,000 portfolios goes faster with no one trading yet
    trading_opens: anyio.Event | None = None


def housekeeping_period(ack_timeout: float) -> float:
    """How often a runner with something to look after does its housekeeping (seconds)."""
    return max(0.05, min(1.0, ack_timeout / 4))


class PortfolioRunner:
    def __init__(self, spec: PortfolioSpec, ctx: RunnerContext,
                 fence: int | None = None, restart: bool = False) -> None:
        assert spec.id is not None
        self.spec = spec
        self.portfolio_id = spec.id
        self.ctx = ctx
        self.fence = fence  # the lease's portfolio id: the journal checks its token
        self.restart = restart  # a runner of this portfolio ran before in this process
        self.bars = 0
        self.last_tick_ns: int | None = None
        self.housekept_at = 0.0  # the event loop's clock
        self.curve: EquityRecorder | None = None  # a backtest's equity at every bar
        self.on_bar_done: Callable[[Bar], None] | None = None
        self.strategies: dict[str, Strategy] = {}
        self.brokers: dict[str, Broker] = {}
        self.open_orders: dict[str, Order] = {}
        self.instruments: dict[str, Instrument] = {
            a.symbol: Instrument(a.symbol, a.tick_size, a.lot_size, a.min_quantity or Decimal(0),
                                 a.min_notional or Decimal(0)) for a in spec.assets}
        #: a backtest's clock, set to each bar's time (None: live)
        self.replay_clock = ctx.clock if isinstance(ctx.clock, ReplayClock) else None
        self.host = StrategyHost(self.portfolio_id, ctx.clock,
                                 None if self.replay_clock is None else self._set_replay_time)
        self.leases: list[FeedLease] = []  # the portfolio's market data (the shared feeds)
        self.inbox: PortfolioInbox | None = None
        self.ledger = Ledger(spec.initial_cash, self.instruments, self.open_orders)
        self.risk = RiskCheck(self._limits(spec.risk_params), TradingState(spec.trading_state))
        self.allocator: Allocator = ctx.registry.create("portfolio", spec.portfolio_plugin,
                                                        spec.portfolio_params)
        self.orders: OrderManager | None = None
        self.stopping = False
        self.stop_replies: list[Any] = []  # Stop commands, answered once the runner has ended
        self.last_look: set[str] | None = None  # stopping: venues asked once more
        self.tg: TaskGroup | None = None  # the runner's own: brokers, venue calls, deadlines
        self.venues = VenueHealth(self.portfolio_id)
        self.feed_watch = FeedWatch(self.portfolio_id)

    def _limits(self, overrides: dict[str, Any]) -> RiskLimits:
        return RiskLimits.model_validate({**self.ctx.default_risk.model_dump(), **overrides})

    # -- set-up ---------------------------------------------------------------------------------
    def _build_plugins(self) -> None:
        reg = self.ctx.registry
        by_config: dict[str, Broker] = {}
        self.strategies = self.host.build(reg, self.spec.assets)
        for asset in self.spec.assets:
            cfg = f"{asset.broker_plugin}:{json.dumps(asset.broker_params, sort_keys=True)}"
            if cfg not in by_config:
                by_config[cfg] = reg.create("broker", asset.broker_plugin, asset.broker_params)
            self.brokers[asset.symbol] = by_config[cfg]

    @property
    def distinct_brokers(self) -> list[Broker]:
        """The portfolio's brokers, each once (assets may share one)."""
        return list({id(b): b for b in self.brokers.values()}.values())

    def open_orders_at(self, broker: Broker,
                       orders: Iterable[Order] | None = None) -> list[Order]:
        """The open orders (or ``orders``) that ``broker`` works."""
        brokers = self.brokers
        return [o for o in (self.open_orders.values() if orders is None else orders)
                if brokers.get(o.symbol) is broker]

    def symbols_of(self, broker: Broker) -> list[str]:
        """The portfolio's assets that ``broker`` trades."""
        return [s for s, b in self.brokers.items() if b is broker]

    async def _credentials(self, broker: Broker) -> None:
        """Hand a broker that logs in its keys from the sealed store (the owner's)."""
        name = getattr(broker, "credentials_for", None)
        if name is None:
            return
        owner, read = self.spec.owner_id, self.ctx.credentials
        keys = None if owner is None or read is None else await read(owner, name)
        if keys is None:
            raise ConfigError(f"broker {broker.name}: no {name!r} credentials stored for the "
                              "portfolio's owner (PUT /api/v1/credentials)")
        cast(NeedsCredentials, broker).use_credentials(keys)

    async def _connect(self, tg: TaskGroup, inbox: PortfolioInbox) -> None:
        """Start every broker (it signals when it can take orders) and take its rules."""
        for broker in self.distinct_brokers:
            await self._credentials(broker)
            await tg.start(broker.run, inbox, self.ctx.clock)
            venue_rules = await broker.instruments(self.symbols_of(broker))
            for symbol, rules in venue_rules.items():
                if symbol in self.instruments:
                    self.instruments[symbol] = rules
            if broker.capabilities.simulated:
                cast(SimulatedVenue, broker).use_instruments(
                    {s: self.instruments[s] for s in self.symbols_of(broker)})

    # -- the task ---------------------------------------------------------------------------------
    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Connect, recover, subscribe, then trade until stopped (or, on historical data, until
        every feed has ended)."""
        historical = any(self.ctx.feeds.is_historical(a.pipeline_plugin, a.pipeline_params,
                                                      a.symbol) for a in self.spec.assets)
        policy = Overflow.BLOCK if historical else Overflow.DROP_OLDEST
        inbox = PortfolioInbox(self.ctx.mailbox_capacity, policy,
                               name=f"portfolio-{self.portfolio_id}")
        self.inbox = inbox
        self._build_plugins()
        try:
            async with anyio.create_task_group() as tg:
                self.tg = tg
                slots = self.ctx.recoveries
                if slots is None:
                    await self._connect(tg, inbox)
                    self.orders = await recover(self, inbox, tg)
                else:
                    async with slots:
                        await self._connect(tg, inbox)
                        self.orders = await recover(self, inbox, tg)
                self.host.attach(self.orders, self.ledger, self.instruments,
                                 await self._linked_orders())
                if self.replay_clock is None and self.host.trading:
                    tg.start_soon(self.host.wake_for_timers, inbox)
                gate = self.ctx.trading_opens
                if gate is None or gate.is_set():
                    self.open_feeds()
                else:  # the engine starts: market data once every portfolio has recovered
                    tg.start_soon(self._open_feeds_when, gate)
                task_status.started()
                await trade(self, inbox, historical)
                tg.cancel_scope.cancel()
        finally:
            for lease in self.leases:
                lease.release()
            self.leases.clear()
            inbox.close()
            for reply in self.stop_replies:
                if not reply.done():
                    reply.set_result(Accepted())

    async def _linked_orders(self) -> list[Order]:
        """The journal's latest bracket and exit orders, closed ones too, for the trading
        strategies' contingent orders (none to read for a portfolio without one)."""
        if not self.host.trading or self.ctx.db is None:
            return []
        from lts.persistence.repositories import load_linked_orders  # not in a backtest

        return await load_linked_orders(self.ctx.db, self.portfolio_id)

    def recent_bars(self) -> dict[str, list[Bar]]:
        """Each asset's latest bars from its live feed (for the operator's charts)."""
        return {lease.key[2]: lease.bars() for lease in self.leases}

    def open_feeds(self) -> None:
        """Subscribe to the portfolio's market data (the shared feeds)."""
        assert self.inbox is not None
        for a in self.spec.assets:
            self.leases.append(self.ctx.feeds.acquire(
                a.pipeline_plugin, a.pipeline_params, a.symbol, self.inbox,
                history=self.host.history_needed(a.symbol)))

    async def _open_feeds_when(self, gate: anyio.Event) -> None:
        await gate.wait()
        assert self.inbox is not None
        self.inbox(OPEN_FEEDS)

    def _set_replay_time(self, ts_ns: int) -> None:
        assert self.replay_clock is not None
        self.replay_clock.ts = ts_ns

    # -- time ---------------------------------------------------------------------------------
    def housekeep(self, om: OrderManager) -> None:
        """Orders without an answer in time, stale feeds, the daily-loss limit looked after."""
        self.housekept_at = now = anyio.current_time()
        om.housekeeping(int(self.ctx.ack_timeout() * 1e9))
        if self.replay_clock is None:
            self.feed_watch.look(self.leases, now, self.ctx.feed_stale_after())
        if self.risk.limits.max_daily_loss is not None:
            self.risk.observe_equity(self.ctx.clock.now_ns(), self.ledger.equity())

    # -- what the facade reads ------------------------------------------------------------------
    def post(self, envelope: Envelope) -> None:
        """A command for this runner (raises InboxFull, or MailboxClosed once it has gone)."""
        if self.inbox is None:
            raise MailboxClosed(f"portfolio-{self.portfolio_id}")
        self.inbox.command(envelope)

    @property
    def needs_housekeeping(self) -> bool:
        """Open orders (awaiting the venue, or working at it), orders to reconcile, or a
        daily-loss limit to watch."""
        om = self.orders
        return om is not None and (bool(self.open_orders) or bool(om.to_reconcile)
                                   or self.risk.limits.max_daily_loss is not None
                                   or self._feed_to_look_at())

    def _feed_to_look_at(self) -> bool:
        """An asset stale, or one whose feed has gone late (live only)."""
        if self.replay_clock is not None:
            return False
        return bool(self.feed_watch.stale) or bool(FeedWatch.silent(
            self.leases, anyio.current_time(), self.ctx.feed_stale_after()))

    def housekeeping_due(self, now: float, after: float | None = None) -> bool:
        """Something to look after, and no housekeeping for ``after`` seconds (default: the
        period ``engine.ack_timeout`` sets)."""
        if after is None:
            after = housekeeping_period(self.ctx.ack_timeout())
        return now - self.housekept_at >= after and self.needs_housekeeping

    @property
    def mailbox_depth(self) -> int:
        return 0 if self.inbox is None else len(self.inbox)

    @property
    def trading_state(self) -> TradingState:
        return self.risk.state

    def equity(self) -> Decimal:
        return self.ledger.equity()

    def debug_info(self) -> dict[str, Any]:
        plugins: dict[str, Any] = {"portfolio": self.allocator.get_debug_info()}  # type: ignore[attr-defined]
        for sym, strat in self.strategies.items():
            plugins[f"strategy:{sym}"] = strat.get_debug_info()  # type: ignore[attr-defined]
        for sym, broker in self.brokers.items():
            plugins[f"broker:{sym}"] = broker.get_debug_info()  # type: ignore[attr-defined]
        return {"portfolio_id": self.portfolio_id, "bars": self.bars, "plugins": plugins}

