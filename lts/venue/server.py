"""The local exchange as a process: markets fed by LTS's synthetic pipeline, the Binance REST
front served by uvicorn on 127.0.0.1.

Where it sits: under ``python -m lts.engine venue`` (:mod:`lts.engine.venue_command`). One
:class:`~lts.venue.exchange.Exchange`, one account (the key and secret given, or the defaults),
one feed task per symbol turning the pipeline's bars into the exchange's tape (prices on the
symbol's tick grid), the REST front; it runs until cancelled (Ctrl-C).
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import ROUND_HALF_EVEN, Decimal

import anyio
import uvicorn

from lts.errors import ConfigError
from lts.plugins.pipeline.synthetic import SyntheticFeed
from lts.venue.binance_rest import BinanceRest
from lts.venue.exchange import Exchange, Market

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


def market_of(unified: str) -> Market:
    """``BTC/USDT`` (ccxt's unified symbol) as the venue's market ``BTCUSDT``."""
    base, sep, quote = unified.partition("/")
    if not sep or not base.isalnum() or not quote.isalnum():
        raise ConfigError(f"--symbols: {unified!r} is not BASE/QUOTE (e.g. BTC/USDT)")
    return Market(f"{base}{quote}".upper(), base.upper(), quote.upper())


class _WallClock:
    def now_ns(self) -> int:
        return time.time_ns()


async def _tape(exchange: Exchange, market: Market, feed: SyntheticFeed, unified: str) -> None:
    """The pipeline's bars of one symbol, as the exchange's tape."""
    tick = market.tick_size

    def price(value: float) -> Decimal:
        return max(tick, Decimal(repr(value)).quantize(tick, rounding=ROUND_HALF_EVEN))

    async for batch in feed.bars(unified, _WallClock()):
        for bar in batch:
            exchange.on_bar(market.symbol, high=price(bar.high), low=price(bar.low),
                            close=price(bar.close), volume=Decimal(repr(bar.volume)))


async def serve(options: VenueOptions, *, ready: Callable[[int], None]) -> None:
    """Run the venue until cancelled; ``ready(port)`` once it listens."""
    markets = {s: market_of(s) for s in options.symbols}
    exchange = Exchange(markets.values())
    exchange.add_account(ACCOUNT, options.balances)
    rest = BinanceRest(exchange, {options.api_key: (ACCOUNT, options.api_secret)})
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listener.bind(("127.0.0.1", options.port))
    except OSError as exc:
        listener.close()
        raise ConfigError(f"the venue cannot listen on 127.0.0.1:{options.port}: "
                          f"{exc.strerror}") from None
    server = uvicorn.Server(uvicorn.Config(rest.app, log_level="warning", lifespan="off"))
    async with anyio.create_task_group() as tg:
        for unified, market in markets.items():
            feed = SyntheticFeed(seed=options.seed, interval=options.interval,
                                 start_price=options.start_price)
            tg.start_soon(_tape, exchange, market, feed, unified)
        tg.start_soon(server.serve, [listener])
        while not server.started:  # noqa: ASYNC110 - uvicorn offers no event
            await anyio.sleep(0.01)
        ready(listener.getsockname()[1])
        try:
            await anyio.sleep_forever()
        finally:
            server.should_exit = True
