"""What a runner's own I/O tasks tell it: the internal messages of its control lane.

Where it sits: the runner never awaits the venue or the database on its decision path; it starts
a task (a durable write, a venue call, a query) and the task posts its outcome to the runner's
inbox (:mod:`lts.engine.inbox`), where the runner applies it like any other message, in order.
These are private to the engine: brokers speak in execution reports
(:mod:`lts.plugins.broker`), the API in commands (:mod:`lts.domain.commands`).
"""

import enum

import msgspec

from lts.domain.commands import ModifyOrder
from lts.domain.orders import Order, OrderStatusReport

__all__ = [
    "OPEN_FEEDS",
    "TIMERS_DUE",
    "CallFailed",
    "CallKind",
    "Canceled",
    "FillChecked",
    "Housekeeping",
    "Modified",
    "OpenFeeds",
    "Queried",
    "Resynced",
    "StopDeadline",
    "Submitted",
    "TimersDue",
    "WriteAhead",
]


class WriteAhead(msgspec.Struct, frozen=True):
    """The write-ahead insert of an order committed (``error`` empty) or failed."""

    client_order_id: str
    error: str = ""
    unavailable: bool = False  # the journal could not write at all (vs. a bad value)


class Submitted(msgspec.Struct, frozen=True):
    """The venue acknowledged an order."""

    client_order_id: str
    broker_order_id: str | None


class Canceled(msgspec.Struct, frozen=True):
    client_order_id: str


class Modified(msgspec.Struct, frozen=True):
    change: ModifyOrder


class CallKind(enum.Enum):
    SUBMIT = "submit"
    CANCEL = "cancel"
    MODIFY = "modify"


class CallFailed(msgspec.Struct, frozen=True):
    """A venue call failed: ``rejected`` (the venue said no) or not (no answer, not sent)."""

    kind: CallKind
    client_order_id: str
    reason: str
    rejected: bool = False
    sent: bool = True  # False: nothing reached the venue


class Queried(msgspec.Struct, frozen=True):
    """The venue's answer to a query by client order id (None: it does not know the order)."""

    client_order_id: str
    report: OrderStatusReport | None


class FillChecked(msgspec.Struct, frozen=True):
    """Fills named an order not in memory (by the venue's client order id): the journal's
    order (None: LTS never sent it) and the trade ids the journal has for it."""

    client_order_id: str
    order: Order | None
    known: frozenset[tuple[str, str]]


class Resynced(msgspec.Struct, frozen=True):
    """A resync after a venue reconnect finished (its reports were posted before this)."""

    broker: str
    error: str = ""


class Housekeeping(msgspec.Struct, frozen=True):
    """The engine's periodic nudge: acknowledgement timeouts, queries, the daily-loss look."""


class OpenFeeds(msgspec.Struct, frozen=True):
    """The engine's start is done: subscribe to the market data now."""


OPEN_FEEDS = OpenFeeds()


class TimersDue(msgspec.Struct, frozen=True):
    """A strategy's timer is due (live: no bar may come to fire it)."""


TIMERS_DUE = TimersDue()


class StopDeadline(msgspec.Struct, frozen=True):
    """A graceful stop waited long enough for the venue's answers."""


HOUSEKEEPING = Housekeeping()
