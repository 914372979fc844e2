"""The local exchange's REST front: Binance spot's ``/api/v3`` as its clients send it.

Where it sits: between a client (ccxt's Binance class with its URLs pointed here, LTS's ``ccxt``
broker, a user's script) and :class:`~lts.venue.exchange.Exchange`, with the venue's
:class:`~lts.venue.tape.Tape` for market data and its :class:`~lts.venue.faults.Faults`. A
Starlette app (no request models: Binance's parameters are form fields and query strings, its
errors ``{"code", "msg"}`` with its own codes), served by uvicorn on 127.0.0.1; the admin
endpoint (:mod:`lts.venue.admin`) is in the same app, off ``/api/v3``.

Public: ``ping``, ``time``, ``exchangeInfo``, ``ticker/price``, ``ticker/24hr`` and
``ticker/bookTicker`` (``symbol``, ``symbols`` as a JSON array, or all: what ccxt's
``fetch_ticker``, ``fetch_tickers`` and ``fetch_bids_asks`` call), ``klines`` (``symbol``,
``interval``, ``startTime``, ``endTime``, ``limit``: 500 unless given, at most 1000; ccxt's
``fetch_ohlcv``), from the tape's bounded history.

Signed endpoints (``account``, ``order``, ``order/cancelReplace``, ``openOrders``,
``allOrders``, ``myTrades``) check, as Binance does: the ``X-MBX-APIKEY`` header names a known
key (else 401, -2015); ``signature`` is the HMAC-SHA256 (hex) with the key's secret of the query
string followed by the body, without the signature itself (else 400, -1022); ``timestamp`` is
within ``recvWindow`` (default 5,000 ms, at most 60,000) before the venue's time and at most
1,000 ms after it (else 400, -1021). ``order/cancelReplace`` (weight 1; ``STOP_ON_FAILURE`` and
``ALLOW_FAILURE``) answers success and failure in Binance's shapes (``cancelResult``,
``newOrderResult``, ``cancelResponse``, ``newOrderResponse``; -2022 with 400, -2021 with 409).

Every answer carries ``X-MBX-USED-WEIGHT-1M``: the weight the caller's address used in the
current minute (Binance's weights per endpoint). Beyond the limit (the ``weight_limit`` fault,
6000 unless set) a request answers 429 with -1003 and ``Retry-After`` (the seconds left in the
minute); the :data:`~lts.venue.faults.BAN_AFTER`-th request an address sends after that while
still limited is answered 418, and so is every request of that address until its ban
(``ban_seconds``) ends, ``Retry-After`` saying how long it still lasts. The faults on this path:
``http_5xx`` (503 ``{"msg": "Service Unavailable."}``, before anything else: nothing is done,
nothing weighed), ``order_delay`` and ``drop_order_answers`` (see :mod:`lts.venue.faults`).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import parse_qsl

import anyio
import anyio.lowlevel
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from lts.venue.admin import Admin
from lts.venue.exchange import (
    BAD_SYMBOL,
    MANDATORY_PARAM,
    CancelReplaceFailed,
    Exchange,
    Order,
    OrderType,
    Side,
    TimeInForce,
    Trade,
    VenueError,
)
from lts.venue.faults import BAN_AFTER, Faults
from lts.venue.tape import DAY_MS, INTERVALS, Tape

BAD_TIMESTAMP = -1021
BAD_SIGNATURE = -1022
BAD_API_KEY = -2015
BAD_PARAM = -1100
TOO_MANY_REQUESTS = -1003
BAD_INTERVAL = -1120
BAD_COMBINATION = -1128
RECV_WINDOW_MS = 5_000
RECV_WINDOW_MAX_MS = 60_000
KLINES_LIMIT = 1_000

Params = dict[str, str]
Handler = Callable[[Request, Params, str], Awaitable[Any]]
Weight = int | Callable[[Params], int]


def _s(value: Decimal) -> str:
    """A decimal as Binance writes it: eight places."""
    return f"{value:.8f}"


@dataclass
class _Verdict:
    used: int  # the address's weight this minute
    refusal: Response | None = None  # 429 or 418, if it is refused


class MinuteWeights:
    """Request weight used per address in the current minute of ``clock`` (ms). The one counter
    of both fronts, an instance each: the REST front's (:class:`_Limits`, with its 429s and
    bans) and the WebSocket API's (:mod:`lts.venue.binance_user_stream`) count apart."""

    def __init__(self, clock: Callable[[], int]) -> None:
        self._clock = clock
        self._minute = -1
        self._used: dict[str, int] = {}

    def add(self, address: str, weight: int) -> int:
        """Count ``weight`` for ``address``; what it has used this minute."""
        minute = self._clock() // 60_000
        if minute != self._minute:
            self._minute, self._used = minute, {}
        used = self._used[address] = self._used.get(address, 0) + weight
        return used

    def used(self, address: str) -> int:
        return self.add(address, 0)

    def clear(self, address: str | None = None) -> None:
        """``address``'s count afresh (every count, without one)."""
        if address is None:
            self._minute = -1
        else:
            self._used.pop(address, None)


