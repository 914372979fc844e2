"""The shared feeds (lts.engine.feeds): a live feed's history reaches every portfolio that
trades it, the one that subscribes later too (issue 10: "a strategy is warm when it starts";
a portfolio restarted by its supervisor subscribes again to the running feed).

The feed is the outside world here (market data as an exchange streams it): its bars are the
test's; the hub, the bus and the mailboxes are LTS's own.
"""

from collections.abc import AsyncIterator, Sequence

import anyio
import pytest

from lts.bus import InProcessBus, Mailbox, Overflow
from lts.domain.clock import Clock
from lts.domain.market import Bar, WarmUp
from lts.engine.clock import LiveClock
from lts.engine.feeds import FeedHub
from lts.plugins.registry import Registry

pytestmark = pytest.mark.anyio

SYMBOL = "BTC/USDT"


def bar(i: int) -> Bar:
    return Bar(SYMBOL, i * 1_000_000_000, 100.0 + i, 101.0 + i, 99.0 + i, 100.0 + i, 1.0)


class Streamed:
    """A live feed: three bars of history, then the bars the test sends."""

    historical = False

    def __init__(self) -> None:
        self.send, self.receive = anyio.create_memory_object_stream[Bar](100)

    async def bars(self, symbol: str, clock: Clock) -> AsyncIterator[Sequence[Bar] | WarmUp]:
        yield WarmUp(symbol, (bar(1), bar(2), bar(3)))
        async for live in self.receive:
            yield [live]


async def received(box: Mailbox[object], count: int) -> list[object]:
    with anyio.fail_after(5):
        got: list[object] = []
        while len(got) < count:
            got += await box.get_batch()
        return got


async def test_a_live_feed_s_history_warms_up_every_subscriber_the_late_one_too() -> None:
    feed = Streamed()
    async with anyio.create_task_group() as tg:
        hub = FeedHub(Registry.discover(), InProcessBus(), LiveClock(), tg)
        hub.provide("streamed", {}, SYMBOL, feed)
        first: Mailbox[object] = Mailbox(100, Overflow.DROP_OLDEST, name="first")
        lease = hub.acquire("streamed", {}, SYMBOL, first)
        assert await received(first, 1) == [WarmUp(SYMBOL, (bar(1), bar(2), bar(3)))]
        await feed.send.send(bar(4))
        await feed.send.send(bar(5))
        assert await received(first, 2) == [bar(4), bar(5)]

        late: Mailbox[object] = Mailbox(100, Overflow.DROP_OLDEST, name="late")
        late_lease = hub.acquire("streamed", {}, SYMBOL, late)
        # as much of the recent past as the history was long: the latest three bars
        assert await received(late, 1) == [WarmUp(SYMBOL, (bar(3), bar(4), bar(5)))]
        await feed.send.send(bar(6))
        assert await received(late, 1) == [bar(6)]
        assert await received(first, 1) == [bar(6)]
        late_lease.release()
        lease.release()
        tg.cancel_scope.cancel()
    feed.send.close()
    feed.receive.close()
