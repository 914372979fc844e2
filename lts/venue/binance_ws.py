"""The local exchange's WebSocket front: Binance spot's market streams and the WebSocket API's
user data stream, as ccxt.pro (and Binance's own documentation) speak them.

Where it sits: beside the REST front (:mod:`lts.venue.binance_rest`), on the same Starlette app
and uvicorn server, over the same :class:`~lts.venue.exchange.Exchange`. It hears the exchange
two ways: the exchange's listeners (execution and balance reports, synchronously, on the event
loop) and :meth:`BinanceWs.on_bar`, called by whatever feeds the exchange its tape right after
each :meth:`Exchange.on_bar <lts.venue.exchange.Exchange.on_bar>` (the venue's feed tasks in
:mod:`lts.venue.server`). What it hears it formats once and queues to each connection that
listens; a writer task per connection sends it.

Endpoints (Binance's paths):

- ``/ws``, ``/ws/<streamName>``: raw market streams; ``/stream?streams=<a>/<b>``: combined
  streams (``{"stream", "data"}``). ``SUBSCRIBE``, ``UNSUBSCRIBE``, ``LIST_SUBSCRIPTIONS``,
  ``SET_PROPERTY``/``GET_PROPERTY`` (``combined``), with Binance's error codes. Streams, per
  symbol (lowercase): ``@trade`` (each bar is one print at its close with its volume),
  ``@bookTicker`` (one tick each side of the last price, the bar's liquidity on each),
  ``@kline_<interval>`` (Binance's intervals, ``1s`` to ``1M``, built from the prints; ``x`` is
  true on the last update of a candle, sent when the first print of the next one arrives),
  ``@ticker`` and ``@miniTicker`` (the rolling 24 hours).
- ``/ws-api/v3``: the WebSocket API: ``userDataStream.subscribe.signature`` (HMAC-SHA256 of the
  sorted parameters with the key's secret, ``timestamp`` within ``recvWindow``),
  ``userDataStream.unsubscribe``, ``session.subscriptions``, ``ping``, ``time``. Events come as
  ``{"subscriptionId", "event"}``: ``executionReport`` (sent twice when
  :meth:`Faults.take_duplicate <lts.venue.faults.Faults.take_duplicate>` says so, asked only
  when the account has a subscription) and ``outboundAccountPosition``.

Limits (:class:`WsLimits`, Binance's by default): concurrent connections (more are refused with
HTTP 429), 5 incoming messages per second on a market-stream connection and 1,024 streams on it,
1,000 user data subscriptions per connection, request weight per minute and address on the
WebSocket API, 24 hours per connection. Ping and pong are uvicorn's (:data:`PING_INTERVAL_S`,
:data:`PONG_TIMEOUT_S` for its config): a ping every 20 s, a connection whose pong does not come
within a minute is closed. A client too slow to take its frames (:attr:`WsLimits.outbox` queued)
is dropped.

:meth:`BinanceWs.drop_all` (registered with :attr:`Faults.ws_drop_listeners
<lts.venue.faults.Faults.ws_drop_listeners>`) ends every connection without a close frame: the
handler returns and uvicorn closes the socket, so clients see the connection drop.
"""

from __future__ import annotations

import calendar
import contextlib
import hashlib
import hmac
import json
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import ROUND_DOWN, Decimal
from functools import partial
from typing import Any

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream
from starlette.responses import PlainTextResponse
from starlette.routing import BaseRoute, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from lts.venue.binance_rest import (
    BAD_API_KEY,
    BAD_SIGNATURE,
    BAD_TIMESTAMP,
    RECV_WINDOW_MAX_MS,
    RECV_WINDOW_MS,
    _s,
)
from lts.venue.exchange import (
    MANDATORY_PARAM,
    ZERO,
    BalancesChanged,
    Exchange,
    ExecutionReport,
    ExecutionType,
    Market,
    Order,
    OrderType,
    Report,
    Status,
    TimeInForce,
)
from lts.venue.faults import Faults

PING_INTERVAL_S = 20.0  # uvicorn's ws_ping_interval: Binance pings every 20 seconds
PONG_TIMEOUT_S = 60.0  # uvicorn's ws_ping_timeout: no pong within a minute, disconnected
DAY_MS = 86_400_000
WEIGHT_LIMIT = 6_000  # Binance's request weight per minute and address

