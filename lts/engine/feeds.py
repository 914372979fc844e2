"""Shared market-data feeds: one task per (pipeline plugin, params, symbol), reference counted.

Every portfolio that trades a symbol on the same feed subscribes its mailbox to that feed's bus
key; the feed task starts with the first subscriber and stops with the last. A feed that ends or
fails publishes :class:`~lts.domain.market.FeedEnded` so its subscribers can react. A live
feed's history (:class:`~lts.domain.market.WarmUp`) goes to its subscribers, and the hub keeps
that much of the feed's recent bars, so that a portfolio subscribing later is warm too.
"""

import json
import logging
from collections import deque
from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import Any

import anyio
from anyio.abc import TaskGroup

from lts.bus import InProcessBus, Mailbox, Subscription
from lts.domain.clock import Clock
from lts.domain.market import Bar, FeedEnded, WarmUp
from lts.plugins.pipeline import Feed
from lts.plugins.registry import Registry

log = logging.getLogger(__name__)

FeedKey = tuple[str, str, str]


def feed_key(plugin: str, params: dict[str, Any], symbol: str) -> FeedKey:
    return (plugin, json.dumps(params, sort_keys=True, default=str), symbol)


@dataclass
class _Running:
    feed: Feed
    scope: anyio.CancelScope
    users: int = 0
    recent: deque[Bar] | None = None  # after a WarmUp: that many of the latest bars


@dataclass
class FeedLease:
    hub: "FeedHub"
    key: FeedKey
    subs: list[Subscription] = field(default_factory=list)

    def release(self) -> None:
        self.hub._release(self)


class FeedHub:
    def __init__(self, registry: Registry, bus: InProcessBus, clock: Clock,
                 task_group: TaskGroup) -> None:
        self._registry = registry
        self._bus = bus
        self._clock = clock
        self._tg = task_group
        self._running: dict[FeedKey, _Running] = {}
        self._provided: dict[FeedKey, Feed] = {}

    def provide(self, plugin: str, params: dict[str, Any], symbol: str, feed: Feed) -> None:
        """Use this instance for that key instead of building one (preloaded replay data)."""
        self._provided[feed_key(plugin, params, symbol)] = feed

    def is_historical(self, plugin: str, params: dict[str, Any], symbol: str) -> bool:
        """Whether that feed replays history (its bars must never be dropped)."""
        provided = self._provided.get(feed_key(plugin, params, symbol))
        if provided is not None:
            return provided.historical
        return bool(getattr(self._registry.get("pipeline", plugin), "historical", False))

    def make(self, plugin: str, params: dict[str, Any], symbol: str) -> Feed:
        provided = self._provided.get(feed_key(plugin, params, symbol))
        if provided is not None:
            return provided
        feed: Feed = self._registry.create("pipeline", plugin, params)
        return feed

    def acquire(self, plugin: str, params: dict[str, Any], symbol: str,
                mailbox: Mailbox[Any]) -> FeedLease:
        key = feed_key(plugin, params, symbol)
        running = self._running.get(key)
        if running is None:
            running = _Running(self.make(plugin, params, symbol), anyio.CancelScope())
        lease = FeedLease(self, key, [self._bus.subscribe(Bar, mailbox, key),
                                      self._bus.subscribe(WarmUp, mailbox, key),
                                      self._bus.subscribe(FeedEnded, mailbox, key)])
        if running.recent:  # a running feed: its recent past warms this subscriber up
            mailbox.put_nowait(WarmUp(symbol, tuple(running.recent)))
        if key not in self._running:
            self._running[key] = running
            self._tg.start_soon(self._pump, key, running, name=f"feed {key[0]} {symbol}")
        running.users += 1
        return lease

    def _release(self, lease: FeedLease) -> None:
        for sub in lease.subs:
            sub.cancel()
        lease.subs.clear()
        running = self._running.get(lease.key)
        if running is None:
            return
        running.users -= 1
        if running.users <= 0:
            del self._running[lease.key]
            running.scope.cancel()

    @property
    def active(self) -> int:
        return len(self._running)

    async def _pump(self, key: FeedKey, running: _Running) -> None:
        symbol = key[2]
        bus: Hashable = key
        with running.scope:
            try:
                async for batch in running.feed.bars(symbol, self._clock):
                    if isinstance(batch, WarmUp):
                        running.recent = deque(batch.bars, maxlen=max(1, len(batch.bars)))
                        await self._bus.publish(batch, bus)
                        continue
                    if running.recent is not None:
                        running.recent.extend(batch)
                    await self._bus.publish_batch(list(batch), bus)
            except Exception as exc:  # a feed failure is reported to its subscribers
                log.exception("feed %s for %s failed", key[0], symbol)
                reason = f"feed {key[0]} failed: {type(exc).__name__}"
                await self._bus.publish(FeedEnded(symbol, reason), bus)
            else:
                await self._bus.publish(FeedEnded(symbol), bus)
        if self._running.get(key) is running:
            del self._running[key]
