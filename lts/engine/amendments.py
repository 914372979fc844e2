"""Amending a working order: new quantity, limit or stop price, checked and sent to its venue.

Where it sits: one part of a portfolio's order manager (:mod:`lts.engine.order_manager`), which
makes it and hands on its ``modify`` (a ``ModifyOrder`` command, a strategy's or a contingent
order's change) and ``on_modified`` (the venue's answer, an outcome from the runner's inbox); it
runs in the runner's task like the rest. Only an ACCEPTED or PARTIALLY_FILLED order at a venue
that can modify orders is amended, and only when the new values pass the same risk checks as a
new order of the rest of its quantity. A real venue's call runs in a task
(:mod:`lts.engine.venue_calls`); a simulated venue (paper) amends in line. The order changes
only once the venue has taken the change (``OrderUpdated``); a refusal leaves it as it was, with
the reason (``OrderModifyRejected``).
"""

from collections.abc import Callable, Mapping
from typing import Any, cast

from lts.domain.clock import Clock
from lts.domain.commands import Accepted, Denied, ModifyOrder, Reason, Reply
from lts.domain.events import OrderModifyRejected, OrderUpdated
from lts.domain.instruments import Instrument
from lts.domain.orders import Order, OrderRequest, OrderStatus
from lts.engine import venue_calls
from lts.engine.executions import copy_of
from lts.engine.ledger import Ledger
from lts.engine.order_journal import OrderBook
from lts.engine.outcomes import Modified
from lts.engine.risk import RiskCheck
from lts.errors import VenueRejected
from lts.plugins.broker import Broker, SimulatedVenue

__all__ = ["Amendments"]

S = OrderStatus


class Amendments:
    """The modifies of one portfolio's open orders (its order manager's, sharing its state)."""

    def __init__(self, *, open_orders: dict[str, Order], brokers: Mapping[str, Broker],
                 instruments: Mapping[str, Instrument], risk: RiskCheck, ledger: Ledger,
                 clock: Clock, book: OrderBook, post: Callable[[Any], None],
                 spawn: Callable[..., object]) -> None:
        self.open = open_orders
        self.brokers = brokers  # by symbol
        self.instruments = instruments
        self.risk = risk
        self.ledger = ledger
        self.clock = clock
        self.book = book
        self._post = post
        self._spawn = spawn

    def modify(self, change: ModifyOrder) -> Reply:
        order = self.open.get(change.client_order_id)
        if order is None:
            return Denied(Reason.ORDER_NOT_OPEN, f"order {change.client_order_id} is not open")
        broker = self.brokers[order.symbol]
        if not broker.capabilities.modify:
            return Denied(Reason.UNSUPPORTED, f"{broker.name} cannot modify orders")
        if order.status not in (S.ACCEPTED, S.PARTIALLY_FILLED):
            return Denied(Reason.ORDER_NOT_OPEN, f"order is {order.status.value}")
        reason = self._change_refusal(order, change)
        if reason is not None:
            return Denied(reason)
        if broker.capabilities.simulated:
            try:
                cast(SimulatedVenue, broker).amend(order, change)
            except VenueRejected as exc:
                return Denied(Reason.UNSUPPORTED, exc.reason)
            self.on_modified(Modified(change))
        else:
            self._spawn(venue_calls.modify, broker, copy_of(order), change, self._post)
        return Accepted(copy_of(order))

    def _change_refusal(self, order: Order, change: ModifyOrder) -> Reason | None:
        """The new values pass the same checks as a new order of the rest of the quantity."""
        quantity = change.quantity if change.quantity is not None else order.quantity
        if quantity <= order.filled_quantity:
            return Reason.INVALID_QUANTITY
        limit = change.limit_price if change.limit_price is not None else order.limit_price
        stop = change.stop_price if change.stop_price is not None else order.stop_price
        request = OrderRequest(order.symbol, order.side, quantity - order.filled_quantity,
                               order.order_type, order.time_in_force, limit, stop)
        saved = self.open.pop(order.client_order_id)  # judged without its own old values
        try:
            return self.risk.check(request, self.ledger, self.instruments[order.symbol],
                                   len(self.open), self.clock.now_ns())
        finally:
            self.open[order.client_order_id] = saved

    def on_modified(self, outcome: Modified) -> None:
        """The venue took the change: the order has its new values."""
        change = outcome.change
        order = self.open.get(change.client_order_id)
        if order is None:
            return
        if change.quantity is not None:
            order.quantity = change.quantity
        if change.limit_price is not None:
            order.limit_price = change.limit_price
        if change.stop_price is not None:
            order.stop_price = change.stop_price
        order.ts_last = self.clock.now_ns()
        self.book.changed(order)
        self.book.emit(OrderUpdated, order, order.ts_last)

    def refused(self, order: Order, reason: str, now: int) -> None:
        """The venue refused the change (or its answer was lost): the order stays as it was."""
        order.reason = f"modify refused: {reason}"[:200]
        self.book.changed(order)
        self.book.emit(OrderModifyRejected, order, now)
