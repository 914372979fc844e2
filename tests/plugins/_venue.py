"""The local exchange (lts.venue) for the ``ccxt`` plugin tests: its matching engine, its
Binance REST and WebSocket fronts on one Starlette app, served by uvicorn on a free loopback
port, wired as :func:`lts.venue.server.serve` wires them (the faults shared, the REST front told
its server so that it can cut a connection), with no feed of its own: a test trades each bar
with :meth:`Venue.bar` (on the exchange, the REST front's tape and the WebSocket front's).

The exchange, the tapes and the WebSocket front keep the time of :class:`VenueClock` (the wall
clock until a test fixes it); the REST front checks signatures against the wall clock. Every
HTTP request reaching the app is counted (:attr:`Venue.requests`: paths, in order).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from decimal import Decimal as D
from typing import Any

import anyio
import uvicorn
from starlette.applications import Starlette
from starlette.routing import Mount
from starlette.types import ASGIApp, Receive, Scope, Send

from lts.venue.binance_rest import BinanceRest
from lts.venue.binance_ws import PING_INTERVAL_S, PONG_TIMEOUT_S, BinanceWs
from lts.venue.exchange import Exchange, Market
from lts.venue.faults import Faults
from lts.venue.tape import Tape

KEY, SECRET = "local-key-0123", "local-secret-s3cr3t-value"
ACCOUNT = "acct"
SYMBOL, MARKET = "BTC/USDT", "BTCUSDT"
DEADLINE = 4.0  # seconds any one wait of a test may take


def wall_ms() -> int:
    return time.time_ns() // 1_000_000


class VenueClock:
    """The venue's time (ms): the wall clock, or the time a test fixed."""

    def __init__(self) -> None:
        self.fixed: int | None = None

    def __call__(self) -> int:
        return self.fixed if self.fixed is not None else wall_ms()


class _Counting:
    """The app, counting the HTTP requests that reach it."""

    def __init__(self, app: ASGIApp, requests: list[str]) -> None:
        self.app, self.requests = app, requests

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            self.requests.append(str(scope["path"]))
        await self.app(scope, receive, send)


@dataclass
class Venue:
    exchange: Exchange
    rest: BinanceRest
    ws: BinanceWs
    faults: Faults
    tape: Tape
    clock: VenueClock
    ws_keys: dict[str, tuple[str, str]]  # the user data stream's (a test may change them)
    port: int = 0
    requests: list[str] = field(default_factory=list)

    @property
    def urls(self) -> dict[str, Any]:
        """The ``urls`` param of the ``ccxt`` plugins for this venue (REST and WebSockets)."""
        base = f"127.0.0.1:{self.port}"
        return {"public": f"http://{base}/api/v3", "private": f"http://{base}/api/v3",
                "ws": {"spot": f"ws://{base}/ws", "ws-api": {"spot": f"ws://{base}/ws-api/v3"}}}

    def api_requests(self) -> int:
        return sum(1 for path in self.requests if path.startswith("/api/v3/"))

    def bar(self, close: str, *, low: str | None = None, high: str | None = None,
            volume: str = "100", open: str | None = None, at: int | None = None) -> None:
        """A bar trades (at venue time ``at``, if given): the exchange fills from it, the REST
        front's tape takes it into its candles, the WebSocket front (its own tape) prints it."""
        if at is not None:
            self.clock.fixed = at
        c = D(close)
        h, lo, o, v = D(high or close), D(low or close), D(open or close), D(volume)
        self.exchange.on_bar(MARKET, high=h, low=lo, close=c, volume=v)
        self.tape.add(MARKET, self.clock(), o, h, lo, c, v)
        self.ws.on_bar(MARKET, high=h, low=lo, close=c, volume=v, open=o)


@asynccontextmanager
async def serve_venue(*, balances: dict[str, D] | None = None,
                      ws_secret: str | None = None) -> AsyncIterator[Venue]:
    """The venue, listening; one account (``KEY``/``SECRET``) with ``balances`` (100,000 USDT
    and 1 BTC unless given), BTCUSDT last traded at 30,000. ``ws_secret``: the WebSocket front
    knows the key with this secret instead (a key the user data stream refuses)."""
    clock = VenueClock()
    exchange = Exchange([Market(MARKET, "BTC", "USDT")], clock=clock)
    exchange.add_account(ACCOUNT, balances if balances is not None
                         else {"USDT": D(100_000), "BTC": D(1)})
    exchange.on_bar(MARKET, high=D(30_100), low=D(29_900), close=D(30_000), volume=D(10))
    keys = {KEY: (ACCOUNT, SECRET)}
    faults, tape = Faults(), Tape([MARKET])
    rest = BinanceRest(exchange, keys, clock=wall_ms, faults=faults, tape=tape)
    ws_keys = dict(keys if ws_secret is None else {KEY: (ACCOUNT, ws_secret)})
    ws = BinanceWs(exchange, ws_keys, faults=faults)
    venue = Venue(exchange, rest, ws, faults, tape, clock, ws_keys)
    app = _Counting(Starlette(routes=[*ws.routes, Mount("", app=rest.app)]), venue.requests)
    server = uvicorn.Server(uvicorn.Config(
        app, host="127.0.0.1", port=0, log_level="warning", lifespan="off",
        ws_ping_interval=PING_INTERVAL_S, ws_ping_timeout=PONG_TIMEOUT_S))
    rest.server = server
    async with anyio.create_task_group() as tg:
        tg.start_soon(server.serve)
        with anyio.fail_after(10):
            while not server.started:  # noqa: ASYNC110 - uvicorn offers no event
                await anyio.sleep(0.01)
        venue.port = server.servers[0].sockets[0].getsockname()[1]
        try:
            yield venue
        finally:
            server.should_exit = True


async def until(condition: Callable[[], bool], seconds: float = DEADLINE) -> None:
    """Wait until ``condition`` holds (polled: the venue and ccxt offer no events for what the
    tests wait on), at most ``seconds``."""
    with anyio.fail_after(seconds):
        while not condition():  # noqa: ASYNC110
            await anyio.sleep(0.005)
