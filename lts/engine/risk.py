"""Pre-trade risk checks (ARCHITECTURE.md §6), run inside the portfolio's decision path.

A check never raises: it returns a reason code, and the order manager turns a denial into an
order in state DENIED and an ``order.denied`` event. The trading state is the kill switch:
``HALTED`` denies everything, ``REDUCING`` only lets orders through that shrink a position.
"""

import enum
from collections import deque
from decimal import Decimal

from pydantic import BaseModel, ConfigDict, Field

from lts.domain.orders import OrderRequest
from lts.plugins.portfolio import PortfolioView

_SECOND_NS = 1_000_000_000
_DAY_NS = 86_400 * _SECOND_NS


class TradingState(enum.Enum):
    ACTIVE = "ACTIVE"
    REDUCING = "REDUCING"
    HALTED = "HALTED"


class Reason(enum.Enum):
    TRADING_HALTED = "TRADING_HALTED"
    REDUCING_ONLY = "REDUCING_ONLY"
    INVALID_QUANTITY = "INVALID_QUANTITY"
    NO_PRICE = "NO_PRICE"
    MAX_ORDER_NOTIONAL = "MAX_ORDER_NOTIONAL"
    MAX_POSITION = "MAX_POSITION"
    MAX_GROSS_EXPOSURE = "MAX_GROSS_EXPOSURE"
    MAX_OPEN_ORDERS = "MAX_OPEN_ORDERS"
    MAX_ORDER_RATE = "MAX_ORDER_RATE"
    MAX_DAILY_LOSS = "MAX_DAILY_LOSS"


class RiskLimits(BaseModel):
    """Per-portfolio limits; ``None`` switches a check off."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_order_notional: Decimal | None = Field(None, gt=0)
    max_position: Decimal | None = Field(None, gt=0, description="absolute quantity per asset")
    max_gross_exposure: Decimal | None = Field(None, gt=0)
    max_open_orders: int | None = Field(100, gt=0)
    max_orders_per_second: int | None = Field(50, gt=0)
    max_daily_loss: Decimal | None = Field(None, gt=0)


class RiskCheck:
    def __init__(self, limits: RiskLimits, state: TradingState = TradingState.ACTIVE) -> None:
        self.limits = limits
        self.state = state
        self._recent: deque[int] = deque()
        self._day = -1
        self._day_start_equity = Decimal(0)
        self.denials = 0

    def observe_equity(self, now: int, equity: Decimal) -> None:
        """Take the day's starting equity (the daily-loss baseline) at the first look of each
        UTC day; the live runner looks every second, a backtest at its first order check."""
        day = now // _DAY_NS
        if day != self._day:
            self._day, self._day_start_equity = day, equity

    def check(self, req: OrderRequest, view: PortfolioView, open_orders: int,
              now: int) -> Reason | None:
        reason = self._check(req, view, open_orders, now)
        if reason is not None:
            self.denials += 1
        return reason

    def _check(self, req: OrderRequest, view: PortfolioView, open_orders: int,
               now: int) -> Reason | None:
        lim = self.limits
        if self.state is TradingState.HALTED:
            return Reason.TRADING_HALTED
        if req.quantity <= 0:
            return Reason.INVALID_QUANTITY
        current = view.position(req.symbol) + view.pending(req.symbol)
        after = current + req.quantity * req.side.sign
        reduces = abs(after) < abs(current)
        if self.state is TradingState.REDUCING and not reduces:
            return Reason.REDUCING_ONLY
        if lim.max_open_orders is not None and open_orders >= lim.max_open_orders:
            return Reason.MAX_OPEN_ORDERS
        if lim.max_orders_per_second is not None:
            recent = self._recent
            while recent and recent[0] <= now - _SECOND_NS:
                recent.popleft()
            if len(recent) >= lim.max_orders_per_second:
                return Reason.MAX_ORDER_RATE
        if reduces:
            self._recent.append(now)
            return None  # reducing risk is never refused by exposure limits
        price = req.limit_price or view.last_price(req.symbol)
        if price is None:
            return Reason.NO_PRICE
        if lim.max_order_notional is not None and price * req.quantity > lim.max_order_notional:
            return Reason.MAX_ORDER_NOTIONAL
        if lim.max_position is not None and abs(after) > lim.max_position:
            return Reason.MAX_POSITION
        if lim.max_gross_exposure is not None:
            gross = view.gross_exposure() - abs(current) * price + abs(after) * price
            if gross > lim.max_gross_exposure:
                return Reason.MAX_GROSS_EXPOSURE
        if lim.max_daily_loss is not None:
            equity = view.equity()
            self.observe_equity(now, equity)
            if self._day_start_equity - equity > lim.max_daily_loss:
                return Reason.MAX_DAILY_LOSS
        self._recent.append(now)
        return None
