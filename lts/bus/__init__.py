"""The event bus: publish/subscribe by event type and key between plugin tasks.

``InProcessBus`` is the single-process implementation; a NATS JetStream one can follow the same
:class:`Bus` protocol. Each subscriber owns a bounded :class:`Mailbox` whose overflow policy is
chosen where it is created.
"""

from lts.bus.inprocess import Bus, InProcessBus, Subscription
from lts.bus.mailbox import Mailbox, MailboxClosed, MailboxFull, Overflow

__all__ = [
    "Bus",
    "InProcessBus",
    "Mailbox",
    "MailboxClosed",
    "MailboxFull",
    "Overflow",
    "Subscription",
]
