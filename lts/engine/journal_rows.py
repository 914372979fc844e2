"""The journal rows of orders, fills and positions, built from domain values.

Where it sits: between the order manager (which decides what changed) and the journal writer
(:mod:`lts.persistence.journal`), which writes these dicts as they are.
"""

from typing import Any

from lts.domain.orders import Fill, Order
from lts.domain.position import Position

__all__ = ["fill_row", "order_row", "order_update_row", "position_row"]


def order_row(order: Order, broker: str) -> dict[str, Any]:
    return {
        "client_order_id": order.client_order_id, "portfolio_id": order.portfolio_id,
        "symbol": order.symbol, "side": order.side.value, "order_type": order.order_type.value,
        "time_in_force": order.time_in_force.value, "quantity": order.quantity,
        "limit_price": order.limit_price, "stop_price": order.stop_price,
        "status": order.status.value, "filled_quantity": order.filled_quantity,
        "avg_fill_price": order.avg_fill_price, "broker": broker,
        "broker_order_id": order.broker_order_id, "reason": order.reason, "tag": order.tag,
        "ts_init": order.ts_init, "ts_last": order.ts_last,
        "anomaly": None if order.anomaly is None else order.anomaly.value,
    }


def order_update_row(order: Order) -> dict[str, Any]:
    """The order's whole mutable state (quantity and prices change with a modify)."""
    return {"client_order_id": order.client_order_id, "status": order.status.value,
            "quantity": order.quantity, "limit_price": order.limit_price,
            "stop_price": order.stop_price,
            "filled_quantity": order.filled_quantity, "avg_fill_price": order.avg_fill_price,
            "broker_order_id": order.broker_order_id, "reason": order.reason,
            "ts_last": order.ts_last,
            "anomaly": None if order.anomaly is None else order.anomaly.value}


def fill_row(fill: Fill) -> dict[str, Any]:
    return {"portfolio_id": fill.portfolio_id, "client_order_id": fill.client_order_id,
            "broker": fill.broker, "trade_id": fill.trade_id, "symbol": fill.symbol,
            "side": fill.side.value, "quantity": fill.quantity, "price": fill.price,
            "fee": fill.fee, "ts_event": fill.ts_event, "commission": fill.commission}


def position_row(portfolio_id: int, pos: Position, ts: int) -> dict[str, Any]:
    return {"portfolio_id": portfolio_id, "symbol": pos.symbol, "quantity": pos.quantity,
            "cost": pos.cost, "avg_price": pos.avg_price, "realized_pnl": pos.realized_pnl,
            "fees": pos.fees, "ts_last": ts}
