"""The local exchange's market streams: Binance spot's ``/ws``, ``/ws/<streamName>`` and
``/stream``, as ccxt.pro (and Binance's own documentation) speak them.

Where it sits: part of the WebSocket front (:class:`~lts.venue.binance_ws.BinanceWs`, which gives
it the venue's connections), reading the venue's :class:`~lts.venue.tape.Tape`, the same one the
REST front answers ``klines`` and ``ticker/24hr`` from: it hears each print from the tape (a
listener), then reads the candles and the rolling day the print changed, formats each once and
queues it to the connections that listen to its stream.

Streams, per symbol (lowercase): ``@trade`` (each bar is one print at its close with its volume),
``@bookTicker`` (one tick each side of the last price, the bar's liquidity on each),
``@kline_<interval>`` (Binance's intervals, ``1s`` to ``1M``: the tape's candles; ``x`` is true on
the last update of a candle, sent when the first print of the next one arrives), ``@ticker`` and
``@miniTicker`` (the tape's rolling 24 hours). ``/stream?streams=<a>/<b>``: combined streams
(``{"stream", "data"}``). ``SUBSCRIBE``, ``UNSUBSCRIBE``, ``LIST_SUBSCRIPTIONS``,
``SET_PROPERTY``/``GET_PROPERTY`` (``combined``), with Binance's error codes; 5 incoming messages
a second per connection (the sixth disconnects it) and 1,024 streams on it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from decimal import ROUND_DOWN, Decimal
from functools import partial
from typing import Any

from starlette.routing import BaseRoute, WebSocketRoute
from starlette.websockets import WebSocket

from lts.venue.binance_rest import _s
from lts.venue.exchange import Exchange, Market
from lts.venue.tape import DAY_MS, INTERVALS, Candle, Print, Tape, Window
from lts.venue.ws_connections import Connection, Connections, Payload, to_json

STREAM_METHODS = ("SUBSCRIBE", "UNSUBSCRIBE", "LIST_SUBSCRIPTIONS", "SET_PROPERTY",
                  "GET_PROPERTY")
_SYMBOL_STREAMS = frozenset({"trade", "bookTicker", "ticker", "miniTicker",
                             *(f"kline_{i}" for i in INTERVALS)})


class _StreamError(Exception):
    def __init__(self, code: int, msg: str) -> None:
        super().__init__(f"{code}: {msg}")
        self.code, self.msg = code, msg


class MarketStreams:
    """The market streams of one exchange's symbols, from ``tape`` (it registers itself with
    the tape's listeners); :attr:`routes` go on the venue's Starlette app."""

    def __init__(self, exchange: Exchange, tape: Tape, connections: Connections,
                 clock: Callable[[], int]) -> None:
        self.exchange = exchange
        self.tape = tape
        self.clock = clock
        self._connections = connections
        self._streams: dict[str, set[Connection]] = {}
        tape.listeners.append(self._on_print)
        self.routes: list[BaseRoute] = [
            WebSocketRoute("/ws", self._raw_streams),
            WebSocketRoute("/ws/{stream:path}", self._raw_streams),
            WebSocketRoute("/stream", self._combined_streams)]

    def subscribers(self, stream: str) -> int:
        """How many connections listen to ``stream``."""
        return len(self._streams.get(stream, ()))

    # -- what the tape tells it -----------------------------------------------------------------
    def _on_print(self, symbol: str, p: Print) -> None:
        """A bar traded: print it on the symbol's streams."""
        market = self.exchange.markets[symbol]
        now = self.clock()
        liquidity = _liquidity(market, p.qty * self.exchange.participation)
        name = symbol.lower()
        self._publish(f"{name}@trade", lambda: _trade_event(now, symbol, p))
        self._publish(f"{name}@bookTicker", lambda: _book_ticker(market, p, liquidity))
        day: list[Window | None] = []  # read once, if a ticker stream asks

        def window() -> Window | None:
            if not day:
                day.append(self.tape.window(symbol, now))
            return day[0]

        self._publish(f"{name}@ticker", lambda: _ticker(now, market, p, liquidity, window()))
        self._publish(f"{name}@miniTicker", lambda: _mini_ticker(now, symbol, p, window()))
        for interval in INTERVALS:
            stream = f"{name}@kline_{interval}"
            if not self._streams.get(stream):
                continue
            *before, candle = self.tape.latest(symbol, interval, 2)
            if before and candle.first_id == p.trade_id:  # p opened it: the one before closed
                self._publish(stream, partial(_kline_event, now, symbol, interval, before[0],
                                              True))
            self._publish(stream, partial(_kline_event, now, symbol, interval, candle, False))

    def _publish(self, stream: str, payload: Callable[[], Payload | None]) -> None:
        listeners = self._streams.get(stream)
        if listeners:
            built = payload()
            if built is None:
                return
            for conn in list(listeners):
                conn.push_stream(stream, built)

    # -- connections ----------------------------------------------------------------------------
    async def _raw_streams(self, websocket: WebSocket) -> None:
        path_stream = websocket.path_params.get("stream")
        await self._serve(websocket, False, [path_stream] if path_stream else [])

    async def _combined_streams(self, websocket: WebSocket) -> None:
        streams = websocket.query_params.get("streams", "")
        await self._serve(websocket, True, [s for s in streams.split("/") if s])

    async def _serve(self, websocket: WebSocket, combined: bool, streams: list[str]) -> None:
        def on_open(conn: Connection) -> None:
            for stream in streams[:self._connections.limits.max_streams]:
                if _is_stream(stream, self.exchange.markets):  # not one (ccxt's /ws/0): ignored
                    self._listen(conn, stream)

        await self._connections.serve(websocket, combined=combined, on_text=self._request,
                                      on_open=on_open, on_close=self._forget)

    def _forget(self, conn: Connection) -> None:
        for stream in conn.streams:
            self._unlisten(conn, stream)

    def _listen(self, conn: Connection, stream: str) -> None:
        conn.streams[stream] = None
        self._streams.setdefault(stream, set()).add(conn)

    def _unlisten(self, conn: Connection, stream: str) -> None:
        listeners = self._streams.get(stream)
        if listeners is not None:
            listeners.discard(conn)
            if not listeners:
                del self._streams[stream]

    # -- SUBSCRIBE and friends ------------------------------------------------------------------
    def _request(self, conn: Connection, text: str) -> None:
        limits = self._connections.limits
        if not conn.admit(self.clock(), limits.max_messages_per_second):
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
            result = self._method(conn, request)
        except _StreamError as err:
            conn.push(to_json({"error": {"code": err.code, "msg": err.msg}, "id": request_id}))
            return
        conn.push(to_json({"result": result, "id": request_id}))

    def _method(self, conn: Connection, request: dict[str, Any]) -> Any:
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
            most = self._connections.limits.max_streams
            if len(set(conn.streams) | set(params)) > most:
                raise _StreamError(2, f"Invalid request: too many streams (at most {most} per "
                                   "connection)")
            for stream in params:
                self._listen(conn, stream)
        else:
            for stream in params:
                conn.streams.pop(stream, None)
                self._unlisten(conn, stream)
        return None

    @staticmethod
    def _property(conn: Connection, method: str, params: list[Any]) -> Any:
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


