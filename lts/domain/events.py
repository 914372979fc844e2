"""Order events: what happened to an order, past tense, one type per change.

Where it sits: the portfolio's runner makes one for every change it applies (a command carried
out, a venue's report taken in) and gives it to the journal; only once the journal has committed
it does it go out (bus, WebSocket, metrics, notifications). Each carries the portfolio's sequence
number ``seq``, never reused (a client resumes after the last one it saw), and the order's state
after the change. In JSON the ``type`` field names the change (``"order.filled"``); the journal
stores the same JSON.
"""

from decimal import Decimal

import msgspec

from lts.domain.orders import Fill, Order

__all__ = [
    "NOTIFICATION_TYPES",
    "ORDER_EVENT_TYPES",
    "OrderAccepted",
    "OrderAdopted",
    "OrderCanceled",
    "OrderDenied",
    "OrderEvent",
    "OrderExpired",
    "OrderFilled",
    "OrderModifyRejected",
    "OrderPendingCancel",
    "OrderRejected",
    "OrderSubmitted",
    "OrderUnknown",
    "OrderUpdated",
    "PortfolioStatusChanged",
    "PositionChanged",
    "TradingStateChanged",
]


class OrderEvent(msgspec.Struct, frozen=True, tag_field="type"):
    """The fields every order event carries: the order's state after the change."""

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

    @classmethod
    def of(cls, order: Order, seq: int, ts: int) -> "OrderEvent":
        return cls(order.portfolio_id, seq, order.client_order_id, order.symbol,
                   order.side.value, order.order_type.value, order.quantity,
                   order.status.value, order.filled_quantity, order.avg_fill_price,
                   order.limit_price, order.stop_price, order.reason, ts)


class OrderDenied(OrderEvent, frozen=True, tag="order.denied"):
    """Risk (or the order path) refused the request; nothing was sent."""


class OrderSubmitted(OrderEvent, frozen=True, tag="order.submitted"):
    """The order's row is durable and the order was handed to the venue."""


class OrderAccepted(OrderEvent, frozen=True, tag="order.accepted"):
    """The venue acknowledged the order."""


class OrderRejected(OrderEvent, frozen=True, tag="order.rejected"):
    """The venue refused the order (``reason`` says why)."""


class OrderPendingCancel(OrderEvent, frozen=True, tag="order.pending_cancel"):
    """A cancel was asked for; the venue has not confirmed it yet."""


class OrderCanceled(OrderEvent, frozen=True, tag="order.canceled"):
    pass


class OrderExpired(OrderEvent, frozen=True, tag="order.expired"):
    pass


class OrderUnknown(OrderEvent, frozen=True, tag="order.unknown"):
    """Sent, but no answer came in time: reconciliation settles it (never resubmitted)."""


class OrderUpdated(OrderEvent, frozen=True, tag="order.updated"):
    """The venue accepted a change of quantity or prices; an order's status may also be
    corrected by reconciliation through this event."""


class OrderModifyRejected(OrderEvent, frozen=True, tag="order.modify_rejected"):
    """The venue refused a change; the order works on unchanged."""


class OrderFilled(OrderEvent, frozen=True, tag="order.filled"):
    """An execution (``status`` says partially filled or filled; ``fill`` is the trade)."""

    fill: Fill | None = None


class OrderAdopted(OrderEvent, frozen=True, tag="order.adopted"):
    """An order LTS never sent, found at the venue through its fills: taken in as external."""


#: Every concrete order event type (the bus routes by exact type).
ORDER_EVENT_TYPES: tuple[type[OrderEvent], ...] = (
    OrderDenied, OrderSubmitted, OrderAccepted, OrderRejected, OrderPendingCancel,
    OrderCanceled, OrderExpired, OrderUnknown, OrderUpdated, OrderModifyRejected, OrderFilled,
    OrderAdopted)


class PositionChanged(msgspec.Struct, frozen=True):
    portfolio_id: int
    symbol: str
    quantity: Decimal
    avg_price: Decimal
    realized_pnl: Decimal
    ts_event: int


class PortfolioStatusChanged(msgspec.Struct, frozen=True):
    """A portfolio's supervisor saw it fail or come back: ``status`` is ``"error"`` (``reason``:
    the sanitized error; ``restarts``: restarts so far) or ``"restarted"`` (running again after
    an error; ``reason``: the error it recovered from). Published once the journal committed
    the audit row that records it."""

    portfolio_id: int
    status: str
    reason: str
    restarts: int
    ts_event: int


class TradingStateChanged(msgspec.Struct, frozen=True):
    """The portfolio's kill switch moved (``ACTIVE``, ``REDUCING``, ``HALTED``): published once
    the journal committed the new state."""

    portfolio_id: int
    state: str
    previous: str
    ts_event: int


#: What an operator can be told of (a webhook's or a chat's event types, ``lts.notify``): the
#: order events above that matter to a person, these portfolio changes, and a daily summary.
NOTIFICATION_TYPES = ("order.filled", "order.rejected", "order.denied", "portfolio.error",
                      "portfolio.restarted", "trading_state.changed", "daily.summary")
