"""What the venue says, taken into a portfolio's orders: execution reports, fills, queries.

Where it sits: the second half of the order manager (:mod:`lts.engine.order_manager` holds the
first: requests, venue calls, cancel, modify), carried out in the portfolio's runner task like
the rest. A venue's status report moves an order along the transition table (an illegal move is
logged and left out); fills move the position whatever the order's state:

- a fill of an open order is applied once per (broker, trade id), the trade ids kept with it;
- a fill the order's state did not allow (after it closed, beyond its quantity) is applied all
  the same, marks the order (``anomaly``), counts in ``anomalies`` and asks for a query;
- the last few closed orders stay in memory with their trade ids, so late and duplicate fills
  land on them; a fill for an order no longer in memory is looked up in the journal first (a
  task; later fills of that order wait for the same lookup);
- a fill for an order LTS never sent is adopted, once, as the external order
  ``ext-<portfolio>-<the venue's id>`` (an audit row, an ``OrderAdopted`` event).

Every change goes to the journal and out once committed (:mod:`lts.engine.order_journal`).
"""

import logging
from collections import OrderedDict
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import anyio
import msgspec

from lts.domain.clock import Clock
from lts.domain.commands import Accepted, Reply
from lts.domain.events import (
    OrderAccepted,
    OrderAdopted,
    OrderCanceled,
    OrderDenied,
    OrderEvent,
    OrderExpired,
    OrderFilled,
    OrderPendingCancel,
    OrderRejected,
    OrderSubmitted,
    OrderUnknown,
    OrderUpdated,
)
from lts.domain.orders import (
    TERMINAL_STATUSES,
    Fill,
    FillAnomaly,
    Order,
    OrderStatus,
    OrderStatusReport,
    OrderType,
    can_transition,
    portfolio_named,
)
from lts.engine.ledger import Ledger
from lts.engine.order_journal import OrderBook
from lts.engine.outcomes import FillChecked, Queried

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

    from lts.persistence.journal import Journal

__all__ = ["ExecutionIntake"]

log = logging.getLogger("lts.orders")

S = OrderStatus
STATUS_EVENT: dict[OrderStatus, type[OrderEvent]] = {
    S.SUBMITTED: OrderSubmitted, S.ACCEPTED: OrderAccepted, S.REJECTED: OrderRejected,
    S.PENDING_CANCEL: OrderPendingCancel, S.CANCELED: OrderCanceled, S.EXPIRED: OrderExpired,
    S.UNKNOWN: OrderUnknown, S.DENIED: OrderDenied, S.PARTIALLY_FILLED: OrderUpdated,
}
_LATE_ORDERS = 16  # closed orders kept in memory for late and duplicate fills


def _of_another_portfolio(client_order_id: str, portfolio_id: int) -> bool:
    """An LTS client order id that names another portfolio."""
    named = portfolio_named(client_order_id)
    return named is not None and named != portfolio_id


def copy_of(order: Order) -> Order:
    return msgspec.structs.replace(order)


def answer(reply: Any, reply_with: Reply) -> None:
    if not reply.done():
        reply.set_result(reply_with)


