"""A portfolio's graceful stop: nothing new sent, nothing in flight lost, what stays open logged.

Where it sits: begun in the portfolio's runner task by a :class:`~lts.domain.commands.Stop`
command (:mod:`lts.engine.runner_commands`); the runner's loop (:mod:`lts.engine.bar_loop`)
asks after every batch whether the stop is done. Orders not yet handed to a venue are canceled
at once; submits in flight get ``engine.stop_timeout`` seconds to be answered (then they are
UNKNOWN, settled at the next start); once every submit is answered each streaming venue is
asked once more where the open orders stand and for their fills (a fill streamed after its
acknowledgement may still be on its way). Each order still open at its venue is then logged.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import anyio

from lts.engine import venue_calls
from lts.engine.outcomes import StopDeadline
from lts.engine.recovery import FILLS_OVERLAP_NS

if TYPE_CHECKING:
    from lts.engine.runner import PortfolioRunner

__all__ = ["begin_stop", "deadline_passed", "finish_stop", "stopped"]

log = logging.getLogger("lts.runner")


def begin_stop(runner: PortfolioRunner, why: str, reply: Any) -> None:
    """Stop taking new orders, cancel the unsent ones and start the stop's deadline; ``reply``
    is answered once the runner has ended."""
    om = runner.orders
    assert om is not None
    assert runner.tg is not None
    if reply is not None:
        runner.stop_replies.append(reply)
    if runner.stopping:
        return
    runner.stopping = True
    om.stopping = True
    runner.host.stop()  # what it orders now is denied (STOPPING)
    unsent = om.cancel_unsent(f"not sent: {why}")
    log.info("portfolio %s stopping (%s): %d unsent order(s) canceled, %d awaiting the "
             "venue", runner.portfolio_id, why, unsent, om.in_flight)
    runner.tg.start_soon(_stop_deadline, runner)


async def _stop_deadline(runner: PortfolioRunner) -> None:
    await anyio.sleep(runner.ctx.stop_timeout)
    assert runner.inbox is not None
    runner.inbox(StopDeadline())


def deadline_passed(runner: PortfolioRunner) -> None:
    """The stop waited long enough: what did not answer in time is settled at the next start."""
    om = runner.orders
    assert om is not None
    om.give_up_in_flight("no answer before the engine stopped")
    runner.last_look = set()


def stopped(runner: PortfolioRunner) -> bool:
    """Stopping, and nothing is waiting for the venue or the journal any more (submits in
    flight, fills being looked up, the last look at the venues: a graceful stop loses no
    fill)."""
    om = runner.orders
    if not runner.stopping or om is None or om.in_flight or om.looking_up:
        return False
    if runner.last_look is None:
        runner.last_look = _look_at_venues(runner)
    return not runner.last_look


def _look_at_venues(runner: PortfolioRunner) -> set[str]:
    """Every submit answered: ask each streaming venue once more where the portfolio's open
    orders stand and for the fills since the oldest of them. A fill the venue streamed
    after its acknowledgement (a market order filled at once) may still be on its way;
    without this last look it was only learnt at the next start (seen: the venue had a
    trade the stopped engine had not). Returns the venues asked (their answers end it)."""
    assert runner.tg is not None
    assert runner.inbox is not None
    asked: set[str] = set()
    for broker in runner.distinct_brokers:
        mine = runner.open_orders_at(broker)
        if broker.capabilities.simulated or not mine:
            continue
        since = max(0, min(o.ts_init for o in mine) - FILLS_OVERLAP_NS)
        asked.add(broker.name)
        runner.tg.start_soon(venue_calls.resync, broker, mine, since, runner.inbox)
    return asked


def finish_stop(runner: PortfolioRunner) -> None:
    """Log each order that stays open at its venue."""
    for order in runner.open_orders.values():
        broker = runner.brokers.get(order.symbol)
        log.info("portfolio %s: order %s %s %s %s %s stays open at %s (%s)",
                 runner.portfolio_id, order.client_order_id, order.side.value,
                 order.leaves_quantity, order.symbol,
                 order.order_type.value if order.limit_price is None
                 else f"{order.order_type.value} {order.limit_price}",
                 broker.name if broker else "?", order.status.value)
