"""Webhook delivery: a signed JSON POST per notification, retried with backoff, every attempt
logged, never in the way of trading.

Where it sits: in the webhook delivery process (:mod:`lts.notify.webhook_worker`), which the
engine's notifier feeds (:mod:`lts.notify.webhook_outbox`). Each notification goes to the
:class:`WebhookSender` of every webhook that should get it (:meth:`WebhookDispatcher.offer`,
never waits). Each webhook has a sender task of its own with a bounded queue (the oldest
notification dropped when full, counted): a slow or dead receiver holds up only its own
webhook. A sender delivers up to ``concurrency`` notifications at once; each is tried up to
``max_attempts`` times, ``initial_backoff`` seconds apart doubled per try (capped at
``max_backoff``, jittered down to half; a ``Retry-After`` of a 429 or 503 is honoured within the
cap). Retried: no answer, a timeout, 408, 425, 429 and 5xx; any other answer below 200 or from
300 up is final (the receiver refused it; redirects are not followed). Every attempt becomes a
row (``delivered``, ``retrying``, ``failed``) for the :class:`AttemptLog`: the engine's
:class:`~lts.notify.delivery_log.DeliveryLog` writes them to ``webhook_deliveries``.

HTTP client: aiohttp (one session for every webhook; no proxies from the environment). Private
destinations are refused unless allowed (:mod:`lts.notify.destinations`).
"""

import logging
import random
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import urlsplit

import aiohttp
import anyio
from anyio.abc import TaskGroup

from lts import __version__
from lts.addresses import private_host
from lts.bus import Mailbox, Overflow
from lts.notify.config import WebhookSettings
from lts.notify.signature import (
    ATTEMPT_HEADER,
    EVENT_HEADER,
    EVENT_ID_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    sign,
)
from lts.notify.webhook_wire import Item, WebhookRoute

__all__ = ["AttemptLog", "WebhookDispatcher", "WebhookSender"]

log = logging.getLogger("lts.notify.webhooks")

_RETRYABLE = frozenset({408, 425, 429})
_USER_AGENT = f"LTS-Webhooks/{__version__}"


@dataclass(frozen=True)
class _Outcome:
    delivered: bool
    retry: bool
    http_status: int | None
    error: str | None
    retry_after: float | None = None


class AttemptLog(Protocol):
    """Where each attempt's row goes (the delivery log, written by the engine's process)."""

    def record(self, row: dict[str, Any]) -> None: ...


class WebhookSender:
    """One webhook's queue and deliveries (its task: :meth:`run`)."""

    def __init__(self, route: WebhookRoute, session: aiohttp.ClientSession,
                 settings: WebhookSettings, delivery_log: AttemptLog) -> None:
        self.route = route
        self._session = session
        self._settings = settings
        self._log = delivery_log
        self._queue: Mailbox[Item] = Mailbox(settings.queue, Overflow.DROP_OLDEST,
                                                      name=f"webhook-{route.id}")
        self._in_flight = anyio.Semaphore(settings.concurrency)
        self.scope = anyio.CancelScope()
        self.delivered = 0
        self.failed = 0

    @property
    def dropped(self) -> int:
        return self._queue.dropped

    def offer(self, n: Item) -> None:
        self._queue.put_nowait(n)

    async def run(self) -> None:
        with self.scope:
            async with anyio.create_task_group() as tg:
                while True:
                    for n in await self._queue.get_batch():
                        await self._in_flight.acquire()
                        tg.start_soon(self._deliver, n)

    async def _deliver(self, n: Item) -> None:
        try:
            await self._tries(n)
        except Exception:  # a bug here must not end the webhook's other deliveries
            self.failed += 1
            log.exception("webhook %d: %s %s not delivered", self.route.id, n.type, n.id)
        finally:
            self._in_flight.release()

    async def _tries(self, n: Item) -> None:
        s = self._settings
        for attempt in range(1, s.max_attempts + 1):
            started = time.perf_counter()
            outcome = await self._attempt(n, attempt)
            last = outcome.delivered or not outcome.retry or attempt == s.max_attempts
            self._record(n, attempt, outcome, started, last)
            if outcome.delivered:
                self.delivered += 1
                return
            if last:
                self.failed += 1
                log.warning("webhook %d: %s %s not delivered after %d attempt(s): %s",
                            self.route.id, n.type, n.id, attempt,
                            outcome.error or outcome.http_status)
                return
            backoff = min(s.initial_backoff * 2 ** (attempt - 1), s.max_backoff)
            backoff *= random.uniform(0.5, 1.0)  # noqa: S311 - jitter, not security
            if outcome.retry_after is not None:
                backoff = max(backoff, min(outcome.retry_after, s.max_backoff))
            await anyio.sleep(backoff)

    async def _attempt(self, n: Item, attempt: int) -> _Outcome:
        route = self.route  # read per attempt: a changed URL or secret acts on the next one
        ts = int(time.time())
        headers = {"Content-Type": "application/json", "User-Agent": _USER_AGENT,
                   TIMESTAMP_HEADER: str(ts), SIGNATURE_HEADER: sign(route.secret, ts, n.body),
                   EVENT_ID_HEADER: n.id, EVENT_HEADER: n.type, ATTEMPT_HEADER: str(attempt)}
        if not self._settings.allow_private_networks and \
                private_host(urlsplit(route.url).hostname or ""):
            return _Outcome(False, False, None, "destination not allowed: a private address")
        try:
            async with self._session.post(
                    route.url, data=n.body, headers=headers, allow_redirects=False,
                    timeout=aiohttp.ClientTimeout(total=self._settings.timeout)) as resp:
                status = resp.status
                retry_after = _seconds(resp.headers.get("Retry-After"))
                await resp.content.readany()  # a glance at most: the answer is not kept
        except TimeoutError:
            return _Outcome(False, True, None, "timeout")
        except aiohttp.ClientError as exc:
            return _Outcome(False, True, None, _describe(exc))
        except (OSError, ValueError) as exc:  # an unusable URL, a refused socket
            return _Outcome(False, isinstance(exc, OSError), None, _describe(exc))
        if 200 <= status < 300:
            return _Outcome(True, False, status, None)
        retry = status >= 500 or status in _RETRYABLE
        return _Outcome(False, retry, status, f"HTTP {status}",
                        retry_after if status in (429, 503) else None)

    def _record(self, n: Item, attempt: int, outcome: _Outcome, started: float,
                last: bool) -> None:
        self._log.record({
            "webhook_id": self.route.id, "event_id": n.id[:64], "event_type": n.type[:32],
            "portfolio_id": n.portfolio_id, "attempt": attempt,
            "outcome": "delivered" if outcome.delivered else "failed" if last else "retrying",
            "http_status": outcome.http_status,
            "error": None if outcome.error is None else outcome.error[:200],
            "duration_ms": int((time.perf_counter() - started) * 1000)})