# Binance's error codes on the WebSocket API (beyond the REST front's)
TOO_MANY_REQUESTS = -1003
UNSUPPORTED = -1020
SUBSCRIPTION_ACTIVE = -2035
SUBSCRIPTION_INACTIVE = -2036
MAX_SUBSCRIPTION_IDS = -2042
MAX_SUBSCRIPTION_IDS_LIFETIME = 65_535

STREAM_METHODS = ("SUBSCRIBE", "UNSUBSCRIBE", "LIST_SUBSCRIPTIONS", "SET_PROPERTY",
                  "GET_PROPERTY")
_FIXED_SPANS_MS = {"1s": 1_000, "1m": 60_000, "3m": 180_000, "5m": 300_000, "15m": 900_000,
                   "30m": 1_800_000, "1h": 3_600_000, "2h": 7_200_000, "4h": 14_400_000,
                   "6h": 21_600_000, "8h": 28_800_000, "12h": 43_200_000, "1d": DAY_MS,
                   "3d": 3 * DAY_MS}
KLINE_INTERVALS = (*_FIXED_SPANS_MS, "1w", "1M")
_WEEK_MS = 7 * DAY_MS
_MONDAY_MS = 4 * DAY_MS  # 1970-01-05, the first Monday: Binance's weeks start on Mondays
_SYMBOL_STREAMS = frozenset({"trade", "bookTicker", "ticker", "miniTicker",
                             *(f"kline_{i}" for i in KLINE_INTERVALS)})

Payload = dict[str, Any]


@dataclass(frozen=True)
class WsLimits:
    """Connection limits; Binance's by default."""

    max_connections: int = 300  # open at once, over all paths
    max_streams: int = 1_024  # per market-stream connection
    max_messages_per_second: int = 5  # incoming, per market-stream connection
    max_subscriptions: int = 1_000  # user data subscriptions per WebSocket API connection
    outbox: int = 10_000  # frames queued for a connection before it is dropped as too slow
    lifetime_s: float = 86_400.0


class _MinuteWeights:
    """Request weight used per address in the current minute (the WebSocket API's own count,
    apart from the REST front's)."""

    def __init__(self, clock: Callable[[], int]) -> None:
        self._clock = clock
        self._minute = -1
        self._used: dict[str, int] = {}

    def add(self, address: str, weight: int) -> int:
        minute = self._clock() // 60_000
        if minute != self._minute:
            self._minute, self._used = minute, {}
        used = self._used[address] = self._used.get(address, 0) + weight
        return used


def _json(payload: Any) -> str:
    return json.dumps(payload, separators=(",", ":"))


# -- the tape: public trades, candles, the rolling day ------------------------------------------
@dataclass(frozen=True, eq=False)
class _Print:
    """A bar of the tape as one public trade: at its close, its whole volume."""

    trade_id: int
    time: int
    price: Decimal
    qty: Decimal
    high: Decimal
    low: Decimal
    buyer_maker: bool  # the price went down: the seller took
    open: Decimal  # the bar's: a candle it opens opens there


@dataclass
class _Candle:
    open_time: int
    close_time: int
    first_id: int
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal = ZERO
    last_id: int = 0
    count: int = 0
    volume: Decimal = ZERO
    quote: Decimal = ZERO
    taker_buy_volume: Decimal = ZERO
    taker_buy_quote: Decimal = ZERO

    def add(self, p: _Print) -> None:
        self.high, self.low = max(self.high, p.high), min(self.low, p.low)
        self.close, self.last_id, self.count = p.price, p.trade_id, self.count + 1
        self.volume += p.qty
        self.quote += p.qty * p.price
        if not p.buyer_maker:
            self.taker_buy_volume += p.qty
            self.taker_buy_quote += p.qty * p.price


def kline_window(interval: str, time_ms: int) -> tuple[int, int]:
    """The open and close time (ms, close inclusive) of the ``interval`` candle holding
    ``time_ms``, as Binance aligns them (UTC; weeks from Monday, months by the calendar)."""
    if interval == "1w":
        start = (time_ms - _MONDAY_MS) // _WEEK_MS * _WEEK_MS + _MONDAY_MS
        return start, start + _WEEK_MS - 1
    if interval == "1M":
        day = datetime.fromtimestamp(time_ms / 1000, UTC)
        year, month = (day.year + 1, 1) if day.month == 12 else (day.year, day.month + 1)
        start = calendar.timegm((day.year, day.month, 1, 0, 0, 0)) * 1000
        return start, calendar.timegm((year, month, 1, 0, 0, 0)) * 1000 - 1
    span = _FIXED_SPANS_MS[interval]
    start = time_ms - time_ms % span
    return start, start + span - 1


