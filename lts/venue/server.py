"""The local exchange as a process: markets fed by one of LTS's pipelines (synthetic, or a
replay of a bars file), the Binance REST and WebSocket fronts served by uvicorn on 127.0.0.1.

Where it sits: under ``python -m lts.engine venue`` (:mod:`lts.cli.venue_command`). One
:class:`~lts.venue.exchange.Exchange`, one account (the key and secret given, or the defaults),
one feed task per symbol trading the pipeline's bars on the exchange, then adding them to the
venue's one :class:`~lts.venue.tape.Tape` (prices on the symbol's tick grid, times the venue's);
the fronts over both: the REST front (:mod:`lts.venue.binance_rest`) reads klines and tickers
off the tape, the WebSocket front's market streams (:mod:`lts.venue.binance_ws`) hear each bar
from it. It runs until cancelled (Ctrl-C). With a state file (:mod:`lts.venue.state`) it
starts from the state saved there and saves every change. Its :class:`~lts.venue.faults.Faults`
are set from the options at start and through the admin endpoint; the ``down`` fault is served
here (:class:`_Host`: the listening socket closed, every connection cut, the port reopened).
"""

from __future__ import annotations

import socket
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path
from typing import Any

import anyio
import uvicorn
from starlette.applications import Starlette
from starlette.routing import Mount
from starlette.types import ASGIApp

from lts.domain.market import Bar
from lts.errors import ConfigError
from lts.plugins.pipeline.bars_file import load_bars
from lts.plugins.pipeline.pacer import sleep_until
from lts.plugins.pipeline.replay import ReplayFeed
from lts.plugins.pipeline.synthetic import SyntheticFeed
from lts.venue import state
from lts.venue.binance_rest import BinanceRest
from lts.venue.binance_ws import PING_INTERVAL_S, PONG_TIMEOUT_S, BinanceWs
from lts.venue.exchange import Exchange, Market
from lts.venue.faults import Faults
from lts.venue.tape import Tape

DEFAULT_PORT = 9100
DEFAULT_KEY = "lts-local-venue-key"
DEFAULT_SECRET = "lts-local-venue-secret"  # noqa: S105 - a local test venue's published default
ACCOUNT = "local"


@dataclass
class VenueOptions:
    port: int = DEFAULT_PORT
    symbols: tuple[str, ...] = ("BTC/USDT", "ETH/USDT")
    api_key: str = DEFAULT_KEY
    api_secret: str = DEFAULT_SECRET
    balances: dict[str, Decimal] = field(default_factory=lambda: {"USDT": Decimal(100_000)})
    interval: float = 1.0  # seconds between bars per symbol
    seed: int = 7
    start_price: float = 100.0
    replay: Path | None = None  # a CSV or Parquet file of bars: the replay feed; None: synthetic
    faults: dict[str, Any] = field(default_factory=dict)  # fault settings at start (NAME: value)
    state: Path | None = None  # where the venue's state is saved, and restored from at start


def market_of(unified: str) -> Market:
    """``BTC/USDT`` (ccxt's unified symbol) as the venue's market ``BTCUSDT``."""
    base, sep, quote = unified.partition("/")
    if not sep or not base.isalnum() or not quote.isalnum():
        raise ConfigError(f"--symbols: {unified!r} is not BASE/QUOTE (e.g. BTC/USDT)")
    return Market(f"{base}{quote}".upper(), base.upper(), quote.upper())


class _WallClock:
    def now_ns(self) -> int:
        return time.time_ns()


async def _tape(exchange: Exchange, tape: Tape, market: Market,
                bars: AsyncIterator[Sequence[Bar]], settle: Callable[[], None]) -> None:
    """A feed's bars of one symbol: traded on the exchange, its state settled (saved, with a
    state file), then onto the tape (whose listeners, the market streams, print them)."""
    tick = market.tick_size

    def price(value: float) -> Decimal:
        return max(tick, Decimal(repr(value)).quantize(tick, rounding=ROUND_HALF_EVEN))

    async for batch in bars:
        for bar in batch:
            high, low, close = price(bar.high), price(bar.low), price(bar.close)
            volume = Decimal(repr(bar.volume))
            opened = price(bar.open)
            exchange.on_bar(market.symbol, high=high, low=low, close=close, volume=volume)
            settle()
            tape.add(market.symbol, exchange.clock(), opened, high, low, close, volume)


async def _paced(feed: ReplayFeed, unified: str, interval: float
                 ) -> AsyncIterator[Sequence[Bar]]:
    """The replay feed's bars one every ``interval`` seconds (the file's times only order them:
    each bar trades at the venue's time); the tape stops at the file's end."""
    next_at = anyio.current_time()
    async for batch in feed.bars(unified, _WallClock()):
        for bar in batch:
            next_at += interval
            await sleep_until(next_at)
            yield (bar,)


def _feed(options: VenueOptions, unified: str,
          replayed: Sequence[Bar] | None) -> AsyncIterator[Sequence[Bar]]:
    if replayed is None:
        return SyntheticFeed(seed=options.seed, interval=options.interval,
                             start_price=options.start_price).bars(unified, _WallClock())
    return _paced(ReplayFeed(bars=replayed), unified, options.interval)


