"""The local Alpaca trading API on a free loopback port, for the tests that trade on it.

:func:`local_alpaca` runs :func:`lts.venue.alpaca_server.build_app` under uvicorn (the
sans-I/O WebSocket protocol) over an exchange of two stocks: ``AAPL`` (whole shares, last
trade 100.00) and ``SPY`` (fractional, no trade yet), an account of 100,000 USD.
"""

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from decimal import Decimal as D

import anyio
import uvicorn

from lts.venue.alpaca_server import AlpacaVenue, build_app, equities
from lts.venue.exchange import Exchange

KEY, SECRET = "PKLOCALTESTKEY0001", "local-test-secret-do-not-log"


@dataclass
class LocalAlpaca:
    venue: AlpacaVenue
    url: str  # the trading API's base (without /v2)

    @property
    def stream_url(self) -> str:
        return self.url.replace("http", "ws", 1) + "/stream"

    def bar(self, close: str, *, high: str | None = None, low: str | None = None,
            volume: str = "1000", symbol: str = "AAPL") -> None:
        self.venue.on_bar(symbol, high=D(high or close), low=D(low or close), close=D(close),
                          volume=D(volume))


@asynccontextmanager
async def local_alpaca() -> AsyncIterator[LocalAlpaca]:
    exchange = Exchange(equities(["AAPL", "SPY"], fractionable=["SPY"]), fee_rate=D(0),
                        participation=D("0.5"))
    venue = AlpacaVenue(exchange, {KEY: SECRET}, cash=D(100_000))
    exchange.on_bar("AAPL", high=D(100), low=D(100), close=D(100), volume=D(1000))
    server = uvicorn.Server(uvicorn.Config(build_app(venue), host="127.0.0.1", port=0,
                                           log_level="warning", lifespan="off",
                                           ws="websockets-sansio"))
    async with anyio.create_task_group() as tg:
        tg.start_soon(server.serve)
        with anyio.fail_after(10):
            while not server.started:  # noqa: ASYNC110 - uvicorn offers no event
                await anyio.sleep(0.01)
        port = server.servers[0].sockets[0].getsockname()[1]
        try:
            yield LocalAlpaca(venue, f"http://127.0.0.1:{port}")
        finally:
            venue.faults.release()
            venue.drop_streams()
            server.should_exit = True


async def until(condition: Callable[[], object], within: float = 10.0) -> None:
    """Wait until ``condition()`` holds (fails after ``within`` seconds)."""
    with anyio.fail_after(within):
        while not condition():  # noqa: ASYNC110 - a condition of another thread's making
            await anyio.sleep(0.01)
