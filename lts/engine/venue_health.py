"""What a portfolio knows of its venues' connections: stale, resyncing, banned.

Where it sits: in the portfolio's runner, fed by what its brokers report through the inbox
(:class:`~lts.plugins.broker.VenueDisconnected`, :class:`~lts.plugins.broker.VenueReconnected`,
:class:`~lts.plugins.broker.VenueBanned`) and by the outcomes of its resyncs. The order manager
reads :attr:`VenueHealth.stale` to refuse new orders for a venue whose execution reports may
have been missed (``VENUE_STALE``): from the moment its stream drops until a resync after the
reconnect has completed. A failed resync is tried again after a growing delay, so the
portfolio resumes by itself once the venue answers.
"""

import logging
from dataclasses import dataclass

__all__ = ["VenueHealth"]

log = logging.getLogger("lts.venue_health")

#: A failed resync is retried after this many seconds, doubling up to the maximum.
RETRY_INITIAL = 0.5
RETRY_MAX = 30.0


@dataclass
class _Venue:
    since_ns: int  # when the view went stale (the stream dropped, or the first reconnect)
    reason: str
    down: bool = True  # the stream is lost (no reconnect since)
    resyncing: int = 0  # resyncs under way
    failures: int = 0


class VenueHealth:
    """Per broker name: whether the portfolio's view of that venue can be trusted."""

    def __init__(self, portfolio_id: int) -> None:
        self.portfolio_id = portfolio_id
        self.stale: set[str] = set()  # shared with the order manager (read on every request)
        self._venues: dict[str, _Venue] = {}
        self.banned: dict[str, str] = {}  # broker -> the venue's reason
        self.resyncs = 0  # completed

    def disconnected(self, broker: str, ts_ns: int, reason: str) -> None:
        venue = self._venues.get(broker)
        if venue is not None:
            venue.down = True  # lost again: a resync under way cannot make it fresh
        else:
            self._venues[broker] = _Venue(ts_ns, reason)
            log.warning("portfolio %s: %s stream lost (%s); no new orders there until it is "
                        "back and resynced", self.portfolio_id, broker, reason)
        self.stale.add(broker)

    def resync_starts(self, broker: str, ts_ns: int) -> int:
        """A resync begins; returns the time reports may have been missed since."""
        venue = self._venues.get(broker)
        if venue is None:  # a reconnect not announced by a drop: stale from now
            venue = self._venues[broker] = _Venue(ts_ns, "reconnected")
        venue.down = False
        venue.resyncing += 1
        self.stale.add(broker)
        return venue.since_ns

    def resynced(self, broker: str, error: str) -> float | None:
        """A resync finished: fresh again, or (on ``error``) the delay before the next try."""
        venue = self._venues.get(broker)
        if venue is None:
            return None
        venue.resyncing -= 1
        if not error:
            if venue.down or venue.resyncing:
                return None  # lost again meanwhile, or another resync still runs
            del self._venues[broker]
            self.stale.discard(broker)
            self.resyncs += 1
            log.info("portfolio %s: %s resynced; trading there again", self.portfolio_id, broker)
            return None
        if venue.down or venue.resyncing:
            return None  # the next reconnect (or the resync still running) settles it
        venue.failures += 1
        delay: float = min(RETRY_MAX, RETRY_INITIAL * 2.0 ** (venue.failures - 1))
        log.warning("portfolio %s: resync with %s failed (%s); again in %.1f s",
                    self.portfolio_id, broker, error, delay)
        return delay

    def ban(self, broker: str, reason: str) -> None:
        self.banned[broker] = reason

    def describe(self) -> str | None:
        """One line for the API: what is wrong with which venue, or None."""
        parts = [f"{b}: banned by the venue ({r})" for b, r in sorted(self.banned.items())]
        for name, venue in sorted(self._venues.items()):
            doing = "waiting for the venue" if venue.down or not venue.resyncing else "resyncing"
            parts.append(f"{name}: stale since the stream was lost ({venue.reason}); {doing}")
        return "; ".join(parts) or None
