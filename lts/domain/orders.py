"""Orders, their state machine (a transition table), order requests and fills.

Flow: portfolio plugin --OrderRequest--> risk --Order(PENDING_SUBMIT)--> journal --> broker;
the broker reports status changes and :class:`Fill` values that the order manager applies here.
A timeout is never a rejection: a sent order with no answer is ``UNKNOWN`` until reconciled.

A fill is never refused: the venue traded, so the position must follow. A fill the order's state
does not allow (after the order was closed, beyond its quantity) is applied all the same and
returns a :class:`FillAnomaly`, which marks the order for reconciliation; no fill moves an order
out of a terminal state.
"""

import enum
from decimal import Decimal

import msgspec

from lts.domain.values import ZERO


class Side(enum.Enum):
    BUY = "buy"
    SELL = "sell"

    # Members are singletons and compare by identity: hash them by identity too (C speed;
    # Enum's own __hash__ is Python code, and these key dicts and sets on the order path).
    __hash__ = object.__hash__

    @property
    def sign(self) -> int:
        return 1 if self is Side.BUY else -1


class OrderType(enum.Enum):
    MARKET = "market"
    LIMIT = "limit"
    STOP = "stop"
    STOP_LIMIT = "stop_limit"

    __hash__ = object.__hash__


class TimeInForce(enum.Enum):
    GTC = "gtc"
    IOC = "ioc"
    FOK = "fok"
    DAY = "day"

    __hash__ = object.__hash__


class OrderStatus(enum.Enum):
    PENDING_SUBMIT = "pending_submit"
    SUBMITTED = "submitted"
    ACCEPTED = "accepted"
    PARTIALLY_FILLED = "partially_filled"
    FILLED = "filled"
    PENDING_CANCEL = "pending_cancel"
    CANCELED = "canceled"
    REJECTED = "rejected"
    DENIED = "denied"
    EXPIRED = "expired"
    UNKNOWN = "unknown"

    __hash__ = object.__hash__


class FillAnomaly(enum.Enum):
    """A fill the order's state did not allow; applied all the same, the order is marked."""

    AFTER_CLOSE = "fill_after_close"  # the order was canceled, expired, rejected or filled
    OVERFILL = "overfill"  # more than the ordered quantity
    EXTERNAL = "external"  # an order LTS never sent (adopted)


S = OrderStatus
_LIVE_EXITS = frozenset({S.PARTIALLY_FILLED, S.FILLED, S.PENDING_CANCEL, S.CANCELED, S.EXPIRED,
                         S.UNKNOWN})

#: Every allowed move of an order's status. A status absent from a row's set is illegal.
#: An order is PENDING_SUBMIT until its row is durable and it is handed to the venue
#: (SUBMITTED); a venue's answer may overtake that bookkeeping (a fill streamed before the
#: acknowledgement), so fills lead out of every open state.
TRANSITIONS: dict[OrderStatus, frozenset[OrderStatus]] = {
    S.PENDING_SUBMIT: frozenset({S.SUBMITTED, S.DENIED, S.REJECTED, S.UNKNOWN, S.CANCELED,
                                 S.ACCEPTED, S.PARTIALLY_FILLED, S.FILLED}),
    S.SUBMITTED: _LIVE_EXITS | {S.ACCEPTED, S.REJECTED},
    S.ACCEPTED: _LIVE_EXITS,
    S.PARTIALLY_FILLED: _LIVE_EXITS,
    S.PENDING_CANCEL: _LIVE_EXITS | {S.ACCEPTED, S.REJECTED},
    S.UNKNOWN: frozenset({S.SUBMITTED, S.ACCEPTED, S.PARTIALLY_FILLED, S.FILLED, S.CANCELED,
                          S.REJECTED, S.EXPIRED, S.PENDING_CANCEL}),
    S.FILLED: frozenset(),
    S.CANCELED: frozenset(),
    S.REJECTED: frozenset(),
    S.DENIED: frozenset(),
    S.EXPIRED: frozenset(),
}

TERMINAL_STATUSES = frozenset(s for s, nxt in TRANSITIONS.items() if not nxt)
OPEN_STATUSES = frozenset(OrderStatus) - TERMINAL_STATUSES


def can_transition(current: OrderStatus, new: OrderStatus) -> bool:
    return new in TRANSITIONS[current]


class InvalidTransition(ValueError):
    """An order was asked to move along an edge the transition table does not have."""


class OrderRequest(msgspec.Struct, frozen=True):
    """What a portfolio plugin (or a person, through the API) asks for; risk decides."""

    symbol: str
    side: Side
    quantity: Decimal
    order_type: OrderType = OrderType.MARKET
    time_in_force: TimeInForce = TimeInForce.GTC
    limit_price: Decimal | None = None
    stop_price: Decimal | None = None
    tag: str = ""