class _RollingDay:
    """One symbol's prints of the last 24 hours: sums, and the high and low over the window
    (monotonic queues, so that each print costs O(1) amortized)."""

    def __init__(self) -> None:
        self.prints: deque[_Print] = deque()
        self._highs: deque[_Print] = deque()  # decreasing highs
        self._lows: deque[_Print] = deque()  # increasing lows
        self.volume = ZERO
        self.quote = ZERO
        self.before: Decimal | None = None  # the price of the last print out of the window

    def add(self, p: _Print) -> None:
        self.prints.append(p)
        self.volume += p.qty
        self.quote += p.qty * p.price
        while self._highs and self._highs[-1].high <= p.high:
            self._highs.pop()
        self._highs.append(p)
        while self._lows and self._lows[-1].low >= p.low:
            self._lows.pop()
        self._lows.append(p)
        self._evict(p.time - DAY_MS)

    def _evict(self, since: int) -> None:
        while self.prints and self.prints[0].time < since:
            old = self.prints.popleft()
            self.volume -= old.qty
            self.quote -= old.qty * old.price
            self.before = old.price
            if self._highs[0] is old:
                self._highs.popleft()
            if self._lows[0] is old:
                self._lows.popleft()

    @property
    def high(self) -> Decimal:
        return self._highs[0].high

    @property
    def low(self) -> Decimal:
        return self._lows[0].low


class _SymbolTape:
    """What the market streams of one symbol show: its prints, candles, day and book top."""

    def __init__(self, market: Market) -> None:
        self.market = market
        self.last: _Print | None = None
        self.update_id = 0
        self.liquidity = ZERO
        self.day = _RollingDay()
        self.candles: dict[str, _Candle] = {}

    def add(self, time_ms: int, open: Decimal, high: Decimal, low: Decimal, close: Decimal,
            volume: Decimal, liquidity: Decimal) -> _Print:
        previous = self.last.price if self.last is not None else close
        p = _Print((self.last.trade_id if self.last else 0) + 1, time_ms, close, volume,
                   max(high, open, close), min(low, open, close), close < previous, open)
        self.last, self.update_id = p, self.update_id + 1
        step = self.market.step_size
        self.liquidity = (liquidity / step).to_integral_value(ROUND_DOWN) * step if step > 0 \
            else liquidity
        self.day.add(p)
        return p

    def roll_candle(self, interval: str, p: _Print) -> tuple[_Candle | None, _Candle]:
        """Add ``p`` to the ``interval`` candle; the candle it closed (when ``p`` opens the
        next one), and the one it is in."""
        start, end = kline_window(interval, p.time)
        candle = self.candles.get(interval)
        closed = candle if candle is not None and candle.open_time != start else None
        if candle is None or closed is not None:
            candle = _Candle(start, end, p.trade_id, p.open, p.high, p.low)
            self.candles[interval] = candle
        candle.add(p)
        return closed, candle

    def book(self) -> tuple[Decimal, Decimal]:
        """Best bid and ask: one tick each side of the last price."""
        assert self.last is not None
        tick = self.market.tick_size
        return max(tick, self.last.price - tick), self.last.price + tick


def _trade_event(now: int, symbol: str, p: _Print) -> Payload:
    return {"e": "trade", "E": now, "s": symbol, "t": p.trade_id, "p": _s(p.price),
            "q": _s(p.qty), "T": p.time, "m": p.buyer_maker, "M": True}


def _book_ticker(tape: _SymbolTape) -> Payload:
    bid, ask = tape.book()
    return {"u": tape.update_id, "s": tape.market.symbol, "b": _s(bid),
            "B": _s(tape.liquidity), "a": _s(ask), "A": _s(tape.liquidity)}


def _kline_event(now: int, symbol: str, interval: str, c: _Candle, closed: bool) -> Payload:
    return {"e": "kline", "E": now, "s": symbol, "k": {
        "t": c.open_time, "T": c.close_time, "s": symbol, "i": interval, "f": c.first_id,
        "L": c.last_id, "o": _s(c.open), "c": _s(c.close), "h": _s(c.high), "l": _s(c.low),
        "v": _s(c.volume), "n": c.count, "x": closed, "q": _s(c.quote),
        "V": _s(c.taker_buy_volume), "Q": _s(c.taker_buy_quote), "B": "0"}}


