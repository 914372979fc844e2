"""The order manager of one portfolio: from an approved request to a durable, submitted order,
and from broker reports back to orders, the ledger, the journal and the bus.

Write-ahead: the order row is committed before the broker sees the order (``durable=True``,
live trading); a backtest may hand it over before the commit. Client order ids are
``<portfolio id>-<n>``, numbered on from the highest the journal holds, so a restart never reuses
one. Fills are idempotent: a ``(broker, trade_id)`` seen before changes nothing (remembered for the
last 100,000 fills; a report replayed after that many later fills is not recognized).
"""

import logging
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any

import msgspec

from lts.bus import Bus
from lts.domain.clock import Clock
from lts.domain.events import OrderEvent, PositionChanged
from lts.domain.orders import (
    TERMINAL_STATUSES,
    Fill,
    InvalidTransition,
    Order,
    OrderRequest,
    OrderStatus,
)
from lts.domain.position import Position
from lts.engine.ledger import Ledger
from lts.engine.risk import RiskCheck
from lts.persistence.journal import Journal
from lts.plugins.broker import Broker

log = logging.getLogger("lts.orders")

#: An event's JSON, encoded once; the journal stores it as the ``payload`` JSON as it is.
_encode = msgspec.json.Encoder().encode


def order_row(order: Order, broker: str) -> dict[str, Any]:
    return {
        "client_order_id": order.client_order_id, "portfolio_id": order.portfolio_id,
        "symbol": order.symbol, "side": order.side.value, "order_type": order.order_type.value,
        "time_in_force": order.time_in_force.value, "quantity": order.quantity,
        "limit_price": order.limit_price, "stop_price": order.stop_price,
        "status": order.status.value, "filled_quantity": order.filled_quantity,
        "avg_fill_price": order.avg_fill_price, "broker": broker,
        "broker_order_id": order.broker_order_id, "reason": order.reason, "tag": order.tag,
        "ts_init": order.ts_init, "ts_last": order.ts_last,
    }


def order_update_row(order: Order) -> dict[str, Any]:
    return {"client_order_id": order.client_order_id, "status": order.status.value,
            "filled_quantity": order.filled_quantity, "avg_fill_price": order.avg_fill_price,
            "broker_order_id": order.broker_order_id, "reason": order.reason,
            "ts_last": order.ts_last}


def fill_row(fill: Fill) -> dict[str, Any]:
    return {"portfolio_id": fill.portfolio_id, "client_order_id": fill.client_order_id,
            "broker": fill.broker, "trade_id": fill.trade_id, "symbol": fill.symbol,
            "side": fill.side.value, "quantity": fill.quantity, "price": fill.price,
            "fee": fill.fee, "ts_event": fill.ts_event}


def position_row(portfolio_id: int, pos: Position, ts: int) -> dict[str, Any]:
    return {"portfolio_id": portfolio_id, "symbol": pos.symbol, "quantity": pos.quantity,
            "cost": pos.cost, "avg_price": pos.avg_price, "realized_pnl": pos.realized_pnl,
            "fees": pos.fees, "ts_last": ts}


