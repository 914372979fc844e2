"""The runner's loop: each batch of its inbox taken in, and the decision path run for each bar.

Where it sits: what a portfolio's runner (:mod:`lts.engine.runner`) does once it has recovered
and opened its feeds, until it is stopped or (on historical data) every feed has ended. It
waits only for its inbox. Each batch takes the control lane first
(:mod:`lts.engine.control_lane`), then the market data: a feed's recent past warms the
strategies up (no order comes of it); a tick reaches the trading strategies; each bar fires the
strategy timers due before it, then runs as plain calls: simulated venue (fills of resting
orders) -> strategy -> portfolio plugin -> risk -> order manager, the control lane taken again
after the venue's fills and after the decision, so a fill lands on the bar that made it. The
batch's journal rows are written as one (the order manager's batch); a backtest's equity curve
takes each bar after its fills. A graceful stop ends the loop once nothing is in flight
(:mod:`lts.engine.graceful_stop`).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, cast

import anyio

from lts.bus import MailboxClosed
from lts.domain.market import Bar, FeedEnded, Quote, TradeTick, WarmUp
from lts.engine.control_lane import dispatch
from lts.engine.graceful_stop import finish_stop, stopped
from lts.engine.inbox import PortfolioInbox
from lts.plugins.broker import SimulatedVenue

if TYPE_CHECKING:
    from lts.engine.runner import PortfolioRunner

__all__ = ["trade"]

log = logging.getLogger("lts.runner")


async def trade(runner: PortfolioRunner, inbox: PortfolioInbox, historical: bool) -> None:
    """Take the inbox's batches until stopped or every (historical) feed has ended."""
    om = runner.orders
    assert om is not None
    strategies, ledger = runner.strategies, runner.ledger
    # every symbol: its simulated venue's bar hook, or None (a subscript, not a call)
    simulated = {s: cast(SimulatedVenue, b).on_bar if b.capabilities.simulated else None
                 for s, b in runner.brokers.items()}
    allocator, clock = runner.allocator, runner.replay_clock
    host, journal = runner.host, runner.ctx.journal
    timers = host.timers
    timers_set = timers.live
    mark, request = ledger.mark, om.request
    control, take_control = inbox.control_lane, inbox.take_control
    live = clock is None
    live_feeds = len(runner.spec.assets)
    while live_feeds and not stopped(runner):
        try:
            await inbox.wait()
        except MailboxClosed:
            return
        bars = 0
        curve, on_done = runner.curve, runner.on_bar_done
        if curve is not None:
            at, cash_at, equity_at = (curve.ts_ns.append, curve.cash.append,
                                      curve.equity.append)
        hosted = bool(host.trading)
        om.begin_batch()
        try:
            if control:
                dispatch(runner, take_control())
                if hosted:
                    host.deliver()
            trading = not runner.stopping
            for item in inbox.take_market():
                if type(item) is not Bar:
                    if type(item) is WarmUp:
                        _warm_up(runner, item)
                    elif type(item) is Quote or type(item) is TradeTick:
                        if clock is not None:
                            clock.ts = item.ts_event
                        if trading and hosted:
                            host.on_tick(item)
                    else:
                        live_feeds -= _feed_ended(runner, item, historical)
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
                    dispatch(runner, take_control())
                    trading = not runner.stopping
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
                        dispatch(runner, take_control())  # its close) lands on this bar
                        trading = not runner.stopping
                    if hosted:
                        host.on_bar_done(bar)
                if curve is not None:  # after the bar's fills
                    cash = ledger.cash_f
                    at(bar.ts_event)
                    cash_at(cash)
                    equity_at(cash + ledger.value_f)
                if on_done is not None:
                    on_done(bar)
            if live and bars and runner.housekeeping_due(anyio.current_time()):
                runner.housekeep(om)  # on its own bars: no nudge from the engine
        finally:
            om.end_batch()  # written even when a plugin raised mid-batch
        if bars:
            runner.bars += bars
            runner.last_tick_ns = runner.ctx.clock.now_ns()
        if journal is not None:
            await journal.wait_below_high_water()
    if not runner.stopping:  # the data ended (a backtest)
        runner.host.stop()
    if runner.stopping:
        finish_stop(runner)


def _warm_up(runner: PortfolioRunner, history: WarmUp) -> None:
    """A feed's recent past: the symbol is marked and its strategy takes the bars in (its
    indicators warm), and nothing trades on them: a signal from the past is no order."""
    if history.symbol not in runner.strategies or not history.bars:
        return
    runner.ledger.mark(history.symbol, history.bars[-1].close)
    runner.host.warm_up(history.symbol, history.bars)
    log.info("portfolio %s: %s warmed up on %d bar(s) of history", runner.portfolio_id,
             history.symbol, len(history.bars))


def _feed_ended(runner: PortfolioRunner, item: object, historical: bool) -> int:
    if isinstance(item, FeedEnded):
        if item.error:
            raise RuntimeError(item.error)
        log.info("portfolio %s: feed for %s ended", runner.portfolio_id, item.symbol)
        return 1 if historical else 0
    return 0