def _mini_ticker(now: int, tape: _SymbolTape) -> Payload:
    day, last = tape.day, tape.last
    assert last is not None
    return {"e": "24hrMiniTicker", "E": now, "s": tape.market.symbol, "c": _s(last.price),
            "o": _s(day.prints[0].price), "h": _s(day.high), "l": _s(day.low),
            "v": _s(day.volume), "q": _s(day.quote)}


def _ticker(now: int, tape: _SymbolTape) -> Payload:
    day, last = tape.day, tape.last
    assert last is not None
    first = day.prints[0]
    change = last.price - first.price
    bid, ask = tape.book()
    return {"e": "24hrTicker", "E": now, "s": tape.market.symbol, "p": _s(change),
            "P": f"{change / first.price * 100:.3f}",
            "w": _s(day.quote / day.volume if day.volume else last.price),
            "x": _s(day.before if day.before is not None else first.price),
            "c": _s(last.price), "Q": _s(last.qty), "b": _s(bid), "B": _s(tape.liquidity),
            "a": _s(ask), "A": _s(tape.liquidity), "o": _s(first.price), "h": _s(day.high),
            "l": _s(day.low), "v": _s(day.volume), "q": _s(day.quote), "O": now - DAY_MS,
            "C": now, "F": first.trade_id, "L": last.trade_id, "n": len(day.prints)}


# -- user data events ---------------------------------------------------------------------------
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


# -- connections --------------------------------------------------------------------------------
class _Connection:
    """One client's WebSocket: what it listens to, and the frames waiting to go to it."""

    def __init__(self, websocket: WebSocket, limits: WsLimits, *, combined: bool) -> None:
        self.websocket = websocket
        self.address = websocket.client.host if websocket.client else "?"
        self.combined = combined
        self.streams: dict[str, None] = {}  # in subscription order
        self.subscriptions: dict[int, str] = {}  # subscriptionId -> account
        self.next_subscription = 0
        self.ended = anyio.Event()
        self.close_code: int | None = None  # None: end without a close frame
        self._out: MemoryObjectSendStream[str]
        self._in: MemoryObjectReceiveStream[str]
        self._out, self._in = anyio.create_memory_object_stream[str](limits.outbox)
        self._second = -1
        self._messages = 0

    def push(self, frame: str) -> None:
        """Queue a frame; a client too slow to take its frames is dropped."""
        if self.ended.is_set():
            return
        try:
            self._out.send_nowait(frame)
        except anyio.WouldBlock:
            self.end(None)

    def push_stream(self, stream: str, payload: Payload) -> None:
        self.push(_json({"stream": stream, "data": payload} if self.combined else payload))

    def end(self, close_code: int | None) -> None:
        if not self.ended.is_set():
            self.close_code = close_code
            self.ended.set()

    def close(self) -> None:
        """Ended and forgotten: its queue goes."""
        self.end(None)
        self._out.close()
        self._in.close()

    def admit(self, now_ms: int, per_second: int) -> bool:
        """Count an incoming message; whether it is within the per-second limit."""
        second = now_ms // 1000
        if second != self._second:
            self._second, self._messages = second, 0
        self._messages += 1
        return self._messages <= per_second

    async def write(self) -> None:
        async for frame in self._in:
            try:
                await self.websocket.send_text(frame)
            except (WebSocketDisconnect, RuntimeError):  # closed under us
                self.end(None)
                return


class _ApiError(Exception):
    def __init__(self, status: int, code: int, msg: str) -> None:
        super().__init__(f"{code}: {msg}")
        self.status, self.code, self.msg = status, code, msg


class _StreamError(Exception):
    def __init__(self, code: int, msg: str) -> None:
        super().__init__(f"{code}: {msg}")
        self.code, self.msg = code, msg