def _seconds(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None
    return seconds if 0 <= seconds < 1e6 else None


def _describe(exc: BaseException) -> str:
    """The error's class and, for a connection error, the OS's reason (never a URL's secret:
    aiohttp puts the host and port in the message, not the path or query)."""
    inner = getattr(exc, "os_error", None)
    if isinstance(inner, OSError) and inner.strerror:
        return f"{type(exc).__name__}: {inner.strerror}"
    return type(exc).__name__


class WebhookDispatcher:
    """The senders of the active webhooks, kept in step with the routes the notifier reads."""

    def __init__(self, tg: TaskGroup, session: aiohttp.ClientSession, settings: WebhookSettings,
                 delivery_log: AttemptLog) -> None:
        self._tg = tg
        self._session = session
        self._settings = settings
        self._log = delivery_log
        self.senders: dict[int, WebhookSender] = {}
        self._retired = {"delivered": 0, "failed": 0, "dropped": 0}  # of senders stopped

    def sync(self, routes: list[WebhookRoute]) -> None:
        """Start senders for new webhooks, update changed ones, stop those gone."""
        wanted = {r.id: r for r in routes}
        for wid in list(self.senders):
            if wid not in wanted:
                gone = self.senders.pop(wid)
                gone.scope.cancel()
                for name, n in self._totals((gone,)).items():
                    self._retired[name] += n
        for wid, route in wanted.items():
            sender = self.senders.get(wid)
            if sender is None:
                sender = self.senders[wid] = WebhookSender(route, self._session, self._settings,
                                                           self._log)
                self._tg.start_soon(sender.run, name=f"webhook {wid}")
            else:
                sender.route = route

    def offer(self, n: Item) -> None:
        """Queue ``n`` for each webhook it names that is active."""
        for wid in n.webhooks:
            sender = self.senders.get(wid)
            if sender is not None:
                sender.offer(n)

    def totals(self) -> dict[str, int]:
        """Notifications delivered, failed (after their last try) and dropped (a full queue),
        over every webhook since the notifier started."""
        now = self._totals(self.senders.values())
        return {name: self._retired[name] + now[name] for name in now}

    @staticmethod
    def _totals(senders: Iterable[WebhookSender]) -> dict[str, int]:
        out = {"delivered": 0, "failed": 0, "dropped": 0}
        for sender in senders:
            out["delivered"] += sender.delivered
            out["failed"] += sender.failed
            out["dropped"] += sender.dropped
        return out