def too_much_weight(limit: int) -> str:
    """Binance's message (with -1003) to a request over the weight limit."""
    return (f"Too much request weight used; current limit is {limit} request weight per 1 "
            "MINUTE. Please use WebSocket Streams for live updates to avoid polling the API.")


class _Limits:
    """Request weight per address and minute, limited as Binance limits it (see the module's
    docstring); the limit and the ban's length are the faults' ``weight_limit``, ``ban_seconds``."""

    def __init__(self, faults: Faults, clock: Callable[[], int]) -> None:
        self._faults = faults
        self._clock = clock
        self._set = faults.limits_set
        self._used = MinuteWeights(clock)
        self._strikes = MinuteWeights(clock)  # requests refused 429 this minute
        self._banned: dict[str, int] = {}  # address -> ban's end, ms

    def admit(self, address: str, weight: int) -> _Verdict:
        now = self._clock()
        if self._set != self._faults.limits_set:  # the limit was set: a fresh start
            self._set, self._banned = self._faults.limits_set, {}
            self._used.clear()
            self._strikes.clear()
        used = self._used.add(address, weight)
        until = self._banned.get(address)
        if until is not None and now >= until:
            del self._banned[address]
            until = None
        limit = self._faults.weight_limit
        if until is None:
            if used <= limit:
                return _Verdict(used)
            if self._strikes.add(address, 1) > BAN_AFTER:  # told, and told again: banned
                until = self._banned[address] = now + round(self._faults.ban_seconds * 1000)
                self._strikes.clear(address)  # and counted afresh
        headers = {"X-MBX-USED-WEIGHT-1M": str(used)}
        if until is not None:
            headers["Retry-After"] = str(max(1, math.ceil((until - now) / 1000)))
            return _Verdict(used, JSONResponse({
                "code": TOO_MANY_REQUESTS, "msg": f"Way too much request weight used; IP "
                f"banned until {until}. Please use WebSocket Streams for live updates to avoid "
                "bans."}, 418, headers))
        headers["Retry-After"] = str(max(1, math.ceil((60_000 - now % 60_000) / 1000)))
        return _Verdict(used, JSONResponse({"code": TOO_MANY_REQUESTS,
                                            "msg": too_much_weight(limit)}, 429, headers))


@dataclass(frozen=True)
class _Route:
    weight: Weight
    handler: Handler
    signed: bool
    order: bool = False  # POST or DELETE /order: its answer may be delayed (order_delay)
    droppable: bool = False  # POST /order: its answer may be lost (drop_order_answers)


