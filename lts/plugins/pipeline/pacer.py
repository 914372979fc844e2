"""Pacing many real-time synthetic feeds with one timer per instant, not one per feed.

Where it sits: under :mod:`lts.plugins.pipeline.synthetic`, between the feed hub's pump tasks
(one per symbol) and the event loop's timers. Thousands of symbols each sleeping until its next
bar cost the loop a timer, a future and three coroutine frames per symbol per bar, all alive
until the bar: at 8,000 symbols they were most of what the garbage collector's young generation
scanned (bench/scale.py, 2,000 portfolios). Here the symbols due in the same millisecond share
one timer; each waits on a bare future of its own (so a cancelled feed cancels only itself).

On an event loop that is not asyncio's (anyio on trio), it falls back to ``anyio.sleep``.
"""

import asyncio
import math
import weakref
from collections.abc import Awaitable

import anyio

_RESOLUTION = 1000  # instants per second: due times are rounded up to the millisecond


class _Pacer:
    """The pending wake-ups of one event loop, by due millisecond."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._due: dict[int, list[asyncio.Future[None]]] = {}

    def wait_until(self, when: float) -> "asyncio.Future[None]":
        tick = math.ceil(when * _RESOLUTION)
        future: asyncio.Future[None] = self._loop.create_future()
        waiting = self._due.get(tick)
        if waiting is None:
            self._due[tick] = [future]
            self._loop.call_at(tick / _RESOLUTION, self._wake, tick)
        else:
            waiting.append(future)
        return future

    def _wake(self, tick: int) -> None:
        for future in self._due.pop(tick, ()):
            if not future.done():
                future.set_result(None)


_pacers: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Pacer]" = \
    weakref.WeakKeyDictionary()


def sleep_until(when: float) -> Awaitable[None]:
    """Something to await until ``when`` (``anyio.current_time()``'s clock), or the next
    millisecond (a bare future: no coroutine frame per wait)."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:  # not asyncio
        return anyio.sleep_until(when)
    pacer = _pacers.get(loop)
    if pacer is None:
        pacer = _pacers[loop] = _Pacer(loop)
    return pacer.wait_until(when)
