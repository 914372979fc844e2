"""Shared market-data feeds: one task per (pipeline plugin, params, symbol), reference counted.

Every portfolio that trades a symbol on the same feed subscribes its mailbox to that feed's bus
key; the feed task starts with the first subscriber and stops with the last. A feed that ends or
fails publishes :class:`~lts.domain.market.FeedEnded` so its subscribers can react.

Recent bars, so a strategy is warm when it starts: a live feed's history
(:class:`~lts.domain.market.WarmUp`) goes to its subscribers, and the hub keeps as many of the
feed's latest bars as that history was long, or as its subscribers' strategies declare they
need (``acquire(history=)``), whichever is more. A portfolio that subscribes later gets them as
a WarmUp. They outlive the feed for ``keep_seconds`` after its last subscriber left (or it
ended), so a portfolio restarted by its supervisor, which was the feed's only subscriber, is
warm again on the feed it subscribes to anew; a history the new feed yields then goes out only
for bars newer than those.

Display: once a chart asks for a live feed's bars (:meth:`FeedLease.bars`: the dashboard), the
feed keeps its last :data:`SHOWN` bars from then on (never sent as a warm-up), starting with
the recent bars it keeps anyway; a feed nobody looks at keeps none (2,000 portfolios' feeds
would hold a million bars).

Silence: the hub knows when each running feed last sent market data
(:meth:`FeedLease.silent_for`), so a portfolio can tell a feed that stopped from a quiet market
(:mod:`lts.engine.feed_watch`).
"""

import json
import logging
from collections import deque
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any, cast

import anyio
from anyio.abc import TaskGroup

from lts.bus import InProcessBus, Mailbox, Subscription
from lts.domain.clock import Clock
from lts.domain.market import Bar, FeedEnded, Quote, TradeTick, WarmUp
from lts.plugins.pipeline import Feed
from lts.plugins.registry import Registry

__all__ = ["SHOWN", "FeedHub", "FeedKey", "FeedLease", "feed_key"]

#: bars a live feed keeps for the dashboard's charts
SHOWN = 500

log = logging.getLogger(__name__)

FeedKey = tuple[str, str, str]


def feed_key(plugin: str, params: dict[str, Any], symbol: str) -> FeedKey:
    return (plugin, json.dumps(params, sort_keys=True, default=str), symbol)


