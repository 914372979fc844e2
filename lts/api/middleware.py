"""ASGI middleware at the HTTP edge: a correlation id on every request, security headers, a
body-size limit, and the per-route request counter. Plain ASGI (no ``BaseHTTPMiddleware``): it
adds no task per request and leaves WebSockets alone.
"""

import itertools
import logging
import os
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from prometheus_client import Counter

from lts.api.metrics import ApiMetrics

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]

log = logging.getLogger("lts.api")

SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cache-control", b"no-store"),
    (b"content-security-policy", b"default-src 'none'; frame-ancestors 'none'"),
]
# The interactive docs load their own scripts and styles from the same origin.
DOCS_CSP = (b"content-security-policy",
            b"default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
            b"script-src 'self' 'unsafe-inline'")


# The dashboard's pages (lts.api.dashboard): scripts, styles, images and connections (fetch and
# the WebSocket: CSP 3's 'self' covers ws:// and wss:// of the same host) from this origin only;
# no inline script or style, no eval, no plugin, no <base>, forms post only here.
DASHBOARD_CSP = (b"content-security-policy",
                 b"default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
                 b"connect-src 'self'; base-uri 'none'; form-action 'self'; "
                 b"frame-ancestors 'none'")


# A backtest or sweep report (lts.api.routes.reports): plotly needs eval, so the page runs
# sandboxed (an opaque origin: its scripts cannot read the dashboard's sessionStorage or call the
# API as the user), with scripts, styles and images from this server only, and no framing.
REPORT_CSP = (b"content-security-policy",
              b"sandbox allow-scripts; default-src 'none'; script-src 'self' 'unsafe-eval'; "
              b"style-src 'self' 'unsafe-inline'; img-src 'self' data:; base-uri 'none'; "
              b"form-action 'none'; frame-ancestors 'none'")


def _with_csp(csp: tuple[bytes, bytes]) -> list[tuple[bytes, bytes]]:
    return [h for h in SECURITY_HEADERS if h[0] != b"content-security-policy"] + [csp]


_DOCS_HEADERS = _with_csp(DOCS_CSP)
_DASHBOARD_HEADERS = _with_csp(DASHBOARD_CSP)
_REPORT_HEADERS = _with_csp(REPORT_CSP)


def _edge_headers(path: str) -> list[tuple[bytes, bytes]]:
    if path.startswith(("/docs", "/redoc")):
        return _DOCS_HEADERS
    if path == "/" or path.startswith("/dashboard/"):
        return _DASHBOARD_HEADERS
    if path.startswith("/reports/"):
        return _REPORT_HEADERS
    return SECURITY_HEADERS


class CorrelationIds:
    """Unique request ids without a system call each: this process's random prefix and a
    counter (32 hex digits, like a UUID's). They need to be unique, not secret."""

    def __init__(self) -> None:
        self._prefix = os.urandom(8).hex()
        self._counter = itertools.count(1)

    def next(self) -> str:
        return f"{self._prefix}{next(self._counter):016x}"


class EdgeMiddleware:
    """Correlation id (``x-correlation-id``, taken from the request when sane), security
    headers, a ``max_body`` limit (413) and the ``lts_http_requests_total`` counter."""

    def __init__(self, app: App, metrics: ApiMetrics, max_body: int) -> None:
        self.app = app
        self.metrics = metrics
        self.max_body = max_body
        self._counters: dict[tuple[str, str, int], Counter] = {}
        self._ids = CorrelationIds()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        given = headers.get(b"x-correlation-id", b"").decode("latin-1")
        cid = given if given.isalnum() and 8 <= len(given) <= 64 else self._ids.next()
        scope.setdefault("state", {})["correlation_id"] = cid
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body:
            if int(declared) <= _DRAIN_MAX:
                await _drain(receive, 0)
            await _too_large(send, cid)
            self._count(scope, 413)
            return
        received = 0
        status = 500

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body:
                    raise _BodyTooLarge
            return message

        async def send_with_headers(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()),
                                      *_edge_headers(scope.get("path", "")),
                                      (b"x-correlation-id", cid.encode())]
            await send(message)

        try:
            await self.app(scope, limited_receive, send_with_headers)
        except _BodyTooLarge:
            status = 413
            await _drain(receive, received)
            await _too_large(send, cid)
        finally:
            self._count(scope, status)

    def _count(self, scope: Scope, status: int) -> None:
        route = scope.get("route")
        key = (scope["method"], getattr(route, "path", None) or "unmatched", status)
        counter = self._counters.get(key)
        if counter is None:  # one child per (method, route, status): a bounded set
            counter = self._counters[key] = self.metrics.http_requests.labels(
                key[0], key[1], str(status))
        counter.inc()


class _BodyTooLarge(Exception):
    pass


#: A body over the limit is still read (and dropped) up to this size before the 413: a server
#: that answers and closes while the client is still sending makes the client's kernel see a
#: reset, and the client an error instead of the 413 (as nginx's lingering close avoids).
#: Beyond it the connection is closed at once.
_DRAIN_MAX = 16 * 1024 * 1024


async def _drain(receive: Receive, received: int) -> None:
    """Read and drop the rest of the request body, ``_DRAIN_MAX`` bytes in all at most."""
    more = True
    while more and received <= _DRAIN_MAX:
        message = await receive()
        if message["type"] != "http.request":
            return  # the client went away
        received += len(message.get("body", b""))
        more = message.get("more_body", False)


async def _too_large(send: Send, cid: str) -> None:
    body = (b'{"detail":"request body too large","code":"body_too_large","correlation_id":"'
            + cid.encode() + b'"}')
    await send({"type": "http.response.start", "status": 413,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode()),
                            (b"x-correlation-id", cid.encode()), *SECURITY_HEADERS]})
    await send({"type": "http.response.body", "body": body})
