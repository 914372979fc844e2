"""One supervisor per portfolio: its lifecycle, its lease, its restarts.

Where it sits: the engine makes one :class:`PortfolioSupervisor` per portfolio it trades and
runs its task in the trading task group; the facade's activate, deactivate and restart go to it
and nowhere else, so a portfolio never has two runners. The supervisor:

- takes the portfolio's lease first (another engine may hold it: the portfolio is STANDBY and the
  lease is tried again every ``lease_retry`` seconds) and registers its fencing token with the
  journal; a lost lease cancels the runner at once (another engine trades it now);
- runs the runner; a runner that raises is caught here, at the portfolio boundary: ERROR with a
  sanitized reason (exception type and first line, never a traceback), an audit row, and a
  restart after an exponential backoff, up to ``max_restarts``; after ``reset_after`` seconds
  of healthy running the count and the backoff start over (outages do not add up);
- ``activate`` while it waits in backoff (or has given up) restarts that same runner at once;
  ``deactivate`` stops the runner gracefully (a ``Stop`` command) and waits for it.

A failure and a recovery from one also go out on the bus as
:class:`~lts.domain.events.PortfolioStatusChanged` (``error``, ``restarted``), once the journal
has committed the audit row that records it (notifications, :mod:`lts.notify`).
"""

import asyncio
import enum
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import anyio

from lts.bus import Bus
from lts.domain.commands import Stop
from lts.domain.events import PortfolioStatusChanged
from lts.engine.inbox import Envelope
from lts.engine.runner import PortfolioRunner
from lts.errors import ConfigError, LeaseLost
from lts.persistence.journal import Journal
from lts.persistence.leases import Lease, LeaseManager

__all__ = ["PortfolioStatus", "PortfolioSupervisor", "RestartPolicy", "sanitize"]

log = logging.getLogger("lts.supervisor")

_RELEASE_WITHIN = 5.0  # seconds a stop waits for the journal and the lease before going on


class PortfolioStatus(enum.Enum):
    STOPPED = "stopped"
    STARTING = "starting"  # connecting and reconciling
    RUNNING = "running"
    ERROR = "error"  # failed; restarts after its backoff unless it has used up its restarts
    STOPPING = "stopping"
    STANDBY = "standby"  # another engine holds its lease


