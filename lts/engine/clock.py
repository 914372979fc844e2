"""Clocks the engine injects: wall time when live, the replayed bar's time in a backtest."""

import time


class LiveClock:
    def now_ns(self) -> int:
        return time.time_ns()


class ReplayClock:
    """Time stands where the replay put it: the ``ts_event`` of the bar being processed."""

    __slots__ = ("ts",)

    def __init__(self, start_ns: int = 0) -> None:
        self.ts = start_ns

    def now_ns(self) -> int:
        return self.ts
