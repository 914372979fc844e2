"""Order events published on the bus after the order manager applies a change.

Past tense (``order.filled``). Each carries the portfolio's sequence number ``seq`` so that a
WebSocket client can resume after the last one it saw; the journal stores the same payload.
"""

from decimal import Decimal

import msgspec

from lts.domain.orders import Fill, Order


class OrderEvent(msgspec.Struct, frozen=True):
    type: str  # order.created | order.denied | order.submitted | order.accepted | order.filled ...
    portfolio_id: int
    seq: int
    client_order_id: str
    symbol: str
    side: str
    order_type: str
    quantity: Decimal
    status: str
    filled_quantity: Decimal
    avg_fill_price: Decimal | None
    limit_price: Decimal | None
    stop_price: Decimal | None
    reason: str
    ts_event: int
    fill: Fill | None = None

    @classmethod
    def of(cls, kind: str, order: Order, seq: int, ts: int,
           fill: Fill | None = None) -> "OrderEvent":
        return cls(type=kind, portfolio_id=order.portfolio_id, seq=seq,
                   client_order_id=order.client_order_id, symbol=order.symbol,
                   side=order.side.value, order_type=order.order_type.value,
                   quantity=order.quantity, status=order.status.value,
                   filled_quantity=order.filled_quantity, avg_fill_price=order.avg_fill_price,
                   limit_price=order.limit_price, stop_price=order.stop_price,
                   reason=order.reason, ts_event=ts, fill=fill)


class PositionChanged(msgspec.Struct, frozen=True):
    portfolio_id: int
    symbol: str
    quantity: Decimal
    avg_price: Decimal
    realized_pnl: Decimal
    ts_event: int
