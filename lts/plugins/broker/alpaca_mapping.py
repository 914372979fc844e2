"""What the ``alpaca`` broker says to Alpaca and how it reads the answers: LTS orders as
Alpaca's order bodies, Alpaca's orders, ``trade_updates`` events and fill activities as LTS's
reports and fills, assets as instrument rules.

Where it sits: between :mod:`lts.plugins.broker.alpaca` (the plugin, which makes the calls)
and the domain. Pure functions over Alpaca's JSON; no I/O. Bodies are built and read as JSON
with amounts as strings: the SDK's request models carry floats, and money is exact.

LTS's client order id is Alpaca's ``client_order_id``; a replacement (LTS's ``modify``) is a
new Alpaca order under ``<LTS id>~<n>``, reported under the LTS id. A fill's trade id is
Alpaca's execution id.
"""

from __future__ import annotations

import re
from datetime import datetime
from decimal import Decimal
from typing import Any

from lts.domain.instruments import Instrument
from lts.domain.orders import (
    Fill,
    Order,
    OrderStatus,
    OrderStatusReport,
    OrderType,
    Side,
    portfolio_named,
)
from lts.plugins.broker import ExecutionReport

__all__ = ["EVENT_STATUS", "NAME", "STATUS", "Json", "activity_fill", "decimal",
           "instrument_of", "lts_client_id", "next_replacement", "order_body", "plain",
           "portfolio_of", "report_of", "reports_of", "status_of", "ts_ns"]

Json = dict[str, Any]
NAME = "alpaca"
_REPLACED = "~"  # <LTS client order id>~<n>: the n-th replacement of that order

#: Alpaca's order status -> LTS's (the working ones become PARTIALLY_FILLED once filled in part)
STATUS: dict[str, OrderStatus] = {
    "new": OrderStatus.ACCEPTED, "accepted": OrderStatus.ACCEPTED,
    "pending_new": OrderStatus.ACCEPTED, "accepted_for_bidding": OrderStatus.ACCEPTED,
    "pending_replace": OrderStatus.ACCEPTED, "held": OrderStatus.ACCEPTED,
    "stopped": OrderStatus.ACCEPTED, "pending_review": OrderStatus.ACCEPTED,
    "suspended": OrderStatus.ACCEPTED, "done_for_day": OrderStatus.ACCEPTED,
    "calculated": OrderStatus.ACCEPTED,
    "partially_filled": OrderStatus.PARTIALLY_FILLED, "filled": OrderStatus.FILLED,
    "pending_cancel": OrderStatus.PENDING_CANCEL, "canceled": OrderStatus.CANCELED,
    "expired": OrderStatus.EXPIRED, "rejected": OrderStatus.REJECTED,
}
#: trade_updates events that move an order's status (fills are reported as fills; ``replaced``
#: and the pending ones are the venue's bookkeeping, the new order carries on)
EVENT_STATUS: dict[str, OrderStatus] = {
    "new": OrderStatus.ACCEPTED, "accepted": OrderStatus.ACCEPTED,
    "canceled": OrderStatus.CANCELED, "expired": OrderStatus.EXPIRED,
    "rejected": OrderStatus.REJECTED, "done_for_day": OrderStatus.ACCEPTED,
}
_ORDER_TYPE = {OrderType.MARKET: "market", OrderType.LIMIT: "limit", OrderType.STOP: "stop",
               OrderType.STOP_LIMIT: "stop_limit"}
_TIME = re.compile(r"(?P<head>[^.Z+]+)(?:\.(?P<frac>\d+))?(?P<zone>Z|[+-]\d\d:\d\d)?$")


# -- values -------------------------------------------------------------------------------------
def plain(number: Decimal) -> str:
    """A decimal as Alpaca takes it: a string, no exponent, no trailing zeros."""
    return f"{number.normalize():f}"


def decimal(value: Any) -> Decimal:
    """An amount from Alpaca (a string, as it sends them; never through a float)."""
    return Decimal(value if isinstance(value, str) else str(value))


def ts_ns(text: str) -> int:
    """An RFC 3339 time from Alpaca (up to nanoseconds) in ns since the epoch, exactly."""
    match = _TIME.match(text)
    if match is None:
        raise ValueError(f"not a time: {text!r}")
    zone = match["zone"] or "Z"
    head = datetime.fromisoformat(match["head"] + ("+00:00" if zone == "Z" else zone))
    frac = int((match["frac"] or "0")[:9].ljust(9, "0"))
    return int(head.timestamp()) * 1_000_000_000 + frac


# -- client order ids ---------------------------------------------------------------------------
def lts_client_id(alpaca_id: str) -> str:
    """The LTS client order id of an Alpaca order (a replacement's is its original's)."""
    head, sep, tail = alpaca_id.rpartition(_REPLACED)
    return head if sep and tail.isdigit() else alpaca_id


