"""What the ``ccxt`` broker says to an exchange and how it reads the answers: per-exchange
client-order-id fields, LTS orders as ccxt arguments, ccxt's unified orders, trades and markets
as LTS's reports, fills and instrument rules.

Where it sits: between :mod:`lts.plugins.broker.ccxt_broker` (which calls ccxt) and the domain.
Pure functions over the dicts ccxt returns; no I/O. Money stays exact: a venue's own strings
(ccxt's ``info``) are read where ccxt turned them into floats, and a float left is converted
through its shortest repr (:func:`lts.domain.values.to_decimal`: ``1e-05`` -> ``0.00001``).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from lts.domain.instruments import Instrument
from lts.domain.orders import (
    Fill,
    Order,
    OrderStatus,
    OrderStatusReport,
    OrderType,
    Side,
    TimeInForce,
    portfolio_named,
)
from lts.domain.values import ZERO, to_decimal

__all__ = ["ClientIdFields", "ReplaceFailure", "fields_for", "fill_of", "instrument_of",
           "order_args", "portfolio_of", "replace_failure", "report_of", "to_dec"]

_NS_PER_MS = 1_000_000
#: LTS's client order ids: ``<portfolio id>-<number>``.
# ccxt's precision modes
DECIMAL_PLACES = 2
SIGNIFICANT_DIGITS = 3
TICK_SIZE = 4


@dataclass(frozen=True)
class ClientIdFields:
    """Where an exchange takes the client order id: placing, and naming an order to cancel or
    query (ccxt passes these params through to the request)."""

    new: str
    existing: str


#: Per ccxt exchange id; any other exchange gets ccxt's unified ``clientOrderId``.
CLIENT_ID_FIELDS: dict[str, ClientIdFields] = {
    "binance": ClientIdFields("newClientOrderId", "origClientOrderId"),
    "binanceus": ClientIdFields("newClientOrderId", "origClientOrderId"),
    "bybit": ClientIdFields("orderLinkId", "orderLinkId"),
    "okx": ClientIdFields("clOrdId", "clOrdId"),
    "kucoin": ClientIdFields("clientOid", "clientOid"),
    "bitget": ClientIdFields("clientOid", "clientOid"),
    "gate": ClientIdFields("text", "text"),
    "mexc": ClientIdFields("newClientOrderId", "origClientOrderId"),
}
_UNIFIED = ClientIdFields("clientOrderId", "clientOrderId")


def fields_for(exchange: str) -> ClientIdFields:
    return CLIENT_ID_FIELDS.get(exchange, _UNIFIED)


#: Raw (exact) fields of a trade in ccxt's ``info``, per exchange: price, quantity, fee, fee
#: currency, client order id. REST and WebSocket answers name them differently.
_TRADE_INFO: dict[str, tuple[tuple[str, str, str, str, str], ...]] = {
    "binance": (("price", "qty", "commission", "commissionAsset", ""),  # REST myTrades
                ("L", "l", "n", "N", "c")),  # WebSocket executionReport
    "bybit": (("execPrice", "execQty", "execFee", "feeCurrency", "orderLinkId"),),
    "okx": (("fillPx", "fillSz", "fee", "feeCcy", "clOrdId"),),
}


def to_dec(value: object) -> Decimal | None:
    """A venue's number as an exact Decimal (None for none, or what is not a number)."""
    if value is None or value == "":
        return None
    if isinstance(value, Decimal):
        return value
    try:
        if isinstance(value, float):
            return to_decimal(value)
        if isinstance(value, int | str):
            d = Decimal(value)
            return d if d.is_finite() else None
    except (InvalidOperation, ValueError):
        return None
    return None


def _plain(value: Decimal) -> str:
    return f"{value.normalize():f}"


def portfolio_of(client_order_id: str, default: int) -> int:
    """The portfolio an LTS client order id names; ``default`` for any other id."""
    named = portfolio_named(client_order_id)
    return default if named is None else named


# -- LTS -> ccxt --------------------------------------------------------------------------------
_TYPES = {OrderType.MARKET: "market", OrderType.LIMIT: "limit", OrderType.STOP: "market",
          OrderType.STOP_LIMIT: "limit"}
_TIF = {TimeInForce.GTC: "GTC", TimeInForce.IOC: "IOC", TimeInForce.FOK: "FOK",
        TimeInForce.DAY: "DAY"}


