"""The webhook delivery process: every webhook POST, off the engine's event loop.

Where it sits: started by the engine's notifier (:mod:`lts.notify.webhook_outbox`) as
``python -m lts.notify.webhook_worker`` once a webhook exists, and fed over its standard input
(:mod:`lts.notify.webhook_wire`). It runs the senders (:mod:`lts.notify.webhooks`: queues,
retries, signatures, the HTTP client) on an event loop of its own, so thousands of deliveries a
second cost the trading loop one frame per batch of notifications, not a request each. Its
attempts' rows, totals and log records go back over its standard output a few times a second;
the engine writes the rows to the delivery log and logs the records as its own.

It runs at a lower CPU priority than the engine (``nice`` +10 where the system has it): on a
busy host, trading comes first and notifications wait. It ends when the engine says
:class:`~lts.notify.webhook_wire.Stop` or its standard input closes (the engine is gone, even
killed): it never outlives the engine.
"""

import contextlib
import logging
import os
import signal
import sys
import threading
from typing import Any, BinaryIO

import anyio
import anyio.to_thread

from lts.notify.config import WebhookSettings
from lts.notify.destinations import http_session
from lts.notify.events import Notification
from lts.notify.webhook_wire import LogLine, Offer, Report, Routes, Start, Stop, encode, read_frame
from lts.notify.webhooks import WebhookDispatcher

__all__ = ["NICE", "main"]

log = logging.getLogger("lts.notify.webhooks")

#: how much lower than the engine's the process's CPU priority is (POSIX ``nice``)
NICE = 10
#: seconds between reports to the engine (while there is something to say)
REPORT_EVERY = 0.2
#: attempt rows and log records waiting for the next report, at most (the oldest dropped)
BACKLOG = 50_000


class _Outgoing(logging.Handler):
    """What the next report carries: attempt rows (the senders' log) and log records."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.rows: list[dict[str, Any]] = []
        self.lines: list[LogLine] = []
        self.rows_dropped = 0
        self._lock = threading.Lock()  # records may come from the resolver's threads

    def record(self, row: dict[str, Any]) -> None:
        if len(self.rows) >= BACKLOG:
            del self.rows[0]
            self.rows_dropped += 1
        self.rows.append(row)

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage()
        if record.exc_info:
            text += "\n" + logging.Formatter().formatException(record.exc_info)
        with self._lock:
            if len(self.lines) < BACKLOG:
                self.lines.append(LogLine(record.levelno, record.name, text))

    def take(self) -> tuple[list[dict[str, Any]], list[LogLine]]:
        with self._lock:
            rows, lines, self.rows, self.lines = self.rows, self.lines, [], []
        return rows, lines


async def _serve(start: Start, inbound: BinaryIO, outbound: BinaryIO,
                 outgoing: _Outgoing) -> None:
    settings = WebhookSettings.model_validate(start.settings)
    public = not settings.allow_private_networks
    async with http_session(256, public_only=public) as session, \
            anyio.create_task_group() as tg:
        dispatcher = WebhookDispatcher(tg, session, settings, outgoing)

        sent: dict[str, int] = {}

        async def report() -> None:
            nonlocal sent
            rows, lines = outgoing.take()
            totals = dispatcher.totals() | {"log_dropped": outgoing.rows_dropped}
            if rows or lines or totals != sent:
                frame = encode(Report(rows, totals, lines))
                await anyio.to_thread.run_sync(_write, outbound, frame)
                sent = totals

        async def report_often() -> None:
            while True:
                await anyio.sleep(REPORT_EVERY)
                await report()

        tg.start_soon(report_often)
        while True:
            message = await anyio.to_thread.run_sync(read_frame, inbound,
                                                     abandon_on_cancel=True)
            if message is None or isinstance(message, Stop):
                break
            if isinstance(message, Routes):
                dispatcher.sync(message.routes)
            elif isinstance(message, Offer):
                for item in message.items:
                    n = Notification(item.id, item.type, item.portfolio_id, "", 0, {}, item.body)
                    dispatcher.offer(n, item.webhooks)
        tg.cancel_scope.cancel()
        if message is not None:  # stopped: the engine reads what happened until now
            with anyio.CancelScope(shield=True):
                await report()


def _write(stream: BinaryIO, frame: bytes) -> None:
    stream.write(frame)
    stream.flush()


def _lower_priority() -> None:
    if hasattr(os, "nice"):  # POSIX; elsewhere the process keeps the engine's priority
        with contextlib.suppress(OSError):
            os.nice(NICE)


def main() -> int:
    # a Ctrl-C reaches the engine's whole process group: the engine stops, then says Stop
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    inbound, outbound = sys.stdin.buffer, sys.stdout.buffer
    sys.stdout = sys.stderr  # the standard output carries frames only
    start = read_frame(inbound)
    if not isinstance(start, Start):
        return 2
    outgoing = _Outgoing()
    logging.basicConfig(level=start.log_level, handlers=[outgoing], force=True)
    _lower_priority()
    try:
        import uvloop  # noqa: F401 - not on Windows
        options = {"use_uvloop": True}
    except ImportError:
        options = {}
    anyio.run(_serve, start, inbound, outbound, outgoing, backend_options=options)
    return 0


if __name__ == "__main__":
    sys.stdout.flush()
    os._exit(main())  # a reader thread may still wait on the standard input: not joined
