"""Factories shared by the plugin tests. ``SettableClock`` is a clock the test moves by hand."""

from dataclasses import dataclass
from decimal import Decimal

from lts.domain.market import Bar
from lts.domain.orders import Order, OrderStatus, OrderType, Side, TimeInForce

#: 2024-01-02 00:00:00 UTC, a Tuesday, in ns.
T0 = 1_704_153_600_000_000_000
MINUTE = 60 * 1_000_000_000
HOUR = 60 * MINUTE
DAY = 24 * HOUR


def make_bar(open: float = 100.0, high: float | None = None, low: float | None = None,
             close: float | None = None, *, volume: float = 1_000.0, ts: int = T0 + MINUTE,
             symbol: str = "AAA") -> Bar:
    """A bar; high and low default to one above and one below the open and close."""
    close = open if close is None else close
    high = max(open, close) + 1.0 if high is None else high
    low = min(open, close) - 1.0 if low is None else low
    return Bar(symbol, ts, open, high, low, close, volume)


def make_order(quantity: str | int = 10, side: Side = Side.BUY, *,
               order_type: OrderType = OrderType.MARKET,
               time_in_force: TimeInForce = TimeInForce.GTC, limit: str | None = None,
               stop: str | None = None, coid: str = "1-1", symbol: str = "AAA",
               status: OrderStatus = OrderStatus.SUBMITTED, portfolio_id: int = 1) -> Order:
    return Order(client_order_id=coid, portfolio_id=portfolio_id, symbol=symbol, side=side,
                 quantity=Decimal(quantity), order_type=order_type, time_in_force=time_in_force,
                 limit_price=None if limit is None else Decimal(limit),
                 stop_price=None if stop is None else Decimal(stop), status=status)


@dataclass
class SettableClock:
    now: int = T0

    def now_ns(self) -> int:
        return self.now
