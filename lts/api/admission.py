"""Admission control at the HTTP edge: the API shares the engine's event loop with trading, so
a request is admitted, not trusted (architecture §4).

Where it sits: inside :class:`~lts.api.middleware.EdgeMiddleware` (a refusal carries the
correlation id and the security headers) and before CORS and the routes, so a refused request
costs the loop almost nothing. Plain ASGI, like the edge. Two checks, in this order, for every
HTTP request except the monitoring paths (``/healthz``, ``/readyz``, ``/metrics`` must answer
under overload):

1. a token bucket per client address (``api.rate_limit_per_second`` refills it,
   ``api.rate_limit_burst`` is its size; a rate of 0 switches the check off): an empty bucket
   answers 429 with ``Retry-After`` (whole seconds until a token is back) and code
   ``rate_limited``. At most :data:`MAX_CLIENTS` addresses are remembered; the one seen least
   recently is forgotten first (it comes back with a full bucket).
2. a bound on the requests being served (``api.max_concurrent_requests``; 0: no bound): over it
   the answer is 503 with ``Retry-After: 1`` and code ``overloaded``, at once — nothing queues
   on the loop.

WebSockets pass untouched: they are long-lived, not requests in flight (the order stream has
its own bound per client). Refusals are counted in ``lts_http_refused_total{reason}`` and not
audited (a flood must not turn into audit writes); ``lts_http_requests_in_flight`` is read at
scrape time.
"""

import math
import time
from collections import OrderedDict
from collections.abc import Callable

from lts.api.metrics import ApiMetrics
from lts.api.middleware import App, Receive, Scope, Send

MAX_CLIENTS = 10_000
EXEMPT_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})


class TokenBuckets:
    """One token bucket per key (a client address), in bounded memory: the key used least
    recently is forgotten when a new one would pass ``max_keys``."""

    def __init__(self, rate: float, burst: int, max_keys: int = MAX_CLIENTS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate
        self.burst = float(burst)
        self.max_keys = max_keys
        self._clock = clock
        self._buckets: OrderedDict[str, list[float]] = OrderedDict()  # key -> [tokens, stamp]

    def __len__(self) -> int:
        return len(self._buckets)

    def take(self, key: str) -> float:
        """Take a token for ``key``: 0.0 when there was one, else the seconds until one is."""
        now = self._clock()
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = [self.burst, now]
            if len(self._buckets) > self.max_keys:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(key)
            bucket[0] = min(self.burst, bucket[0] + (now - bucket[1]) * self.rate)
            bucket[1] = now
        if bucket[0] >= 1.0:
            bucket[0] -= 1.0
            return 0.0
        return (1.0 - bucket[0]) / self.rate


class AdmissionMiddleware:
    """The rate limit per client address (429) and the bound on requests in flight (503)."""

    def __init__(self, app: App, metrics: ApiMetrics, max_concurrent: int,
                 rate_per_second: float, burst: int) -> None:
        self.app = app
        self.max_concurrent = max_concurrent
        self.in_flight = 0
        self.buckets = TokenBuckets(rate_per_second, burst) if rate_per_second > 0 else None
        self._limited = metrics.http_refused.labels("rate_limited")
        self._overloaded = metrics.http_refused.labels("overloaded")
        metrics.http_in_flight.set_function(lambda: self.in_flight)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in EXEMPT_PATHS:
            await self.app(scope, receive, send)
            return
        if self.buckets is not None:
            client = scope.get("client")
            wait = self.buckets.take(client[0] if client else "unknown")
            if wait:
                self._limited.inc()
                await _refuse(scope, send, 429, "rate_limited", "too many requests, slow down",
                              max(1, math.ceil(wait)))
                return
        if self.max_concurrent and self.in_flight >= self.max_concurrent:
            self._overloaded.inc()
            await _refuse(scope, send, 503, "overloaded", "server busy, retry later", 1)
            return
        self.in_flight += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.in_flight -= 1


async def _refuse(scope: Scope, send: Send, status: int, code: str, detail: str,
                  retry_after: int) -> None:
    cid = str(scope.get("state", {}).get("correlation_id", ""))
    body = (b'{"detail":"' + detail.encode() + b'","code":"' + code.encode()
            + b'","correlation_id":"' + cid.encode() + b'"}')
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode()),
                            (b"retry-after", str(retry_after).encode())]})
    await send({"type": "http.response.body", "body": body})
