"""One portfolio at work: its plugins, its recovery, and its decision path.

The runner's task drains its market-data mailbox in batches and, for each bar, runs the decision
path as plain calls: broker (fills of working orders) -> strategy -> portfolio plugin -> risk ->
order manager. It awaits only where there is waiting: the durable write of a new order (live),
and the mailbox. Start-up is recovery: open orders are reconciled with their brokers by client
order id and positions are rebuilt from fills before the first bar is taken.
"""

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import anyio
from anyio.abc import TaskStatus
from sqlalchemy.ext.asyncio import AsyncEngine

from lts.bus import InProcessBus, Mailbox, Overflow
from lts.domain.clock import Clock
from lts.domain.market import Bar, FeedEnded
from lts.domain.orders import Order, OrderStatus
from lts.engine.clock import ReplayClock
from lts.engine.feeds import FeedHub, FeedLease
from lts.engine.ledger import Ledger
from lts.engine.order_manager import OrderManager
from lts.engine.risk import RiskCheck, RiskLimits, TradingState
from lts.errors import ReconciliationError
from lts.persistence import repositories as repo
from lts.persistence.journal import Journal
from lts.plugins.broker import Broker
from lts.plugins.portfolio import Allocator
from lts.plugins.registry import Registry
from lts.plugins.strategy import Strategy

log = logging.getLogger("lts.runner")


@dataclass
class RunnerContext:
    """What the engine hands every runner (constructor injection, no globals)."""

    registry: Registry
    bus: InProcessBus
    journal: Journal
    db: AsyncEngine
    feeds: FeedHub
    clock: Clock
    durable: bool = True
    mailbox_capacity: int = 10_000
    ack_timeout: float = 10.0
    #: live only: seconds from a bar's time to its orders handed to the broker (a histogram)
    observe_tick_to_order: Callable[[float], None] | None = None
    default_risk: RiskLimits = field(default_factory=RiskLimits)


