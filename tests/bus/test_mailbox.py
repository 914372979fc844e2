"""The subscriber's bounded mailbox: each overflow policy, batches, and closing.

Orders, fills and the journal never drop (``BLOCK``: the producer waits); live market data may be
dropped oldest-first or conflated per key, and every loss is counted (architecture §4; SYS-013:
an order or a fill is never lost on the way).
"""

from collections.abc import Callable, Hashable
from typing import Any

import anyio
import pytest

from lts.bus import Mailbox, MailboxClosed, MailboxFull, Overflow


def make_box(capacity: int = 3, policy: Overflow = Overflow.BLOCK, *, name: str = "box",
             key_of: Callable[[Any], Hashable] | None = None) -> Mailbox[Any]:
    return Mailbox(capacity, policy, name=name, key_of=key_of)


def _first(item: tuple[str, int]) -> str:
    return item[0]


# -- construction ---------------------------------------------------------------------------------

def test_capacity_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        make_box(capacity=0)


def test_conflate_without_key_is_refused() -> None:
    with pytest.raises(ValueError, match="key_of"):
        make_box(policy=Overflow.CONFLATE)


# -- BLOCK ----------------------------------------------------------------------------------------

def test_block_put_nowait_raises_when_full_and_keeps_what_it_has() -> None:
    box = make_box(capacity=2)
    box.put_nowait("a")
    box.put_nowait("b")
    with pytest.raises(MailboxFull):
        box.put_nowait("c")
    assert len(box) == 2
    assert box.dropped == 0
    assert box.drain() == ["a", "b"]


@pytest.mark.anyio
async def test_block_put_waits_until_the_consumer_drains() -> None:
    box = make_box(capacity=1)
    box.put_nowait("first")
    delivered: list[str] = []

    async def producer() -> None:
        await box.put("second")
        delivered.append("second")

    async with anyio.create_task_group() as tg:
        tg.start_soon(producer)
        await anyio.wait_all_tasks_blocked()
        assert delivered == []  # the producer waits; nothing was dropped
        assert box.drain() == ["first"]
    assert delivered == ["second"]
    assert box.drain() == ["second"]
    assert box.dropped == 0


@pytest.mark.anyio
async def test_block_put_batch_delivers_everything_in_order_across_drains() -> None:
    box = make_box(capacity=4)
    items = list(range(25))
    got: list[int] = []
    batch_sizes: list[int] = []

    async def consumer() -> None:
        while len(got) < len(items):
            batch = await box.get_batch()
            batch_sizes.append(len(batch))
            got.extend(batch)

    async with anyio.create_task_group() as tg:
        tg.start_soon(consumer)
        await box.put_batch(items)
    assert got == items
    assert max(batch_sizes) <= 4  # the bound held: never more than capacity queued
    assert len(batch_sizes) >= 7  # 25 items through 4 slots: at least 7 drains
    assert box.dropped == 0


# -- DROP_OLDEST and CONFLATE ---------------------------------------------------------------------

def test_drop_oldest_discards_the_oldest_and_counts() -> None:
    box = make_box(capacity=3, policy=Overflow.DROP_OLDEST)
    for i in range(1, 6):
        box.put_nowait(i)
    assert box.dropped == 2
    assert box.drain() == [3, 4, 5]


@pytest.mark.anyio
async def test_drop_oldest_put_batch_never_waits_and_counts() -> None:
    box = make_box(capacity=2, policy=Overflow.DROP_OLDEST)
    await box.put_batch([1, 2, 3, 4, 5])
    assert box.drain() == [4, 5]
    assert box.dropped == 3


def test_conflate_keeps_the_newest_per_key_and_counts() -> None:
    box = make_box(capacity=10, policy=Overflow.CONFLATE, key_of=_first)
    for item in [("A", 1), ("B", 1), ("A", 2), ("A", 3), ("B", 2), ("C", 1)]:
        box.put_nowait(item)
    assert box.dropped == 3
    assert len(box) == 3
    assert box.drain() == [("A", 3), ("B", 2), ("C", 1)]
    assert len(box) == 0


def test_conflate_drain_respects_max_items() -> None:
    box = make_box(capacity=10, policy=Overflow.CONFLATE, key_of=_first)
    for key in "ABCD":
        box.put_nowait((key, 1))
    assert len(box.drain(max_items=2)) == 2


# -- batches --------------------------------------------------------------------------------------

@pytest.mark.anyio
async def test_get_batch_returns_oldest_first_and_at_most_max_items() -> None:
    box = make_box(capacity=10)
    for i in range(5):
        box.put_nowait(i)
    assert await box.get_batch(2) == [0, 1]
    assert await box.get_batch() == [2, 3, 4]
    assert len(box) == 0


@pytest.mark.anyio
async def test_get_batch_waits_for_the_first_item() -> None:
    box = make_box()
    got: list[list[str]] = []

    async def consumer() -> None:
        got.append(await box.get_batch())

    async with anyio.create_task_group() as tg:
        tg.start_soon(consumer)
        await anyio.wait_all_tasks_blocked()
        assert got == []
        box.put_nowait("x")
    assert got == [["x"]]


# -- closing --------------------------------------------------------------------------------------

@pytest.mark.anyio
async def test_close_wakes_a_waiting_consumer_with_mailbox_closed() -> None:
    box = make_box()
    outcome: list[str] = []

    async def consumer() -> None:
        try:
            await box.get_batch()
        except MailboxClosed:
            outcome.append("closed")

    async with anyio.create_task_group() as tg:
        tg.start_soon(consumer)
        await anyio.wait_all_tasks_blocked()
        box.close()
    assert outcome == ["closed"]


@pytest.mark.anyio
async def test_close_lets_the_consumer_drain_then_raises_once_empty() -> None:
    box = make_box()
    box.put_nowait("a")
    box.put_nowait("b")
    box.close()
    with pytest.raises(MailboxClosed):
        box.put_nowait("c")
    assert await box.get_batch() == ["a", "b"]
    with pytest.raises(MailboxClosed):
        await box.get_batch()


@pytest.mark.anyio
async def test_close_wakes_a_blocked_producer_with_mailbox_closed() -> None:
    box = make_box(capacity=1)
    box.put_nowait("a")
    outcome: list[str] = []

    async def producer() -> None:
        try:
            await box.put("b")
        except MailboxClosed:
            outcome.append("closed")

    async with anyio.create_task_group() as tg:
        tg.start_soon(producer)
        await anyio.wait_all_tasks_blocked()
        box.close()
    assert outcome == ["closed"]
    assert box.drain() == ["a"]


def test_close_policy_cuts_off_a_slow_consumer_without_failing_the_producer() -> None:
    box: Mailbox[int] = Mailbox(2, Overflow.CLOSE, name="ws")
    box.put_nowait(1)
    box.put_nowait(2)
    box.put_nowait(3)  # over the bound: the consumer is cut off, the producer goes on
    box.put_nowait(4)
    assert (box.overflowed, box.closed, box.dropped) == (True, True, 1)
    assert box.drain() == [1, 2]
