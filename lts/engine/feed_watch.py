"""Market data that stopped: which of a portfolio's assets have had no data for too long.

Where it sits: in a live portfolio's runner (:mod:`lts.engine.runner`), asked at every
housekeeping (at most a second apart; the engine nudges a runner with no bars). The feed hub
knows when each feed last sent data and its usual interval between bars
(:meth:`lts.engine.feeds.FeedLease.silent_for`). An asset whose feed has been silent longer
than ``engine.feed_stale_seconds`` and than three of its usual intervals (hourly bars are not
late after two minutes) is stale: its strategy places no new orders (the order manager refuses
them with ``FEED_STALE``, reading :attr:`FeedWatch.stale`), while the exits of contingent
orders and operators' orders still go, and the ``lts_feed_stale`` gauge is 1. Both end at the
first housekeeping after data returns. A backtest never asks: its data cannot stall.
"""

import logging
from collections.abc import Iterable

from lts.engine.feeds import FeedLease

__all__ = ["FeedWatch"]

log = logging.getLogger("lts.runner")

#: an asset is late after this many of its usual intervals between bars (and the setting)
INTERVALS = 3


class FeedWatch:
    def __init__(self, portfolio_id: int) -> None:
        self.portfolio_id = portfolio_id
        self.stale: set[str] = set()  # shared with the order manager (read on every request)

    @staticmethod
    def silent(leases: Iterable[FeedLease], now: float, after: float | None
               ) -> dict[str, float]:
        """The assets whose feed is late, with its seconds of silence (none when ``after`` is
        None or 0)."""
        silent: dict[str, float] = {}
        if not after:
            return silent
        for lease in leases:
            quiet = lease.silent_for(now)
            if quiet is None:
                continue
            seconds, interval = quiet
            if seconds > max(after, INTERVALS * (interval or 0.0)):
                silent[lease.key[2]] = seconds
        return silent

    def look(self, leases: Iterable[FeedLease], now: float, after: float | None) -> None:
        """Mark the assets whose feed is late (:meth:`silent`), unmark those whose data came
        back."""
        silent = self.silent(leases, now, after)
        for symbol in sorted(silent.keys() - self.stale):
            log.warning("portfolio %s: no market data for %s for %.0f s: its strategy places no "
                        "new orders until data returns", self.portfolio_id, symbol,
                        silent[symbol])
        for symbol in sorted(self.stale - silent.keys()):
            log.info("portfolio %s: market data for %s is back", self.portfolio_id, symbol)
        self.stale.intersection_update(silent)
        self.stale.update(silent)
