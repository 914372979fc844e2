"""Strategy timers of one portfolio: due times on the engine's clock, fired in its runner task.

Where it sits: owned by the runner's strategy host (:mod:`lts.engine.strategy_host`). In a
backtest the clock is the bars' time, so a timer due before a bar fires before that bar, at its
own time; live, the runner also wakes at the next due time when no bar comes. A timer set again
under the same name replaces the old one; a repeating timer fires once per period, and periods
skipped while nothing ran (a long gap in the data) fire once, not once each.
"""

import heapq
from dataclasses import dataclass

__all__ = ["Timers"]


@dataclass
class _Timer:
    owner: int  # the strategy's slot in the host
    name: str
    due: int
    every: int | None
    generation: int


class Timers:
    def __init__(self) -> None:
        self._heap: list[tuple[int, int, _Timer]] = []
        #: the timers set (truthy when any): the runner looks at it per bar
        self.live: dict[tuple[int, str], _Timer] = {}
        self._generation = 0

    def set(self, owner: int, name: str, *, now: int, at_ns: int | None,
            every_ns: int | None) -> None:
        if (at_ns is None) == (every_ns is None):
            raise ValueError("give at_ns or every_ns (one of them)")
        if every_ns is not None and every_ns <= 0:
            raise ValueError("every_ns must be positive")
        due = at_ns if at_ns is not None else now + (every_ns or 0)
        self._generation += 1
        timer = _Timer(owner, name, due, every_ns, self._generation)
        self.live[(owner, name)] = timer
        heapq.heappush(self._heap, (due, timer.generation, timer))

    def cancel(self, owner: int, name: str) -> None:
        self.live.pop((owner, name), None)

    @property
    def next_due(self) -> int | None:
        while self._heap and not self._is_live(self._heap[0][2]):
            heapq.heappop(self._heap)
        return self._heap[0][0] if self._heap else None

    def pop_next(self, now: int) -> tuple[int, str, int] | None:
        """``(owner, name, due)`` of the earliest timer due at ``now`` or before, or None; a
        repeating one is set for its next period after ``now``. One at a time: a callback may
        cancel or set timers before the next is taken."""
        heap = self._heap
        while heap and heap[0][0] <= now:
            due, _, timer = heapq.heappop(heap)
            if not self._is_live(timer):
                continue
            if timer.every is None:
                del self.live[(timer.owner, timer.name)]
            else:
                skipped = (now - due) // timer.every
                timer.due = due + (skipped + 1) * timer.every
                heapq.heappush(heap, (timer.due, timer.generation, timer))
            return timer.owner, timer.name, due
        return None

    def _is_live(self, timer: _Timer) -> bool:
        return self.live.get((timer.owner, timer.name)) is timer
