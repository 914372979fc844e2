"""LTS's own pacing of a venue's REST requests: a request-weight budget per minute.

Where it sits: in front of every REST call the ``ccxt`` broker and feed make (through
:class:`lts.plugins.ccxt_client.CcxtClient`). ccxt spaces requests by its own per-endpoint cost;
this budget keeps LTS under the venue's *weight* limit too (Binance: 6,000 per minute and address,
counted in calendar minutes, answered in ``X-MBX-USED-WEIGHT-1M``), so that the venue never has to
say 429 -- and, ignored, 418 (a ban).

- :meth:`WeightBudget.acquire` takes a call's weight from the current minute's budget. Half of
  the budget may go at once (:data:`BURST`); the rest comes in evenly over the minute, so that a
  busy portfolio's calls wait a moment each (``weight x 120 / per_minute`` seconds at most)
  instead of spending the minute's budget in its first seconds and then waiting most of a
  minute (longer than an order's acknowledgement timeout). A call that would go over the
  minute's budget (the venue counted others' calls too) waits for the next minute.
- :meth:`WeightBudget.observe` takes the venue's own count (the header) when it is higher than
  LTS's: other clients on the same address, or weights LTS under-estimated, count too.
- :meth:`WeightBudget.back_off` stops every call until a time (a 429's ``Retry-After``).
"""

import math
import time
from collections.abc import Awaitable, Callable

import anyio

__all__ = ["WeightBudget"]

_MINUTE = 60.0
#: The share of a minute's budget that may be used at once; the rest accrues over the minute.
BURST = 0.5


class WeightBudget:
    """``per_minute`` weight per calendar minute of ``clock`` (wall time: the venue's minutes)."""

    def __init__(self, per_minute: int, *, clock: Callable[[], float] = time.time,
                 sleep: Callable[[float], Awaitable[None]] = anyio.sleep) -> None:
        if per_minute <= 0:
            raise ValueError("a weight budget is positive")
        self.per_minute = per_minute
        self._clock = clock
        self._sleep = sleep
        self._minute = -1
        self._used = 0
        self._blocked_until = 0.0
        self.waits = 0  # times a call waited for the budget (debug info)

    @property
    def used(self) -> int:
        """Weight used in the current minute, as far as LTS knows."""
        self._roll()
        return self._used

    def _roll(self) -> float:
        now = self._clock()
        minute = math.floor(now / _MINUTE)
        if minute != self._minute:
            self._minute, self._used = minute, 0
        return now

    async def acquire(self, weight: int) -> None:
        """Wait until ``weight`` fits this minute's budget (and any back-off is over), take it."""
        weight = min(max(weight, 0), self.per_minute)
        while True:
            now = self._roll()
            if now < self._blocked_until:
                self.waits += 1
                await self._sleep(self._blocked_until - now)
                continue
            wanted = self._used + weight
            if wanted <= self._allowance(now):
                self._used = wanted
                return
            self.waits += 1
            start = self._minute * _MINUTE
            if wanted <= self.per_minute:  # until enough of the minute has accrued
                share = (wanted / self.per_minute - BURST) / (1 - BURST)
                await self._sleep(max(0.001, start + share * _MINUTE - now))
            else:
                await self._sleep(start + _MINUTE - now + 0.01)

    def _allowance(self, now: float) -> float:
        """What the minute's calls may have used by ``now``: :data:`BURST` of the budget at
        once, the rest accruing evenly to the whole budget at the minute's end."""
        elapsed = (now - self._minute * _MINUTE) / _MINUTE
        return min(self.per_minute, self.per_minute * (BURST + (1 - BURST) * elapsed))

    def observe(self, venue_used: int | None) -> None:
        """The venue's count of this minute's weight (its header), if it gave one."""
        if venue_used is not None:
            self._roll()
            self._used = max(self._used, venue_used)

    def back_off(self, seconds: float) -> None:
        """No call for ``seconds`` from now (a 429 asked so)."""
        self._blocked_until = max(self._blocked_until, self._clock() + max(seconds, 0.0))

    @property
    def blocked_for(self) -> float:
        """Seconds left of a back-off (0: none)."""
        return max(0.0, self._blocked_until - self._clock())
