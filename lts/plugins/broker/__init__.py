"""Broker plugins: the contract a venue adapter keeps (architecture §7).

Where it sits: between a portfolio's runner and a venue. The runner owns every order; it hands a
durable order to :meth:`Broker.submit` and takes what the venue says back as execution reports
through the :class:`ReportSink` it gave :meth:`Broker.run` (its inbox). A broker never changes an
order itself.

- Lifecycle: :meth:`Broker.run` runs inside the portfolio's task group: it connects, calls
  ``task_status.started()`` once it can take orders, streams execution reports until it is
  cancelled, reconnects on its own and reports :class:`VenueReconnected` after every reconnect
  (the runner then resyncs: the same reconciliation as at start-up), and closes on cancellation.
  It reports :class:`VenueDisconnected` when its stream drops (the runner submits nothing to it
  until the resync is done) and :class:`VenueBanned` when the venue bans it (the portfolio
  halts with the venue's reason).
- ``submit``, ``cancel`` and ``modify`` return once the venue acknowledged, or raise
  :class:`~lts.errors.VenueRejected` (the venue said no, with its reason),
  :class:`~lts.errors.VenueAnswerLost` (sent, no answer: the order is UNKNOWN and settled by
  query, never resubmitted) or :class:`~lts.errors.VenueUnavailable` (nothing was sent).
- Queries for reconciliation: ``query_order`` by client order id, ``open_orders``, ``fills``
  since a time, ``balances`` and ``positions``; :meth:`Broker.instruments` gives the venue's
  rules (tick and lot size, minimums), which drive rounding and risk checks.
- :class:`Capabilities` declare what the venue takes; the runner denies the rest.
- Credentials come from the sealed credential store through the engine, never from params: a
  broker that declares ``credentials_for`` (the name its keys are stored under) is given the
  portfolio owner's keys with :meth:`NeedsCredentials.use_credentials` before :meth:`Broker.run`;
  a portfolio whose owner has none stored does not start (its error names the broker).

A venue simulated from market data (``paper``) also implements :class:`SimulatedVenue`: the
runner gives it each bar (it fills resting orders from it) and, at start-up, the orders the
journal holds open (its book survives restarts). Its calls complete without waiting on I/O
(``capabilities.simulated``), so the runner makes them in line, which keeps a replay exact.
"""

from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import TYPE_CHECKING, Protocol

import msgspec
from anyio.abc import TaskStatus

from lts.domain.clock import Clock
from lts.domain.commands import ModifyOrder
from lts.domain.instruments import Instrument
from lts.domain.market import Bar
from lts.domain.orders import Fill, Order, OrderStatusReport, OrderType, TimeInForce

if TYPE_CHECKING:  # the keys' store is the database's, which a backtest never loads
    from lts.persistence.credentials import BrokerCredentials

__all__ = [
    "Broker",
    "Capabilities",
    "ExecutionReport",
    "NeedsCredentials",
    "ReportSink",
    "SimulatedVenue",
    "VenueBanned",
    "VenueDisconnected",
    "VenueReconnected",
]


class Capabilities(msgspec.Struct, frozen=True):
    order_types: frozenset[OrderType] = frozenset(OrderType)
    time_in_force: frozenset[TimeInForce] = frozenset(TimeInForce)
    modify: bool = False
    client_order_ids: bool = True  # the venue keeps LTS's client order id
    streaming: bool = False  # execution reports are pushed (not only polled)
    simulated: bool = False  # in-process, from market data: calls never wait on I/O


class VenueReconnected(msgspec.Struct, frozen=True):
    """The broker's connection came back: reports may have been missed, resync."""

    broker: str
    ts_event: int


class VenueDisconnected(msgspec.Struct, frozen=True):
    """The broker lost its stream of execution reports: the portfolio's view of the venue is
    stale, so it submits nothing there until the resync after :class:`VenueReconnected`."""

    broker: str
    ts_event: int
    reason: str


class VenueBanned(msgspec.Struct, frozen=True):
    """The venue refuses this client for a while (Binance's 418 after ignored 429s): the
    portfolio halts with ``reason`` rather than keep hammering; an operator resumes it."""

    broker: str
    ts_event: int
    reason: str


ExecutionReport = OrderStatusReport | Fill | VenueReconnected | VenueDisconnected | VenueBanned


class ReportSink(Protocol):
    """Where a broker puts execution reports: the runner's inbox (never drops)."""

    def __call__(self, report: ExecutionReport) -> None:
        """From the event loop's thread."""
        ...

    def threadsafe(self, report: ExecutionReport) -> None:
        """From any other thread (an SDK's own); blocks that thread while the inbox is full."""
        ...


class Broker(Protocol):
    name: str
    capabilities: Capabilities

    async def run(self, reports: ReportSink, clock: Clock, *,
                  task_status: TaskStatus[None]) -> None: ...

    async def instruments(self, symbols: Sequence[str]) -> Mapping[str, Instrument]:
        """The venue's rules for ``symbols`` (those it knows; the asset's rows fill the rest)."""
        ...

    async def submit(self, order: Order) -> str | None:
        """Place ``order`` (its client order id goes to the venue); return the venue's id."""
        ...

    async def cancel(self, order: Order) -> None: ...

    async def modify(self, order: Order, change: ModifyOrder) -> None: ...

    async def query_order(self, order: Order) -> OrderStatusReport | None:
        """Where the order stands, with its fills; None if the venue does not know it."""
        ...

    async def open_orders(self) -> list[OrderStatusReport]: ...

    async def fills(self, since_ns: int) -> list[Fill]: ...

    async def balances(self) -> dict[str, Decimal]: ...

    async def positions(self) -> dict[str, Decimal]: ...


class NeedsCredentials(Protocol):
    """A broker that logs in: the engine hands it the owner's keys before it runs."""

    credentials_for: str  # the broker name the keys are stored under (``binance``, ...)

    def use_credentials(self, credentials: "BrokerCredentials") -> None: ...


class SimulatedVenue(Protocol):
    """A venue in this process, fed by market data: its calls complete at once (no I/O), and
    the runner makes them in line, in the order of the bars. They are given the runner's own
    order object (no copy on a backtest's hot path): read it, never change it."""

    def place(self, order: Order) -> str | None:
        """Take the order into the book; return its venue id (raises VenueRejected)."""
        ...

    def withdraw(self, order: Order) -> None:
        """Take the order out of the book (done, whether it was there or not)."""
        ...

    def amend(self, order: Order, change: ModifyOrder) -> None:
        """Change a working order (raises VenueRejected)."""
        ...

    def status_of(self, order: Order) -> OrderStatusReport | None:
        """Where the order stands in the book; None if the book does not have it."""
        ...

    def use_instruments(self, instruments: Mapping[str, Instrument]) -> None:
        """The rules to fill by (the price grid)."""
        ...

    def restore(self, orders: Sequence[Order]) -> list[OrderStatusReport]:
        """Take the journal's open orders back into the book after a restart; report where
        each stands now (working: ACCEPTED; a cancel that was asked for: CANCELED)."""
        ...

    def on_bar(self, bar: Bar) -> None:
        """Work resting orders against ``bar``; fills go to the report sink."""
        ...
