"""The WebSocket connections of the venue's Binance fronts: accepted under one limit, each with
a queue of frames and a writer task, ended on a fault.

Where it sits: under :mod:`lts.venue.binance_ws`, which keeps one :class:`Connections` for both
of its parts (the market streams, :mod:`lts.venue.binance_streams`; the WebSocket API's user data
stream, :mod:`lts.venue.binance_user_stream`), so Binance's limit on connections open at once
counts them all. A part hands :meth:`Connections.serve` the WebSocket and what to do with each
text frame; what it sends it queues with :meth:`Connection.push`. Ping and pong are uvicorn's
(:data:`PING_INTERVAL_S`, :data:`PONG_TIMEOUT_S` for its config): a ping every 20 s, a connection
whose pong does not come within a minute is closed. A client too slow to take its frames
(:attr:`WsLimits.outbox` queued) is dropped; a connection ends after its 24 hours.
:meth:`Connections.drop_all` ends every connection without a close frame: the handler returns and
uvicorn closes the socket, so clients see the connection drop.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream
from starlette.responses import PlainTextResponse
from starlette.websockets import WebSocket, WebSocketDisconnect

PING_INTERVAL_S = 20.0  # uvicorn's ws_ping_interval: Binance pings every 20 seconds
PONG_TIMEOUT_S = 60.0  # uvicorn's ws_ping_timeout: no pong within a minute, disconnected

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


def to_json(payload: Any) -> str:
    return json.dumps(payload, separators=(",", ":"))


class Connection:
    """One client's WebSocket: what it listens to, and the frames waiting to go to it."""

    def __init__(self, websocket: WebSocket, limits: WsLimits, *, combined: bool) -> None:
        self.websocket = websocket
        self.address = websocket.client.host if websocket.client else "?"
        self.combined = combined
        self.streams: dict[str, None] = {}  # market streams, in subscription order
        self.subscriptions: dict[int, str] = {}  # user data: subscriptionId -> account
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
        self.push(to_json({"stream": stream, "data": payload} if self.combined else payload))

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


class Connections:
    """The open connections of one venue's WebSocket fronts."""

    def __init__(self, limits: WsLimits) -> None:
        self.limits = limits
        self._open: set[Connection] = set()

    def __len__(self) -> int:
        return len(self._open)

    def drop_all(self) -> None:
        """End every connection now, without a close frame (a fault: clients see a drop)."""
        for conn in list(self._open):
            conn.end(None)

    async def serve(self, websocket: WebSocket, *, combined: bool,
                    on_text: Callable[[Connection, str], None],
                    on_open: Callable[[Connection], None] = lambda conn: None,
                    on_close: Callable[[Connection], None] = lambda conn: None) -> None:
        """Accept ``websocket`` (refused past the limit) and serve it until it ends: each text
        frame to ``on_text``; ``on_open`` once accepted, ``on_close`` once ended."""
        if len(self._open) >= self.limits.max_connections:
            await self._refuse(websocket)
            return
        await websocket.accept()
        conn = Connection(websocket, self.limits, combined=combined)
        self._open.add(conn)
        try:
            on_open(conn)
            await self._run(conn, on_text)
        finally:
            conn.close()
            self._open.discard(conn)
            on_close(conn)
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

    async def _run(self, conn: Connection, on_text: Callable[[Connection, str], None]) -> None:
        async with anyio.create_task_group() as tg:
            tg.start_soon(conn.write)
            tg.start_soon(self._read, conn, on_text)
            with anyio.move_on_after(self.limits.lifetime_s):
                await conn.ended.wait()
            conn.end(1000)  # its 24 hours are over (no-op if it ended otherwise)
            tg.cancel_scope.cancel()

    @staticmethod
    async def _read(conn: Connection, on_text: Callable[[Connection, str], None]) -> None:
        while True:
            message = await conn.websocket.receive()
            if message["type"] == "websocket.disconnect":
                conn.end(None)
                return
            text = message.get("text")
            if text is None:
                text = (message.get("bytes") or b"").decode("utf-8", "replace")
            on_text(conn, text)