def order_args(exchange: str, order: Order, *, quantity: Decimal | None = None,
               limit_price: Decimal | None = None,
               stop_price: Decimal | None = None) -> tuple[str, str, str, str | None,
                                                          dict[str, Any]]:
    """``create_order``'s (or ``edit_order``'s) type, side, amount, price and params for
    ``order`` (changed by the given values): numbers as exact strings, the client order id in the
    exchange's field."""
    kind = order.order_type
    amount = quantity if quantity is not None else order.quantity
    limit = limit_price if limit_price is not None else order.limit_price
    stop = stop_price if stop_price is not None else order.stop_price
    params: dict[str, Any] = {fields_for(exchange).new: order.client_order_id}
    price: str | None = None
    if kind in (OrderType.LIMIT, OrderType.STOP_LIMIT):
        assert limit is not None, "a limit order has a limit price"
        price = _plain(limit)
        params["timeInForce"] = _TIF[order.time_in_force]
    if kind in (OrderType.STOP, OrderType.STOP_LIMIT):
        assert stop is not None, "a stop order has a stop price"
        params["triggerPrice"] = _plain(stop)
    return _TYPES[kind], order.side.value, _plain(amount), price, params


# -- ccxt -> LTS --------------------------------------------------------------------------------
_STATUS = {"closed": OrderStatus.FILLED, "canceled": OrderStatus.CANCELED,
           "cancelled": OrderStatus.CANCELED, "expired": OrderStatus.EXPIRED,
           "rejected": OrderStatus.REJECTED}


def status_of(order: Mapping[str, Any]) -> OrderStatus:
    status = order.get("status")
    if status == "open":
        filled = to_dec(order.get("filled")) or ZERO
        return OrderStatus.PARTIALLY_FILLED if filled > 0 else OrderStatus.ACCEPTED
    if status is None:
        return OrderStatus.UNKNOWN
    return _STATUS.get(str(status), OrderStatus.UNKNOWN)


def client_id_of(order: Mapping[str, Any]) -> str:
    """The client order id of a ccxt order (its venue id when it has none)."""
    return str(order.get("clientOrderId") or order.get("id") or "")


def report_of(order: Mapping[str, Any], fills: tuple[Fill, ...] = ()) -> OrderStatusReport:
    """A ccxt unified order as LTS's status report."""
    ts = order.get("lastUpdateTimestamp") or order.get("timestamp") or 0
    status = status_of(order)
    reason = ""
    if status is OrderStatus.REJECTED:
        info = order.get("info") or {}
        reason = str(info.get("r") or info.get("rejectReason") or "rejected by the venue")[:200]
    venue_id = order.get("id")
    return OrderStatusReport(client_id_of(order), status, fills, reason,
                             str(venue_id) if venue_id is not None else None,
                             int(ts) * _NS_PER_MS)


@dataclass(frozen=True)
class ReplaceFailure:
    """A cancel-replace the venue did not do whole (Binance's -2021, -2022): its words, and the
    order its cancel closed (a report), when the cancel was done and the new order was not."""

    reason: str
    canceled: OrderStatusReport | None


def replace_failure(error_text: str) -> ReplaceFailure | None:
    """Binance's answer to a failed ``order/cancelReplace`` from ccxt's error text (``binance
    {"code": -2022, "msg": ..., "data": {"cancelResult": ..., ...}}``); None for any other
    error (a filter failure, found before anything was done, has no ``data``)."""
    start = error_text.find("{")
    try:
        body = json.loads(error_text[start:]) if start >= 0 else None
    except ValueError:
        return None
    if not isinstance(body, dict):
        return None
    data = body.get("data")
    if not isinstance(data, dict) or "cancelResult" not in data:
        return None
    cancel_raw, new_raw = data.get("cancelResponse"), data.get("newOrderResponse")
    cancel: dict[str, Any] = cancel_raw if isinstance(cancel_raw, dict) else {}
    new: dict[str, Any] = new_raw if isinstance(new_raw, dict) else {}
    halves = []
    if data.get("cancelResult") != "SUCCESS":
        halves.append(f"cancel: {cancel.get('msg') or 'failed'}")
    if data.get("newOrderResult") == "FAILURE":
        halves.append(f"new order: {new.get('msg') or 'failed'}")
    elif data.get("newOrderResult") == "NOT_ATTEMPTED":
        halves.append("new order not attempted")
    reason = f"{body.get('msg') or 'cancel-replace failed'} ({'; '.join(halves)})"
    canceled = None
    if data.get("cancelResult") == "SUCCESS" and cancel.get("orderId") is not None:
        canceled = report_of({"id": str(cancel["orderId"]), "status": "canceled",
                              "clientOrderId": cancel.get("origClientOrderId"),
                              "timestamp": cancel.get("transactTime")})
    return ReplaceFailure(reason[:200], canceled)