class BinanceRest:
    """The ``/api/v3`` endpoints over one exchange; ``keys``: API key -> (account, secret).

    ``server``: the uvicorn server that serves :attr:`app`, set by whoever runs it; the faults
    that cut a connection (``drop_order_answers``) need it, and without it answer as usual.
    """

    def __init__(self, exchange: Exchange, keys: dict[str, tuple[str, str]], *,
                 clock: Callable[[], int] | None = None, faults: Faults | None = None,
                 tape: Tape | None = None) -> None:
        self.exchange = exchange
        self.keys = keys
        self.clock = clock or exchange.clock
        self.faults = faults or Faults()
        self.tape = tape or Tape(exchange.markets)
        self.server: uvicorn.Server | None = None
        #: called after each request, before its answer: a change is saved before it is told
        self.settle: Callable[[], None] = lambda: None
        self._limits = _Limits(self.faults, self.clock)
        public: list[tuple[str, str, Weight, Handler]] = [
            ("GET", "ping", 1, self._ping), ("GET", "time", 1, self._time),
            ("GET", "exchangeInfo", 20, self._exchange_info),
            ("GET", "ticker/price", 2, self._ticker_price),
            ("GET", "ticker/24hr", _ticker_weight, self._ticker_24hr),
            ("GET", "ticker/bookTicker", _book_weight, self._book_ticker),
            ("GET", "klines", 2, self._klines),
        ]
        signed: list[tuple[str, str, Weight, Handler]] = [
            ("GET", "account", 20, self._account),
            ("POST", "order", 1, self._new_order), ("GET", "order", 4, self._get_order),
            ("DELETE", "order", 1, self._cancel_order),
            ("POST", "order/cancelReplace", 1, self._cancel_replace),
            ("GET", "openOrders", 6, self._open_orders),
            ("DELETE", "openOrders", 1, self._cancel_open_orders),
            ("GET", "allOrders", 20, self._all_orders), ("GET", "myTrades", 20, self._my_trades),
        ]
        routes: dict[str, dict[str, _Route]] = {}
        for is_signed, table in ((False, public), (True, signed)):
            for method, path, weight, handler in table:
                routes.setdefault(path, {})[method] = _Route(
                    weight, handler, is_signed, order=path == "order" and method != "GET",
                    droppable=path == "order" and method == "POST")
        self.admin = Admin(self.faults, exchange, keys)
        self.app = Starlette(routes=[
            *(Route(f"/api/v3/{path}", self._endpoint(by_method), methods=list(by_method))
              for path, by_method in routes.items()),
            *self.admin.routes])

    # -- the request path -----------------------------------------------------------------------
    def _endpoint(self, by_method: dict[str, _Route]) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            if self.faults.take_5xx():
                return JSONResponse({"msg": "Service Unavailable."}, 503)
            route = by_method[request.method]
            address = request.client.host if request.client else "?"
            query = request.url.query
            try:
                weight = route.weight if isinstance(route.weight, int) else \
                    route.weight(dict(parse_qsl(query)))
            except ValueError:
                weight = 1
            verdict = self._limits.admit(address, weight)
            if verdict.refusal is not None:
                return verdict.refusal
            headers = {"X-MBX-USED-WEIGHT-1M": str(verdict.used)}
            authorized = not route.signed
            try:
                body = (await request.body()).decode("ascii", "replace")
                params, account = self._authorize(request, query, body) if route.signed else \
                    (dict(parse_qsl(query + ("&" if query and body else "") + body)), "")
                authorized = True
                response: Response = JSONResponse(await route.handler(request, params, account),
                                                  headers=headers)
            except CancelReplaceFailed as err:  # 409 when one half was done
                response = JSONResponse(
                    {"code": err.code, "msg": err.msg, "data": _replace_data(err, params)},
                    409 if err.canceled is not None or err.placed is not None else 400,
                    headers)
            except VenueError as err:
                status = 401 if err.code == BAD_API_KEY else 400
                response = JSONResponse({"code": err.code, "msg": err.msg}, status, headers)
            except ValueError:  # a number that is not one (fromId, orderId, ...)
                response = JSONResponse({"code": BAD_PARAM, "msg": "Illegal characters found in "
                                         "a parameter."}, 400, headers)
            self.settle()
            if authorized and route.droppable and self.faults.take_dropped_answer():
                await self._cut(request)
            elif authorized and route.order and self.faults.order_delay > 0:
                await anyio.sleep(self.faults.order_delay)
            return response

        return endpoint

    async def _cut(self, request: Request) -> None:
        """Abort the request's connection: the client gets no answer at all (what it sends
        after this is swallowed by the server, the connection being gone)."""
        if self.server is None or request.client is None:
            return
        peer = (request.client.host, request.client.port)
        for connection in list(self.server.server_state.connections):
            if getattr(connection, "client", None) == peer:
                connection.transport.abort()
        await anyio.lowlevel.checkpoint()  # the server learns the connection is lost
        await anyio.lowlevel.checkpoint()

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
                "allowTrailingStop": False, "cancelReplaceAllowed": True,
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
                                "intervalNum": 1, "limit": self.faults.weight_limit}],
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

    async def _ticker_24hr(self, request: Request, params: Params, account: str) -> Any:
        now = self.clock()
        symbols, single = self._symbols(params)
        stats = [self._day(symbol, now) for symbol in symbols]
        return stats[0] if single else stats

    async def _book_ticker(self, request: Request, params: Params, account: str) -> Any:
        symbols, single = self._symbols(params)
        books = [{"symbol": s, **self._book(s)} for s in symbols]
        return books[0] if single else books

    async def _klines(self, request: Request, params: Params, account: str) -> Any:
        symbol = self._symbol(_required(params, "symbol"))
        interval = _required(params, "interval")
        if interval not in INTERVALS:
            raise VenueError(BAD_INTERVAL, "Invalid interval.")
        limit = int(params.get("limit") or 500)
        if limit < 1:
            raise VenueError(BAD_PARAM, "Illegal characters found in parameter 'limit'.")
        start, end = params.get("startTime"), params.get("endTime")
        candles = self.tape.candles(symbol, interval, start=int(start) if start else None,
                                    end=int(end) if end else None,
                                    limit=min(limit, KLINES_LIMIT))
        return [[c.open_time, _s(c.open), _s(c.high), _s(c.low), _s(c.close), _s(c.volume),
                 c.close_time, _s(c.quote_volume), c.count, _s(Decimal(0)), _s(Decimal(0)), "0"]
                for c in candles]

    def _symbol(self, symbol: str) -> str:
        if symbol not in self.exchange.markets:
            raise VenueError(BAD_SYMBOL, "Invalid symbol.")
        return symbol

    def _symbols(self, params: Params) -> tuple[list[str], bool]:
        """The markets a ticker asks for (``symbol``, ``symbols`` as a JSON array, or all), and
        whether it asked for one (answered as an object, not a list)."""
        if "symbol" in params and "symbols" in params:
            raise VenueError(BAD_COMBINATION, "Combination of optional parameters invalid.")
        if "symbol" in params:
            return [self._symbol(params["symbol"])], True
        if "symbols" not in params:
            return list(self.exchange.markets), False
        try:
            asked = json.loads(params["symbols"])
        except json.JSONDecodeError:
            asked = None
        if not isinstance(asked, list) or not asked or not all(isinstance(a, str)
                                                               for a in asked):
            raise VenueError(BAD_PARAM, "Illegal characters found in parameter 'symbols'.")
        return [self._symbol(a) for a in asked], False

    def _book(self, symbol: str) -> dict[str, str]:
        """The venue has no depth: a market order takes at the last price, as far as the bar's
        liquidity goes, so that is the best bid and ask, each with that quantity."""
        price = self.exchange.last.get(symbol, Decimal(0))
        qty = self.tape.last_volume.get(symbol, Decimal(0)) * self.exchange.participation
        return {"bidPrice": _s(price), "bidQty": _s(qty), "askPrice": _s(price),
                "askQty": _s(qty)}

    def _day(self, symbol: str, now: int) -> dict[str, Any]:
        window = self.tape.window(symbol, now)
        zero = Decimal(0)
        last = self.exchange.last.get(symbol, zero)
        if window is None:
            opened, high, low, volume, quote, count, since = last, last, last, zero, zero, 0, \
                now - DAY_MS
        else:
            opened, high, low, volume, quote, count, since = (
                window.open, window.high, window.low, window.volume, window.quote_volume,
                window.count, window.open_time)
        change = last - opened
        return {"symbol": symbol, "priceChange": _s(change),
                "priceChangePercent": f"{(change / opened * 100) if opened else zero:.3f}",
                "weightedAvgPrice": _s(quote / volume if volume else last),
                "prevClosePrice": _s(opened), "lastPrice": _s(last), "lastQty": _s(zero),
                **self._book(symbol), "openPrice": _s(opened), "highPrice": _s(high),
                "lowPrice": _s(low), "volume": _s(volume), "quoteVolume": _s(quote),
                "openTime": since, "closeTime": now, "firstId": -1, "lastId": -1,
                "count": count}

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
        return self._placed(order, params)

    def _placed(self, order: Order, params: Params) -> dict[str, Any]:
        """The answer to a new order, as ``newOrderRespType`` asks (ACK, RESULT, FULL; by
        default FULL for LIMIT and MARKET orders, ACK for the others)."""
        answer = params.get("newOrderRespType") or (
            "FULL" if order.type in (OrderType.LIMIT, OrderType.MARKET) else "ACK")
        result: dict[str, Any] = {"symbol": order.symbol, "orderId": order.order_id,
                                  "orderListId": -1, "clientOrderId": order.client_order_id,
                                  "transactTime": order.time}
        if answer in ("RESULT", "FULL"):
            result.update(_order_fields(order))
            result["workingTime"] = order.time
        if answer == "FULL":
            result["fills"] = [_fill_fields(t) for t in self.exchange.trades
                               if t.order_id == order.order_id]
        return result

    async def _cancel_replace(self, request: Request, params: Params, account: str) -> Any:
        """``POST order/cancelReplace``: the cancel (by ``cancelOrderId`` and/or
        ``cancelOrigClientOrderId``) and the new order (``newClientOrderId`` may be the
        canceled order's) as Binance answers them: both done, 200 with each half's answer; the
        cancel failed (``STOP_ON_FAILURE``: the new order not attempted), 400 -2022; one half
        failed, 409 -2021; each with ``data`` saying what became of both halves."""
        symbol = _required(params, "symbol")
        side = _enum(Side, _required(params, "side"), "side")
        kind = _enum(OrderType, _required(params, "type"), "type")
        mode = _required(params, "cancelReplaceMode")
        if mode not in ("STOP_ON_FAILURE", "ALLOW_FAILURE"):
            raise VenueError(BAD_PARAM, "Invalid cancelReplaceMode.")
        cancel_id = params.get("cancelOrderId")
        cancel_coid = params.get("cancelOrigClientOrderId")
        if not cancel_id and not cancel_coid:
            raise VenueError(MANDATORY_PARAM, "Param 'cancelOrigClientOrderId' or "
                             "'cancelOrderId' must be sent, but both were empty/null!")
        tif = params.get("timeInForce")
        quantity = _decimal(params, "quantity", required=True)
        assert quantity is not None
        canceled, placed = self.exchange.cancel_replace(
            account, symbol, side, kind, quantity,
            price=_decimal(params, "price"), stop_price=_decimal(params, "stopPrice"),
            time_in_force=_enum(TimeInForce, tif, "timeInForce") if tif else None,
            client_order_id=params.get("newClientOrderId"),
            cancel_order_id=int(cancel_id) if cancel_id else None,
            cancel_client_order_id=cancel_coid or None, allow_failure=mode == "ALLOW_FAILURE")
        return {"cancelResult": "SUCCESS", "newOrderResult": "SUCCESS",
                "cancelResponse": _canceled(canceled, params.get("cancelNewClientOrderId")),
                "newOrderResponse": self._placed(placed, params)}

    async def _get_order(self, request: Request, params: Params, account: str) -> Any:
        order = self.exchange.order(account, _required(params, "symbol"), **_which(params))
        return _order_view(order)

    async def _cancel_order(self, request: Request, params: Params, account: str) -> Any:
        order = self.exchange.cancel(account, _required(params, "symbol"), **_which(params))
        return _canceled(order, params.get("newClientOrderId"))

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
def _ticker_weight(params: Params) -> int:
    """Binance's weight of ``ticker/24hr``: by how many symbols it asks for."""
    if "symbol" in params:
        return 2
    try:
        asked = json.loads(params["symbols"]) if "symbols" in params else None
    except json.JSONDecodeError:
        return 2
    count = len(asked) if isinstance(asked, list) else 101
    return 2 if count <= 20 else 40 if count <= 100 else 80


