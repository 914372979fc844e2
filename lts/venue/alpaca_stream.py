"""The local Alpaca trading API's ``/stream`` WebSocket: ``trade_updates`` as Alpaca sends them.

Where it sits: between a client (alpaca-py's ``TradingStream``, LTS's ``alpaca`` broker) and
:class:`~lts.venue.alpaca_server.AlpacaVenue`, whose trade events it forwards. The protocol is
Alpaca's: the client authenticates (``{"action": "authenticate", "data": {"key_id",
"secret_key"}}``, or the newer ``{"action": "auth", "key", "secret"}``) and is answered on the
``authorization`` stream (``unauthorized``: the socket closes); it listens
(``{"action": "listen", "data": {"streams": ["trade_updates"]}}``) and is answered on
``listening``; then each order event comes as ``{"stream": "trade_updates", "data": {"event",
"order", "timestamp", ...}}``. As Alpaca's paper and live endpoints do, every message goes out
as a binary frame of JSON text.
"""

from __future__ import annotations

import json
import math
from typing import TYPE_CHECKING, Any

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

if TYPE_CHECKING:
    from lts.venue.alpaca_server import AlpacaVenue, Event

__all__ = ["stream_route"]

AUTH_TIMEOUT = 10.0  # seconds a new connection has to authenticate
DROPPED = 1011  # the close code of a connection the venue drops on purpose


async def _send(ws: WebSocket, message: dict[str, Any]) -> None:
    await ws.send_bytes(json.dumps(message, separators=(",", ":")).encode())


def _credentials(message: dict[str, Any]) -> tuple[str | None, str | None]:
    if message.get("action") == "auth":
        return message.get("key"), message.get("secret")
    data = message.get("data")
    if message.get("action") == "authenticate" and isinstance(data, dict):
        return data.get("key_id"), data.get("secret_key")
    return None, None


async def _receive(ws: WebSocket) -> dict[str, Any]:
    """The client's next message (text or binary JSON); {} when it is not an object."""
    frame = await ws.receive()
    if frame["type"] == "websocket.disconnect":
        raise WebSocketDisconnect(frame.get("code", 1000))
    raw = frame.get("text") or frame.get("bytes") or b"{}"
    try:
        message = json.loads(raw)
    except ValueError:
        return {}
    return message if isinstance(message, dict) else {}


def stream_route(venue: AlpacaVenue) -> WebSocketRoute:
    async def forward(ws: WebSocket, updates: MemoryObjectReceiveStream[Event]) -> None:
        try:
            async for update in updates:
                await _send(ws, {"stream": "trade_updates", "data": update})
        except Exception:  # noqa: S110 - the client is gone: the receiving side ends it
            pass

    async def listen(ws: WebSocket, updates: MemoryObjectReceiveStream[Event],
                     subscribe: Any) -> None:
        """The client's requests after it authenticated; trade updates once it listens."""
        async with anyio.create_task_group() as tg:
            forwarding = False
            try:
                while True:
                    message = await _receive(ws)
                    if message.get("action") != "listen":
                        await _send(ws, {"stream": "error", "data": {
                            "error_message": "unrecognized action"}})
                        continue
                    data = message.get("data")
                    asked = data.get("streams", []) if isinstance(data, dict) else []
                    streams = [s for s in asked if s == "trade_updates"]
                    await _send(ws, {"stream": "listening", "data": {"streams": streams}})
                    if streams and not forwarding:
                        forwarding = True
                        subscribe()
                        tg.start_soon(forward, ws, updates)
            except WebSocketDisconnect:
                tg.cancel_scope.cancel()

    async def stream(ws: WebSocket) -> None:
        await ws.accept()
        try:
            with anyio.fail_after(AUTH_TIMEOUT):
                key, secret = _credentials(await _receive(ws))
        except (TimeoutError, WebSocketDisconnect):
            return
        if not venue.authorized(key, secret):
            await _send(ws, {"stream": "authorization", "data": {
                "action": "authenticate", "status": "unauthorized"}})
            await ws.close(1008)
            return
        await _send(ws, {"stream": "authorization", "data": {
            "action": "authenticate", "status": "authorized"}})
        send, updates = anyio.create_memory_object_stream[Any](math.inf)
        push = send.send_nowait
        scope = anyio.CancelScope()
        venue.stream_droppers.add(scope.cancel)
        try:
            with scope:
                await listen(ws, updates, lambda: venue.listeners.append(push))
        finally:
            venue.stream_droppers.discard(scope.cancel)
            if push in venue.listeners:
                venue.listeners.remove(push)
            send.close()
            updates.close()
        if scope.cancelled_caught:
            await ws.close(DROPPED)

    return WebSocketRoute("/stream", stream)
