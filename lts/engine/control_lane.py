"""The runner's control lane: each item routed to what handles it, in the order it arrived.

Where it sits: the runner's loop (:mod:`lts.engine.bar_loop`) takes the control lane of its
inbox (:mod:`lts.engine.inbox`) before the market data of a batch, and again after a bar's
simulated fills and after its decision, and hands the items here, in the runner's task. Venue
reports and the outcomes of the order manager's own I/O go to the order manager
(:mod:`lts.engine.order_manager`), commands to :mod:`lts.engine.runner_commands`, what brokers
say of their connections to :mod:`lts.engine.venue_events`, the stop's deadline to
:mod:`lts.engine.graceful_stop`; housekeeping, feeds opening and strategy timers to the runner.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from lts.domain.orders import Fill, OrderStatusReport
from lts.engine.graceful_stop import deadline_passed
from lts.engine.inbox import Envelope
from lts.engine.outcomes import (
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
from lts.engine.runner_commands import carry_out
from lts.engine.venue_events import banned, resync, resynced
from lts.plugins.broker import VenueBanned, VenueDisconnected, VenueReconnected

if TYPE_CHECKING:
    from lts.engine.runner import PortfolioRunner

__all__ = ["dispatch"]

log = logging.getLogger("lts.runner")


def dispatch(runner: PortfolioRunner, items: list[Any]) -> None:
    """Carry out the control lane's ``items``, in order."""
    om = runner.orders
    assert om is not None
    for item in items:
        kind = type(item)
        if kind is Fill:
            om.on_fill(item)
        elif kind is OrderStatusReport:
            om.on_report(item)
        elif kind is Envelope:
            carry_out(runner, item)
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
            runner.housekeep(om)
        elif kind is VenueDisconnected:
            runner.venues.disconnected(item.broker, item.ts_event, item.reason)
        elif kind is VenueReconnected:
            resync(runner, item.broker, item.ts_event)
        elif kind is Resynced:
            resynced(runner, item)
        elif kind is VenueBanned:
            banned(runner, item)
        elif kind is OpenFeeds:
            runner.open_feeds()
        elif kind is TimersDue:
            runner.host.fire_timers(runner.ctx.clock.now_ns())
        elif kind is StopDeadline:
            deadline_passed(runner)
        else:
            log.error("portfolio %s: unexpected %s in the inbox", runner.portfolio_id,
                      kind.__name__)
