"""A portfolio runner's one inbox: market data, commands and execution reports.

Where it sits: everything that may change a portfolio arrives here and is taken out by its runner
task only (architecture §5). Two lanes, drained by the runner with the control lane first:

- **market data** (the :class:`~lts.bus.Mailbox` this class extends): bars from the shared feeds,
  with the mailbox's overflow policy (live: drop the oldest for a slow strategy, counted;
  historical: the feed waits);
- **control**: commands (each with the future its sender awaits), execution reports from the
  portfolio's brokers and the outcomes of the runner's own I/O tasks (a durable write, a venue
  call). Never dropped. Commands are bounded (:class:`InboxFull` beyond
  ``control_capacity``: the API answers 503); reports and outcomes are paced by the venue and
  the runner's own calls, so they are always taken; a broker feeding reports from an SDK's own
  thread is held (its thread blocks) while the control lane is over capacity.
"""

import asyncio
import threading
from collections import deque
from typing import Any

from lts.bus import Mailbox, MailboxClosed, Overflow
from lts.domain.commands import Command, Reply

__all__ = ["Envelope", "InboxFull", "PortfolioInbox"]


class InboxFull(Exception):
    """The runner has ``control_capacity`` commands waiting: the sender should retry later."""


class Envelope:
    """A command and the future its sender awaits (None: nobody waits for the answer)."""

    __slots__ = ("command", "reply")

    def __init__(self, command: Command, reply: "asyncio.Future[Reply] | None") -> None:
        self.command = command
        self.reply = reply


class PortfolioInbox(Mailbox[Any]):
    __slots__ = ("_control", "_loop", "_room", "_thread", "_waiting", "control_capacity",
                 "control_lane")

    def __init__(self, capacity: int, policy: Overflow, *, name: str = "",
                 control_capacity: int = 10_000) -> None:
        super().__init__(capacity, policy, name=name)
        self.control_capacity = control_capacity
        self._control: deque[Any] = deque()
        #: the control lane itself, for the runner's hot loop (``if inbox.control_lane:``)
        self.control_lane = self._control
        self._loop = asyncio.get_running_loop()
        self._thread = threading.get_ident()
        self._room = threading.Condition()  # SDK threads wait here while the lane is full
        self._waiting = 0  # SDK threads waiting for room

    # -- producers ------------------------------------------------------------------------------
    def command(self, envelope: Envelope) -> None:
        """A command (event loop's thread). Raises :class:`InboxFull` or ``MailboxClosed``."""
        if self.closed:
            raise MailboxClosed(self.name)
        if len(self._control) >= self.control_capacity:
            raise InboxFull(self.name)
        self._control.append(envelope)
        self._not_empty.set()

    def __call__(self, item: Any) -> None:
        """An execution report or an outcome (event loop's thread): always taken."""
        if self.closed:
            return  # the runner has gone; what a venue says now is read back at the next start
        self._control.append(item)
        self._not_empty.set()

    def threadsafe(self, item: Any) -> None:
        """An execution report from another thread; blocks it while the lane is over capacity."""
        if threading.get_ident() == self._thread:
            raise RuntimeError("threadsafe() called on the event loop's thread: call the inbox")
        with self._room:
            while len(self._control) >= self.control_capacity and not self.closed:
                self._waiting += 1
                try:
                    self._room.wait(0.1)
                finally:
                    self._waiting -= 1
        self._loop.call_soon_threadsafe(self, item)

    # -- the runner -----------------------------------------------------------------------------
    @property
    def has_control(self) -> bool:
        return bool(self._control)

    def take_control(self) -> list[Any]:
        """Everything in the control lane, oldest first."""
        items = list(self._control)
        self._control.clear()
        if self._waiting:
            with self._room:
                self._room.notify_all()
        return items

    async def wait(self) -> None:
        """Until either lane has something (raises ``MailboxClosed`` once closed and empty)."""
        while not self._control and not self._items and not self._conflated:
            if self.closed:
                raise MailboxClosed(self.name)
            self._not_empty.clear()
            await self._not_empty.wait()

    def take_market(self) -> list[Any]:
        if not self._items and not self._conflated:
            return []
        return self.drain()

    def close(self) -> None:
        super().close()
        with self._room:
            self._room.notify_all()
