"""Factories shared by the engine tests."""

from decimal import Decimal

from lts.domain.orders import Fill, Order, OrderRequest, OrderType, Side
from lts.engine.ledger import Ledger

#: 2024-01-02 00:00:00 UTC in ns.
T0 = 1_704_153_600_000_000_000
SECOND = 1_000_000_000


def make_request(quantity: str | int = 10, side: Side = Side.BUY, *, symbol: str = "AAA",
                 order_type: OrderType = OrderType.MARKET, limit: str | None = None,
                 stop: str | None = None, tag: str = "") -> OrderRequest:
    return OrderRequest(symbol, side, Decimal(quantity), order_type,
                        limit_price=None if limit is None else Decimal(limit),
                        stop_price=None if stop is None else Decimal(stop), tag=tag)


def make_fill(quantity: str | int, price: str | int, *, side: Side = Side.BUY, fee: str = "0",
              symbol: str = "AAA", trade_id: str = "T1", coid: str = "1-1",
              portfolio_id: int = 1, broker: str = "paper", ts: int = T0) -> Fill:
    return Fill(portfolio_id, coid, broker, trade_id, symbol, side, Decimal(quantity),
                Decimal(price), Decimal(fee), ts)


def make_ledger(cash: str = "100000", symbols: tuple[str, ...] = ("AAA", "BBB"),
                open_orders: dict[str, Order] | None = None,
                prices: dict[str, float] | None = None) -> Ledger:
    ledger = Ledger(Decimal(cash), dict.fromkeys(symbols, Decimal(1)),
                    {} if open_orders is None else open_orders)
    for symbol, price in (prices or {}).items():
        ledger.mark(symbol, price)
    return ledger
