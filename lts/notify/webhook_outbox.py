"""The engine's side of webhook delivery: notifications out to the delivery process, its reports
back.

Where it sits: the notifier (:mod:`lts.notify.service`) calls :meth:`WebhookOutbox.sync` with the
active webhooks and :meth:`WebhookOutbox.offer` with each notification and the webhooks that get
it; neither waits. Offers wait in a bounded queue (the oldest dropped when full, counted) and
one task sends them to the delivery process (:mod:`lts.notify.webhook_worker`) a batch per
frame (:mod:`lts.notify.webhook_wire`). Another task reads the process's reports: delivery
totals and log records (logged here, under their own logger names, as if the engine had written
them). The process writes the delivery log itself, to the engine's database.

The process starts with the first webhook (an engine with none never starts it). If it ends
unexpectedly, it is logged and started again a second later with the current webhooks; the
notifications it held are lost (its totals until then are kept). On the way out the process is
told to stop and given a few seconds to write its last rows and send its last report.
"""

import logging
import subprocess
import sys

import anyio
from anyio.abc import ByteReceiveStream, ByteSendStream, Process, TaskStatus
from anyio.streams.buffered import BufferedByteReceiveStream

from lts.bus import Mailbox, MailboxClosed, Overflow
from lts.notify.config import WebhookSettings
from lts.notify.events import Notification
from lts.notify.webhook_wire import (
    HEADER,
    Item,
    Message,
    Offer,
    Report,
    Routes,
    Start,
    Stop,
    WebhookRoute,
    decode,
    encode,
    unpack_length,
)
from lts.persistence.db import SqliteSynchronous

__all__ = ["WebhookOutbox"]

log = logging.getLogger("lts.notify.webhooks")

#: notifications per frame to the delivery process, at most
BATCH = 1000
#: seconds the process has to send its last report and exit once told to stop
STOP_GRACE = 5.0
#: seconds before a process that ended unexpectedly is started again
RESTART_AFTER = 1.0
_TOTALS = ("delivered", "failed", "dropped", "log_written", "log_dropped")


class WebhookOutbox:
    """Notifications for webhooks, handed to the delivery process (its task: :meth:`run`)."""

    def __init__(self, settings: WebhookSettings, database_url: str, *,
                 sqlite_synchronous: SqliteSynchronous = "FULL", capacity: int = 100_000) -> None:
        self._settings = settings
        self._database = (database_url, sqlite_synchronous)
        self._pending: Mailbox[Item | None] = Mailbox(capacity, Overflow.DROP_OLDEST,
                                                      name="webhook-outbox")
        self._routes: list[WebhookRoute] = []
        self._routes_sent = False
        self._wanted = anyio.Event()  # set at the first webhook: the process is needed
        self._retired = dict.fromkeys(_TOTALS, 0)  # of processes that ended
        self._current = dict.fromkeys(_TOTALS, 0)
        self.restarts = 0

    def sync(self, routes: list[WebhookRoute]) -> None:
        """The active webhooks (sent to the process before any later offer)."""
        self._routes = routes
        self._routes_sent = False
        if routes:
            self._wanted.set()
        self._pending.put_nowait(None)  # wakes the sender

    def offer(self, n: Notification, routes: list[WebhookRoute]) -> None:
        """Queue ``n`` for ``routes`` (never waits)."""
        if routes:
            self._pending.put_nowait(Item(n.id, n.type, n.portfolio_id, n.body,
                                          [r.id for r in routes]))

    def totals(self) -> dict[str, int]:
        """Notifications delivered, failed (after their last try) and dropped (a full queue,
        here or in the process), over every webhook since the notifier started; delivery-log
        rows written and dropped."""
        out = {k: self._retired[k] + self._current[k] for k in _TOTALS}
        out["dropped"] += self._pending.dropped
        return out

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        await self._wanted.wait()
        while True:
            try:
                code = await self._run_process()
                log.error("webhook delivery process exited (status %s); started again in "
                          "%.0fs, the notifications it held are lost", code, RESTART_AFTER)
            except OSError as exc:
                log.error("webhook delivery process could not start (%s); tried again in "
                          "%.0fs", exc, RESTART_AFTER)
            self.restarts += 1
            for k in _TOTALS:
                self._retired[k] += self._current[k]
            self._current = dict.fromkeys(_TOTALS, 0)
            await anyio.sleep(RESTART_AFTER)

    async def _run_process(self) -> int | None:
        """Start the process and serve it until it ends; its exit status."""
        process = await anyio.open_process(
            [sys.executable, "-m", "lts.notify.webhook_worker"], stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=None)
        assert process.stdin is not None
        assert process.stdout is not None
        frames = _Frames(process.stdout)
        self._routes_sent = False
        try:
            start = Start(self._settings.model_dump(mode="json"),
                          logging.getLevelName(logging.getLogger().getEffectiveLevel()),
                          *self._database)
            await process.stdin.send(encode(start))
            async with anyio.create_task_group() as tg:
                tg.start_soon(self._send, process.stdin)
                await self._receive(frames)  # returns when the process's output ends
                tg.cancel_scope.cancel()
            return await process.wait()
        except (anyio.BrokenResourceError, anyio.ClosedResourceError):
            return await process.wait()
        finally:
            with anyio.CancelScope(shield=True):
                await self._stop(process, frames)

    async def _send(self, stdin: ByteSendStream) -> None:
        while True:
            try:
                batch = await self._pending.get_batch(BATCH)
            except MailboxClosed:
                return
            if not self._routes_sent:
                self._routes_sent = True
                await stdin.send(encode(Routes(self._routes)))
            items = [item for item in batch if item is not None]
            if items:
                await stdin.send(encode(Offer(items)))

    async def _receive(self, frames: "_Frames") -> None:
        while True:
            try:
                message = await frames.next()
            except (anyio.EndOfStream, anyio.IncompleteRead):
                return
            if isinstance(message, Report):
                self._take(message)

    def _take(self, report: Report) -> None:
        for k in _TOTALS:
            self._current[k] = report.totals.get(k, 0)
        for line in report.log:
            logging.getLogger(line.logger).log(line.level, "%s", line.message)

    async def _stop(self, process: Process, frames: "_Frames") -> None:
        """Tell the process to stop, read its last report, and wait for it (killed if it
        does not end in time)."""
        if process.returncode is None:
            assert process.stdin is not None
            with anyio.move_on_after(STOP_GRACE):
                try:
                    await process.stdin.send(encode(Stop()))
                    await process.stdin.aclose()
                    await self._receive(frames)
                except (anyio.BrokenResourceError, anyio.ClosedResourceError):
                    pass
                await process.wait()
        if process.returncode is None:
            process.kill()
            await process.wait()
        await process.aclose()



class _Frames:
    """The process's messages, read from its standard output (a read cancelled half-way
    resumes where it stopped: the bytes read stay in the buffer, the length read stays here)."""

    def __init__(self, stdout: ByteReceiveStream) -> None:
        self._stream = BufferedByteReceiveStream(stdout)
        self._length: int | None = None

    async def next(self) -> Message:
        if self._length is None:
            self._length = unpack_length(await self._stream.receive_exactly(HEADER.size))
        payload = await self._stream.receive_exactly(self._length)
        self._length = None
        return decode(payload)
