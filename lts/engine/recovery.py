"""Start-up is recovery: a portfolio's books rebuilt from its journal, then reconciled with
its venues, before the first bar.

Where it sits: the first thing a portfolio's runner (:mod:`lts.engine.runner`) does once its
brokers are connected, and again after every restart of the runner. The ledger is rebuilt from
the journal's fills (the stored positions are only compared: the fills are the truth), the
orders the journal holds open are taken back, the order manager is made numbering on from the
highest id the journal holds, and each venue is reconciled: the paper venue takes its open
orders back into its book; a real one is asked about each open order by client order id
(conclusively: an order it does not know was never placed) and for the fills it made since
the last one the journal holds (with an overlap; duplicates change nothing). A backtest's
portfolio without a database (``RunnerContext.db`` None) is new: nothing to rebuild.
"""

import logging
from decimal import Decimal
from typing import TYPE_CHECKING, cast

from anyio.abc import TaskGroup

from lts.domain.orders import Fill, Order
from lts.engine.clock import ReplayClock
from lts.engine.inbox import PortfolioInbox
from lts.engine.order_manager import OrderManager
from lts.engine.outcomes import Queried
from lts.errors import ReconciliationError
from lts.plugins.broker import Broker, SimulatedVenue

if TYPE_CHECKING:
    from lts.engine.runner import PortfolioRunner

__all__ = ["FILLS_OVERLAP_NS", "recover"]

log = logging.getLogger("lts.runner")

#: A resync asks the venue for fills from this long before the last one the journal holds.
FILLS_OVERLAP_NS = 60 * 1_000_000_000


async def recover(runner: "PortfolioRunner", inbox: PortfolioInbox,
                  tg: TaskGroup) -> OrderManager:
    """Rebuild the ledger from the journal's fills, take back the open orders, make the order
    manager and reconcile every venue; a venue that cannot reconcile stops the start."""
    pid = runner.portfolio_id
    fills, (number, seq), open_orders, stored = await _journaled(runner)
    runner.ledger.rebuild(fills)
    for order in open_orders:
        runner.open_orders[order.client_order_id] = order
    trades: dict[str, set[tuple[str, str]]] = {o.client_order_id: set() for o in open_orders}
    for f in fills:
        if f.client_order_id in trades:
            trades[f.client_order_id].add((f.broker, f.trade_id))
    om = _order_manager(runner, inbox, tg, trades, number, seq)
    for sym, pos in runner.ledger.positions.items():
        if stored.get(sym, pos.quantity) != pos.quantity:
            log.warning("portfolio %s: stored position %s %s differs from fills (%s); "
                        "rebuilt from fills", pid, sym, stored[sym], pos.quantity)
    om.resume_cancels("the engine restarted while the cancel was on its way")
    known = {(f.broker, f.trade_id) for f in fills}
    last_fill = {f.broker: f.ts_event for f in fills}
    for broker in runner.distinct_brokers:
        try:
            await _reconcile(runner, om, broker, open_orders, known,
                             last_fill.get(broker.name, 0))
        except Exception as exc:
            raise ReconciliationError(
                f"broker {broker.name} could not reconcile: {type(exc).__name__}") from exc
    if open_orders:
        log.info("portfolio %s: reconciled %d open order(s); %d still open", pid,
                 len(open_orders), len(runner.open_orders))
    return om


async def _journaled(runner: "PortfolioRunner") -> tuple[
        list[Fill], tuple[int, int], list[Order], dict[str, Decimal]]:
    """The portfolio's fills, next order and event numbers, open orders and stored positions
    (none of them for a backtest's new portfolio, which has no database)."""
    db, pid, journal = runner.ctx.db, runner.portfolio_id, runner.ctx.journal
    if db is None or journal is None:
        return [], (1, 0), [], {}
    from lts.persistence import repositories as repo  # here: a backtest never imports it

    if runner.restart:
        await journal.flush()  # read everything the run before wrote
    return (await repo.load_fills(db, pid), await repo.next_numbers(db, pid),
            await repo.load_open_orders(db, pid), await repo.load_positions(db, pid))


def _order_manager(runner: "PortfolioRunner", inbox: PortfolioInbox, tg: TaskGroup,
                   trades: dict[str, set[tuple[str, str]]], number: int, seq: int
                   ) -> OrderManager:
    ctx = runner.ctx
    om = OrderManager(runner.portfolio_id, journal=ctx.journal, db=ctx.db, bus=ctx.bus,
                      clock=ctx.clock, risk=runner.risk, ledger=runner.ledger,
                      instruments=runner.instruments, brokers=runner.brokers,
                      open_orders=runner.open_orders, trades=trades, durable=ctx.durable,
                      next_order_number=number, next_event_seq=seq, post=inbox,
                      spawn=tg.start_soon, fence=runner.fence,
                      observe_tick_to_order=None if isinstance(ctx.clock, ReplayClock)
                      else ctx.observe_tick_to_order)
    om.stale_venues = runner.venues.stale
    om.stale_feeds = runner.feed_watch.stale
    return om


async def _reconcile(runner: "PortfolioRunner", om: OrderManager, broker: Broker,
                     open_orders: list[Order], known: set[tuple[str, str]],
                     last_fill_ns: int) -> None:
    mine = runner.open_orders_at(broker, open_orders)
    om.begin_batch()
    try:
        if broker.capabilities.simulated:
            for report in cast(SimulatedVenue, broker).restore(mine):
                om.on_report(report)
            return
        for order in mine:
            om.on_queried(Queried(order.client_order_id, await broker.query_order(order)),
                          conclusive=True)
        for fill in await broker.fills(max(0, last_fill_ns - FILLS_OVERLAP_NS)):
            if (fill.broker, fill.trade_id) not in known:
                om.on_fill(fill)
    finally:
        om.end_batch()
