"""Login throttling for the ``local`` aaa plugin: failed logins are counted per key (a user name,
a client address) over a sliding window; a key with ``max_failures`` in the window is refused
until its oldest failure leaves the window. In memory, per process: it slows guessing, it is not
an account lock. Bounded: at most ``max_keys`` keys are tracked; past that the keys whose last
failure is oldest are forgotten first.
"""

import math
import time
from collections import OrderedDict, deque
from collections.abc import Callable


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