# -- the front ----------------------------------------------------------------------------------
class BinanceWs:
    """The WebSocket endpoints over one exchange; ``keys``: API key -> (account, secret), as
    for :class:`~lts.venue.binance_rest.BinanceRest`. It registers itself with the exchange's
    listeners and the faults' drop listeners; :attr:`routes` go on the venue's Starlette app."""

    def __init__(self, exchange: Exchange, keys: dict[str, tuple[str, str]], *,
                 faults: Faults | None = None, limits: WsLimits | None = None,
                 clock: Callable[[], int] | None = None) -> None:
        self.exchange = exchange
        self.keys = keys
        self.faults = faults if faults is not None else Faults()
        self.limits = limits or WsLimits()
        self.clock = clock or exchange.clock
        self._weights = _MinuteWeights(self.clock)
        self._connections: set[_Connection] = set()
        self._streams: dict[str, set[_Connection]] = {}
        self._users: dict[str, dict[_Connection, int]] = {}  # account -> subscriptionId
        self._tapes = {s: _SymbolTape(m) for s, m in exchange.markets.items()}
        self._execution_id = 0
        exchange.listeners.append(self._on_report)
        self.faults.ws_drop_listeners.append(self.drop_all)
        self.routes: list[BaseRoute] = [
            WebSocketRoute("/ws", self._raw_streams),
            WebSocketRoute("/ws/{stream:path}", self._raw_streams),
            WebSocketRoute("/stream", self._combined_streams),
            WebSocketRoute("/ws-api/v3", self._api)]

    # -- what the venue tells it ----------------------------------------------------------------
    def on_bar(self, symbol: str, *, high: Decimal, low: Decimal, close: Decimal,
               volume: Decimal, open: Decimal | None = None) -> None:
        """A bar traded on the exchange (after :meth:`Exchange.on_bar`): print it on the
        symbol's streams. ``open``, if given, opens the candles the bar opens (else its
        close does)."""
        tape = self._tapes[symbol]
        now = self.clock()
        p = tape.add(now, open if open is not None else close, high, low, close, volume,
                     volume * self.exchange.participation)
        name = symbol.lower()
        self._publish(f"{name}@trade", lambda: _trade_event(now, symbol, p))
        self._publish(f"{name}@bookTicker", lambda: _book_ticker(tape))
        self._publish(f"{name}@ticker", lambda: _ticker(now, tape))
        self._publish(f"{name}@miniTicker", lambda: _mini_ticker(now, tape))
        for interval in KLINE_INTERVALS:
            closed, candle = tape.roll_candle(interval, p)
            stream = f"{name}@kline_{interval}"
            if closed is not None:
                self._publish(stream, partial(_kline_event, now, symbol, interval, closed, True))
            self._publish(stream, partial(_kline_event, now, symbol, interval, candle, False))

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
            frame = _json({"subscriptionId": subscription, "event": event})
            for _ in range(times):
                conn.push(frame)

    def drop_all(self) -> None:
        """End every connection now, without a close frame (a fault: clients see a drop)."""
        for conn in list(self._connections):
            conn.end(None)

    # -- what it can be asked -------------------------------------------------------------------
    def subscribers(self, stream: str) -> int:
        """How many connections listen to market stream ``stream``."""
        return len(self._streams.get(stream, ()))

    def user_subscriptions(self, account: str) -> int:
        """How many connections have a user data subscription for ``account``."""
        return len(self._users.get(account, ()))

    @property
    def connections(self) -> int:
        return len(self._connections)

    # -- connections ----------------------------------------------------------------------------
    def _publish(self, stream: str, payload: Callable[[], Payload]) -> None:
        listeners = self._streams.get(stream)
        if listeners:
            built = payload()
            for conn in list(listeners):
                conn.push_stream(stream, built)

    async def _raw_streams(self, websocket: WebSocket) -> None:
        path_stream = websocket.path_params.get("stream")
        await self._serve(websocket, combined=False, on_text=self._stream_request,
                          streams=[path_stream] if path_stream else [])

    async def _combined_streams(self, websocket: WebSocket) -> None:
        streams = websocket.query_params.get("streams", "")
        await self._serve(websocket, combined=True, on_text=self._stream_request,
                          streams=[s for s in streams.split("/") if s])

    async def _api(self, websocket: WebSocket) -> None:
        await self._serve(websocket, combined=False, on_text=self._api_request, streams=[])

    async def _serve(self, websocket: WebSocket, *, combined: bool,
                     on_text: Callable[[_Connection, str], None], streams: list[str]) -> None:
        if len(self._connections) >= self.limits.max_connections:
            await self._refuse(websocket)
            return
        await websocket.accept()
        conn = _Connection(websocket, self.limits, combined=combined)
        self._connections.add(conn)
        try:
            for stream in streams[:self.limits.max_streams]:
                if _is_stream(stream, self.exchange.markets):  # not one (ccxt's /ws/0): ignored
                    self._listen(conn, stream)
            await self._run(conn, on_text)
        finally:
            self._forget(conn)
        if conn.close_code is not None:
            with contextlib.suppress(WebSocketDisconnect, RuntimeError):
                await websocket.close(conn.close_code)

    @staticmethod
    async def _refuse(websocket: WebSocket) -> None:
        if "websocket.http.response" in websocket.scope.get("extensions", {}):
            await websocket.send_denial_response(
                PlainTextResponse("Too many connections.", status_code=429))
        else:
            await websocket.close(1013)

    async def _run(self, conn: _Connection, on_text: Callable[[_Connection, str], None]) -> None:
        async with anyio.create_task_group() as tg:
            tg.start_soon(conn.write)
            tg.start_soon(self._read, conn, on_text)
            with anyio.move_on_after(self.limits.lifetime_s):
                await conn.ended.wait()
            conn.end(1000)  # its 24 hours are over (no-op if it ended otherwise)
            tg.cancel_scope.cancel()

    async def _read(self, conn: _Connection, on_text: Callable[[_Connection, str], None]) -> None:
        while True:
            message = await conn.websocket.receive()
            if message["type"] == "websocket.disconnect":
                conn.end(None)
                return
            text = message.get("text")
            if text is None:
                text = (message.get("bytes") or b"").decode("utf-8", "replace")
            on_text(conn, text)

    def _forget(self, conn: _Connection) -> None:
        conn.close()
        self._connections.discard(conn)
        for stream in conn.streams:
            self._unlisten(conn, stream)
        for account in conn.subscriptions.values():
            self._users.get(account, {}).pop(conn, None)

    def _listen(self, conn: _Connection, stream: str) -> None:
        conn.streams[stream] = None
        self._streams.setdefault(stream, set()).add(conn)

    def _unlisten(self, conn: _Connection, stream: str) -> None:
        listeners = self._streams.get(stream)
        if listeners is not None:
            listeners.discard(conn)
            if not listeners:
                del self._streams[stream]

    # -- market streams: SUBSCRIBE and friends --------------------------------------------------
    def _stream_request(self, conn: _Connection, text: str) -> None:
        if not conn.admit(self.clock(), self.limits.max_messages_per_second):
            conn.end(1008)  # Binance disconnects a connection over 5 messages a second
            return
        request_id: Any = None
        try:
            try:
                request = json.loads(text)
            except json.JSONDecodeError as exc:
                raise _StreamError(3, f"Invalid JSON: {exc.msg} at line {exc.lineno} column "
                                   f"{exc.colno}") from None
            if not isinstance(request, dict):
                raise _StreamError(2, "Invalid request: expected a JSON object")
            request_id = request.get("id")
            result = self._stream_method(conn, request)
        except _StreamError as err:
            conn.push(_json({"error": {"code": err.code, "msg": err.msg}, "id": request_id}))
            return
        conn.push(_json({"result": result, "id": request_id}))

    def _stream_method(self, conn: _Connection, request: dict[str, Any]) -> Any:
        request_id, method = request.get("id"), request.get("method")
        if request_id is not None and not (
                (isinstance(request_id, int) and not isinstance(request_id, bool))
                or (isinstance(request_id, str) and request_id.isalnum()
                    and len(request_id) <= 36)):
            raise _StreamError(2, "Invalid request: request ID must be an unsigned integer")
        if method is None:
            raise _StreamError(2, "Invalid request: missing field `method`")
        if method not in STREAM_METHODS:
            raise _StreamError(2, f"Invalid request: unknown variant `{method}`, expected one "
                               "of `SUBSCRIBE`, `UNSUBSCRIBE`, `LIST_SUBSCRIPTIONS`, "
                               "`SET_PROPERTY`, `GET_PROPERTY`")
        params = request.get("params", [])
        if not isinstance(params, list):
            raise _StreamError(2, "Invalid request: params must be an array")
        if method == "LIST_SUBSCRIPTIONS":
            return list(conn.streams)
        if method in ("SET_PROPERTY", "GET_PROPERTY"):
            return self._property(conn, method, params)
        if not all(isinstance(p, str) and _is_stream(p, self.exchange.markets) for p in params):
            raise _StreamError(2, "Invalid request: invalid stream")
        if method == "SUBSCRIBE":
            if len(set(conn.streams) | set(params)) > self.limits.max_streams:
                raise _StreamError(2, f"Invalid request: too many streams (at most "
                                   f"{self.limits.max_streams} per connection)")
            for stream in params:
                self._listen(conn, stream)
        else:
            for stream in params:
                conn.streams.pop(stream, None)
                self._unlisten(conn, stream)
        return None

    @staticmethod
    def _property(conn: _Connection, method: str, params: list[Any]) -> Any:
        if not params or not isinstance(params[0], str):
            raise _StreamError(2, "Invalid request: property name must be a string")
        if params[0] != "combined":
            raise _StreamError(0, "Unknown property")
        if method == "GET_PROPERTY":
            return conn.combined
        if len(params) != 2 or not isinstance(params[1], bool):
            raise _StreamError(1, "Invalid value type: expected Boolean")
        conn.combined = params[1]
        return None

    # -- the WebSocket API ----------------------------------------------------------------------
    _WEIGHTS = {"userDataStream.subscribe.signature": 2, "userDataStream.unsubscribe": 2,
                "session.subscriptions": 2, "ping": 1, "time": 1}

    def _api_request(self, conn: _Connection, text: str) -> None:
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
            weight = self._WEIGHTS.get(method, 1)
            params = request.get("params") or {}
            if not isinstance(params, dict):
                raise _ApiError(400, MANDATORY_PARAM, "Field 'params' was empty or malformed.")
            result = self._api_method(conn, method, params, weight)
        except _ApiError as err:
            conn.push(_json({"id": request_id, "status": err.status,
                             "error": {"code": err.code, "msg": err.msg},
                             "rateLimits": self._rate_limits(conn)}))
            return
        conn.push(_json({"id": request_id, "status": 200, "result": result,
                         "rateLimits": self._rate_limits(conn)}))

    def _api_method(self, conn: _Connection, method: str, params: dict[str, Any],
                    weight: int) -> Any:
        limit = WEIGHT_LIMIT
        if self._weights.add(conn.address, weight) > limit:
            raise _ApiError(429, TOO_MANY_REQUESTS, f"Too much request weight used; current "
                            f"limit is {limit} request weight per 1 MINUTE. Please use "
                            "WebSocket Streams for live updates to avoid polling the API.")
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

    def _rate_limits(self, conn: _Connection) -> list[Payload]:
        return [{"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1,
                 "limit": WEIGHT_LIMIT, "count": self._weights.add(conn.address, 0)}]

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

    def _subscribe(self, conn: _Connection, account: str) -> int:
        if account in conn.subscriptions.values():
            raise _ApiError(400, SUBSCRIPTION_ACTIVE, "User Data Stream subscription already "
                            "active.")
        if len(conn.subscriptions) >= self.limits.max_subscriptions \
                or conn.next_subscription >= MAX_SUBSCRIPTION_IDS_LIFETIME:
            raise _ApiError(400, MAX_SUBSCRIPTION_IDS, "Maximum subscription ID reached for "
                            "this connection.")
        subscription = conn.next_subscription
        conn.next_subscription += 1
        conn.subscriptions[subscription] = account
        self._users.setdefault(account, {})[conn] = subscription
        return subscription

    def _unsubscribe(self, conn: _Connection, subscription: Any) -> None:
        """Close one subscription (or all of the connection's): each gets its
        ``eventStreamTerminated``."""
        if subscription is not None and subscription not in conn.subscriptions:
            raise _ApiError(400, SUBSCRIPTION_INACTIVE, "User Data Stream subscription not "
                            "active.")
        ids = [subscription] if subscription is not None else list(conn.subscriptions)
        for sid in ids:
            account = conn.subscriptions.pop(sid)
            self._users.get(account, {}).pop(conn, None)
            conn.push(_json({"subscriptionId": sid, "event": {
                "e": "eventStreamTerminated", "E": self.clock()}}))


def _param_text(value: Any) -> str:
    """A WebSocket API parameter as it appears in the signature payload."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _is_stream(name: str, markets: Mapping[str, Market]) -> bool:
    symbol, sep, kind = name.partition("@")
    return bool(sep) and symbol == symbol.lower() and symbol.upper() in markets \
        and kind in _SYMBOL_STREAMS
