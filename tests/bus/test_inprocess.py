"""The in-process bus: routing by event type and key, wildcards, fan-out and back-pressure
(SYS-001: the pipeline's hand-offs; SYS-013: a full order mailbox makes the publisher wait)."""

from typing import Any

import anyio
import msgspec
import pytest

from lts.bus import InProcessBus, Mailbox, MailboxFull, Overflow


class Tick(msgspec.Struct, frozen=True):
    symbol: str
    n: int


class Note(msgspec.Struct, frozen=True):
    text: str


def make_box(name: str, capacity: int = 100,
             policy: Overflow = Overflow.BLOCK) -> Mailbox[Any]:
    return Mailbox(capacity, policy, name=name)


def test_routes_by_type_and_key() -> None:
    bus = InProcessBus()
    a, b, note_a = make_box("a"), make_box("b"), make_box("note-a")
    bus.subscribe(Tick, a, key="A")
    bus.subscribe(Tick, b, key="B")
    bus.subscribe(Note, note_a, key="A")

    assert bus.publish_nowait(Tick("A", 1), "A") == 1
    assert bus.publish_nowait(Tick("B", 2), "B") == 1
    assert bus.publish_nowait(Note("hello"), "A") == 1
    assert bus.publish_nowait(Tick("C", 3), "C") == 0

    assert a.drain() == [Tick("A", 1)]
    assert b.drain() == [Tick("B", 2)]
    assert note_a.drain() == [Note("hello")]


def test_wildcard_subscriber_gets_every_key() -> None:
    bus = InProcessBus()
    keyed, wild = make_box("keyed"), make_box("wild")
    bus.subscribe(Tick, keyed, key="A")
    bus.subscribe(Tick, wild)

    assert bus.publish_nowait(Tick("A", 1), "A") == 2
    assert bus.publish_nowait(Tick("B", 2), "B") == 1
    assert bus.publish_nowait(Tick("-", 3)) == 1  # no key: only the wildcard

    assert keyed.drain() == [Tick("A", 1)]
    assert wild.drain() == [Tick("A", 1), Tick("B", 2), Tick("-", 3)]
    assert bus.subscribers(Tick) == 1
    assert bus.subscribers(Tick, "A") == 1


def test_cancelled_subscription_receives_nothing_more() -> None:
    bus = InProcessBus()
    stays, leaves = make_box("stays"), make_box("leaves")
    bus.subscribe(Tick, stays, key="A")
    sub = bus.subscribe(Tick, leaves, key="A")
    assert bus.subscribers(Tick, "A") == 2

    sub.cancel()
    sub.cancel()  # a second cancel is harmless
    assert bus.subscribers(Tick, "A") == 1
    assert bus.publish_nowait(Tick("A", 1), "A") == 1
    assert stays.drain() == [Tick("A", 1)]
    assert leaves.drain() == []


def test_publish_counts_per_event_type_with_or_without_subscribers() -> None:
    bus = InProcessBus()
    for i in range(3):
        bus.publish_nowait(Tick("A", i), "A")
    bus.publish_nowait(Note("x"))
    assert dict(bus.published) == {"Tick": 3, "Note": 1}


@pytest.mark.anyio
async def test_publish_batch_fans_out_in_order() -> None:
    bus = InProcessBus()
    keyed, wild = make_box("keyed"), make_box("wild")
    bus.subscribe(Tick, keyed, key="A")
    bus.subscribe(Tick, wild)
    events = [Tick("A", i) for i in range(10)]

    assert await bus.publish_batch(events, "A") == 2
    assert await bus.publish_batch([], "A") == 0

    assert keyed.drain() == events
    assert wild.drain() == events
    assert bus.published["Tick"] == 10


@pytest.mark.anyio
async def test_publish_waits_on_a_full_block_mailbox_instead_of_dropping() -> None:
    bus = InProcessBus()
    box = make_box("orders", capacity=1)
    bus.subscribe(Tick, box)
    await bus.publish(Tick("A", 1))
    with pytest.raises(MailboxFull):
        bus.publish_nowait(Tick("A", 2))
    published: list[int] = []

    async def producer() -> None:
        published.append(await bus.publish(Tick("A", 3)))

    async with anyio.create_task_group() as tg:
        tg.start_soon(producer)
        await anyio.wait_all_tasks_blocked()
        assert published == []  # waiting for room, not dropping
        assert box.drain() == [Tick("A", 1)]
    assert published == [1]
    assert box.drain() == [Tick("A", 3)]
    assert bus.dropped() == {}


def test_dropped_reports_losses_per_mailbox_name() -> None:
    bus = InProcessBus()
    slow = make_box("slow-strategy", capacity=2, policy=Overflow.DROP_OLDEST)
    bus.subscribe(Tick, slow)
    for i in range(5):
        bus.publish_nowait(Tick("A", i), "A")
    assert bus.dropped() == {"slow-strategy": 3}
    assert slow.drain() == [Tick("A", 3), Tick("A", 4)]