class PortfolioRunner:
    def __init__(self, spec: repo.PortfolioSpec, ctx: RunnerContext) -> None:
        assert spec.id is not None
        self.spec = spec
        self.portfolio_id = spec.id
        self.ctx = ctx
        self.bars = 0
        self.last_tick_ns: int | None = None
        self.peak_equity = 0.0
        self.max_drawdown = 0.0
        self.track_equity = False
        self.on_bar_done: Callable[[Bar], None] | None = None
        self.strategies: dict[str, Strategy] = {}
        self.brokers: dict[str, Broker] = {}
        self.open_orders: dict[str, Order] = {}
        self._replay_clock = ctx.clock if isinstance(ctx.clock, ReplayClock) else None
        self._leases: list[FeedLease] = []
        self._mailbox: Mailbox[Any] | None = None
        self.ledger = Ledger(spec.initial_cash, {a.symbol: a.lot_size for a in spec.assets},
                             self.open_orders)
        limits = RiskLimits.model_validate({**ctx.default_risk.model_dump(), **spec.risk_params})
        self.risk = RiskCheck(limits, TradingState(spec.trading_state))
        self.allocator: Allocator = ctx.registry.create("portfolio", spec.portfolio_plugin,
                                                        spec.portfolio_params)
        self.orders: OrderManager | None = None

    # -- set-up ---------------------------------------------------------------------------------
    def _build_plugins(self) -> None:
        reg = self.ctx.registry
        by_config: dict[str, Broker] = {}
        for asset in self.spec.assets:
            self.strategies[asset.symbol] = reg.create("strategy", asset.strategy_plugin,
                                                       asset.strategy_params)
            cfg = f"{asset.broker_plugin}:{json.dumps(asset.broker_params, sort_keys=True)}"
            if cfg not in by_config:
                by_config[cfg] = reg.create("broker", asset.broker_plugin, asset.broker_params)
            self.brokers[asset.symbol] = by_config[cfg]

    async def _recover(self) -> OrderManager:
        db, pid = self.ctx.db, self.portfolio_id
        await self.ctx.journal.flush()  # a restart must read everything the failed run wrote
        fills = await repo.load_fills(db, pid)
        self.ledger.rebuild(fills)
        number, seq = await repo.next_numbers(db, pid)
        om = OrderManager(pid, journal=self.ctx.journal, bus=self.ctx.bus, clock=self.ctx.clock,
                          risk=self.risk, ledger=self.ledger, open_orders=self.open_orders,
                          brokers=self.brokers, durable=self.ctx.durable,
                          next_order_number=number, next_event_seq=seq,
                          seen_trades={(f.broker, f.trade_id) for f in fills})
        for broker in {id(b): b for b in self.brokers.values()}.values():
            broker.bind(om, self.ctx.clock)
        stored = await repo.load_positions(db, pid)
        for sym, pos in self.ledger.positions.items():
            if stored.get(sym, pos.quantity) != pos.quantity:
                log.warning("portfolio %s: stored position %s %s differs from fills (%s); "
                            "rebuilt from fills", pid, sym, stored[sym], pos.quantity)
        open_orders = await repo.load_open_orders(db, pid)
        if open_orders:
            await self._reconcile(om, open_orders)
        return om

    async def _reconcile(self, om: OrderManager, open_orders: list[Order]) -> None:
        for order in open_orders:
            self.open_orders[order.client_order_id] = order
        now = self.ctx.clock.now_ns()
        for broker in {id(b): b for b in self.brokers.values()}.values():
            mine = [o for o in open_orders if self.brokers.get(o.symbol) is broker]
            if not mine:
                continue
            try:
                reports = await broker.reconcile(mine)
            except Exception as exc:
                raise ReconciliationError(
                    f"broker {broker.name} could not reconcile: {type(exc).__name__}") from exc
            for report in reports:
                for fill in report.fills:
                    om.on_fill(fill)
                om.on_order_status(report.client_order_id, report.status, now, report.reason)
        log.info("portfolio %s: reconciled %d open order(s); %d still open", self.portfolio_id,
                 len(open_orders), len(self.open_orders))

    # -- control --------------------------------------------------------------------------------
    def set_trading_state(self, state: TradingState) -> None:
        self.risk.state = state

    # -- the loop -------------------------------------------------------------------------------
    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Recover, subscribe, then trade until cancelled (or, on historical data, until every
        feed has ended)."""
        self._build_plugins()
        self.orders = await self._recover()
        historical = any(self.ctx.feeds.is_historical(a.pipeline_plugin, a.pipeline_params,
                                                      a.symbol) for a in self.spec.assets)
        policy = Overflow.BLOCK if historical else Overflow.DROP_OLDEST
        mailbox: Mailbox[Any] = Mailbox(self.ctx.mailbox_capacity, policy,
                                        name=f"portfolio-{self.portfolio_id}")
        self._mailbox = mailbox
        try:
            for a in self.spec.assets:
                self._leases.append(self.ctx.feeds.acquire(a.pipeline_plugin, a.pipeline_params,
                                                           a.symbol, mailbox))
            task_status.started()
            if historical:
                await self._loop(mailbox, historical)
            else:
                async with anyio.create_task_group() as tg:
                    tg.start_soon(self._watch_acknowledgements, name="ack watchdog")
                    await self._loop(mailbox, historical)
                    tg.cancel_scope.cancel()
        finally:
            for lease in self._leases:
                lease.release()
            self._leases.clear()
            mailbox.close()

    async def _loop(self, mailbox: Mailbox[Any], historical: bool) -> None:
        om = self.orders
        assert om is not None
        strategies, brokers, ledger = self.strategies, self.brokers, self.ledger
        allocator, clock = self.allocator, self._replay_clock
        mark = ledger.mark
        observe = self.ctx.observe_tick_to_order if clock is None else None
        live_feeds = len(self.spec.assets)
        while live_feeds:
            batch = await mailbox.get_batch()
            bars = len(batch)
            track, on_done = self.track_equity, self.on_bar_done
            peak, drawdown = self.peak_equity, self.max_drawdown
            om.begin_batch()
            try:
                for item in batch:
                    if type(item) is not Bar:
                        bars -= 1
                        live_feeds -= self._feed_ended(item, historical)
                        continue
                    bar: Bar = item
                    sym = bar.symbol
                    if clock is not None:
                        clock.ts = bar.ts_event
                    equity = mark(sym, bar.close)
                    if track:
                        if equity > peak:
                            peak = equity
                        elif peak - equity > drawdown:
                            drawdown = peak - equity
                    brokers[sym].on_bar(bar)
                    signal = strategies[sym].on_bar(bar)
                    if signal is not None:
                        log.info("signal %s %s (%s)", sym, signal.target.value, signal.reason)
                        for request in allocator.allocate(signal, ledger):
                            await om.submit(request)
                        if observe is not None:
                            observe((time.time_ns() - bar.ts_event) / 1e9)
                    if on_done is not None:
                        on_done(bar)
            finally:
                om.end_batch()  # written even when a plugin raised mid-batch
            self.peak_equity, self.max_drawdown = peak, drawdown
            self.bars += bars
            if bars:
                self.last_tick_ns = self.ctx.clock.now_ns()
            await self.ctx.journal.wait_below_high_water()

    async def _watch_acknowledgements(self) -> None:
        """Once a second: orders sent without an answer become UNKNOWN, UNKNOWN orders are
        reconciled with their broker, and the risk check sees the equity (daily-loss baseline)."""
        om = self.orders
        assert om is not None
        timeout_ns = int(self.ctx.ack_timeout * 1e9)
        while True:
            await anyio.sleep(min(1.0, self.ctx.ack_timeout))
            om.mark_unacknowledged(timeout_ns)
            if self.risk.limits.max_daily_loss is not None:
                self.risk.observe_equity(self.ctx.clock.now_ns(), self.ledger.equity())
            unknown = [o for o in self.open_orders.values() if o.status is OrderStatus.UNKNOWN]
            if unknown:
                try:
                    await self._reconcile(om, unknown)
                except ReconciliationError as exc:
                    log.warning("portfolio %s: %s; retrying", self.portfolio_id, exc)

    def _feed_ended(self, item: object, historical: bool) -> int:
        if isinstance(item, FeedEnded):
            if item.error:
                raise RuntimeError(item.error)
            log.info("portfolio %s: feed for %s ended", self.portfolio_id, item.symbol)
            return 1 if historical else 0
        return 0

    # -- reporting ------------------------------------------------------------------------------
    @property
    def mailbox_depth(self) -> int:
        return 0 if self._mailbox is None else len(self._mailbox)

    def equity(self) -> Decimal:
        return self.ledger.equity()

    def debug_info(self) -> dict[str, Any]:
        plugins: dict[str, Any] = {"portfolio": self.allocator.get_debug_info()}  # type: ignore[attr-defined]
        for sym, strat in self.strategies.items():
            plugins[f"strategy:{sym}"] = strat.get_debug_info()  # type: ignore[attr-defined]
        for sym, broker in self.brokers.items():
            plugins[f"broker:{sym}"] = broker.get_debug_info()  # type: ignore[attr-defined]
        return {"portfolio_id": self.portfolio_id, "bars": self.bars, "plugins": plugins}
