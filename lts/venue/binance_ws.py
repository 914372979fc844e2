"""The local exchange's WebSocket front: Binance spot's market streams and the WebSocket API's
user data stream, as ccxt.pro (and Binance's own documentation) speak them.

Where it sits: beside the REST front (:mod:`lts.venue.binance_rest`), on the same Starlette app
and uvicorn server, over the same :class:`~lts.venue.exchange.Exchange`, API keys,
:class:`~lts.venue.faults.Faults` and :class:`~lts.venue.tape.Tape` (the venue's feed tasks in
:mod:`lts.venue.server` trade each bar on the exchange, then add it to the tape). It is two
parts over one set of connections (:class:`~lts.venue.ws_connections.Connections`, so that
Binance's limit on connections open at once counts both):

- :class:`~lts.venue.binance_streams.MarketStreams`: ``/ws``, ``/ws/<streamName>``,
  ``/stream``; trades, book tickers, klines and tickers, from the tape (its listener).
- :class:`~lts.venue.binance_user_stream.UserDataStream`: ``/ws-api/v3``; execution and balance
  reports, from the exchange (its listener).

The ``ws_drop`` fault (:attr:`Faults.ws_drop_listeners
<lts.venue.faults.Faults.ws_drop_listeners>`) ends every connection without a close frame.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal

from starlette.routing import BaseRoute

from lts.venue.binance_streams import MarketStreams
from lts.venue.binance_user_stream import UserDataStream
from lts.venue.exchange import Exchange
from lts.venue.faults import Faults
from lts.venue.tape import Tape
from lts.venue.ws_connections import PING_INTERVAL_S, PONG_TIMEOUT_S, Connections, WsLimits

__all__ = ["PING_INTERVAL_S", "PONG_TIMEOUT_S", "BinanceWs", "WsLimits"]


class BinanceWs:
    """The WebSocket endpoints over one exchange; ``keys``: API key -> (account, secret), as
    for :class:`~lts.venue.binance_rest.BinanceRest`; ``tape``: the venue's (one of its own
    unless given). :attr:`routes` go on the venue's Starlette app."""

    def __init__(self, exchange: Exchange, keys: dict[str, tuple[str, str]], *,
                 faults: Faults | None = None, limits: WsLimits | None = None,
                 clock: Callable[[], int] | None = None, tape: Tape | None = None) -> None:
        self.exchange = exchange
        self.faults = faults if faults is not None else Faults()
        self.limits = limits or WsLimits()
        self.clock = clock or exchange.clock
        self.tape = tape if tape is not None else Tape(exchange.markets)
        self._connections = Connections(self.limits)
        self.faults.ws_drop_listeners.append(self._connections.drop_all)
        self.streams = MarketStreams(exchange, self.tape, self._connections, self.clock)
        self.user = UserDataStream(exchange, keys, self.faults, self._connections, self.clock)
        self.routes: list[BaseRoute] = [*self.streams.routes, *self.user.routes]

    def on_bar(self, symbol: str, *, high: Decimal, low: Decimal, close: Decimal,
               volume: Decimal, open: Decimal | None = None) -> None:
        """A bar traded, for a front whose tape nothing else feeds (a test's): onto the tape at
        the front's clock (``open``, if given, opens the candles it opens, else its close
        does), which the market streams hear. Where the tape is the venue's, its feed adds the
        bar and this is not called."""
        self.tape.add(symbol, self.clock(), open if open is not None else close, high, low,
                      close, volume)

    def drop_all(self) -> None:
        """End every connection now, without a close frame (a fault: clients see a drop)."""
        self._connections.drop_all()

    def subscribers(self, stream: str) -> int:
        """How many connections listen to market stream ``stream``."""
        return self.streams.subscribers(stream)

    def user_subscriptions(self, account: str) -> int:
        """How many connections have a user data subscription for ``account``."""
        return self.user.user_subscriptions(account)

    @property
    def connections(self) -> int:
        return len(self._connections)