def _is_stream(name: str, markets: Mapping[str, Market]) -> bool:
    symbol, sep, kind = name.partition("@")
    return bool(sep) and symbol == symbol.lower() and symbol.upper() in markets \
        and kind in _SYMBOL_STREAMS


# -- the events -----------------------------------------------------------------------------------
def _liquidity(market: Market, qty: Decimal) -> Decimal:
    """What a market order may take at the last price, on the market's step."""
    step = market.step_size
    return (qty / step).to_integral_value(ROUND_DOWN) * step if step > 0 else qty


def _book(market: Market, p: Print) -> tuple[Decimal, Decimal]:
    """Best bid and ask: one tick each side of the last price."""
    tick = market.tick_size
    return max(tick, p.price - tick), p.price + tick


def _trade_event(now: int, symbol: str, p: Print) -> Payload:
    return {"e": "trade", "E": now, "s": symbol, "t": p.trade_id, "p": _s(p.price),
            "q": _s(p.qty), "T": p.time, "m": p.buyer_maker, "M": True}


def _book_ticker(market: Market, p: Print, liquidity: Decimal) -> Payload:
    bid, ask = _book(market, p)
    return {"u": p.trade_id, "s": market.symbol, "b": _s(bid), "B": _s(liquidity),
            "a": _s(ask), "A": _s(liquidity)}


def _kline_event(now: int, symbol: str, interval: str, c: Candle, closed: bool) -> Payload:
    """A candle as the kline stream sends it: the REST front's ``klines`` row, in Binance's
    fields (taker buy volumes 0, as there)."""
    return {"e": "kline", "E": now, "s": symbol, "k": {
        "t": c.open_time, "T": c.close_time, "s": symbol, "i": interval, "f": c.first_id,
        "L": c.last_id, "o": _s(c.open), "c": _s(c.close), "h": _s(c.high), "l": _s(c.low),
        "v": _s(c.volume), "n": c.count, "x": closed, "q": _s(c.quote_volume),
        "V": _s(Decimal(0)), "Q": _s(Decimal(0)), "B": "0"}}


def _mini_ticker(now: int, symbol: str, p: Print, day: Window | None) -> Payload | None:
    if day is None:
        return None
    return {"e": "24hrMiniTicker", "E": now, "s": symbol, "c": _s(p.price), "o": _s(day.open),
            "h": _s(day.high), "l": _s(day.low), "v": _s(day.volume),
            "q": _s(day.quote_volume)}


def _ticker(now: int, market: Market, p: Print, liquidity: Decimal,
            day: Window | None) -> Payload | None:
    if day is None:
        return None
    change = p.price - day.open
    bid, ask = _book(market, p)
    return {"e": "24hrTicker", "E": now, "s": market.symbol, "p": _s(change),
            "P": f"{change / day.open * 100 if day.open else Decimal(0):.3f}",
            "w": _s(day.quote_volume / day.volume if day.volume else p.price),
            "x": _s(day.previous_close if day.previous_close is not None else day.open),
            "c": _s(p.price), "Q": _s(p.qty), "b": _s(bid), "B": _s(liquidity), "a": _s(ask),
            "A": _s(liquidity), "o": _s(day.open), "h": _s(day.high), "l": _s(day.low),
            "v": _s(day.volume), "q": _s(day.quote_volume), "O": now - DAY_MS, "C": now,
            "F": day.first_id, "L": day.last_id, "n": day.count}
