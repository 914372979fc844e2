"""The webhook delivery process: every webhook POST, off the engine's event loop.

Where it sits: started by the engine's notifier (:mod:`lts.notify.webhook_outbox`) as
``python -m lts.notify.webhook_worker`` once a webhook exists, and fed over its standard input
(:mod:`lts.notify.webhook_wire`). It runs the senders (:mod:`lts.notify.webhooks`: queues,
retries, signatures, the HTTP client) on an event loop of its own, and writes every attempt to
the delivery log (:mod:`lts.notify.delivery_log`, its own connection to the engine's database),
so thousands of deliveries a second cost the trading loop one frame per batch of notifications:
no request, no attempt row, nothing to collect (measured: 2,500 attempt rows a second decoded in
the engine tripled its tick p99). Totals and log records go back over its standard output a few
times a second; the engine logs the records as its own.

It runs at the lowest CPU priority (Linux: ``SCHED_IDLE``, it runs only when a core is
otherwise idle; other POSIX systems: ``nice`` +10): on a busy host, trading comes first and
notifications wait. It ends when the engine says
:class:`~lts.notify.webhook_wire.Stop` or its standard input closes (the engine is gone, even
killed): it never outlives the engine.
"""

import contextlib
import logging
import os
import signal
import sys
import threading
from typing import BinaryIO

import anyio
import anyio.to_thread

from lts.notify.config import WebhookSettings
from lts.notify.delivery_log import DeliveryLog
from lts.notify.destinations import http_session
from lts.notify.webhook_wire import LogLine, Offer, Report, Routes, Start, Stop, encode, read_frame
from lts.notify.webhooks import WebhookDispatcher
from lts.persistence.db import make_engine

__all__ = ["NICE", "main"]

log = logging.getLogger("lts.notify.webhooks")

#: how much lower than the engine's the process's CPU priority is (POSIX ``nice``)
NICE = 10
#: seconds between reports to the engine (while there is something to say)
REPORT_EVERY = 0.2
#: log records waiting for the next report, at most (later ones dropped)
BACKLOG = 10_000
#: seconds the last attempts' rows have to be written once the engine says stop
STOP_WRITES = 3.0


class _LogLines(logging.Handler):
    """The process's log records, for the next report (the engine logs them)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[LogLine] = []
        self._lock = threading.Lock()  # records may come from the resolver's threads

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage()
        if record.exc_info:
            text += "\n" + logging.Formatter().formatException(record.exc_info)
        with self._lock:
            if len(self.lines) < BACKLOG:
                self.lines.append(LogLine(record.levelno, record.name, text))

    def take(self) -> list[LogLine]:
        with self._lock:
            lines, self.lines = self.lines, []
        return lines


async def _serve(start: Start, inbound: BinaryIO, outbound: BinaryIO, lines: _LogLines) -> None:
    settings = WebhookSettings.model_validate(start.settings)
    public = not settings.allow_private_networks
    db = make_engine(start.database_url, sqlite_synchronous=start.sqlite_synchronous)
    delivery_log = DeliveryLog(db, settings.log_keep)
    try:
        async with http_session(256, public_only=public) as session, \
                anyio.create_task_group() as tg:
            await tg.start(delivery_log.run)
            dispatcher = WebhookDispatcher(tg, session, settings, delivery_log)
            sent: dict[str, int] = {}

            async def report() -> None:
                nonlocal sent
                logged = lines.take()
                totals = dispatcher.totals() | {"log_written": delivery_log.written,
                                                "log_dropped": delivery_log.dropped}
                if logged or totals != sent:
                    await anyio.to_thread.run_sync(_write, outbound,
                                                   encode(Report(totals, logged)))
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
                        dispatcher.offer(item)
            tg.cancel_scope.cancel()
            with anyio.CancelScope(shield=True), anyio.move_on_after(STOP_WRITES):
                await delivery_log.write_waiting()  # the last attempts' rows
                if message is not None:  # stopped: the engine reads what happened until now
                    await report()
    finally:
        with anyio.CancelScope(shield=True):
            await db.dispose()


def _write(stream: BinaryIO, frame: bytes) -> None:
    stream.write(frame)
    stream.flush()


def _lower_priority() -> None:
    if hasattr(os, "sched_setscheduler"):  # Linux: runs only when the CPU is otherwise idle
        with contextlib.suppress(OSError):
            os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
            return
    if hasattr(os, "nice"):  # other POSIX; elsewhere the process keeps the engine's priority
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
    lines = _LogLines()
    logging.basicConfig(level=start.log_level, handlers=[lines], force=True)
    _lower_priority()
    try:
        import uvloop  # noqa: F401 - not on Windows
        options = {"use_uvloop": True}
    except ImportError:
        options = {}
    anyio.run(_serve, start, inbound, outbound, lines, backend_options=options)
    return 0


if __name__ == "__main__":
    sys.stdout.flush()
    os._exit(main())  # a reader thread may still wait on the standard input: not joined
