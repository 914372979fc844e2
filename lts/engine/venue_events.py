"""What a portfolio does when a broker reports on its connection: resync, retry, halt on a ban.

Where it sits: called by the runner's control lane (:mod:`lts.engine.control_lane`), in the
portfolio's runner task, for a :class:`~lts.plugins.broker.VenueReconnected`, a
:class:`~lts.engine.outcomes.Resynced` and a :class:`~lts.plugins.broker.VenueBanned` from its
inbox. The view of each venue is kept by :class:`~lts.engine.venue_health.VenueHealth`; here
the runner acts on it: after a reconnect the same reconciliation as at start-up runs in a task
(:func:`lts.engine.venue_calls.resync`), a failed one is tried again after the delay the venue
health gives, and a ban halts trading (an operator resumes).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import anyio

from lts.domain.commands import TradingState
from lts.engine import venue_calls
from lts.engine.outcomes import Resynced
from lts.engine.recovery import FILLS_OVERLAP_NS
from lts.engine.runner_commands import set_trading_state
from lts.plugins.broker import VenueBanned, VenueReconnected

if TYPE_CHECKING:
    from lts.engine.runner import PortfolioRunner

__all__ = ["banned", "resync", "resynced"]

log = logging.getLogger("lts.runner")


def resync(runner: PortfolioRunner, broker_name: str, ts_ns: int) -> None:
    """A broker reconnected: the same reconciliation as at start-up, in a task; no new
    orders go to that venue until it is done. Fills are asked for from a while before the
    stream was lost (duplicates change nothing)."""
    assert runner.tg is not None
    assert runner.inbox is not None
    for broker in runner.distinct_brokers:
        if broker.name != broker_name or broker.capabilities.simulated:
            continue
        mine = runner.open_orders_at(broker)
        log.info("portfolio %s: %s reconnected; resyncing %d open order(s)",
                 runner.portfolio_id, broker_name, len(mine))
        lost_at = runner.venues.resync_starts(broker_name, ts_ns)
        since = max(0, lost_at - FILLS_OVERLAP_NS)
        runner.tg.start_soon(venue_calls.resync, broker, mine, since, runner.inbox)


def resynced(runner: PortfolioRunner, outcome: Resynced) -> None:
    """A resync ended: the venue is fresh again, or it is tried again later (not while
    stopping)."""
    if runner.last_look is not None:  # stopping: the last look answered (no retry)
        runner.last_look.discard(outcome.broker)
    retry = runner.venues.resynced(outcome.broker, outcome.error)
    if runner.stopping:
        return
    if retry is not None:
        assert runner.tg is not None
        runner.tg.start_soon(_resync_later, runner, outcome.broker, retry)


async def _resync_later(runner: PortfolioRunner, broker_name: str, delay: float) -> None:
    await anyio.sleep(delay)
    assert runner.inbox is not None
    runner.inbox(VenueReconnected(broker_name, runner.ctx.clock.now_ns()))


def banned(runner: PortfolioRunner, ban: VenueBanned) -> None:
    """The venue banned this client: halt (an operator resumes) rather than hammer it."""
    runner.venues.ban(ban.broker, ban.reason)
    log.error("portfolio %s: %s banned this client (%s); trading HALTED", runner.portfolio_id,
              ban.broker, ban.reason)
    if runner.risk.state is not TradingState.HALTED:
        set_trading_state(runner, TradingState.HALTED, None)