class OrderManager:
    """Implements the broker reports protocol for every broker of its portfolio."""

    def __init__(self, portfolio_id: int, *, journal: Journal, bus: Bus, clock: Clock,
                 risk: RiskCheck, ledger: Ledger, open_orders: dict[str, Order],
                 brokers: Mapping[str, Broker], durable: bool, next_order_number: int,
                 next_event_seq: int, seen_trades: set[tuple[str, str]],
                 remembered_trades: int = 100_000) -> None:
        self.portfolio_id = portfolio_id
        self.journal = journal
        self.bus = bus
        self.clock = clock
        self.risk = risk
        self.ledger = ledger
        self.open = open_orders
        self.brokers = brokers  # by symbol
        self.durable = durable
        self._number = next_order_number
        self._seq = next_event_seq
        # Trades already applied, remembered for the last ``remembered_trades`` fills: bounded,
        # so a process that trades for months does not grow without end.
        self._seen = set(seen_trades)
        self._seen_order: deque[tuple[str, str]] = deque(seen_trades)
        self._remember = remembered_trades
        self.orders_created = 0
        self.orders_denied = 0
        self.duplicate_fills = 0
        self._deferred: list[tuple[Callable[..., None], tuple[Any, ...]]] | None = None
        self._batch: dict[str, Order] | None = None  # orders changed in the current batch

    # -- requests -> orders -------------------------------------------------------------------
    async def submit(self, request: OrderRequest) -> Order:
        now = self.clock.now_ns()
        coid = f"{self.portfolio_id}-{self._number}"
        self._number += 1
        order = Order.from_request(request, client_order_id=coid,
                                   portfolio_id=self.portfolio_id, ts_init=now)
        broker = self.brokers[request.symbol]
        self.orders_created += 1
        reason = self.risk.check(request, self.ledger, len(self.open), now)
        if reason is not None:
            order.transition(OrderStatus.DENIED, now, reason.value)
            self.orders_denied += 1
            self.journal.insert_order(order_row(order, broker.name))
            self._emit("order.denied", order, now)
            log.info("order %s denied: %s %s %s (%s)", coid, order.side.value, order.quantity,
                     order.symbol, reason.value)
            return order
        durable = self.journal.insert_order(order_row(order, broker.name))
        self.open[coid] = order
        if self.durable:
            # The batch's changes so far go into the same commit as the fills and events
            # already queued: a crash while this waits never leaves a fill without its order's
            # filled quantity.
            self._write_changed()
            await durable  # write-ahead: the row is on disk before the broker sees the order
        order.transition(OrderStatus.SUBMITTED, self.clock.now_ns())
        # The broker sees the order first; what it answers at once waits until the bookkeeping
        # of the submission is done, so events keep their order (submitted before accepted).
        deferred: list[tuple[Callable[..., None], tuple[Any, ...]]] = []
        self._deferred = deferred
        refused: Exception | None = None
        try:
            broker.submit(order)
        except Exception as exc:  # the broker refused before sending: a rejection, not a crash
            refused = exc
        finally:
            self._deferred = None
        self._changed(order)
        self._emit("order.submitted", order, order.ts_last)
        log.info("order %s submitted: %s %s %s %s", coid, order.side.value, order.quantity,
                 order.symbol, order.order_type.value)
        if refused is not None:
            self.on_order_status(coid, OrderStatus.REJECTED, self.clock.now_ns(),
                                 f"broker refused: {type(refused).__name__}")
        for report, args in deferred:
            report(*args)
        return order

    def cancel(self, client_order_id: str) -> bool:
        order = self.open.get(client_order_id)
        if order is None:
            return False
        if order.status is not OrderStatus.PENDING_CANCEL:
            self.on_order_status(client_order_id, OrderStatus.PENDING_CANCEL,
                                 self.clock.now_ns())
        self.brokers[order.symbol].cancel(client_order_id)
        return True

    def mark_unacknowledged(self, timeout_ns: int) -> int:
        """Orders sent but not acknowledged within ``timeout_ns`` become UNKNOWN (a timeout is
        never a rejection); reconciliation settles them. Returns how many were marked."""
        now = self.clock.now_ns()
        late = [o.client_order_id for o in self.open.values()
                if o.status is OrderStatus.SUBMITTED and now - o.ts_last > timeout_ns]
        for coid in late:
            self.on_order_status(coid, OrderStatus.UNKNOWN, now, "no acknowledgement in time")
        return len(late)

    # -- broker reports -----------------------------------------------------------------------
    def on_order_status(self, client_order_id: str, status: OrderStatus, ts: int,
                        reason: str = "") -> None:
        if self._deferred is not None:
            self._deferred.append((self.on_order_status, (client_order_id, status, ts, reason)))
            return
        order = self.open.get(client_order_id)
        if order is None:
            log.warning("status %s for an order not open here: %s", status.value, client_order_id)
            return
        if order.status is status:
            return
        try:
            order.transition(status, ts, reason)
        except InvalidTransition as exc:
            log.warning("ignored broker report: %s", exc)
            return
        self._changed(order)
        self._emit(f"order.{status.value}", order, ts)
        if status in TERMINAL_STATUSES:
            del self.open[client_order_id]
        if status in (OrderStatus.REJECTED, OrderStatus.EXPIRED, OrderStatus.UNKNOWN):
            log.warning("order %s %s %s", client_order_id, status.value, reason)

    def on_fill(self, fill: Fill) -> None:
        if self._deferred is not None:
            self._deferred.append((self.on_fill, (fill,)))
            return
        key = (fill.broker, fill.trade_id)
        if key in self._seen:
            self.duplicate_fills += 1
            return
        order = self.open.get(fill.client_order_id)
        if order is None:
            log.error("fill %s for an order not open here: %s", fill.trade_id,
                      fill.client_order_id)
            return
        self._seen.add(key)
        self._seen_order.append(key)
        if len(self._seen_order) > self._remember:
            self._seen.discard(self._seen_order.popleft())
        order.apply_fill(fill.quantity, fill.price, fill.ts_event)
        pos = self.ledger.apply_fill(fill)
        self.journal.insert_fill(fill_row(fill), position_row(self.portfolio_id, pos,
                                                              fill.ts_event))
        self._changed(order)
        self._emit(f"order.{order.status.value}", order, fill.ts_event, fill)
        if order.status in TERMINAL_STATUSES:
            del self.open[fill.client_order_id]
        self.bus.publish_nowait(PositionChanged(self.portfolio_id, pos.symbol, pos.quantity,
                                                pos.avg_price, pos.realized_pnl, fill.ts_event),
                                self.portfolio_id)
        log.info("fill %s: %s %s %s @ %s fee %s -> position %s %s", fill.trade_id,
                 fill.side.value, fill.quantity, fill.symbol, fill.price, fill.fee, pos.symbol,
                 pos.quantity)


    # -- order row updates --------------------------------------------------------------------
    def _changed(self, order: Order) -> None:
        """An order's row must be updated: now, or at the end of the runner's batch, so an
        order that changes three times while one batch of bars is worked is written once."""
        if self._batch is None:
            self.journal.update_order(order_update_row(order))
        else:
            self._batch[order.client_order_id] = order

    def begin_batch(self) -> None:
        self._batch = {}

    def end_batch(self) -> None:
        self._write_changed()
        self._batch = None

    def _write_changed(self) -> None:
        """Queue the row updates of the orders changed in the current batch so far."""
        if self._batch:
            update = self.journal.update_order
            for order in self._batch.values():
                update(order_update_row(order))
            self._batch.clear()

    def _emit(self, kind: str, order: Order, ts: int, fill: Fill | None = None) -> None:
        self._seq += 1
        event = OrderEvent.of(kind, order, self._seq, ts, fill)
        self.journal.insert_order_event({
            "portfolio_id": self.portfolio_id, "seq": self._seq, "type": kind,
            "client_order_id": order.client_order_id,
            "payload": msgspec.Raw(_encode(event)), "ts_event": ts})
        self.bus.publish_nowait(event, self.portfolio_id)
