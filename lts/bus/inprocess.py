"""The in-process bus: routes each event to the mailboxes subscribed to its type and key.

Routing is one dict lookup per (type, key) plus one for (type, any key); delivery is a
``deque.append`` per subscriber. :meth:`InProcessBus.publish_nowait` is synchronous for the hot
path; :meth:`InProcessBus.publish` waits when a ``BLOCK`` subscriber is full (orders and fills
are never dropped). Counters per event type feed the ``/metrics`` endpoint.
"""

from collections import defaultdict
from collections.abc import Hashable
from typing import Any, Protocol

from lts.bus.mailbox import Mailbox, MailboxFull

_ANY = object()


class Subscription:
    __slots__ = ("_bus", "event_type", "key", "mailbox")

    def __init__(self, bus: "InProcessBus", event_type: type, key: Hashable,
                 mailbox: Mailbox[Any]) -> None:
        self._bus = bus
        self.event_type = event_type
        self.key = key
        self.mailbox = mailbox

    def cancel(self) -> None:
        self._bus._unsubscribe(self)


class Bus(Protocol):
    def subscribe(self, event_type: type, mailbox: Mailbox[Any],
                  key: Hashable | None = None) -> Subscription: ...

    def publish_nowait(self, event: object, key: Hashable | None = None,
                       topic: type | None = None) -> int: ...

    async def publish(self, event: object, key: Hashable | None = None) -> int: ...


class InProcessBus:
    """Publish/subscribe by event type and key, inside one event loop."""

    def __init__(self) -> None:
        self._routes: dict[tuple[type, Hashable], list[Mailbox[Any]]] = {}
        self.published: defaultdict[str, int] = defaultdict(int)

    def subscribe(self, event_type: type, mailbox: Mailbox[Any],
                  key: Hashable | None = None) -> Subscription:
        """Route events of ``event_type`` (published under ``key``, or any key if None)."""
        route = (event_type, _ANY if key is None else key)
        self._routes.setdefault(route, []).append(mailbox)
        return Subscription(self, event_type, route[1], mailbox)

    def _unsubscribe(self, sub: Subscription) -> None:
        route = (sub.event_type, sub.key)
        boxes = self._routes.get(route)
        if boxes and sub.mailbox in boxes:
            boxes.remove(sub.mailbox)
            if not boxes:
                del self._routes[route]

    def subscribers(self, event_type: type, key: Hashable | None = None) -> int:
        return len(self._routes.get((event_type, _ANY if key is None else key), ()))

    def _targets(self, event: object, key: Hashable | None,
                 topic: type | None = None) -> list[Mailbox[Any]]:
        et = topic or type(event)
        keyed = self._routes.get((et, key)) if key is not None else None
        wild = self._routes.get((et, _ANY))
        if keyed and wild:
            return keyed + wild
        return keyed or wild or []

    def publish_nowait(self, event: object, key: Hashable | None = None,
                       topic: type | None = None) -> int:
        """Deliver to every subscriber now; raise :class:`MailboxFull` if a ``BLOCK`` one is full
        (the subscribers before it in the list already have the event). ``topic``: route as this
        type instead of the event's own (a family of event types under their base class)."""
        targets = self._targets(event, key, topic)
        for box in targets:
            box.put_nowait(event)
        self.published[type(event).__name__] += 1
        return len(targets)

    async def publish(self, event: object, key: Hashable | None = None) -> int:
        """Deliver to every subscriber, waiting for room in full ``BLOCK`` mailboxes."""
        targets = self._targets(event, key)
        for box in targets:
            try:
                box.put_nowait(event)
            except MailboxFull:
                await box.put(event)
        self.published[type(event).__name__] += 1
        return len(targets)

    async def publish_batch(self, events: "list[Any] | tuple[Any, ...]",
                            key: Hashable | None = None) -> int:
        """Deliver a batch of events of one type, in order, waiting where a mailbox is full."""
        if not events:
            return 0
        targets = self._targets(events[0], key)
        for box in targets:
            await box.put_batch(events)
        self.published[type(events[0]).__name__] += len(events)
        return len(targets)

    def dropped(self) -> dict[str, int]:
        """Dropped (or conflated) events per mailbox name."""
        out: dict[str, int] = {}
        for boxes in self._routes.values():
            for box in boxes:
                if box.dropped:
                    out[box.name] = out.get(box.name, 0) + box.dropped
        return out
