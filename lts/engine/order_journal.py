"""What changed in a portfolio's orders, written to the journal and published once committed.

Where it sits: under the order manager (which decides what changed) and over the journal writer
(:mod:`lts.persistence.journal`, group commit). Every change is an event (one type per change,
:mod:`lts.domain.events`) with the portfolio's next sequence number; the event, the order's row
and the fill with its position go to the journal, fenced by the portfolio's lease. An event (and
a position change) reaches the bus only once its transaction committed: what goes out is
durable, so a sequence number once seen is never reused, across crashes too. Row updates of an
order changed several times in one runner batch are written once.

:class:`OrderBook` is what the order manager writes to: this journal, or a backtest's
:class:`~lts.engine.backtest_book.BacktestBook`, which keeps its fills in memory.
"""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING, Any

import msgspec

from lts.bus import Bus
from lts.domain.events import ORDER_EVENT_TYPES, OrderEvent, OrderFilled, PositionChanged
from lts.domain.orders import Fill, Order, OrderStatus, OrderType, Side
from lts.domain.position import Position
from lts.engine.journal_rows import fill_row, order_row, order_update_row, position_row

if TYPE_CHECKING:
    from lts.persistence.journal import Journal

__all__ = ["OrderBook", "OrderJournal"]

#: An event's JSON, encoded once; the journal stores it as the ``payload`` JSON as it is.
_encode = msgspec.json.Encoder().encode
#: Enum values and event tags looked up in a dict (an enum's ``.value`` is a descriptor call).
_VALUE: dict[Any, str] = {m: m.value for e in (Side, OrderType, OrderStatus) for m in e}
_TAG: dict[type[OrderEvent], str] = {k: str(k.__struct_config__.tag) for k in ORDER_EVENT_TYPES}


class OrderBook:
    """Where the order manager records what changed in the portfolio's orders."""

    def __init__(self, portfolio_id: int, bus: Bus, *, next_event_seq: int) -> None:
        self.portfolio_id = portfolio_id
        self.bus = bus
        self.seq = next_event_seq  # the last sequence number given
        self.fills_committed = 0
        #: every event as it is made, for the runner's own listeners (its trading strategies
        #: and contingent orders), taken in the same task: None when nobody listens
        self.notices: list[OrderEvent] | None = None

    def insert(self, order: Order, broker: str) -> Any:
        """The order's row; the future resolves once it is committed (write-ahead), or None:
        nothing to wait for."""
        raise NotImplementedError

    def changed(self, order: Order) -> None:
        """The order's row must be updated: now, or at the end of the runner's batch."""
        raise NotImplementedError

    def begin_batch(self) -> None:
        raise NotImplementedError

    def end_batch(self) -> None:
        raise NotImplementedError

    def emit(self, kind: type[OrderEvent], order: Order, ts: int,
             fill: Fill | None = None) -> None:
        """Record the event of a change."""
        raise NotImplementedError

    def fill(self, fill: Fill, position: Position) -> None:
        """Record the fill and the position it made."""
        raise NotImplementedError

    def audit(self, row: dict[str, Any]) -> None:
        raise NotImplementedError


class OrderJournal(OrderBook):
    def __init__(self, portfolio_id: int, journal: Journal, bus: Bus, *, next_event_seq: int,
                 fence: int | None) -> None:
        super().__init__(portfolio_id, bus, next_event_seq=next_event_seq)
        self.journal = journal
        self.fence = fence
        self._batch: dict[str, Order] | None = None  # orders changed in the current batch

    def insert(self, order: Order, broker: str) -> Any:
        return self.journal.insert_order(order_row(order, broker), fence=self.fence)

    def changed(self, order: Order) -> None:
        if self._batch is None:
            self.journal.update_order(order_update_row(order), fence=self.fence)
        else:
            self._batch[order.client_order_id] = order

    def begin_batch(self) -> None:
        self._batch = {}

    def end_batch(self) -> None:
        if self._batch:
            update, fence = self.journal.update_order, self.fence
            for order in self._batch.values():
                update(order_update_row(order), fence=fence)
        self._batch = None

    def emit(self, kind: type[OrderEvent], order: Order, ts: int,
             fill: Fill | None = None) -> None:
        """Write the event of a change; it goes out once committed."""
        self.seq += 1
        seq = self.seq
        coid = order.client_order_id
        head = (order.portfolio_id, seq, coid, order.symbol, _VALUE[order.side],
                _VALUE[order.order_type], order.quantity, _VALUE[order.status],
                order.filled_quantity, order.avg_fill_price, order.limit_price,
                order.stop_price, order.reason, ts)
        event = kind(*head) if fill is None else OrderFilled(*head, fill)
        if self.notices is not None:
            self.notices.append(event)
        self.journal.insert_order_event({
            "portfolio_id": self.portfolio_id, "seq": seq, "type": _TAG[kind],
            "client_order_id": coid, "payload": msgspec.Raw(_encode(event)), "ts_event": ts},
            fence=self.fence, committed=partial(self._publish, event))

    def fill(self, fill: Fill, position: Position) -> None:
        """The fill and the position it made, in one transaction; the position change goes
        out once committed."""
        self.journal.insert_fill(
            fill_row(fill), position_row(self.portfolio_id, position, fill.ts_event),
            fence=self.fence, committed=partial(self._position_committed, PositionChanged(
                self.portfolio_id, position.symbol, position.quantity, position.avg_price,
                position.realized_pnl, fill.ts_event)))

    def audit(self, row: dict[str, Any]) -> None:
        self.journal.insert_audit(row)

    def _publish(self, event: OrderEvent) -> None:
        """Committed (the journal calls it only then): now it may go out (bus: WebSocket,
        metrics)."""
        self.bus.publish_nowait(event, self.portfolio_id, OrderEvent)

    def _position_committed(self, changed: PositionChanged) -> None:
        self.fills_committed += 1
        self.bus.publish_nowait(changed, self.portfolio_id)