def _trade_raw(exchange: str, trade: Mapping[str, Any]
               ) -> tuple[Decimal | None, Decimal | None, Decimal | None, str | None, str | None]:
    info = trade.get("info") or {}
    family = "binance" if exchange.startswith("binance") else exchange
    for price_key, qty_key, fee_key, ccy_key, coid_key in _TRADE_INFO.get(family, ()):
        price, qty = to_dec(info.get(price_key)), to_dec(info.get(qty_key))
        if price is not None and qty is not None and qty > 0:
            coid = None
            if coid_key:
                original = info.get("C") if family == "binance" else None  # a cancel's report
                coid = str(original or info.get(coid_key) or "") or None
            ccy = info.get(ccy_key)
            return price, qty, to_dec(info.get(fee_key)), str(ccy) if ccy else None, coid
    return None, None, None, None, None


def fill_of(exchange: str, broker: str, trade: Mapping[str, Any], *,
            client_id: Callable[[str | None, str | None], str | None], portfolio_id: int,
            quote_of: Callable[[str], str | None]) -> Fill | None:
    """A ccxt unified trade as LTS's fill, or None when it lacks what a fill needs.

    ``client_id(from the trade, venue order id)`` names the order (the broker knows the venue's
    order ids of its orders); ``quote_of(symbol)`` gives the symbol's quote currency. A fee in
    the quote currency is the fill's ``fee`` (cash); one charged in the base asset (Binance's
    commission on a buy) is its ``commission``: the position holds that much less, as the
    venue's balance does. One in a third currency (BNB) is not known in cash and left at zero.
    """
    price, qty, fee, fee_ccy, coid = _trade_raw(exchange, trade)
    price = price if price is not None else to_dec(trade.get("price"))
    qty = qty if qty is not None else to_dec(trade.get("amount"))
    fee_info = trade.get("fee") or {}
    if fee is None:
        fee = to_dec(fee_info.get("cost"))
        fee_ccy = fee_info.get("currency")
    symbol, side, trade_id = trade.get("symbol"), trade.get("side"), trade.get("id")
    venue_order = trade.get("order")
    coid = client_id(coid, str(venue_order) if venue_order is not None else None)
    if price is None or qty is None or qty <= 0 or not symbol or side not in ("buy", "sell") \
            or trade_id is None or coid is None:
        return None
    quote = quote_of(str(symbol))
    base = str(symbol).split("/")[0]
    cash_fee = commission = ZERO
    if fee is not None and fee_ccy:
        if fee_ccy == quote:
            cash_fee = fee
        elif fee_ccy == base:
            commission = fee
    ts = int(trade.get("timestamp") or 0) * _NS_PER_MS
    return Fill(portfolio_of(coid, portfolio_id), coid, broker, str(trade_id), str(symbol),
                Side(side), qty, price, cash_fee, ts, commission)


def _filters(market: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    info = market.get("info") or {}
    raw = info.get("filters") if isinstance(info, Mapping) else None
    return {str(f.get("filterType")): f for f in raw or () if isinstance(f, Mapping)}


def _step(value: object, mode: int) -> Decimal:
    """A precision value of ccxt as a step (tick or lot size); 0 when it cannot tell."""
    number = to_dec(value)
    if number is None:
        return ZERO
    if mode == TICK_SIZE:
        return number
    if mode == DECIMAL_PLACES:
        return Decimal(1).scaleb(-int(number))
    return ZERO  # significant digits: no fixed grid


def instrument_of(symbol: str, market: Mapping[str, Any], precision_mode: int) -> Instrument:
    """The venue's rules of ``symbol`` from ccxt's market: exact strings of Binance's filters
    where the market has them, ccxt's precision and limits otherwise."""
    filters = _filters(market)
    precision = market.get("precision") or {}
    limits = market.get("limits") or {}
    tick = to_dec(filters.get("PRICE_FILTER", {}).get("tickSize")) or \
        _step(precision.get("price"), precision_mode)
    lot_filter = filters.get("LOT_SIZE", {})
    lot = to_dec(lot_filter.get("stepSize")) or _step(precision.get("amount"), precision_mode)
    min_qty = to_dec(lot_filter.get("minQty")) or \
        to_dec((limits.get("amount") or {}).get("min")) or ZERO
    notional = filters.get("NOTIONAL") or filters.get("MIN_NOTIONAL") or {}
    min_notional = to_dec(notional.get("minNotional")) or \
        to_dec((limits.get("cost") or {}).get("min")) or ZERO
    return Instrument(symbol, _norm(tick), _norm(lot), _norm(min_qty), _norm(min_notional))


def _norm(value: Decimal) -> Decimal:
    """``value`` without trailing zeros, never in exponent form (``100``, not ``1E+2``)."""
    value = value.normalize()
    exponent = value.as_tuple().exponent
    return value.quantize(Decimal(1)) if isinstance(exponent, int) and exponent > 0 else value
