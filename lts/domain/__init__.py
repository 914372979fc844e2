"""The pure trading model: values, market data, signals, orders, fills and positions.

Nothing here imports asyncio, SQL, HTTP or any other part of LTS (a test enforces it).
"""

from lts.domain.market import Bar
from lts.domain.orders import (
    TERMINAL_STATUSES,
    TRANSITIONS,
    Fill,
    InvalidTransition,
    Order,
    OrderRequest,
    OrderStatus,
    OrderType,
    Side,
    TimeInForce,
    can_transition,
)
from lts.domain.position import Position
from lts.domain.signals import Signal, Target
from lts.domain.values import (
    ZERO,
    ClientOrderId,
    PortfolioId,
    Symbol,
    TradeId,
    to_decimal,
)

__all__ = [
    "TERMINAL_STATUSES",
    "TRANSITIONS",
    "ZERO",
    "Bar",
    "ClientOrderId",
    "Fill",
    "InvalidTransition",
    "Order",
    "OrderRequest",
    "OrderStatus",
    "OrderType",
    "PortfolioId",
    "Position",
    "Side",
    "Signal",
    "Symbol",
    "Target",
    "TimeInForce",
    "TradeId",
    "can_transition",
    "to_decimal",
]
