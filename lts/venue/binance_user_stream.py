"""The local exchange's WebSocket API (``/ws-api/v3``): Binance spot's user data stream, as
ccxt.pro (and Binance's own documentation) speak it.

Where it sits: part of the WebSocket front (:class:`~lts.venue.binance_ws.BinanceWs`, which gives
it the venue's connections), over the same :class:`~lts.venue.exchange.Exchange` and API keys as
the REST front (:mod:`lts.venue.binance_rest`). It hears the exchange's listeners (execution and
balance reports, synchronously, on the event loop), formats each report once and queues it to
every connection subscribed for the report's account.

Methods: ``userDataStream.subscribe.signature`` (HMAC-SHA256 of the sorted parameters with the
key's secret, ``timestamp`` within ``recvWindow``), ``userDataStream.unsubscribe``,
``session.subscriptions``, ``ping``, ``time``. Events come as ``{"subscriptionId", "event"}``:
``executionReport`` (sent twice when :meth:`Faults.take_duplicate
<lts.venue.faults.Faults.take_duplicate>` says so, asked only when the account has a
subscription) and ``outboundAccountPosition``. Limits: 1,000 subscriptions per connection; request
weight per minute and address (:data:`WEIGHT_LIMIT`), counted apart from the REST front's with
the same :class:`~lts.venue.binance_rest.MinuteWeights`.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from starlette.routing import BaseRoute, WebSocketRoute
from starlette.websockets import WebSocket

from lts.venue.binance_rest import (
    BAD_API_KEY,
    BAD_SIGNATURE,
    BAD_TIMESTAMP,
    RECV_WINDOW_MAX_MS,
    RECV_WINDOW_MS,
    TOO_MANY_REQUESTS,
    MinuteWeights,
    _s,
    too_much_weight,
)
from lts.venue.exchange import (
    MANDATORY_PARAM,
    ZERO,
    BalancesChanged,
    Exchange,
    ExecutionReport,
    ExecutionType,
    Order,
    OrderType,
    Report,
    Status,
    TimeInForce,
)
from lts.venue.faults import Faults
from lts.venue.ws_connections import Connection, Connections, Payload, to_json

WEIGHT_LIMIT = 6_000  # Binance's request weight per minute and address

# Binance's error codes on the WebSocket API (beyond the REST front's)
UNSUPPORTED = -1020
SUBSCRIPTION_ACTIVE = -2035
SUBSCRIPTION_INACTIVE = -2036
MAX_SUBSCRIPTION_IDS = -2042
MAX_SUBSCRIPTION_IDS_LIFETIME = 65_535

_WEIGHTS = {"userDataStream.subscribe.signature": 2, "userDataStream.unsubscribe": 2,
            "session.subscriptions": 2, "ping": 1, "time": 1}


class _ApiError(Exception):
    def __init__(self, status: int, code: int, msg: str) -> None:
        super().__init__(f"{code}: {msg}")
        self.status, self.code, self.msg = status, code, msg


class UserDataStream:
    """``/ws-api/v3`` over one exchange; ``keys``: API key -> (account, secret). It registers
    itself with the exchange's listeners; :attr:`routes` go on the venue's Starlette app."""

    def __init__(self, exchange: Exchange, keys: dict[str, tuple[str, str]], faults: Faults,
                 connections: Connections, clock: Callable[[], int]) -> None:
        self.exchange = exchange
        self.keys = keys
        self.faults = faults
        self.clock = clock
        self._connections = connections
        self._weights = MinuteWeights(clock)
        self._users: dict[str, dict[Connection, int]] = {}  # account -> subscriptionId
        self._execution_id = 0
        exchange.listeners.append(self._on_report)
        self.routes: list[BaseRoute] = [WebSocketRoute("/ws-api/v3", self._api)]

    def user_subscriptions(self, account: str) -> int:
        """How many connections have a user data subscription for ``account``."""
        return len(self._users.get(account, ()))

    # -- what the exchange tells it -------------------------------------------------------------
    def _on_report(self, report: Report) -> None:
        subscribers = self._users.get(report.account)
        if not subscribers:
            return
        now = self.clock()
        times = 1
        if isinstance(report, ExecutionReport):
            self._execution_id += 1
            event = execution_report(report, now, self._execution_id)
            times = 2 if self.faults.take_duplicate() else 1
        else:
            event = account_position(report, now)
        for conn, subscription in list(subscribers.items()):
            frame = to_json({"subscriptionId": subscription, "event": event})
            for _ in range(times):
                conn.push(frame)

    # -- requests -------------------------------------------------------------------------------
    async def _api(self, websocket: WebSocket) -> None:
        await self._connections.serve(websocket, combined=False, on_text=self._request,
                                      on_close=self._forget)

    def _forget(self, conn: Connection) -> None:
        for account in conn.subscriptions.values():
            self._users.get(account, {}).pop(conn, None)

    def _request(self, conn: Connection, text: str) -> None:
        request_id: Any = None
        weight = 1
        try:
            try:
                request = json.loads(text)
            except json.JSONDecodeError:
                raise _ApiError(400, MANDATORY_PARAM, "Malformed request: not valid JSON.") \
                    from None
            if not isinstance(request, dict) or not isinstance(request.get("method"), str):
                raise _ApiError(400, MANDATORY_PARAM, "Mandatory parameter 'method' was not "
                                "sent, was empty/null, or malformed.")
            request_id = request.get("id")
            method = request["method"].removeprefix("v3/")
            weight = _WEIGHTS.get(method, 1)
            params = request.get("params") or {}
            if not isinstance(params, dict):
                raise _ApiError(400, MANDATORY_PARAM, "Field 'params' was empty or malformed.")
            result = self._method(conn, method, params, weight)
        except _ApiError as err:
            conn.push(to_json({"id": request_id, "status": err.status,
                               "error": {"code": err.code, "msg": err.msg},
                               "rateLimits": self._rate_limits(conn)}))
            return
        conn.push(to_json({"id": request_id, "status": 200, "result": result,
                           "rateLimits": self._rate_limits(conn)}))

    def _method(self, conn: Connection, method: str, params: dict[str, Any], weight: int) -> Any:
        if self._weights.add(conn.address, weight) > WEIGHT_LIMIT:
            raise _ApiError(429, TOO_MANY_REQUESTS, too_much_weight(WEIGHT_LIMIT))
        if method == "ping":
            return {}
        if method == "time":
            return {"serverTime": self.clock()}
        if method == "session.subscriptions":
            return [{"subscriptionId": s} for s in conn.subscriptions]
        if method == "userDataStream.subscribe.signature":
            return {"subscriptionId": self._subscribe(conn, self._authorize(params))}
        if method == "userDataStream.unsubscribe":
            self._unsubscribe(conn, params.get("subscriptionId"))
            return {}
        raise _ApiError(400, UNSUPPORTED, "This operation is not supported.")

    def _rate_limits(self, conn: Connection) -> list[Payload]:
        return [{"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1,
                 "limit": WEIGHT_LIMIT, "count": self._weights.used(conn.address)}]

    def _authorize(self, params: dict[str, Any]) -> str:
        """The account a signed request is from (Binance's checks, in Binance's order)."""
        known = self.keys.get(str(params.get("apiKey", "")))
        if known is None:
            raise _ApiError(401, BAD_API_KEY, "Invalid API-key, IP, or permissions for action.")
        account, secret = known
        signature = params.get("signature")
        if not isinstance(signature, str) or not signature:
            raise _ApiError(400, MANDATORY_PARAM, "Mandatory parameter 'signature' was not "
                            "sent, was empty/null, or malformed.")
        payload = "&".join(f"{k}={_param_text(v)}" for k, v in sorted(params.items())
                           if k != "signature")
        expected = hmac.new(secret.encode(), payload.encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, signature.lower()):
            raise _ApiError(400, BAD_SIGNATURE, "Signature for this request is not valid.")
        self._check_time(params)
        return account

    def _check_time(self, params: dict[str, Any]) -> None:
        try:
            stamp = int(params["timestamp"])
            window = min(Decimal(str(params.get("recvWindow", RECV_WINDOW_MS))),
                         Decimal(RECV_WINDOW_MAX_MS))
        except (KeyError, ValueError, ArithmeticError):
            raise _ApiError(400, MANDATORY_PARAM, "Mandatory parameter 'timestamp' was not "
                            "sent, was empty/null, or malformed.") from None
        if stamp > 10**14:  # microseconds
            stamp //= 1000
        now = self.clock()
        if not (stamp < now + 1_000 and now - stamp <= window):
            raise _ApiError(400, BAD_TIMESTAMP,
                            "Timestamp for this request is outside of the recvWindow.")

    def _subscribe(self, conn: Connection, account: str) -> int:
        if account in conn.subscriptions.values():
            raise _ApiError(400, SUBSCRIPTION_ACTIVE, "User Data Stream subscription already "
                            "active.")
        if len(conn.subscriptions) >= self._connections.limits.max_subscriptions \
                or conn.next_subscription >= MAX_SUBSCRIPTION_IDS_LIFETIME:
            raise _ApiError(400, MAX_SUBSCRIPTION_IDS, "Maximum subscription ID reached for "
                            "this connection.")
        subscription = conn.next_subscription
        conn.next_subscription += 1
        conn.subscriptions[subscription] = account
        self._users.setdefault(account, {})[conn] = subscription
        return subscription

    def _unsubscribe(self, conn: Connection, subscription: Any) -> None:
        """Close one subscription (or all of the connection's): each gets its
        ``eventStreamTerminated``."""
        if subscription is not None and subscription not in conn.subscriptions:
            raise _ApiError(400, SUBSCRIPTION_INACTIVE, "User Data Stream subscription not "
                            "active.")
        ids = [subscription] if subscription is not None else list(conn.subscriptions)
        for sid in ids:
            account = conn.subscriptions.pop(sid)
            self._users.get(account, {}).pop(conn, None)
            conn.push(to_json({"subscriptionId": sid, "event": {
                "e": "eventStreamTerminated", "E": self.clock()}}))


def _param_text(value: Any) -> str:
    """A WebSocket API parameter as it appears in the signature payload."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


# -- the events -----------------------------------------------------------------------------------
def _working(order: Order) -> bool:
    """Whether the order rests on the book (Binance's ``w``)."""
    return order.is_open and order.triggered and order.type is not OrderType.MARKET \
        and order.time_in_force is TimeInForce.GTC


def _expiry_reason(order: Order) -> str:
    if order.time_in_force is TimeInForce.FOK:
        return "UNFILLED_FOK_ORDER_EXPIRED"
    if order.time_in_force is TimeInForce.IOC:
        return "UNFILLED_IOC_QUANTITY_EXPIRED"
    return "INSUFFICIENT_LIQUIDITY"


def execution_report(report: ExecutionReport, now: int, execution_id: int) -> Payload:
    """An ``executionReport`` event, in Binance's fields and formats. A cancel carries the
    original client order id in ``C`` and the cancel's own in ``c`` (``cancel-<orderId>``, as
    the REST front answers a cancel without ``newClientOrderId``)."""
    order, trade = report.order, report.trade
    canceled = report.execution_type is ExecutionType.CANCELED
    event: Payload = {
        "e": "executionReport", "E": now, "s": order.symbol,
        "c": f"cancel-{order.order_id}" if canceled else order.client_order_id,
        "S": order.side.value, "o": order.type.value, "f": order.time_in_force.value,
        "q": _s(order.orig_qty), "p": _s(order.price), "P": _s(order.stop_price),
        "F": _s(ZERO), "g": -1, "C": order.client_order_id if canceled else "",
        "x": report.execution_type.value, "X": order.status.value, "r": "NONE",
        "i": order.order_id, "l": _s(trade.qty if trade else ZERO), "z": _s(order.executed_qty),
        "L": _s(trade.price if trade else ZERO), "n": _s(trade.commission) if trade else "0",
        "N": trade.commission_asset if trade else None,
        "T": trade.time if trade else order.update_time, "t": trade.trade_id if trade else -1,
        "I": execution_id, "w": _working(order), "m": trade.maker if trade else False,
        "M": False, "O": order.time, "Z": _s(order.cumulative_quote_qty),
        "Y": _s(trade.quote_qty if trade else ZERO), "Q": _s(ZERO), "V": "NONE"}
    if event["w"]:
        event["W"] = order.time
    if order.status is Status.EXPIRED:
        event["eR"] = _expiry_reason(order)
    return event


def account_position(report: BalancesChanged, now: int) -> Payload:
    """An ``outboundAccountPosition`` event: the assets the change touched."""
    return {"e": "outboundAccountPosition", "E": now, "u": now,
            "B": [{"a": asset, "f": _s(b.free), "l": _s(b.locked)}
                  for asset, b in report.balances.items()]}
