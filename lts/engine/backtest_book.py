"""The order book-keeping of a backtest: fills kept in memory, nothing else written.

Where it sits: in place of :class:`~lts.engine.order_journal.OrderJournal` under a backtest's
order manager, for a portfolio without a journal (a backtest without ``--db-url``: the
architecture lets replay use a faster journal mode, §5). A live order
is journaled three ways (its row, an event per change with its JSON payload, the fill with the
position it made), each a record with a future through the group-commit writer: measured, that
was three quarters of a backtest's time, and a backtest needs none of it. It keeps the fills
(the report's trades and statistics come from them) and makes an event only for a listener in
the runner (a trading strategy, contingent orders), never for the outside: nothing of a
backtest is published. ``replay --db-url`` keeps the full journal for those who want the rows.
"""

from typing import Any

from lts.bus import Bus
from lts.domain.events import OrderEvent, OrderFilled
from lts.domain.orders import Fill, Order
from lts.domain.position import Position
from lts.engine.order_journal import OrderBook

__all__ = ["BacktestBook"]


class BacktestBook(OrderBook):
    def __init__(self, portfolio_id: int, bus: Bus, *, next_event_seq: int) -> None:
        super().__init__(portfolio_id, bus, next_event_seq=next_event_seq)
        self.fills: list[Fill] = []

    def insert(self, order: Order, broker: str) -> Any:
        return None  # nothing waits on it: a backtest hands orders over at once

    def changed(self, order: Order) -> None:
        pass

    def begin_batch(self) -> None:
        pass

    def end_batch(self) -> None:
        pass

    def emit(self, kind: type[OrderEvent], order: Order, ts: int,
             fill: Fill | None = None) -> None:
        notices = self.notices
        if notices is None:
            return
        self.seq += 1
        head = (order.portfolio_id, self.seq, order.client_order_id, order.symbol,
                order.side.value, order.order_type.value, order.quantity, order.status.value,
                order.filled_quantity, order.avg_fill_price, order.limit_price,
                order.stop_price, order.reason, ts)
        notices.append(kind(*head) if fill is None else OrderFilled(*head, fill))

    def fill(self, fill: Fill, position: Position) -> None:
        self.fills.append(fill)
        self.fills_committed += 1

    def audit(self, row: dict[str, Any]) -> None:
        pass