def sanitize(exc: BaseException, limit: int = 200) -> str:
    """A reason safe to store and show: the innermost exception's type and first line."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    first = (str(exc).splitlines() or [""])[0].strip()
    text = f"{type(exc).__name__}: {first}" if first else type(exc).__name__
    return text[:limit]


@dataclass
class RestartPolicy:
    initial_delay: float = 1.0
    max_delay: float = 60.0
    max_restarts: int = 20
    reset_after: float = 60.0  # seconds of healthy running that reset count and backoff
    lease_retry: float = 5.0  # seconds between tries for a lease another engine holds


#: (fence: the leased portfolio id or None, restart: a runner of it ran before in this process)
MakeRunner = Callable[[int | None, bool], Awaitable[PortfolioRunner]]


class PortfolioSupervisor:
    def __init__(self, portfolio_id: int, make_runner: MakeRunner, *, journal: Journal,
                 leases: LeaseManager | None, policy: RestartPolicy,
                 bus: Bus | None = None) -> None:
        self.portfolio_id = portfolio_id
        self._bus = bus
        self._make_runner = make_runner
        self._journal = journal
        self._leases = leases
        self.policy = policy
        self.status = PortfolioStatus.STOPPED
        self.last_error: str | None = None
        self.restarts = 0
        self.holder: str | None = None  # who holds the lease while STANDBY
        self.runner: PortfolioRunner | None = None
        self.want_running = False
        self.gave_up = False
        self.task_running = False
        self._wake = anyio.Event()
        self._finished = anyio.Event()
        self._scope: anyio.CancelScope | None = None
        self._lease: Lease | None = None
        self._lease_lost = False
        self.runs = 0  # runners started in this process
        #: set once the first start has an outcome (running, error or standby)
        self.settled = anyio.Event()

    # -- commands from the engine ---------------------------------------------------------------
    def activate(self) -> bool:
        """Want it running; wake it from a backoff, a standby or a given-up error. True when
        the engine must start the task: then the task is claimed here, at once, so a second
        activate in the same turn of the loop never starts a second one."""
        self.want_running = True
        self._wake.set()
        if self.task_running:
            return False
        self.task_running = True
        self._finished = anyio.Event()
        return True

    async def deactivate(self, reason: str = "deactivated") -> None:
        """Stop the runner gracefully and wait until the task has ended."""
        self.want_running = False
        self._wake.set()
        if not self.task_running:
            return
        runner = self.runner
        if runner is not None and self.status is PortfolioStatus.RUNNING:
            self.status = PortfolioStatus.STOPPING
            try:
                runner.post(Envelope(Stop(reason), None))
            except Exception:  # the runner is already gone: nothing left to stop gracefully
                log.debug("portfolio %s: stop not delivered", self.portfolio_id)
        elif self._scope is not None and self.status is not PortfolioStatus.RUNNING:
            self._scope.cancel()  # starting (reconciling) or waiting: nothing is in flight
        await self._finished.wait()

    def cancel(self) -> None:
        """Stop at once, without the graceful path (engine shutdown after its grace period)."""
        self.want_running = False
        self._wake.set()
        if self._scope is not None:
            self._scope.cancel()

    def lease_lost(self) -> None:
        """Another engine took the portfolio: stop trading it now."""
        if self._lease is None:
            return
        log.error("portfolio %s: lease lost; another engine trades it now", self.portfolio_id)
        self._lease_lost = True
        if self._scope is not None:
            self._scope.cancel()

    # -- the task ------------------------------------------------------------------------------
    async def run(self) -> None:
        """The supervising task; start it only when :meth:`activate` returned True."""
        try:
            await self._supervise()
        finally:
            await self._release()
            if self.status is not PortfolioStatus.STANDBY:
                self.status = PortfolioStatus.STOPPED if not self.gave_up \
                    else PortfolioStatus.ERROR
            self.runner = None
            self.task_running = False
            self.settled.set()
            self._finished.set()

    async def _supervise(self) -> None:
        delay = self.policy.initial_delay
        while self.want_running:
            if self._lease is None:
                self.status = PortfolioStatus.STARTING
                if not await self._take_lease():
                    self.settled.set()
                    await self._sleep(self.policy.lease_retry)
                    continue
                if not self.want_running:
                    continue  # stopped while it took the lease: start nothing (it is released)
            running_since: float | None = None
            try:
                with anyio.CancelScope() as scope:
                    self._scope = scope
                    self._set_status(PortfolioStatus.STARTING)
                    self.runner = await self._make_runner(
                        self.portfolio_id if self._lease is not None else None, self.runs > 0)
                    self.runs += 1
                    async with anyio.create_task_group() as tg:
                        await tg.start(self.runner.run)
                        running_since = time.monotonic()
                        self.gave_up = False
                        self._set_status(PortfolioStatus.RUNNING, clear_error=True)
                        self.settled.set()
                self._scope = None
                if self._lease_lost:
                    await self._lost()
                    continue
                if scope.cancel_called and self.want_running:
                    continue  # canceled to restart at once (activate during start-up)
                return  # stopped (a Stop command), or its historical feeds ended
            except Exception as exc:
                self._scope = None
                if self._lease_lost or _is_lease_lost(exc):
                    await self._lost()
                    continue
                healthy = running_since is not None and \
                    time.monotonic() - running_since >= self.policy.reset_after
                if healthy:
                    self.restarts, delay = 0, self.policy.initial_delay
                self._failed(exc)
                self.settled.set()
                permanent = _is_permanent(exc)
                if permanent or self.restarts >= self.policy.max_restarts:
                    self.gave_up = True
                    if permanent:
                        log.error("portfolio %s stays in error: its configuration must change "
                                  "first (activate it to try again)", self.portfolio_id)
                    else:
                        log.error("portfolio %s stays in error after %d restarts (activate it "
                                  "to try again)", self.portfolio_id, self.restarts)
                    await self._sleep(None)
                    self.restarts, delay = 0, self.policy.initial_delay
                    continue
                self.restarts += 1
                await self._sleep(delay)
                delay = min(delay * 2, self.policy.max_delay)

    async def _sleep(self, seconds: float | None) -> None:
        """Wait ``seconds`` (None: for ever) or until activate/deactivate wakes the task."""
        self._wake = anyio.Event()
        with anyio.move_on_after(seconds if seconds is not None else float("inf")):
            await self._wake.wait()

    def _failed(self, exc: Exception) -> None:
        reason = sanitize(exc)
        self.status, self.last_error = PortfolioStatus.ERROR, reason
        log.error("portfolio %s failed: %s", self.portfolio_id, reason, exc_info=exc)
        pid = self.portfolio_id
        self._journal.update_portfolio({"id": pid, "status": "error", "last_error": reason},
                                       fence=self._fence)
        written = self._journal.insert_audit({
            "actor": "system", "action": "portfolio.error", "target": f"portfolio:{pid}",
            "client_address": None, "outcome": "failure",
            "detail": {"reason": reason, "restarts": self.restarts}})
        self._announce(written, "error", reason)

    def _set_status(self, status: PortfolioStatus, *, clear_error: bool = False) -> None:
        self.status = status
        row: dict[str, object] = {"id": self.portfolio_id, "status": status.value}
        if clear_error:
            row["last_error"] = None
        if status is PortfolioStatus.RUNNING and self.last_error is not None:
            written = self._journal.insert_audit({
                "actor": "system", "action": "portfolio.restarted",
                "target": f"portfolio:{self.portfolio_id}", "client_address": None,
                "outcome": "success", "detail": {"after": self.last_error,
                                                 "restarts": self.restarts}})
            self._announce(written, "restarted", self.last_error)
        if status is not PortfolioStatus.STARTING:
            self._journal.update_portfolio(row, fence=self._fence)

    def _announce(self, written: "asyncio.Future[None]", status: str, reason: str) -> None:
        """Publish the change on the bus once its audit row is committed (never if it fails)."""
        bus = self._bus
        if bus is None:
            return
        event = PortfolioStatusChanged(self.portfolio_id, status, reason, self.restarts,
                                       time.time_ns())

        def committed(future: "asyncio.Future[None]") -> None:
            if not future.cancelled() and future.exception() is None:
                bus.publish_nowait(event, self.portfolio_id)

        written.add_done_callback(committed)

    # -- the lease -----------------------------------------------------------------------------
    @property
    def _fence(self) -> int | None:
        return self.portfolio_id if self._lease is not None else None

    async def _take_lease(self) -> bool:
        if self._leases is None:
            return True  # no leases (a backtest): nothing to fence
        try:
            lease = await self._leases.acquire(self.portfolio_id)
        except Exception as exc:  # the database is away: try again later
            log.warning("portfolio %s: lease not taken (%s)", self.portfolio_id, sanitize(exc))
            return False
        if lease is None:
            holder = await self._leases.holder(self.portfolio_id)
            if self.status is not PortfolioStatus.STANDBY or holder != self.holder:
                log.warning("portfolio %s: held by another engine (%s); standing by",
                            self.portfolio_id, holder or "unknown")
            self.holder = holder
            self.status = PortfolioStatus.STANDBY
            return False
        self._lease, self.holder = lease, None
        self._lease_lost = False
        self._journal.fence(self.portfolio_id, lease.token)
        return True

    async def _lost(self) -> None:
        """The lease went to another engine: forget it, stand by, try again later."""
        self._journal.unfence(self.portfolio_id)
        self._lease, self._lease_lost = None, False
        self.runner = None
        self.status = PortfolioStatus.STANDBY
        await self._sleep(self.policy.lease_retry)

    async def _release(self) -> None:
        """Record the stop, then give the lease back (bounded: the database may be away)."""
        if self._lease is None:
            return
        if not self.gave_up:
            self._journal.update_portfolio(
                {"id": self.portfolio_id, "status": "stopped"}, fence=self.portfolio_id)
        with anyio.CancelScope(shield=True), anyio.move_on_after(_RELEASE_WITHIN):
            await self._journal.flush()  # written under the lease, before it is given back
        self._journal.unfence(self.portfolio_id)
        self._lease = None
        if self._leases is not None:
            with anyio.CancelScope(shield=True), anyio.move_on_after(_RELEASE_WITHIN):
                try:
                    await self._leases.release(self.portfolio_id)
                except Exception as exc:  # it ends with the session (or the process) anyway
                    log.warning("portfolio %s: lease release failed (%s)", self.portfolio_id,
                                sanitize(exc))


def _innermost(exc: BaseException) -> BaseException:
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return exc


def _is_permanent(exc: BaseException) -> bool:
    """A failure no restart can mend (no credentials stored, keys the venue refuses): the
    portfolio waits in error for an operator rather than knock on the venue again and again.
    (A plugin not installed is retried: it may be installed meanwhile.)"""
    return isinstance(_innermost(exc), ConfigError)


def _is_lease_lost(exc: BaseException) -> bool:
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return isinstance(exc, LeaseLost)