def _bind(port: int) -> socket.socket:
    # IPPROTO_TCP named: asyncio then sets TCP_NODELAY on every connection it accepts (without
    # it, each answer waited ~40 ms for the client's delayed ACK: Nagle's algorithm)
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listener.bind(("127.0.0.1", port))
    except OSError as exc:
        listener.close()
        raise ConfigError(f"the venue cannot listen on 127.0.0.1:{port}: "
                          f"{exc.strerror}") from None
    return listener


class _Host:
    """uvicorn serving the venue's app on its listening socket; the ``down`` fault takes it
    down (the socket closed: new connections refused; every open connection cut, HTTP in
    flight and WebSockets alike) and brings it back on the same port."""

    def __init__(self, app: ASGIApp, listener: socket.socket,
                 on_server: Callable[[uvicorn.Server], None],
                 config: dict[str, Any] | None = None) -> None:
        self.app = app
        self.config = config or {}  # more of uvicorn's Config (WebSocket pings, ...)
        self.port: int = listener.getsockname()[1]
        self._listener = listener
        self._on_server = on_server
        self._server: uvicorn.Server | None = None
        self._up_at = 0.0  # anyio time the venue comes back; 0: not down

    def go_down(self, seconds: float) -> None:
        self._up_at = max(self._up_at, anyio.current_time() + seconds)
        server = self._server
        if server is None:
            return  # down already: it stays down longer
        for listening in server.servers:
            listening.close()
        for connection in list(server.server_state.connections):
            connection.transport.abort()
        server.should_exit = server.force_exit = True

    async def run(self, ready: Callable[[int], None]) -> None:
        """Serve until uvicorn stops of its own accord (a signal), coming back after each
        outage; ``ready(port)`` once it first listens."""
        listener: socket.socket | None = self._listener
        announced = False
        while True:
            while listener is None:  # down: back when the outage is over
                await anyio.sleep(max(0.0, self._up_at - anyio.current_time()))
                if anyio.current_time() >= self._up_at:
                    self._up_at = 0.0
                    listener = _bind(self.port)
            server = uvicorn.Server(uvicorn.Config(self.app, log_level="warning",
                                                   lifespan="off", **self.config))
            self._server = server
            self._on_server(server)
            try:
                async with anyio.create_task_group() as tg:
                    tg.start_soon(server.serve, [listener])
                    while not server.started and not server.should_exit:  # noqa: ASYNC110
                        await anyio.sleep(0.01)  # uvicorn offers no event
                    if server.started and not announced:
                        ready(self.port)
                        announced = True
            finally:
                server.should_exit = True
                listener.close()  # the venue's own socket (uvicorn closes what it made of it)
            self._server = listener = None
            if not self._up_at:
                return


async def serve(options: VenueOptions, *, ready: Callable[[int], None]) -> None:
    """Run the venue until cancelled; ``ready(port)`` once it listens."""
    markets = {s: market_of(s) for s in options.symbols}
    exchange = Exchange(markets.values())
    exchange.add_account(ACCOUNT, options.balances)
    saver = _restored(exchange, options.state)
    replayed = await _replayed(options.replay)
    faults = Faults()
    for name, value in options.faults.items():
        faults.set(name, value)
    tape = Tape(m.symbol for m in markets.values())
    rest = BinanceRest(exchange, {options.api_key: (ACCOUNT, options.api_secret)},
                       faults=faults, tape=tape)
    ws = BinanceWs(exchange, rest.keys, faults=faults, tape=tape)
    server_config: dict[str, Any] = {  # the fronts' uvicorn settings
        "ws_ping_interval": PING_INTERVAL_S, "ws_ping_timeout": PONG_TIMEOUT_S}
    app = Starlette(routes=[*ws.routes, Mount("", app=rest.app)])

    settle = saver.flush if saver is not None else _nothing
    rest.settle = settle

    def on_server(server: uvicorn.Server) -> None:
        rest.server = server

    host = _Host(app, _bind(options.port), on_server, server_config)

    def go_down(seconds: float) -> None:
        faults.drop_websockets()  # the WebSocket front lets its connections go first
        host.go_down(seconds)

    faults.down_listeners.append(go_down)
    try:
        async with anyio.create_task_group() as tg:
            for unified, market in markets.items():
                tg.start_soon(_tape, exchange, tape, market, _feed(options, unified, replayed),
                              settle)
            if saver is not None:
                tg.start_soon(saver.run)
            await host.run(ready)
            await anyio.sleep_forever()
    finally:
        if saver is not None:
            saver.save_now()


def _nothing() -> None:
    """No state file: nothing to settle."""


def _restored(exchange: Exchange, path: Path | None) -> state.StateSaver | None:
    """The state saved at ``path`` put back into ``exchange`` (none yet: it starts fresh), and
    the saver that keeps it there; written once now, so a path it cannot write fails at start."""
    if path is None:
        return None
    saved = state.load(path)
    if saved is not None:
        state.restore(exchange, saved, f"--state {path}")
        if ACCOUNT not in exchange.accounts:
            raise ConfigError(f"--state {path}: has no account {ACCOUNT!r}")
    saver = state.StateSaver(exchange, path)
    try:
        saver.save_now()
    except OSError as exc:
        raise ConfigError(f"--state {path}: cannot write: {exc.strerror}") from None
    return saver


async def _replayed(path: Path | None) -> Sequence[Bar] | None:
    """The replay feed's bars, read before the venue listens (a bad file fails at start)."""
    if path is None:
        return None
    return await anyio.to_thread.run_sync(load_bars, path, "replay")
