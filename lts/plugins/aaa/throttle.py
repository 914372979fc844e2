"""Login throttling for the ``local`` aaa plugin (called by :meth:`LocalAuth.authenticate`, under
``POST /api/v1/auth/login``). In memory, per process: it slows guessing, it is not an account
lock, and nobody can use it to lock someone else out.

- Per user name *and* client address (:class:`LoginGuard`): ``max_failures`` failed logins in
  the window and that pair waits until its oldest failure leaves the window. A guesser at one
  address slows only itself: the user logs in from anywhere else as usual, and the guesser's
  other user names are counted apart.
- A slower global cap: ``global_max_failures`` failed logins in the window, whatever the user
  name and address (a guesser with many addresses, or one spraying many names), and new pairs
  wait too. A pair that has logged in before (this process remembers the last ``max_keys``)
  is exempt, so the cap cannot lock a user out of the places they log in from either.

:class:`LoginThrottle` is the counter under both: failures per key over a sliding window,
bounded (at most ``max_keys`` keys; past that the keys whose last failure is oldest are
forgotten first).
"""

import math
import time
from collections import OrderedDict, deque
from collections.abc import Callable

__all__ = ["LoginGuard", "LoginThrottle"]

_ALL = "*"


class LoginThrottle:
    def __init__(self, max_failures: int, window: float, *, max_keys: int = 10_000,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.max_failures = max_failures
        self.window = window
        self.max_keys = max_keys
        self._clock = clock
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()

    def retry_after(self, *keys: str) -> int:
        """Seconds until every key may try again (0: allowed now)."""
        now = self._clock()
        wait = 0.0
        for key in keys:
            times = self._recent(key, now)
            if times is not None and len(times) >= self.max_failures:
                wait = max(wait, times[0] + self.window - now)
        return math.ceil(wait) if wait > 0 else 0

    def failed(self, *keys: str) -> None:
        now = self._clock()
        for key in keys:
            times = self._recent(key, now)
            if times is None:
                times = self._failures[key] = deque(maxlen=self.max_failures)
            times.append(now)
            self._failures.move_to_end(key)
        while len(self._failures) > self.max_keys:
            self._failures.popitem(last=False)

    def succeeded(self, key: str) -> None:
        self._failures.pop(key, None)

    def _recent(self, key: str, now: float) -> deque[float] | None:
        times = self._failures.get(key)
        if times is None:
            return None
        while times and times[0] <= now - self.window:
            times.popleft()
        if not times:
            del self._failures[key]
            return None
        return times


class LoginGuard:
    """Failed logins per (user name, client address) pair, under a global cap that spares the
    pairs that have logged in before. User names are compared case-folded."""

    def __init__(self, max_failures: int, window: float, global_max_failures: int, *,
                 max_keys: int = 10_000, clock: Callable[[], float] = time.monotonic) -> None:
        self.pairs = LoginThrottle(max_failures, window, max_keys=max_keys, clock=clock)
        self.everyone = LoginThrottle(global_max_failures, window, max_keys=1, clock=clock)
        self.max_keys = max_keys
        self._known: OrderedDict[str, None] = OrderedDict()  # pairs that logged in

    @staticmethod
    def _pair(username: str, client: str) -> str:
        return f"{username.casefold()}\x00{client}"

    def retry_after(self, username: str, client: str) -> int:
        """Seconds until ``username`` may try again from ``client`` (0: now)."""
        pair = self._pair(username, client)
        wait = self.pairs.retry_after(pair)
        if pair not in self._known:
            wait = max(wait, self.everyone.retry_after(_ALL))
        return wait

    def failed(self, username: str, client: str) -> None:
        self.pairs.failed(self._pair(username, client))
        self.everyone.failed(_ALL)

    def succeeded(self, username: str, client: str) -> None:
        pair = self._pair(username, client)
        self.pairs.succeeded(pair)
        self._known.pop(pair, None)
        self._known[pair] = None
        while len(self._known) > self.max_keys:
            self._known.popitem(last=False)
