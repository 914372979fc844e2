"""Which committed engine events become notifications, and the JSON they are sent as.

Where it sits: the notifier (:mod:`lts.notify.service`) takes committed events off the bus and
asks :func:`notification_of` for each; most (submitted, accepted, canceled...) are not worth
telling anyone and answer None. A :class:`Notification` is built once per event, its JSON body
encoded once, however many webhooks and chats receive it.

The body::

    {"id": "7-42", "type": "order.filled", "occurred_at": "2026-12-05T21:00:00.123456Z",
     "ts_event": 1796504400123456000, "portfolio": {"id": 7, "name": "demo"},
     "data": {...the event's fields; money as decimal strings...}}

``id`` is the same on every retry (a receiver drops what it already has): an order event's is
``<portfolio id>-<sequence number>`` (never reused), a status change's
``<portfolio id>-<type>-<ts_event>``.
"""

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import msgspec

from lts.domain.events import (
    OrderDenied,
    OrderEvent,
    OrderFilled,
    OrderRejected,
    PortfolioStatusChanged,
    TradingStateChanged,
)
from lts.notify.config import EVENT_TYPES

__all__ = ["EVENT_TYPES", "Notification", "notification_of", "text_of"]

_ORDER_TYPES: dict[type, str] = {OrderFilled: "order.filled", OrderRejected: "order.rejected",
                                 OrderDenied: "order.denied"}
_encode = msgspec.json.Encoder(decimal_format="string").encode


@dataclass(frozen=True)
class Notification:
    id: str
    type: str
    portfolio_id: int
    portfolio_name: str
    ts_event: int
    data: dict[str, Any]
    body: bytes = field(repr=False, default=b"")

    @classmethod
    def make(cls, id_: str, type_: str, portfolio_id: int, name: str, ts_event: int,
             data: dict[str, Any]) -> "Notification":
        occurred = datetime.fromtimestamp(ts_event / 1e9, UTC).isoformat().replace("+00:00", "Z")
        body = _encode({"id": id_, "type": type_, "occurred_at": occurred, "ts_event": ts_event,
                        "portfolio": {"id": portfolio_id, "name": name}, "data": data})
        return cls(id_, type_, portfolio_id, name, ts_event, data, body)


def notification_of(event: object, portfolio_name: str) -> Notification | None:
    """The notification an engine event makes, or None when it makes none."""
    if isinstance(event, OrderEvent):
        kind = _ORDER_TYPES.get(type(event))
        if kind is None:
            return None
        data = msgspec.to_builtins(event)
        return Notification.make(f"{event.portfolio_id}-{event.seq}", kind, event.portfolio_id,
                                 portfolio_name, event.ts_event, data)
    if isinstance(event, PortfolioStatusChanged):
        kind = f"portfolio.{event.status}"
        if kind not in EVENT_TYPES:
            return None
        return Notification.make(
            f"{event.portfolio_id}-{kind}-{event.ts_event}", kind, event.portfolio_id,
            portfolio_name, event.ts_event,
            {"status": event.status, "reason": event.reason, "restarts": event.restarts})
    if isinstance(event, TradingStateChanged):
        if event.state == event.previous:
            return None  # set again to what it was: nothing changed
        kind = "trading_state.changed"
        return Notification.make(
            f"{event.portfolio_id}-{kind}-{event.ts_event}", kind, event.portfolio_id,
            portfolio_name, event.ts_event, {"state": event.state, "previous": event.previous})
    return None


def text_of(n: Notification) -> str:
    """One line for a person (a chat message): plain text, never markup."""
    d, where = n.data, f"[{n.portfolio_name}]"
    if n.type.startswith("order."):
        fill = d.get("fill") or {}
        what = f"{d['side']} {d['quantity']} {d['symbol']} {d['order_type']}"
        if n.type == "order.filled":
            price = fill.get("price", d.get("avg_fill_price"))
            qty = fill.get("quantity", d.get("filled_quantity"))
            return f"{where} filled {qty} @ {price}: {what} ({d['status']})"
        verb = "rejected" if n.type == "order.rejected" else "denied"
        return f"{where} order {verb}: {what}: {d.get('reason') or 'no reason given'}"
    if n.type == "portfolio.error":
        return f"{where} ERROR: {d['reason']} (restarts so far: {d['restarts']})"
    if n.type == "portfolio.restarted":
        return f"{where} running again after: {d['reason']}"
    if n.type == "daily.summary":
        money = f"equity {d['equity']} (P&L {d['pnl']})" if d["equity"] is not None \
            else "not running"
        return (f"{where} day to {d['period_end']}: {money}, {d['fills']} fill(s), "
                f"{d['open_orders']} open order(s), {d['status']}, {d['trading_state']}")
    if n.type == "trading_state.changed":
        return f"{where} trading state {d['previous']} -> {d['state']}"
    return f"{where} {n.type}"