@dataclass
class _Running:
    feed: Feed
    scope: anyio.CancelScope
    users: int = 0
    recent: deque[Bar] | None = None  # the latest bars (after a WarmUp, or asked for)
    #: when it last sent market data (anyio.current_time(); its start until the first batch)
    last_data: float = field(default_factory=anyio.current_time)
    #: its usual seconds between batches (a moving average; None: not known yet)
    interval: float | None = None
    #: a live feed's latest bars for the charts, once asked for (None: not asked)
    shown: deque[Bar] | None = None

    def spaced(self, bars: Sequence[Bar]) -> None:
        """A history's bars tell the feed's interval before its first live bar (an hourly feed
        is not late after two minutes of waiting for its first candle)."""
        if len(bars) >= 2 and self.interval is None:
            gaps = sorted(b.ts_event - a.ts_event for a, b in pairwise(bars))
            self.interval = gaps[len(gaps) // 2] / 1e9
            self.last_data = anyio.current_time()

    def keep(self, depth: int) -> None:
        """Keep at least ``depth`` of the latest bars from now on."""
        recent = self.recent
        if depth <= 0 or (recent is not None and (recent.maxlen or 0) >= depth):
            return
        self.recent = deque(recent or (), maxlen=depth)

    def history(self, past: WarmUp) -> WarmUp | None:
        """Take a feed's history in; what of it is newer than the bars kept (None: nothing)."""
        kept = self.recent
        newest = kept[-1].ts_event if kept else None
        fresh = past.bars if newest is None else tuple(
            b for b in past.bars if b.ts_event > newest)
        depth = max(len(past.bars), 0 if kept is None else kept.maxlen or 0, 1)
        self.recent = deque(kept or (), maxlen=depth)
        self.recent.extend(fresh)
        return WarmUp(past.symbol, fresh) if fresh else None


@dataclass
class _Kept:
    bars: deque[Bar]
    until: float  # the event loop's clock


@dataclass
class FeedLease:
    hub: "FeedHub"
    key: FeedKey
    subs: list[Subscription] = field(default_factory=list)

    def release(self) -> None:
        self.hub._release(self)

    def silent_for(self, now: float) -> tuple[float, float | None] | None:
        """Seconds since the feed last sent market data, and its usual seconds between
        batches (None: not known yet); None: the feed is not running."""
        running = self.hub._running.get(self.key)
        return None if running is None else (now - running.last_data, running.interval)

    def bars(self) -> list[Bar]:
        """The feed's latest bars (at most :data:`SHOWN`; none for a historical feed). The
        first call starts keeping them."""
        running = self.hub._running.get(self.key)
        if running is None or getattr(running.feed, "historical", False):
            return []
        if running.shown is None:
            running.shown = deque(running.recent or (), maxlen=SHOWN)
        return list(running.shown)


class FeedHub:
    def __init__(self, registry: Registry, bus: InProcessBus, clock: Clock,
                 task_group: TaskGroup, keep_seconds: float = 600.0) -> None:
        self._registry = registry
        self._bus = bus
        self._clock = clock
        self._tg = task_group
        self._running: dict[FeedKey, _Running] = {}
        self._provided: dict[FeedKey, Feed] = {}
        self._keep_seconds = keep_seconds
        self._kept: dict[FeedKey, _Kept] = {}  # recent bars of feeds no longer running

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
                mailbox: Mailbox[Any], history: int = 0) -> FeedLease:
        """Subscribe ``mailbox`` to the feed (started if it is not running). ``history``: the
        bars of the recent past its strategy needs; what the hub has of them comes first, as a
        WarmUp."""
        key = feed_key(plugin, params, symbol)
        running = self._running.get(key)
        if running is None:
            running = _Running(self.make(plugin, params, symbol), anyio.CancelScope())
            kept = self._kept_for(key)
            if kept is not None:  # the feed ran a while ago: its latest bars
                running.recent = kept
        running.keep(history)
        lease = FeedLease(self, key, [self._bus.subscribe(kind, mailbox, key)
                                      for kind in (Bar, Quote, TradeTick, WarmUp, FeedEnded)])
        if running.recent:  # its recent past warms this subscriber up
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
            self._keep(lease.key, running)

    def _keep(self, key: FeedKey, running: _Running) -> None:
        """A feed stops: its recent bars stay for ``keep_seconds`` (a restart comes back)."""
        now = anyio.current_time()
        for old in [k for k, kept in self._kept.items() if kept.until <= now]:
            del self._kept[old]
        if running.recent:
            self._kept[key] = _Kept(running.recent, now + self._keep_seconds)

    def _kept_for(self, key: FeedKey) -> deque[Bar] | None:
        kept = self._kept.pop(key, None)
        if kept is None or kept.until <= anyio.current_time():
            return None
        return kept.bars

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
                        running.spaced(batch.bars)
                        fresh = running.history(batch)
                        if fresh is not None:
                            await self._bus.publish(fresh, bus)
                        continue
                    if not batch:
                        continue
                    now = anyio.current_time()
                    gap = now - running.last_data
                    running.interval = gap if running.interval is None else \
                        0.8 * running.interval + 0.2 * gap
                    running.last_data = now
                    if type(batch[0]) is Bar:  # bars only (not quotes or trades)
                        if running.recent is not None:
                            running.recent.extend(cast(Sequence[Bar], batch))
                        if running.shown is not None:
                            running.shown.extend(cast(Sequence[Bar], batch))
                    await self._bus.publish_batch(list(batch), bus)
            except Exception as exc:  # a feed failure is reported to its subscribers
                log.exception("feed %s for %s failed", key[0], symbol)
                reason = f"feed {key[0]} failed: {type(exc).__name__}"
                await self._bus.publish(FeedEnded(symbol, reason), bus)
            else:
                await self._bus.publish(FeedEnded(symbol), bus)
        if self._running.get(key) is running:
            del self._running[key]
            self._keep(key, running)