def portfolio_named(client_order_id: str) -> int | None:
    """The portfolio an LTS client order id names: ``<portfolio>-<n>``, or an adopted order's
    ``ext-<portfolio>-<venue's id>``; None for any other id (one LTS never made)."""
    adopted = client_order_id.startswith("ext-")
    head, _, rest = client_order_id.removeprefix("ext-").partition("-")
    if head.isdigit() and rest and (adopted or rest.isdigit()):
        return int(head)
    return None


class Fill(msgspec.Struct, frozen=True):
    """One execution reported by a broker; unique by ``(broker, trade_id)``.

    ``quantity`` is what traded (the order's filled quantity grows by it). ``fee`` is paid in
    the quote currency (cash); ``commission`` is a fee the venue took in the traded asset itself
    (Binance takes it from what a buy receives): the position holds ``quantity - commission``
    after a buy, and the commission is valued at the fill's price among the fees, so cash and
    position both end where the venue's balances do.
    """

    portfolio_id: int
    client_order_id: str
    broker: str
    trade_id: str
    symbol: str
    side: Side
    quantity: Decimal
    price: Decimal
    fee: Decimal
    ts_event: int
    commission: Decimal = ZERO

    @property
    def position_quantity(self) -> Decimal:
        """What the position moves by (a commission in the asset itself is not held)."""
        if self.side is Side.BUY:
            return self.quantity - self.commission
        return self.quantity + self.commission

    @property
    def total_fee(self) -> Decimal:
        """Every fee of the fill in the quote currency (the commission at the fill's price)."""
        return self.fee + self.commission * self.price if self.commission else self.fee


class Order(msgspec.Struct, kw_only=True):
    """An order of one portfolio. Mutable: only :meth:`transition` and :meth:`apply_fill` change
    its status, and both follow :data:`TRANSITIONS`."""

    client_order_id: str
    portfolio_id: int
    symbol: str
    side: Side
    quantity: Decimal
    order_type: OrderType = OrderType.MARKET
    time_in_force: TimeInForce = TimeInForce.GTC
    limit_price: Decimal | None = None
    stop_price: Decimal | None = None
    status: OrderStatus = OrderStatus.PENDING_SUBMIT
    filled_quantity: Decimal = ZERO
    avg_fill_price: Decimal | None = None
    broker_order_id: str | None = None
    reason: str = ""
    tag: str = ""
    ts_init: int = 0
    ts_last: int = 0
    anomaly: FillAnomaly | None = None

    @classmethod
    def from_request(cls, req: OrderRequest, *, client_order_id: str, portfolio_id: int,
                     ts_init: int) -> "Order":
        return cls(client_order_id=client_order_id, portfolio_id=portfolio_id,
                   symbol=req.symbol, side=req.side, quantity=req.quantity,
                   order_type=req.order_type, time_in_force=req.time_in_force,
                   limit_price=req.limit_price, stop_price=req.stop_price, tag=req.tag,
                   ts_init=ts_init, ts_last=ts_init)

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES

    @property
    def leaves_quantity(self) -> Decimal:
        return self.quantity - self.filled_quantity

    def transition(self, new: OrderStatus, ts: int, reason: str = "") -> None:
        if new not in TRANSITIONS[self.status]:
            raise InvalidTransition(f"{self.client_order_id}: {self.status.value} -> {new.value}")
        self.status = new
        self.ts_last = ts
        if reason:
            self.reason = reason

    def apply_fill(self, quantity: Decimal, price: Decimal, ts: int) -> FillAnomaly | None:
        """Add an execution: average price, filled quantity, and PARTIALLY_FILLED or FILLED.

        Never refused: a fill on a closed order adds to the filled quantity without moving the
        status (``AFTER_CLOSE``); one beyond the ordered quantity fills the order (``OVERFILL``).
        Either marks the order (:attr:`anomaly`) and is returned.
        """
        if quantity <= 0:
            raise ValueError("fill quantity must be positive")
        new_filled = self.filled_quantity + quantity
        anomaly: FillAnomaly | None = None
        if self.status in TERMINAL_STATUSES:
            anomaly = FillAnomaly.AFTER_CLOSE
            self.ts_last = max(self.ts_last, ts)
        else:
            if new_filled > self.quantity:
                anomaly = FillAnomaly.OVERFILL
            self.transition(S.FILLED if new_filled >= self.quantity else S.PARTIALLY_FILLED, ts)
        prior = (self.avg_fill_price or ZERO) * self.filled_quantity
        self.avg_fill_price = (prior + price * quantity) / new_filled
        self.filled_quantity = new_filled
        if anomaly is not None and self.anomaly is None:
            self.anomaly = anomaly
        return anomaly


class OrderStatusReport(msgspec.Struct, frozen=True):
    """Where an order stands at the venue: streamed by a broker as it changes, or its answer to
    a query (reconciliation), then with the fills the venue has of it."""

    client_order_id: str
    status: OrderStatus
    fills: tuple[Fill, ...] = ()
    reason: str = ""
    broker_order_id: str | None = None
    ts_event: int = 0