def next_replacement(coid: str, working: str) -> str:
    """The client order id of the next replacement of LTS order ``coid``."""
    _, sep, tail = working.rpartition(_REPLACED)
    number = int(tail) + 1 if sep and tail.isdigit() and lts_client_id(working) == coid else 1
    return f"{coid}{_REPLACED}{number}"


def portfolio_of(coid: str, default: int) -> int:
    """LTS's client order ids are ``<portfolio>-<n>``; else ``default`` (the last seen)."""
    named = portfolio_named(coid)
    return default if named is None else named


# -- LTS -> Alpaca ------------------------------------------------------------------------------
def order_body(order: Order) -> Json:
    """The body of Alpaca's ``POST /orders`` for ``order``."""
    body: Json = {"symbol": order.symbol, "qty": plain(order.quantity),
                  "side": order.side.value, "type": _ORDER_TYPE[order.order_type],
                  "time_in_force": order.time_in_force.value,
                  "client_order_id": order.client_order_id}
    if order.limit_price is not None:
        body["limit_price"] = plain(order.limit_price)
    if order.stop_price is not None:
        body["stop_price"] = plain(order.stop_price)
    return body


# -- Alpaca -> LTS ------------------------------------------------------------------------------
def _working(status: OrderStatus, order: Json) -> OrderStatus:
    """``status``, or PARTIALLY_FILLED for a working order Alpaca has filled in part."""
    if status is OrderStatus.ACCEPTED and decimal(order.get("filled_qty") or "0") > 0:
        return OrderStatus.PARTIALLY_FILLED
    return status


def status_of(order: Json) -> OrderStatus:
    return _working(STATUS.get(str(order.get("status")), OrderStatus.ACCEPTED), order)


def report_of(coid: str, order: Json, ts_event: int, *, status: OrderStatus | None = None,
              reason: str = "", fills: tuple[Fill, ...] = ()) -> OrderStatusReport:
    """Where Alpaca's ``order`` stands, as LTS order ``coid``'s (its own status unless told)."""
    return OrderStatusReport(coid, status_of(order) if status is None else status, fills,
                             reason=reason, broker_order_id=str(order["id"]), ts_event=ts_event)


def fill_of(coid: str, order: Json, trade_id: str, qty: Decimal, price: Decimal, ts: int,
            default_portfolio: int) -> Fill:
    """A fill of LTS order ``coid``; ``order`` (an order or a fill activity) names its symbol
    and side."""
    side = Side(str(order["side"]).removesuffix("_short"))
    return Fill(portfolio_of(coid, default_portfolio), coid, NAME, trade_id,
                str(order["symbol"]), side, qty, price, Decimal(0), ts)


def activity_fill(coid: str, activity: Json, ts: int, default_portfolio: int) -> Fill:
    """A fill activity (``/account/activities/FILL``) of LTS order ``coid``."""
    return fill_of(coid, activity, str(activity["id"]).rpartition("::")[2],
                   decimal(activity["qty"]), decimal(activity["price"]), ts, default_portfolio)


def reports_of(update: Json, default_portfolio: int) -> list[ExecutionReport]:
    """A ``trade_updates`` event as LTS's reports (none for Alpaca's bookkeeping)."""
    event = str(update.get("event"))
    order: Json = update["order"]
    coid = lts_client_id(str(order["client_order_id"]))
    ts = ts_ns(str(update.get("timestamp") or order["updated_at"]))
    if event in ("fill", "partial_fill"):
        if update.get("qty") is None or update.get("price") is None:
            return [report_of(coid, order, ts)]
        return [fill_of(coid, order, str(update.get("execution_id")), decimal(update["qty"]),
                        decimal(update["price"]), ts, default_portfolio)]
    if event == "order_cancel_rejected":  # the order works on
        return [report_of(coid, order, ts, reason="cancel rejected")]
    status = EVENT_STATUS.get(event)
    if status is None:
        return []
    status = _working(status, order)
    return [report_of(coid, order, ts, status=status, reason="" if status is OrderStatus.ACCEPTED
                      else f"alpaca: {event}")]


def instrument_of(symbol: str, asset: Json) -> Instrument:
    """An asset's trading rules (``/assets/<symbol>``): whole shares unless fractionable."""
    tick = decimal(asset.get("price_increment") or "0.01")
    lot = decimal(asset.get("min_trade_increment") or "1") \
        if asset.get("fractionable") else Decimal(1)
    least = decimal(asset.get("min_order_size") or lot) if asset.get("fractionable") \
        else lot
    return Instrument(symbol, tick, lot, least, Decimal(0))
