"""The prices a dashboard draws its candles from: each watched portfolio's marks (the last price
of each asset, through the engine's facade), taken once a second while a dashboard page shows
the portfolio.

Where it sits: beside the dashboard's summary routes (:mod:`lts.api.dashboard_data`), which
register interest and read the tape. The facade has no bar history to offer (the feed hub keeps
recent bars for warm-ups only, out of the API's reach), so the tape keeps its own, bounded: one
sample per second per asset for the last hour. Nothing runs while no page watches: the sampling
task ends two minutes after the last request of a page (the page asks every few seconds while
open), and starts again with the next one.
"""

import asyncio
import time
from collections import deque
from dataclasses import dataclass, field

from lts.engine.facade import EngineFacade

__all__ = ["MarkTape"]

EVERY = 1.0  # seconds between samples
KEEP = 3600  # samples per asset (an hour)
INTEREST = 120.0  # seconds a page's request keeps its portfolio watched


@dataclass
class MarkTape:
    engine: EngineFacade
    _samples: dict[tuple[int, str], deque[tuple[int, float]]] = field(default_factory=dict)
    _watched: dict[int, float] = field(default_factory=dict)  # portfolio -> interest until
    _task: "asyncio.Task[None] | None" = None

    def watch(self, portfolio_id: int) -> None:
        """Keep sampling ``portfolio_id`` for the next :data:`INTEREST` seconds."""
        self._watched[portfolio_id] = time.monotonic() + INTEREST
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run(),
                                                                name="dashboard-mark-tape")
        self.sample(portfolio_id)

    def prices(self, portfolio_id: int) -> dict[str, list[tuple[int, float]]]:
        """The samples of each asset of ``portfolio_id``: (ns since the epoch, price)."""
        return {symbol: list(samples) for (pid, symbol), samples in self._samples.items()
                if pid == portfolio_id}

    def sample(self, portfolio_id: int) -> None:
        now = time.time_ns()
        for symbol, price in self.engine.last_prices(portfolio_id).items():
            tape = self._samples.get((portfolio_id, symbol))
            if tape is None:
                tape = self._samples[(portfolio_id, symbol)] = deque(maxlen=KEEP)
            tape.append((now, float(price)))

    async def _run(self) -> None:
        while self._watched:
            await asyncio.sleep(EVERY)
            now = time.monotonic()
            for pid, until in list(self._watched.items()):
                if until < now:  # no page shows it any more: forget its samples
                    del self._watched[pid]
                    for key in [k for k in self._samples if k[0] == pid]:
                        del self._samples[key]
                    continue
                self.sample(pid)
