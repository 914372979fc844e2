"""The runner's calls to a venue, each in a task of the portfolio's task group.

Where it sits: the order manager decides (submit, cancel, modify, query); these tasks wait for
the venue and post the outcome to the runner's inbox (:mod:`lts.engine.outcomes`), so the
portfolio keeps trading while a venue answers. A broker's typed errors say what is known:
:class:`~lts.errors.VenueRejected` (the venue said no), :class:`~lts.errors.VenueUnavailable`
(nothing was sent); anything else, a timeout included, means the answer was lost and the
outcome is unknown until a query settles it.
"""

import logging
from collections.abc import Callable, Sequence
from typing import Any

from lts.domain.commands import ModifyOrder
from lts.domain.orders import OPEN_STATUSES, Order
from lts.engine.outcomes import (
    CallFailed,
    CallKind,
    Canceled,
    Modified,
    Queried,
    Resynced,
    Submitted,
)
from lts.errors import VenueRejected, VenueUnavailable
from lts.plugins.broker import Broker

__all__ = ["cancel", "modify", "query", "resync", "submit"]

log = logging.getLogger("lts.venue_calls")

Post = Callable[[Any], None]


def _failed(kind: CallKind, coid: str, exc: Exception) -> CallFailed:
    if isinstance(exc, VenueRejected):
        return CallFailed(kind, coid, exc.reason[:200], rejected=True)
    if isinstance(exc, VenueUnavailable):
        return CallFailed(kind, coid, f"venue unavailable: {exc}"[:200], sent=False)
    return CallFailed(kind, coid, f"no answer: {type(exc).__name__}"[:200])


async def submit(broker: Broker, order: Order, post: Post) -> None:
    try:
        venue_id = await broker.submit(order)
    except Exception as exc:  # a venue's failure is an outcome, never the runner's crash
        log.debug("submit %s failed", order.client_order_id, exc_info=exc)
        post(_failed(CallKind.SUBMIT, order.client_order_id, exc))
        return
    post(Submitted(order.client_order_id, venue_id))


async def cancel(broker: Broker, order: Order, post: Post) -> None:
    try:
        await broker.cancel(order)
    except Exception as exc:
        log.debug("cancel %s failed", order.client_order_id, exc_info=exc)
        post(_failed(CallKind.CANCEL, order.client_order_id, exc))
        return
    post(Canceled(order.client_order_id))


async def modify(broker: Broker, order: Order, change: ModifyOrder, post: Post) -> None:
    try:
        await broker.modify(order, change)
    except Exception as exc:
        log.debug("modify %s failed", order.client_order_id, exc_info=exc)
        post(_failed(CallKind.MODIFY, order.client_order_id, exc))
        return
    post(Modified(change))


async def query(broker: Broker, order: Order, post: Post) -> None:
    """Ask where an order stands; a failed query posts nothing (the next housekeeping asks
    again)."""
    try:
        report = await broker.query_order(order)
    except Exception as exc:
        log.warning("query of order %s at %s failed: %s", order.client_order_id, broker.name,
                    type(exc).__name__)
        return
    post(Queried(order.client_order_id, report))


async def resync(broker: Broker, orders: Sequence[Order], since_ns: int, post: Post) -> None:
    """After a reconnect: where each open order stands, then the fills since ``since_ns``."""
    try:
        for order in orders:
            if order.status in OPEN_STATUSES:
                post(Queried(order.client_order_id, await broker.query_order(order)))
        for fill in await broker.fills(since_ns):
            post(fill)
    except Exception as exc:
        post(Resynced(broker.name, f"{type(exc).__name__}: {exc}"[:200]))
        return
    post(Resynced(broker.name))
