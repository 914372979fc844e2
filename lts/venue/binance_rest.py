"""The local exchange's REST front: Binance spot's ``/api/v3`` as its clients send it.

Where it sits: between a client (ccxt's Binance class with its URLs pointed here, LTS's ``ccxt``
broker, a user's script) and :class:`~lts.venue.exchange.Exchange`. A Starlette app (no request
models: Binance's parameters are form fields and query strings, its errors ``{"code", "msg"}``
with its own codes), served by uvicorn on 127.0.0.1.

Signed endpoints (``account``, ``order``, ``openOrders``, ``allOrders``, ``myTrades``) check, as
Binance does: the ``X-MBX-APIKEY`` header names a known key (else 401, -2015); ``signature`` is
the HMAC-SHA256 (hex) with the key's secret of the query string followed by the body, without
the signature itself (else 400, -1022); ``timestamp`` is within ``recvWindow`` (default 5,000
ms, at most 60,000) before the venue's time and at most 1,000 ms after it (else 400, -1021).
Every answer carries ``X-MBX-USED-WEIGHT-1M``: the weight the caller's address used in the
current minute (Binance's weights per endpoint).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Awaitable, Callable
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import parse_qsl

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from lts.venue.exchange import (
    BAD_SYMBOL,
    MANDATORY_PARAM,
    Exchange,
    Order,
    OrderType,
    Side,
    TimeInForce,
    Trade,
    VenueError,
)

BAD_TIMESTAMP = -1021
BAD_SIGNATURE = -1022
BAD_API_KEY = -2015
BAD_PARAM = -1100
RECV_WINDOW_MS = 5_000
RECV_WINDOW_MAX_MS = 60_000
WEIGHT_LIMIT = 6_000  # per minute and address

Params = dict[str, str]
Handler = Callable[[Request, Params, str], Awaitable[Any]]


def _s(value: Decimal) -> str:
    """A decimal as Binance writes it: eight places."""
    return f"{value:.8f}"


class _Weights:
    """Request weight used per address in the current minute."""

    def __init__(self, clock: Callable[[], int]) -> None:
        self._clock = clock
        self._minute = -1
        self._used: dict[str, int] = {}

    def add(self, address: str, weight: int) -> int:
        minute = self._clock() // 60_000
        if minute != self._minute:
            self._minute, self._used = minute, {}
        used = self._used.get(address, 0) + weight
        self._used[address] = used
        return used


class BinanceRest:
    """The ``/api/v3`` endpoints over one exchange; ``keys``: API key -> (account, secret)."""

    def __init__(self, exchange: Exchange, keys: dict[str, tuple[str, str]], *,
                 clock: Callable[[], int] | None = None) -> None:
        self.exchange = exchange
        self.keys = keys
        self.clock = clock or exchange.clock
        self._weights = _Weights(self.clock)
        public: list[tuple[str, str, int, Handler]] = [
            ("GET", "ping", 1, self._ping), ("GET", "time", 1, self._time),
            ("GET", "exchangeInfo", 20, self._exchange_info),
            ("GET", "ticker/price", 2, self._ticker_price),
        ]
        signed: list[tuple[str, str, int, Handler]] = [
            ("GET", "account", 20, self._account),
            ("POST", "order", 1, self._new_order), ("GET", "order", 4, self._get_order),
            ("DELETE", "order", 1, self._cancel_order),
            ("GET", "openOrders", 6, self._open_orders),
            ("DELETE", "openOrders", 1, self._cancel_open_orders),
            ("GET", "allOrders", 20, self._all_orders), ("GET", "myTrades", 20, self._my_trades),
        ]
        routes: dict[str, dict[str, tuple[int, Handler, bool]]] = {}
        for method, path, weight, handler in public:
            routes.setdefault(path, {})[method] = (weight, handler, False)
        for method, path, weight, handler in signed:
            routes.setdefault(path, {})[method] = (weight, handler, True)
        self.app = Starlette(routes=[
            Route(f"/api/v3/{path}", self._endpoint(by_method), methods=list(by_method))
            for path, by_method in routes.items()])

    # -- the request path -----------------------------------------------------------------------
    def _endpoint(self, by_method: dict[str, tuple[int, Handler, bool]]
                  ) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            weight, handler, signed = by_method[request.method]
            address = request.client.host if request.client else "?"
            used = self._weights.add(address, weight)
            headers = {"X-MBX-USED-WEIGHT-1M": str(used)}
            try:
                body = (await request.body()).decode("ascii", "replace")
                query = request.url.query
                params, account = self._authorize(request, query, body) if signed else \
                    (dict(parse_qsl(query + ("&" if query and body else "") + body)), "")
                result = await handler(request, params, account)
            except VenueError as err:
                status = 401 if err.code == BAD_API_KEY else 400
                return JSONResponse({"code": err.code, "msg": err.msg}, status, headers)
            except ValueError:  # a number that is not one (fromId, orderId, ...)
                return JSONResponse({"code": BAD_PARAM, "msg": "Illegal characters found in a "
                                     "parameter."}, 400, headers)
            return JSONResponse(result, headers=headers)

        return endpoint

    def _authorize(self, request: Request, query: str, body: str) -> tuple[Params, str]:
        key = request.headers.get("x-mbx-apikey", "")
        known = self.keys.get(key)
        if known is None:
            raise VenueError(BAD_API_KEY, "Invalid API-key, IP, or permissions for action.")
        account, secret = known
        total = query + body
        head, sep, signature = total.rpartition("signature=")
        if not sep or "&" in signature:
            raise VenueError(MANDATORY_PARAM, "Mandatory parameter 'signature' was not sent, "
                             "was empty/null, or malformed.")
        signed = head[:-1] if head.endswith("&") else head
        expected = hmac.new(secret.encode(), signed.encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, signature):
            raise VenueError(BAD_SIGNATURE, "Signature for this request is not valid.")
        params = dict(parse_qsl(query + ("&" if query and body else "") + body))
        params.pop("signature", None)
        now = self.clock()
        window_text = params.get("recvWindow", str(RECV_WINDOW_MS))
        if not window_text.isdigit():
            raise VenueError(BAD_PARAM, "Illegal characters found in parameter 'recvWindow'.")
        window = min(int(window_text), RECV_WINDOW_MAX_MS)
        stamp = params.get("timestamp", "")
        if not stamp.isdigit():
            raise VenueError(MANDATORY_PARAM, "Mandatory parameter 'timestamp' was not sent, "
                             "was empty/null, or malformed.")
        if not now - window <= int(stamp) <= now + 1_000:
            raise VenueError(BAD_TIMESTAMP,
                             "Timestamp for this request is outside of the recvWindow.")
        return params, account

    # -- public ---------------------------------------------------------------------------------
    async def _ping(self, request: Request, params: Params, account: str) -> Any:
        return {}

    async def _time(self, request: Request, params: Params, account: str) -> Any:
        return {"serverTime": self.clock()}

    async def _exchange_info(self, request: Request, params: Params, account: str) -> Any:
        symbols = []
        for m in self.exchange.markets.values():
            symbols.append({
                "symbol": m.symbol, "status": "TRADING", "baseAsset": m.base,
                "baseAssetPrecision": 8, "quoteAsset": m.quote, "quotePrecision": 8,
                "quoteAssetPrecision": 8, "baseCommissionPrecision": 8,
                "quoteCommissionPrecision": 8,
                "orderTypes": [t.value for t in OrderType], "icebergAllowed": False,
                "ocoAllowed": False, "otoAllowed": False, "quoteOrderQtyMarketAllowed": False,
                "allowTrailingStop": False, "cancelReplaceAllowed": False,
                "amendAllowed": False, "isSpotTradingAllowed": True,
                "isMarginTradingAllowed": False,
                "filters": [
                    {"filterType": "PRICE_FILTER", "minPrice": _s(m.min_price),
                     "maxPrice": _s(m.max_price), "tickSize": _s(m.tick_size)},
                    {"filterType": "LOT_SIZE", "minQty": _s(m.min_qty),
                     "maxQty": _s(m.max_qty), "stepSize": _s(m.step_size)},
                    {"filterType": "NOTIONAL", "minNotional": _s(m.min_notional),
                     "applyMinToMarket": True, "maxNotional": "9000000.00000000",
                     "applyMaxToMarket": False, "avgPriceMins": 5},
                ],
                "permissions": [], "permissionSets": [["SPOT"]],
                "defaultSelfTradePreventionMode": "NONE",
                "allowedSelfTradePreventionModes": ["NONE"],
            })
        return {"timezone": "UTC", "serverTime": self.clock(),
                "rateLimits": [{"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE",
                                "intervalNum": 1, "limit": WEIGHT_LIMIT}],
                "exchangeFilters": [], "symbols": symbols}

    async def _ticker_price(self, request: Request, params: Params, account: str) -> Any:
        prices = [{"symbol": s, "price": _s(p)} for s, p in self.exchange.last.items()]
        symbol = params.get("symbol")
        if symbol is None:
            return prices
        if symbol not in self.exchange.markets:
            raise VenueError(BAD_SYMBOL, "Invalid symbol.")
        return next((p for p in prices if p["symbol"] == symbol),
                    {"symbol": symbol, "price": _s(Decimal(0))})

    # -- signed ---------------------------------------------------------------------------------
    async def _account(self, request: Request, params: Params, account: str) -> Any:
        fee = _s(self.exchange.fee_rate)
        return {"makerCommission": int(self.exchange.fee_rate * 10_000),
                "takerCommission": int(self.exchange.fee_rate * 10_000),
                "buyerCommission": 0, "sellerCommission": 0,
                "commissionRates": {"maker": fee, "taker": fee, "buyer": _s(Decimal(0)),
                                    "seller": _s(Decimal(0))},
                "canTrade": True, "canWithdraw": False, "canDeposit": False, "brokered": False,
                "requireSelfTradePrevention": False, "preventSor": False,
                "updateTime": self.clock(), "accountType": "SPOT",
                "balances": [{"asset": a, "free": _s(b.free), "locked": _s(b.locked)}
                             for a, b in self.exchange.balances(account).items()],
                "permissions": ["SPOT"]}

    async def _new_order(self, request: Request, params: Params, account: str) -> Any:
        symbol = _required(params, "symbol")
        side = _enum(Side, _required(params, "side"), "side")
        kind = _enum(OrderType, _required(params, "type"), "type")
        tif = params.get("timeInForce")
        quantity = _decimal(params, "quantity", required=True)
        assert quantity is not None
        order = self.exchange.place(
            account, symbol, side, kind, quantity,
            price=_decimal(params, "price"), stop_price=_decimal(params, "stopPrice"),
            time_in_force=_enum(TimeInForce, tif, "timeInForce") if tif else None,
            client_order_id=params.get("newClientOrderId"))
        answer = params.get("newOrderRespType") or (
            "FULL" if kind in (OrderType.LIMIT, OrderType.MARKET) else "ACK")
        result: dict[str, Any] = {"symbol": symbol, "orderId": order.order_id,
                                  "orderListId": -1, "clientOrderId": order.client_order_id,
                                  "transactTime": order.time}
        if answer in ("RESULT", "FULL"):
            result.update(_order_fields(order))
            result["workingTime"] = order.time
        if answer == "FULL":
            result["fills"] = [_fill_fields(t) for t in self.exchange.trades
                               if t.order_id == order.order_id]
        return result

    async def _get_order(self, request: Request, params: Params, account: str) -> Any:
        order = self.exchange.order(account, _required(params, "symbol"), **_which(params))
        return _order_view(order)

    async def _cancel_order(self, request: Request, params: Params, account: str) -> Any:
        order = self.exchange.cancel(account, _required(params, "symbol"), **_which(params))
        return {"symbol": order.symbol, "origClientOrderId": order.client_order_id,
                "orderId": order.order_id, "orderListId": -1,
                "clientOrderId": params.get("newClientOrderId") or f"cancel-{order.order_id}",
                "transactTime": order.update_time, **_order_fields(order)}

    async def _open_orders(self, request: Request, params: Params, account: str) -> Any:
        return [_order_view(o) for o in self.exchange.open_orders(account, params.get("symbol"))]

    async def _cancel_open_orders(self, request: Request, params: Params, account: str) -> Any:
        symbol = _required(params, "symbol")
        return [_order_fields(self.exchange.cancel(account, symbol, order_id=o.order_id))
                | {"symbol": symbol, "origClientOrderId": o.client_order_id,
                   "orderId": o.order_id, "orderListId": -1}
                for o in self.exchange.open_orders(account, symbol)]

    async def _all_orders(self, request: Request, params: Params, account: str) -> Any:
        return [_order_view(o) for o in
                self.exchange.all_orders(account, _required(params, "symbol"))]

    async def _my_trades(self, request: Request, params: Params, account: str) -> Any:
        from_id = int(params.get("fromId", "0") or 0)
        return [{"symbol": t.symbol, "id": t.trade_id, "orderId": t.order_id,
                 "orderListId": -1, "price": _s(t.price), "qty": _s(t.qty),
                 "quoteQty": _s(t.quote_qty), "commission": _s(t.commission),
                 "commissionAsset": t.commission_asset, "time": t.time,
                 "isBuyer": t.side is Side.BUY, "isMaker": t.maker, "isBestMatch": True}
                for t in self.exchange.my_trades(account, _required(params, "symbol"),
                                                 from_id=from_id)]


# -- parameters and answers ---------------------------------------------------------------------
def _required(params: Params, name: str) -> str:
    value = params.get(name)
    if not value:
        raise VenueError(MANDATORY_PARAM, f"Mandatory parameter '{name}' was not sent, was "
                         "empty/null, or malformed.")
    return value


def _decimal(params: Params, name: str, *, required: bool = False) -> Decimal | None:
    text = _required(params, name) if required else params.get(name)
    if text is None:
        return None
    try:
        value = Decimal(text)
    except InvalidOperation:
        value = Decimal("NaN")
    if not value.is_finite() or value <= 0:
        raise VenueError(BAD_PARAM, f"Illegal characters found in parameter '{name}'; legal "
                         "range is '^([0-9]{1,20})(\\.[0-9]{1,20})?$'.")
    return value


def _enum(kind: Any, text: str, name: str) -> Any:
    try:
        return kind(text)
    except ValueError:
        raise VenueError(-1116 if name == "type" else BAD_PARAM,
                         f"Invalid {name}.") from None


def _which(params: Params) -> dict[str, Any]:
    order_id = params.get("orderId")
    client_id = params.get("origClientOrderId")
    if not order_id and not client_id:
        raise VenueError(MANDATORY_PARAM, "Param 'origClientOrderId' or 'orderId' must be "
                         "sent, but both were empty/null!")
    return {"order_id": int(order_id) if order_id and order_id.isdigit() else None,
            "client_order_id": client_id if not order_id else None}


def _order_fields(order: Order) -> dict[str, Any]:
    return {"price": _s(order.price), "origQty": _s(order.orig_qty),
            "executedQty": _s(order.executed_qty),
            "origQuoteOrderQty": _s(Decimal(0)),
            "cummulativeQuoteQty": _s(order.cumulative_quote_qty),
            "status": order.status.value, "timeInForce": order.time_in_force.value,
            "type": order.type.value, "side": order.side.value,
            "selfTradePreventionMode": "NONE"}


def _order_view(order: Order) -> dict[str, Any]:
    return {"symbol": order.symbol, "orderId": order.order_id, "orderListId": -1,
            "clientOrderId": order.client_order_id, **_order_fields(order),
            "stopPrice": _s(order.stop_price), "icebergQty": _s(Decimal(0)),
            "time": order.time, "updateTime": order.update_time, "isWorking": order.triggered,
            "workingTime": order.time}


def _fill_fields(trade: Trade) -> dict[str, Any]:
    return {"price": _s(trade.price), "qty": _s(trade.qty),
            "commission": _s(trade.commission), "commissionAsset": trade.commission_asset,
            "tradeId": trade.trade_id}

