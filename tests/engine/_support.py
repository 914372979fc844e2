"""Factories shared by the engine tests."""

from decimal import Decimal

from lts.domain.instruments import Instrument
from lts.domain.orders import Fill, Order, OrderRequest, OrderStatus, OrderType, Side
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


def make_instrument(symbol: str = "AAA", *, tick: str = "0.01", lot: str = "1",
                    min_quantity: str = "0", min_notional: str = "0") -> Instrument:
    return Instrument(symbol, Decimal(tick), Decimal(lot), Decimal(min_quantity),
                      Decimal(min_notional))


def make_order(quantity: str | int, side: Side = Side.BUY, *, symbol: str = "AAA",
               order_type: OrderType = OrderType.MARKET, limit: str | None = None,
               stop: str | None = None, coid: str = "1-1", filled: str | int = 0,
               status: OrderStatus = OrderStatus.ACCEPTED) -> Order:
    """An open order as the order manager holds it; ``filled`` applies a partial fill first."""
    order = Order(client_order_id=coid, portfolio_id=1, symbol=symbol, side=side,
                  quantity=Decimal(quantity), order_type=order_type,
                  limit_price=None if limit is None else Decimal(limit),
                  stop_price=None if stop is None else Decimal(stop), status=status)
    if Decimal(filled):
        order.apply_fill(Decimal(filled), Decimal(limit or 1), T0)
    return order


def make_ledger(cash: str = "100000", symbols: tuple[str, ...] = ("AAA", "BBB"),
                open_orders: dict[str, Order] | None = None,
                prices: dict[str, float] | None = None,
                instruments: dict[str, Instrument] | None = None) -> Ledger:
    """A ledger over ``instruments`` (default: ``symbols`` with tick 0.01 and lot 1)."""
    if instruments is None:
        instruments = {s: make_instrument(s) for s in symbols}
    ledger = Ledger(Decimal(cash), instruments, {} if open_orders is None else open_orders)
    for symbol, price in (prices or {}).items():
        ledger.mark(symbol, price)
    return ledger


def by_coid(*orders: Order) -> dict[str, Order]:
    """The runner's open-order map of ``orders``."""
    return {order.client_order_id: order for order in orders}
