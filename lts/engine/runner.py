"""One portfolio at work: the one task that owns its orders, ledger, risk state and strategies.

Where it sits: under the portfolio's supervisor (:mod:`lts.engine.supervisor`), in a task group
of its own that also holds its brokers' tasks and its venue calls. Everything that may change
the portfolio reaches it through its inbox (:mod:`lts.engine.inbox`): bars from the shared
feeds, commands (the API's, through the engine's facade), execution reports from its brokers and
the outcomes of its own I/O tasks. The runner takes them in batches, the control lane first,
and runs the decision path for each bar as plain calls: simulated venue (fills of resting
orders) -> strategy -> portfolio plugin -> risk -> order manager. It never waits on its decision
path; it waits only for its inbox.

Start-up is recovery: the ledger is rebuilt from the journal's fills, the orders the journal
holds open are reconciled with their venues (queried by client order id; the paper venue takes
them back into its book) and fills the venue made since the last one seen are taken in, before
the first bar (:mod:`lts.engine.recovery`). Its strategies are then bound and warmed up
(:mod:`lts.engine.strategy_host`). When the engine starts, market data flows once every
portfolio has recovered (``trading_opens``): commands are taken meanwhile. The same resync runs
after every reconnect a broker reports.

A graceful stop (:class:`~lts.domain.commands.Stop`) sends nothing new: orders not yet handed
to a venue are canceled here, submits in flight get ``engine.stop_timeout`` seconds to be
answered (then they are UNKNOWN, settled at the next start), and each order still open at its
venue is logged.
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
from lts.domain.commands import (
    Accepted,
    CancelOrder,
    Denied,
    ModifyOrder,
    Reason,
    Reply,
    SetTradingState,
    Stop,
    SubmitOrder,
    TradingState,
    UpdateAsset,
    UpdateRiskLimits,
)
from lts.domain.instruments import Instrument
from lts.domain.market import Bar, FeedEnded, Quote, TradeTick, WarmUp
from lts.domain.orders import Fill, Order, OrderStatusReport
from lts.engine import venue_calls
from lts.engine.clock import ReplayClock
from lts.engine.equity_recorder import EquityRecorder
from lts.engine.feed_watch import FeedWatch
from lts.engine.feeds import FeedHub, FeedLease
from lts.engine.inbox import Envelope, PortfolioInbox
from lts.engine.ledger import Ledger
from lts.engine.order_manager import OrderManager
from lts.engine.outcomes import (
    OPEN_FEEDS,
    CallFailed,
    Canceled,
    FillChecked,
    Housekeeping,
    Modified,
    OpenFeeds,
    Queried,
    Resynced,
    StopDeadline,
    Submitted,
    TimersDue,
    WriteAhead,
)
from lts.engine.recovery import FILLS_OVERLAP_NS, recover
from lts.engine.risk import RiskCheck
from lts.engine.strategy_host import StrategyHost
from lts.engine.venue_health import VenueHealth
from lts.errors import ConfigError, InvalidParams
from lts.plugins.broker import (
    Broker,
    NeedsCredentials,
    SimulatedVenue,
    VenueBanned,
    VenueDisconnected,
    VenueReconnected,
)
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
        self._replay_clock = ctx.clock if isinstance(ctx.clock, ReplayClock) else None
        self.host = StrategyHost(self.portfolio_id, ctx.clock,
                                 None if self._replay_clock is None else self._set_replay_time)
        self._leases: list[FeedLease] = []
        self.inbox: PortfolioInbox | None = None
        self.ledger = Ledger(spec.initial_cash, self.instruments, self.open_orders)
        self.risk = RiskCheck(self._limits(spec.risk_params), TradingState(spec.trading_state))
        self.allocator: Allocator = ctx.registry.create("portfolio", spec.portfolio_plugin,
                                                        spec.portfolio_params)
        self.orders: OrderManager | None = None
        self.stopping = False
        self._stop_replies: list[Any] = []
        self._last_look: set[str] | None = None  # stopping: venues asked once more
        self._tg: TaskGroup | None = None
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

    def _symbols_of(self, broker: Broker) -> list[str]:
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
            venue_rules = await broker.instruments(self._symbols_of(broker))
            for symbol, rules in venue_rules.items():
                if symbol in self.instruments:
                    self.instruments[symbol] = rules
            if broker.capabilities.simulated:
                cast(SimulatedVenue, broker).use_instruments(
                    {s: self.instruments[s] for s in self._symbols_of(broker)})

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
                self._tg = tg
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
                if self._replay_clock is None and self.host.trading:
                    tg.start_soon(self.host.wake_for_timers, inbox)
                gate = self.ctx.trading_opens
                if gate is None or gate.is_set():
                    self._open_feeds()
                else:  # the engine starts: market data once every portfolio has recovered
                    tg.start_soon(self._open_feeds_when, gate)
                task_status.started()
                await self._loop(inbox, historical)
                tg.cancel_scope.cancel()
        finally:
            for lease in self._leases:
                lease.release()
            self._leases.clear()
            inbox.close()
            for reply in self._stop_replies:
                if not reply.done():
                    reply.set_result(Accepted())

    async def _loop(self, inbox: PortfolioInbox, historical: bool) -> None:
        om = self.orders
        assert om is not None
        strategies, ledger = self.strategies, self.ledger
        # every symbol: its simulated venue's bar hook, or None (a subscript, not a call)
        simulated = {s: cast(SimulatedVenue, b).on_bar if b.capabilities.simulated else None
                     for s, b in self.brokers.items()}
        allocator, clock = self.allocator, self._replay_clock
        host, journal = self.host, self.ctx.journal
        timers = host.timers
        timers_set = timers.live
        mark, request = ledger.mark, om.request
        control, take_control = inbox.control_lane, inbox.take_control
        live = clock is None
        live_feeds = len(self.spec.assets)
        while live_feeds and not self._stopped():
            try:
                await inbox.wait()
            except MailboxClosed:
                return
            bars = 0
            curve, on_done = self.curve, self.on_bar_done
            if curve is not None:
                at, cash_at, equity_at = (curve.ts_ns.append, curve.cash.append,
                                          curve.equity.append)
            hosted = bool(host.trading)
            om.begin_batch()
            try:
                if control:
                    self._control(take_control())
                    if hosted:
                        host.deliver()
                trading = not self.stopping
                for item in inbox.take_market():
                    if type(item) is not Bar:
                        if type(item) is WarmUp:
                            self._warm_up(item)
                        elif type(item) is Quote or type(item) is TradeTick:
                            if clock is not None:
                                clock.ts = item.ts_event
                            if trading and hosted:
                                host.on_tick(item)
                        else:
                            live_feeds -= self._feed_ended(item, historical)
                        continue
                    bars += 1
                    bar: Bar = item
                    sym = bar.symbol
                    if timers_set and timers.next_due is not None \
                            and timers.next_due <= bar.ts_event:
                        host.fire_timers(bar.ts_event)
                    if clock is not None:
                        clock.ts = bar.ts_event
                    mark(sym, bar.close)
                    venue_on_bar = simulated[sym]
                    if venue_on_bar is not None:
                        venue_on_bar(bar)
                    if control:  # the venue's fills (and any command) come first
                        self._control(take_control())
                        trading = not self.stopping
                        if hosted:  # a strategy hears its fills before the bar's on_bar
                            host.deliver()
                    if trading:
                        signal = strategies[sym].on_bar(bar)
                        if signal is not None:
                            if log.isEnabledFor(logging.INFO):  # not even its arguments
                                log.info("signal %s %s (%s)", sym, signal.target.value,
                                         signal.reason)
                            for order_request in allocator.allocate(signal, ledger):
                                request(order_request, bar_ts=bar.ts_event if live else None)
                        if control:  # what the decision made happen on this bar (a fill at
                            self._control(take_control())  # its close) lands on this bar
                            trading = not self.stopping
                        if hosted:
                            host.on_bar_done(bar)
                    if curve is not None:  # after the bar's fills
                        cash = ledger.cash_f
                        at(bar.ts_event)
                        cash_at(cash)
                        equity_at(cash + ledger.value_f)
                    if on_done is not None:
                        on_done(bar)
                if live and bars and self.housekeeping_due(anyio.current_time()):
                    self._housekeeping(om)  # on its own bars: no nudge from the engine
            finally:
                om.end_batch()  # written even when a plugin raised mid-batch
            if bars:
                self.bars += bars
                self.last_tick_ns = self.ctx.clock.now_ns()
            if journal is not None:
                await journal.wait_below_high_water()
        if not self.stopping:  # the data ended (a backtest)
            self.host.stop()
        if self.stopping:
            self._finish_stop()

    async def _linked_orders(self) -> list[Order]:
        """The journal's latest bracket and exit orders, closed ones too, for the trading
        strategies' contingent orders (none to read for a portfolio without one)."""
        if not self.host.trading or self.ctx.db is None:
            return []
        from lts.persistence.repositories import load_linked_orders  # not in a backtest

        return await load_linked_orders(self.ctx.db, self.portfolio_id)

    def recent_bars(self) -> dict[str, list[Bar]]:
        """Each asset's latest bars from its live feed (for the operator's charts)."""
        return {lease.key[2]: lease.bars() for lease in self._leases}

    def _open_feeds(self) -> None:
        """Subscribe to the portfolio's market data (the shared feeds)."""
        assert self.inbox is not None
        for a in self.spec.assets:
            self._leases.append(self.ctx.feeds.acquire(
                a.pipeline_plugin, a.pipeline_params, a.symbol, self.inbox,
                history=self.host.history_needed(a.symbol)))

    async def _open_feeds_when(self, gate: anyio.Event) -> None:
        await gate.wait()
        assert self.inbox is not None
        self.inbox(OPEN_FEEDS)

    def _warm_up(self, history: WarmUp) -> None:
        """A feed's recent past: the symbol is marked and its strategy takes the bars in (its
        indicators warm), and nothing trades on them: a signal from the past is no order."""
        if history.symbol not in self.strategies or not history.bars:
            return
        self.ledger.mark(history.symbol, history.bars[-1].close)
        self.host.warm_up(history.symbol, history.bars)
        log.info("portfolio %s: %s warmed up on %d bar(s) of history", self.portfolio_id,
                 history.symbol, len(history.bars))

    def _set_replay_time(self, ts_ns: int) -> None:
        assert self._replay_clock is not None
        self._replay_clock.ts = ts_ns

    def _feed_ended(self, item: object, historical: bool) -> int:
        if isinstance(item, FeedEnded):
            if item.error:
                raise RuntimeError(item.error)
            log.info("portfolio %s: feed for %s ended", self.portfolio_id, item.symbol)
            return 1 if historical else 0
        return 0

    # -- the control lane ---------------------------------------------------------------------
    def _control(self, items: list[Any]) -> None:
        om = self.orders
        assert om is not None
        for item in items:
            kind = type(item)
            if kind is Fill:
                om.on_fill(item)
            elif kind is OrderStatusReport:
                om.on_report(item)
            elif kind is Envelope:
                self._command(item)
            elif kind is WriteAhead:
                om.on_write_ahead(item)
            elif kind is Submitted:
                om.on_submitted(item)
            elif kind is CallFailed:
                om.on_call_failed(item)
            elif kind is Canceled:
                om.on_canceled(item)
            elif kind is Modified:
                om.on_modified(item)
            elif kind is Queried:
                om.on_queried(item)
            elif kind is FillChecked:
                om.on_fill_checked(item)
            elif kind is Housekeeping:
                self._housekeeping(om)
            elif kind is VenueDisconnected:
                self.venues.disconnected(item.broker, item.ts_event, item.reason)
            elif kind is VenueReconnected:
                self._resync(item.broker, item.ts_event)
            elif kind is Resynced:
                self._resynced(item)
            elif kind is VenueBanned:
                self._banned(item)
            elif kind is OpenFeeds:
                self._open_feeds()
            elif kind is TimersDue:
                self.host.fire_timers(self.ctx.clock.now_ns())
            elif kind is StopDeadline:
                om.give_up_in_flight("no answer before the engine stopped")
                self._last_look = set()  # what did not answer in time is settled at the start
            else:
                log.error("portfolio %s: unexpected %s in the inbox", self.portfolio_id,
                          kind.__name__)

    def _command(self, envelope: Envelope) -> None:
        reply = envelope.reply
        answer = self._answer(envelope.command, reply)
        if answer is not None and reply is not None and not reply.done():
            reply.set_result(answer)

    def _answer(self, command: Any, reply: Any) -> Reply | None:
        """Carry out a command; its answer, or None when the answer comes later."""
        om = self.orders
        assert om is not None
        if isinstance(command, SubmitOrder):
            if self.stopping:
                return Denied(Reason.STOPPING, "the portfolio is stopping")
            om.request(command.request, reply)
            return None
        if isinstance(command, CancelOrder):
            return om.cancel(command.client_order_id)
        if isinstance(command, ModifyOrder):
            return om.modify(command)
        if isinstance(command, SetTradingState):
            return self._set_trading_state(command.state, reply)
        if isinstance(command, UpdateRiskLimits):
            return self._update_risk(command)
        if isinstance(command, UpdateAsset):
            return self._update_asset(command)
        if isinstance(command, Stop):
            self._begin_stop(command.reason, reply)
            return None
        return Denied(Reason.INVALID_PARAMS, f"unknown command {type(command).__name__}")

    def _set_trading_state(self, state: TradingState, reply: Any) -> Reply | None:
        from lts.domain.events import TradingStateChanged  # here: the one place it is made

        om = self.orders
        assert om is not None
        previous = self.risk.state
        self.risk.state = state
        if state is not TradingState.HALTED:
            self.venues.banned.clear()  # an operator resumed: the ban is over for them
        if state is TradingState.HALTED:
            om.cancel_unsent("trading halted before it was sent")
        log.info("portfolio %s: trading state %s", self.portfolio_id, state.value)
        if self.ctx.journal is None:  # a backtest's: nothing stored
            return None if reply is None else Accepted()
        written = self.ctx.journal.update_portfolio(
            {"id": self.portfolio_id, "trading_state": state.value}, fence=self.fence)
        changed = TradingStateChanged(self.portfolio_id, state.value, previous.value,
                                      self.ctx.clock.now_ns())
        bus = self.ctx.bus

        def answered(future: Any) -> None:  # once durable: a restart keeps the state
            durable = not future.cancelled() and future.exception() is None
            if durable:  # committed: it may go out (notifications)
                bus.publish_nowait(changed, changed.portfolio_id)
            if reply is not None and not reply.done():
                reply.set_result(Accepted() if durable
                                 else Denied(Reason.JOURNAL_UNAVAILABLE, "not recorded"))

        written.add_done_callback(answered)
        return None

    def _update_risk(self, command: UpdateRiskLimits) -> Reply:
        try:
            limits = RiskLimits.model_validate(command.limits)
        except ValueError as exc:
            return Denied(Reason.INVALID_PARAMS, str(exc).splitlines()[0][:200])
        self.risk.limits = limits
        return Accepted()

    def _update_asset(self, command: UpdateAsset) -> Reply:
        sym = command.symbol
        if sym not in self.instruments:
            return Denied(Reason.UNKNOWN_SYMBOL, f"{sym} is not an asset of this portfolio")
        if command.strategy_params is not None:
            try:
                self.strategies[sym].set_params(**command.strategy_params)  # type: ignore[attr-defined]
            except InvalidParams as exc:
                return Denied(Reason.INVALID_PARAMS, str(exc))
        old = self.instruments[sym]
        self.instruments[sym] = Instrument(
            sym, command.tick_size or old.tick_size, command.lot_size or old.lot_size,
            old.min_quantity if command.min_quantity is None else command.min_quantity,
            old.min_notional if command.min_notional is None else command.min_notional)
        broker = self.brokers[sym]
        if broker.capabilities.simulated:
            cast(SimulatedVenue, broker).use_instruments(
                {s: self.instruments[s] for s in self._symbols_of(broker)})
        return Accepted()

    # -- time and venues ----------------------------------------------------------------------
    def _housekeeping(self, om: OrderManager) -> None:
        self.housekept_at = now = anyio.current_time()
        om.housekeeping(int(self.ctx.ack_timeout() * 1e9))
        if self._replay_clock is None:
            self.feed_watch.look(self._leases, now, self.ctx.feed_stale_after())
        if self.risk.limits.max_daily_loss is not None:
            self.risk.observe_equity(self.ctx.clock.now_ns(), self.ledger.equity())

    def _resync(self, broker_name: str, ts_ns: int) -> None:
        """A broker reconnected: the same reconciliation as at start-up, in a task; no new
        orders go to that venue until it is done. Fills are asked for from a while before the
        stream was lost (duplicates change nothing)."""
        assert self._tg is not None
        assert self.inbox is not None
        for broker in self.distinct_brokers:
            if broker.name != broker_name or broker.capabilities.simulated:
                continue
            mine = self.open_orders_at(broker)
            log.info("portfolio %s: %s reconnected; resyncing %d open order(s)",
                     self.portfolio_id, broker_name, len(mine))
            lost_at = self.venues.resync_starts(broker_name, ts_ns)
            since = max(0, lost_at - FILLS_OVERLAP_NS)
            self._tg.start_soon(venue_calls.resync, broker, mine, since, self.inbox)

    def _resynced(self, outcome: Resynced) -> None:
        if self._last_look is not None:  # stopping: the last look answered (no retry)
            self._last_look.discard(outcome.broker)
        retry = self.venues.resynced(outcome.broker, outcome.error)
        if self.stopping:
            return
        if retry is not None:
            assert self._tg is not None
            self._tg.start_soon(self._resync_later, outcome.broker, retry)

    async def _resync_later(self, broker_name: str, delay: float) -> None:
        await anyio.sleep(delay)
        assert self.inbox is not None
        self.inbox(VenueReconnected(broker_name, self.ctx.clock.now_ns()))

    def _banned(self, ban: VenueBanned) -> None:
        """The venue banned this client: halt (an operator resumes) rather than hammer it."""
        self.venues.ban(ban.broker, ban.reason)
        log.error("portfolio %s: %s banned this client (%s); trading HALTED", self.portfolio_id,
                  ban.broker, ban.reason)
        if self.risk.state is not TradingState.HALTED:
            self._set_trading_state(TradingState.HALTED, None)

    # -- stopping -------------------------------------------------------------------------------
    def _begin_stop(self, why: str, reply: Any) -> None:
        om = self.orders
        assert om is not None
        assert self._tg is not None
        if reply is not None:
            self._stop_replies.append(reply)
        if self.stopping:
            return
        self.stopping = True
        om.stopping = True
        self.host.stop()  # what it orders now is denied (STOPPING)
        unsent = om.cancel_unsent(f"not sent: {why}")
        log.info("portfolio %s stopping (%s): %d unsent order(s) canceled, %d awaiting the "
                 "venue", self.portfolio_id, why, unsent, om.in_flight)
        self._tg.start_soon(self._stop_deadline)

    async def _stop_deadline(self) -> None:
        await anyio.sleep(self.ctx.stop_timeout)
        assert self.inbox is not None
        self.inbox(StopDeadline())

    def _stopped(self) -> bool:
        """Stopping, and nothing is waiting for the venue or the journal any more (submits in
        flight, fills being looked up, the last look at the venues: a graceful stop loses no
        fill)."""
        om = self.orders
        if not self.stopping or om is None or om.in_flight or om.looking_up:
            return False
        if self._last_look is None:
            self._last_look = self._look_at_venues()
        return not self._last_look

    def _look_at_venues(self) -> set[str]:
        """Every submit answered: ask each streaming venue once more where the portfolio's open
        orders stand and for the fills since the oldest of them. A fill the venue streamed
        after its acknowledgement (a market order filled at once) may still be on its way;
        without this last look it was only learnt at the next start (seen: the venue had a
        trade the stopped engine had not). Returns the venues asked (their answers end it)."""
        assert self._tg is not None
        assert self.inbox is not None
        asked: set[str] = set()
        for broker in self.distinct_brokers:
            mine = self.open_orders_at(broker)
            if broker.capabilities.simulated or not mine:
                continue
            since = max(0, min(o.ts_init for o in mine) - FILLS_OVERLAP_NS)
            asked.add(broker.name)
            self._tg.start_soon(venue_calls.resync, broker, mine, since, self.inbox)
        return asked

    def _finish_stop(self) -> None:
        for order in self.open_orders.values():
            broker = self.brokers.get(order.symbol)
            log.info("portfolio %s: order %s %s %s %s %s stays open at %s (%s)",
                     self.portfolio_id, order.client_order_id, order.side.value,
                     order.leaves_quantity, order.symbol,
                     order.order_type.value if order.limit_price is None
                     else f"{order.order_type.value} {order.limit_price}",
                     broker.name if broker else "?", order.status.value)

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
        if self._replay_clock is not None:
            return False
        return bool(self.feed_watch.stale) or bool(FeedWatch.silent(
            self._leases, anyio.current_time(), self.ctx.feed_stale_after()))

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

