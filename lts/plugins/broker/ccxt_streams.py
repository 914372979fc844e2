"""The ``ccxt`` broker's link to its venue: the user data subscription, the permanent watch loops
over it and what the runner is told when the link changes.

Where it sits: inside :class:`~lts.plugins.broker.ccxt_broker.CcxtBroker`, between ccxt.pro's
``watch_*`` calls (:mod:`lts.plugins.ccxt_client`) and the broker's report sink. The broker
starts one :meth:`CcxtStreams.watch` loop per stream (``watch_orders``: status reports;
``watch_my_trades``: fills) and hands each batch to its own reader; this module owns only the
link's state.

- When a stream fails, :class:`~lts.plugins.broker.VenueDisconnected` is reported once, however
  many streams are down (the runner sends nothing until the resync); each loop retries with a
  doubling back-off (up to ``reconnect_max_s``) and, once the venue has taken the subscription
  again (:func:`subscribe`) and every stream is back, :class:`~lts.plugins.broker.VenueReconnected`
  is reported: ccxt replays nothing missed, so the runner queries its open orders and the fills
  since its last.
- A key the venue refuses then (revoked, changed) ends the loop with the same
  :class:`~lts.errors.ConfigError` as at start (:func:`key_refused`; retrying would not help).
- A ban (Binance's 418), seen on a stream or on a REST call, reports
  :class:`~lts.plugins.broker.VenueBanned` once with the venue's words (the portfolio halts);
  :meth:`CcxtStreams.banned_for` tells the broker how long no call may go out (its
  ``Retry-After``, else two minutes), and the loops wait at least that long.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import anyio

from lts.errors import ConfigError
from lts.plugins.broker import ExecutionReport, VenueBanned, VenueDisconnected, VenueReconnected
from lts.plugins.ccxt_client import CcxtClient, ErrorKind, classify

__all__ = ["CcxtStreams", "key_refused", "subscribe"]

log = logging.getLogger("lts.broker.ccxt")

_BAN_SECONDS = 120.0  # a ban without Retry-After: Binance's shortest is 2 minutes
_FIRST_BACKOFF = 0.25


def key_refused(name: str, reason: str) -> ConfigError:
    """The error that stops the portfolio when the venue refuses its key (start or reconnect)."""
    return ConfigError(f"{name}: the API key was refused ({reason})")


async def subscribe(client: CcxtClient, *, binance: bool, market_type: str,
                    timeout_s: float) -> None:
    """Until the venue has taken the user data subscription (Binance spot: its WebSocket API's
    ``userDataStream.subscribe.signature``, answered). Elsewhere ccxt subscribes in the first
    watch call, so this waits for its connection."""
    if binance:
        await client.watch("authenticate", {"type": market_type})
        return
    await client.wait_connected(timeout_s)


class CcxtStreams:
    """Which streams are down, whether the venue bans this client, and the loops that say so."""

    def __init__(self, name: str, *, report: Callable[[ExecutionReport], None],
                 now: Callable[[], int], resubscribe: Callable[[CcxtClient], Awaitable[None]],
                 reconnect_max_s: float) -> None:
        self.name = name
        self._report = report
        self._now = now
        self._resubscribe = resubscribe
        self._reconnect_max_s = reconnect_max_s
        self.down: set[str] = set()
        self.reconnects = 0
        self._banned_until = 0.0

    async def watch(self, client: CcxtClient, name: str, method: str,
                    handle: Callable[[list[Mapping[str, Any]]], None]) -> None:
        """One permanent watch loop: reconnect with back-off, report down and up."""
        backoff = _FIRST_BACKOFF
        while True:
            try:
                if name in self.down:
                    await self._resubscribe(client)
                    self._up(name)
                    backoff = _FIRST_BACKOFF
                items = await client.watch(method)
            except Exception as exc:
                kind, reason = classify(exc), client.reason(exc)
                if kind is ErrorKind.AUTH:  # revoked or changed: retrying will not help
                    self._fall(name, f"the API key was refused ({reason})")
                    raise key_refused(self.name, reason) from None
                if kind is ErrorKind.BANNED:
                    self.ban(client, reason)
                log.warning("%s: %s stream: %s", self.name, name, reason)
                self._fall(name, reason)
                await anyio.sleep(max(backoff, self.banned_for()))
                backoff = min(backoff * 2, self._reconnect_max_s)
                continue
            handle(list(items or ()))

    def ban(self, client: CcxtClient, reason: str) -> None:
        """The venue banned this client: report it once per ban, call nothing until it ends."""
        now = anyio.current_time()
        banned = self.banned_for() > 0
        self._banned_until = max(self._banned_until, now + (client.retry_after() or _BAN_SECONDS))
        if not banned:
            log.error("%s: banned by the venue: %s", self.name, reason)
            self._report(VenueBanned(self.name, self._now(), reason))

    def banned_for(self) -> float:
        """Seconds until the venue's ban ends (0: not banned)."""
        return max(0.0, self._banned_until - anyio.current_time())

    def _fall(self, name: str, reason: str) -> None:
        if not self.down:
            self._report(VenueDisconnected(self.name, self._now(), f"{name} stream: {reason}"))
        self.down.add(name)

    def _up(self, name: str) -> None:
        self.down.discard(name)
        if not self.down:
            self.reconnects += 1
            log.info("%s: streams back; resync", self.name)
            self._report(VenueReconnected(self.name, self._now()))