def _book_weight(params: Params) -> int:
    return 2 if "symbol" in params else 4


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


def _canceled(order: Order, cancel_client_id: str | None) -> dict[str, Any]:
    """The answer to a cancel: the order as it closed, the cancel's own client order id."""
    return {"symbol": order.symbol, "origClientOrderId": order.client_order_id,
            "orderId": order.order_id, "orderListId": -1,
            "clientOrderId": cancel_client_id or f"cancel-{order.order_id}",
            "transactTime": order.update_time, **_order_fields(order)}


def _replace_data(err: CancelReplaceFailed, params: Params) -> dict[str, Any]:
    """What became of each half of a cancel-replace that did not do both (Binance's ``data``:
    a half's answer, its error, or, for a new order not attempted, ``null``)."""
    def error(failed: VenueError | None) -> dict[str, Any] | None:
        return {"code": failed.code, "msg": failed.msg} if failed is not None else None

    cancel = _canceled(err.canceled, params.get("cancelNewClientOrderId")) \
        if err.canceled is not None else error(err.cancel_error)
    new_order: dict[str, Any] | None = None
    if err.placed is not None:
        new_order = {"symbol": err.placed.symbol, "orderId": err.placed.order_id,
                     "orderListId": -1, "clientOrderId": err.placed.client_order_id,
                     "transactTime": err.placed.time}
    elif err.new_error is not None:
        new_order = error(err.new_error)
    return {"cancelResult": "SUCCESS" if err.canceled is not None else "FAILURE",
            "newOrderResult": "SUCCESS" if err.placed is not None
            else "FAILURE" if err.new_error is not None else "NOT_ATTEMPTED",
            "cancelResponse": cancel, "newOrderResponse": new_order}


def _fill_fields(trade: Trade) -> dict[str, Any]:
    return {"price": _s(trade.price), "qty": _s(trade.qty),
            "commission": _s(trade.commission), "commissionAsset": trade.commission_asset,
            "tradeId": trade.trade_id}

