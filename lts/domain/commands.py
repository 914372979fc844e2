"""Commands: what may change a portfolio, sent to its runner's inbox (verbs), and the answers.

Where it sits: the API (through the engine's facade), the strategy path and the engine's
supervisor send these; only the portfolio's runner task carries them out, one at a time, and
answers each with :class:`Accepted` or :class:`Denied` (a reason code from :class:`Reason`).
Nothing else changes a portfolio's orders, ledger, risk state or strategies.
"""

import enum
from decimal import Decimal
from typing import Any

import msgspec

from lts.domain.orders import Order, OrderRequest

__all__ = [
    "Accepted",
    "CancelOrder",
    "Command",
    "Denied",
    "ModifyOrder",
    "Reason",
    "Reply",
    "SetTradingState",
    "Stop",
    "SubmitOrder",
    "TradingState",
    "UpdateAsset",
    "UpdateRiskLimits",
]


class TradingState(enum.Enum):
    """The kill switch: ACTIVE trades, REDUCING only shrinks positions, HALTED denies all."""

    ACTIVE = "ACTIVE"
    REDUCING = "REDUCING"
    HALTED = "HALTED"


class Reason(enum.Enum):
    """Why a command (or an order request) was denied. Stable codes: the API shows them."""

    # risk (architecture §6)
    TRADING_HALTED = "TRADING_HALTED"
    REDUCING_ONLY = "REDUCING_ONLY"
    INVALID_QUANTITY = "INVALID_QUANTITY"
    INVALID_PRICE = "INVALID_PRICE"
    LOT_SIZE = "LOT_SIZE"
    TICK_SIZE = "TICK_SIZE"
    MIN_QUANTITY = "MIN_QUANTITY"
    MIN_NOTIONAL = "MIN_NOTIONAL"
    PRICE_BAND = "PRICE_BAND"
    NO_PRICE = "NO_PRICE"
    BUYING_POWER = "BUYING_POWER"
    SHORT_NOT_ALLOWED = "SHORT_NOT_ALLOWED"
    MAX_LEVERAGE = "MAX_LEVERAGE"
    MAX_ORDER_NOTIONAL = "MAX_ORDER_NOTIONAL"
    MAX_POSITION = "MAX_POSITION"
    MAX_GROSS_EXPOSURE = "MAX_GROSS_EXPOSURE"
    MAX_OPEN_ORDERS = "MAX_OPEN_ORDERS"
    MAX_ORDER_RATE = "MAX_ORDER_RATE"
    MAX_DAILY_LOSS = "MAX_DAILY_LOSS"
    # the order path
    UNKNOWN_SYMBOL = "UNKNOWN_SYMBOL"
    UNSUPPORTED = "UNSUPPORTED"  # the venue lacks the order type, time in force or modify
    JOURNAL_UNAVAILABLE = "JOURNAL_UNAVAILABLE"  # the order could not be made durable
    VENUE_STALE = "VENUE_STALE"  # the venue's stream dropped: resync first (reports missed?)
    FEED_STALE = "FEED_STALE"  # the asset's market data stopped: its strategy waits for it
    ORDER_NOT_OPEN = "ORDER_NOT_OPEN"
    STOPPING = "STOPPING"
    INVALID_PARAMS = "INVALID_PARAMS"


class SubmitOrder(msgspec.Struct, frozen=True):
    request: OrderRequest


class CancelOrder(msgspec.Struct, frozen=True):
    client_order_id: str


class ModifyOrder(msgspec.Struct, frozen=True):
    """New quantity and/or prices of a working order (``None``: unchanged)."""

    client_order_id: str
    quantity: Decimal | None = None
    limit_price: Decimal | None = None
    stop_price: Decimal | None = None


class SetTradingState(msgspec.Struct, frozen=True):
    state: TradingState


class UpdateRiskLimits(msgspec.Struct, frozen=True):
    """The portfolio's limits as a whole: the engine-wide defaults under its own overrides."""

    limits: dict[str, Any]


class UpdateAsset(msgspec.Struct, frozen=True):
    """New instrument rules and/or strategy params of one asset (``None``: unchanged)."""

    symbol: str
    tick_size: Decimal | None = None
    lot_size: Decimal | None = None
    min_quantity: Decimal | None = None
    min_notional: Decimal | None = None
    strategy_params: dict[str, Any] | None = None


class Stop(msgspec.Struct, frozen=True):
    """Stop trading gracefully: nothing new is sent, what is in flight is settled."""

    reason: str = "stop"


Command = (SubmitOrder | CancelOrder | ModifyOrder | SetTradingState | UpdateRiskLimits
           | UpdateAsset | Stop)


class Accepted(msgspec.Struct, frozen=True):
    """Done; ``order`` is a copy of the order as it stands after the command (if any)."""

    order: Order | None = None


class Denied(msgspec.Struct, frozen=True):
    reason: Reason
    detail: str = ""
    order: Order | None = None  # a denied order request: the DENIED order, journaled


Reply = Accepted | Denied