class ExecutionIntake:
    """The reports half of :class:`~lts.engine.order_manager.OrderManager` (its state is
    declared here, set by the order manager's constructor)."""

    portfolio_id: int
    journal: "Journal | None"
    db: "AsyncEngine | None"
    clock: Clock
    ledger: Ledger
    open: dict[str, Order]
    book: OrderBook
    to_reconcile: set[str]
    duplicate_fills: int
    anomalies: int
    _trades: dict[str, set[tuple[str, str]]]
    _late: OrderedDict[str, tuple[Order, set[tuple[str, str]]]]
    _checking: dict[str, list[Fill]]
    _replies: dict[str, Any]
    _bar_ts: dict[str, int]
    _in_flight: set[str]
    _cancel_after_ack: set[str]
    _cancel_failed: dict[str, tuple[int, bool, str]]
    _queried: set[str]
    _not_found: dict[str, int]
    _grace_ns: int
    _post: Callable[[Any], None]
    _spawn: Callable[..., object]
    _emit: Callable[..., None]
    _changed: Callable[[Order], None]

    def _cancel_not_done(self, order: Order) -> None:
        raise NotImplementedError

    # -- status reports and queries ------------------------------------------------------------
    def on_report(self, report: OrderStatusReport) -> None:
        """A status the venue streamed (or answered to a query), with the fills it carries."""
        for fill in report.fills:
            self.on_fill(fill)
        order = self.open.get(report.client_order_id)
        if order is None:
            return
        if report.broker_order_id and order.broker_order_id != report.broker_order_id and \
                (order.broker_order_id is None or report.status not in TERMINAL_STATUSES):
            # the venue's id, or its new one for a working order (a cancel-replace makes one)
            order.broker_order_id = report.broker_order_id
            self._changed(order)
        status = report.status
        if status in (S.PARTIALLY_FILLED, S.FILLED):
            if status is S.FILLED and order.filled_quantity < order.quantity:
                self.to_reconcile.add(order.client_order_id)  # its fills are still to come
            if status is S.PARTIALLY_FILLED and order.status is S.PENDING_CANCEL:
                self._cancel_not_done(order)
            elif order.status in (S.SUBMITTED, S.UNKNOWN, S.PENDING_SUBMIT):
                # the venue has it (its fills, known already, moved nothing): it is working
                settled = S.PARTIALLY_FILLED if order.filled_quantity else S.ACCEPTED
                self._move(order, settled, report.ts_event or self.clock.now_ns())
            return  # fills move the status, not a status report
        if status is order.status:
            return
        if order.status is S.PENDING_CANCEL and status is S.ACCEPTED:
            self._cancel_not_done(order)
            return
        if status not in STATUS_EVENT or not can_transition(order.status, status):
            log.info("order %s: %s reported while %s; ignored", order.client_order_id,
                     status.value, order.status.value)
            return
        self._move(order, status, report.ts_event or self.clock.now_ns(), report.reason)

    def on_queried(self, outcome: Queried, *, conclusive: bool = False) -> None:
        """The venue's answer to a query. "Not found" settles an order only when it is
        ``conclusive`` (reconciliation at start-up) or still true an acknowledgement timeout
        after the first time (a venue may not list an order it has just taken)."""
        coid = outcome.client_order_id
        self._queried.discard(coid)
        if outcome.report is not None:
            self._not_found.pop(coid, None)
            self.on_report(outcome.report)
            order = self.open.get(coid)
            if order is not None and order.status is S.UNKNOWN and \
                    outcome.report.status is S.UNKNOWN:
                return
            self.to_reconcile.discard(coid)
            return
        order = self.open.get(coid)
        if order is None or coid in self._in_flight:
            return
        now = self.clock.now_ns()
        first = self._not_found.setdefault(coid, now)
        if not conclusive and now - first < self._grace_ns:
            return  # asked again at the next housekeeping
        # the venue does not know it: it never got there (never resubmitted)
        self._not_found.pop(coid, None)
        self._move(order, S.CANCELED, now, "not found at the venue")
        self.to_reconcile.discard(coid)



    # -- fills -------------------------------------------------------------------------------------
    def on_fill(self, fill: Fill) -> None:
        coid = fill.client_order_id
        if fill.portfolio_id != self.portfolio_id:
            if _of_another_portfolio(coid, self.portfolio_id):
                log.debug("fill %s is of another portfolio's order %s: not ours", fill.trade_id,
                          coid)
                return  # portfolios sharing one account see each other's trades
            # this portfolio's broker reported it (an order placed outside LTS names none)
            fill = msgspec.structs.replace(fill, portfolio_id=self.portfolio_id)
        key = (fill.broker, fill.trade_id)
        order = self.open.get(coid)
        if order is not None:
            trades = self._trades.setdefault(coid, set())
            if key in trades:
                self.duplicate_fills += 1
                return
            trades.add(key)
            self._apply_fill(order, fill)
            return
        late = self._late.get(coid)
        if late is not None:
            closed, trades = late
            if key in trades:
                self.duplicate_fills += 1
                return
            trades.add(key)
            self._late.move_to_end(coid)
            self._apply_fill(closed, fill)
            return
        waiting = self._checking.get(coid)
        if waiting is not None:
            waiting.append(fill)  # one lookup per order: its answer settles these too
            return
        self._checking[coid] = [fill]
        self._spawn(self._look_up, coid)

    async def _look_up(self, coid: str) -> None:
        """A fill for an order not in memory: the journal's order (or none: never sent by
        LTS) and the trade ids it has applied to it. Asked again until the database answers
        (the fill is never dropped). A backtest's portfolio has no journal: no order of its is
        ever out of memory, so the fill is an external order's."""
        if self.db is None or self.journal is None:
            self._post(FillChecked(coid, None, frozenset()))
            return
        from lts.persistence.repositories import late_fill_lookup  # not in a backtest

        while True:
            await self.journal.flush()  # what this runner wrote before must be readable
            try:
                order, known = await late_fill_lookup(self.db, self.portfolio_id, coid)
            except Exception as exc:  # the database is away: the journal holds; ask again
                log.warning("order %s: journal lookup failed (%s); retrying", coid,
                            type(exc).__name__)
                await anyio.sleep(0.5)
                continue
            self._post(FillChecked(coid, order, frozenset(known)))
            return

    def on_fill_checked(self, outcome: FillChecked) -> None:
        fills = self._checking.pop(outcome.client_order_id, [])
        if not fills:
            return
        order = outcome.order
        if order is None:
            fresh = [f for f in fills if (f.broker, f.trade_id) not in outcome.known]
            if not fresh:
                self.duplicate_fills += len(fills)
                return
            order = self._adopt(fresh[0])
        self._keep_late(outcome.client_order_id, order, set(outcome.known))
        for fill in fills:
            self.on_fill(fill)

    def _keep_late(self, coid: str, order: Order, trades: set[tuple[str, str]]) -> None:
        late = self._late
        late[coid] = (order, trades)
        late.move_to_end(coid)
        while len(late) > _LATE_ORDERS:
            late.popitem(last=False)

    def _adopt(self, fill: Fill) -> Order:
        """An order LTS never sent, known only by its fills: taken in as external."""
        now = self.clock.now_ns()
        order = Order(client_order_id=f"ext-{self.portfolio_id}-{fill.client_order_id}",
                      portfolio_id=self.portfolio_id, symbol=fill.symbol, side=fill.side,
                      quantity=fill.quantity, order_type=OrderType.MARKET, status=S.ACCEPTED,
                      tag="external", reason="placed outside LTS", ts_init=now, ts_last=now,
                      anomaly=FillAnomaly.EXTERNAL)
        self.book.insert(order, fill.broker)
        self.book.audit({
            "actor": "system", "action": "order.adopted",
            "target": f"order:{order.client_order_id}", "client_address": None,
            "outcome": "success",
            "detail": {"portfolio_id": self.portfolio_id, "broker": fill.broker,
                       "venue_order": fill.client_order_id, "symbol": fill.symbol}})
        self._emit(OrderAdopted, order, now)
        self.anomalies += 1
        log.warning("fill %s for order %s that LTS never sent: adopted as %s", fill.trade_id,
                    fill.client_order_id, order.client_order_id)
        return order

    def _apply_fill(self, order: Order, fill: Fill) -> None:
        if fill.client_order_id != order.client_order_id:  # an adopted order's fill
            fill = msgspec.structs.replace(fill, client_order_id=order.client_order_id)
        if order.anomaly is FillAnomaly.EXTERNAL:  # an external order is as big as its fills
            needed = order.filled_quantity + fill.quantity
            if needed > order.quantity:
                order.quantity = needed
                if order.status is S.FILLED:
                    order.status = S.PARTIALLY_FILLED
        anomaly = order.apply_fill(fill.quantity, fill.price, fill.ts_event)
        pos = self.ledger.apply_fill(fill)
        self.book.fill(fill, pos)
        self._changed(order)
        self._emit(OrderFilled, order, fill.ts_event, fill)
        if anomaly is not None and anomaly is not FillAnomaly.EXTERNAL:
            self.anomalies += 1
            self.to_reconcile.add(order.client_order_id)
            log.warning("fill %s on order %s (%s): %s; the position follows, the order is "
                        "marked for reconciliation", fill.trade_id, order.client_order_id,
                        order.status.value, anomaly.value)
        if order.status in TERMINAL_STATUSES and order.client_order_id in self.open:
            self._close(order)
        if log.isEnabledFor(logging.INFO):  # per fill: not even its arguments when off
            log.info("fill %s: %s %s %s @ %s fee %s -> position %s %s", fill.trade_id,
                     fill.side.value, fill.quantity, fill.symbol, fill.price, fill.total_fee,
                     pos.symbol, pos.quantity)  # total_fee: a commission in the asset, priced



    # -- bookkeeping -----------------------------------------------------------------------------
    def _move(self, order: Order, status: OrderStatus, ts: int, reason: str = "") -> None:
        """Transition ``order`` (the table decides), write it, emit its event."""
        order.transition(status, ts, reason)
        self._changed(order)
        self._emit(STATUS_EVENT[status], order, ts)
        if status in TERMINAL_STATUSES:
            self._close(order)
        if status in (S.REJECTED, S.EXPIRED, S.UNKNOWN):
            log.warning("order %s %s %s", order.client_order_id, status.value, reason)
        elif status is S.CANCELED:
            log.info("order %s canceled %s", order.client_order_id, reason)

    def _close(self, order: Order) -> None:
        """The order is final: out of the open orders, kept a while for late fills; a sender
        still waiting (it was never sent) gets its answer."""
        coid = order.client_order_id
        del self.open[coid]
        self._keep_late(coid, order, self._trades.pop(coid, set()))
        self._cancel_after_ack.discard(coid)
        self._cancel_failed.pop(coid, None)
        self._not_found.pop(coid, None)
        self._bar_ts.pop(coid, None)
        reply = self._replies.pop(coid, None)
        if reply is not None:
            answer(reply, Accepted(copy_of(order)))

    def _forget(self, coid: str) -> None:
        self.open.pop(coid, None)
        self._trades.pop(coid, None)
