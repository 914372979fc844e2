"""The outside world the engine tests script: a venue, a market-data feed, a quiet strategy.

Fakes stand only where LTS meets the outside world, and they behave like it:

- :class:`ScriptedVenue` is a broker plugin speaking LTS's broker contract to a
  :class:`VenueWorld`: the venue's own book (orders as it received them, their status at the
  venue, the fills it made), which outlives the engine's runners as a real exchange outlives a
  client, and the answers the test chooses (acknowledge, reject, lose the answer, hold it until
  released, refuse to send). The test pushes what a venue pushes: fills (after a cancel too,
  beyond the quantity, for orders LTS never sent, twice), status changes, reconnects, from the
  event loop or from another thread as an SDK would. The connection is scripted too: refuse
  the next connects, drop the live one (the broker's ``run()`` raises), and count connections,
  so a test sees whether two runners ever held the venue at once.
- :class:`ManualFeed` is a pipeline plugin whose bars the test pushes.
- :class:`Quiet` is a strategy that never signals: orders come from commands.

Each plugin instance finds its world by the ``world`` (or ``channel``) param, so a test reaches
the venue and the feed the engine made.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Literal

import anyio
import msgspec
from anyio.abc import TaskStatus

from lts.domain.clock import Clock
from lts.domain.commands import ModifyOrder
from lts.domain.instruments import Instrument
from lts.domain.market import Bar
from lts.domain.orders import (
    TERMINAL_STATUSES,
    Fill,
    Order,
    OrderStatus,
    OrderStatusReport,
    Side,
)
from lts.domain.signals import Signal
from lts.errors import VenueAnswerLost, VenueRejected, VenueUnavailable
from lts.plugins.base import PluginBase, PluginParams
from lts.plugins.broker import Capabilities, ReportSink, VenueReconnected

Answer = Literal["ack", "reject", "lost", "unavailable", "hold"]


@dataclass
class VenueOrder:
    """An order as the venue knows it."""

    order: Order
    status: OrderStatus
    venue_id: str
    filled: Decimal = Decimal(0)
    fills: list[Fill] = field(default_factory=list)


@dataclass
class _Held:
    order: Order
    release: anyio.Event = field(default_factory=anyio.Event)
    answer: Answer = "ack"


class VenueWorld:
    """One venue's state and script (see the module docstring)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.book: dict[str, VenueOrder] = {}
        self.received: list[Order] = []
        self.cancels: list[str] = []
        self.modifies: list[ModifyOrder] = []
        self.queries: list[str] = []
        self.submit_answer: Answer = "ack"
        self.cancel_answer: Answer = "ack"
        self.modify_answer: Answer = "ack"
        self.reject_reason = "insufficient balance"
        self.instruments: dict[str, Instrument] = {}
        self.sink: ReportSink | None = None
        self.clock: Clock | None = None
        self.connected = anyio.Event()
        self.held: dict[str, _Held] = {}
        self.held_cancels: dict[str, _Held] = {}  # cancel_answer "hold": until release_cancel()
        self.on_submit: Callable[[Order], None] | None = None  # e.g. read the database
        self.external_fills: list[Fill] = []  # trades of orders placed outside LTS
        self.credentials_for: str | None = None  # set: the venue wants the owner's keys
        self.credentials: Any = None  # what the engine handed the broker
        self._trades = itertools.count(1)
        # the connection: what the broker's run() does, counted
        self.refuse_connections = 0  # the next N connects raise ConnectionRefusedError
        self.connect_attempts = 0
        self.connections = 0  # live now
        self.max_connections = 0  # the most ever live at once
        self._lost: anyio.Event | None = None

    # -- what the engine's broker calls --------------------------------------------------------
    async def submit(self, order: Order) -> str | None:
        self.received.append(order)
        if self.on_submit is not None:
            self.on_submit(order)
        answer = self.submit_answer
        if answer == "hold":
            held = self.held[order.client_order_id] = _Held(order)
            await held.release.wait()
            answer = held.answer
        if answer == "unavailable":
            raise VenueUnavailable("not connected")
        if answer == "reject":
            raise VenueRejected(self.reject_reason)
        venue_id = f"V{len(self.received)}"
        self.book[order.client_order_id] = VenueOrder(order, OrderStatus.ACCEPTED, venue_id)
        if answer == "lost":
            raise VenueAnswerLost("timed out")
        return venue_id

    async def cancel(self, order: Order) -> None:
        self.cancels.append(order.client_order_id)
        answer = self.cancel_answer
        if answer == "hold":  # until release_cancel()
            held = self.held_cancels[order.client_order_id] = _Held(order)
            await held.release.wait()
            answer = held.answer
        if answer == "lost":
            raise VenueAnswerLost("timed out")
        placed = self.book.get(order.client_order_id)
        if answer == "reject" or placed is None or \
                placed.status in TERMINAL_STATUSES:
            raise VenueRejected("unknown order")
        placed.status = OrderStatus.CANCELED

    async def modify(self, order: Order, change: ModifyOrder) -> None:
        self.modifies.append(change)
        placed = self.book.get(order.client_order_id)
        if self.modify_answer == "reject" or placed is None:
            raise VenueRejected("modify refused")
        placed.order = msgspec.structs.replace(
            placed.order,
            quantity=change.quantity if change.quantity is not None else placed.order.quantity,
            limit_price=change.limit_price if change.limit_price is not None
            else placed.order.limit_price)

    def report_of(self, coid: str) -> OrderStatusReport | None:
        placed = self.book.get(coid)
        if placed is None:
            return None
        return OrderStatusReport(coid, placed.status, tuple(placed.fills),
                                 broker_order_id=placed.venue_id)

    # -- what the test does ----------------------------------------------------------------------
    def release(self, coid: str, answer: Answer = "ack") -> None:
        """Let a held submit answer now."""
        held = self.held.pop(coid)
        held.answer = answer
        held.release.set()

    def release_cancel(self, coid: str, answer: Answer = "ack") -> None:
        """Let a held cancel answer now (ack: the order is canceled, if it still works)."""
        held = self.held_cancels.pop(coid)
        held.answer = answer
        held.release.set()

    def fill(self, coid: str, quantity: str | Decimal, price: str | Decimal, *,
             trade_id: str | None = None, side: Side | None = None, symbol: str | None = None,
             portfolio_id: int | None = None, push: bool = True,
             threadsafe: bool = False, commission: str | Decimal = "0") -> Fill:
        """The venue trades: record it in the book (whatever the order's state) and push it."""
        placed = self.book.get(coid)
        order = placed.order if placed is not None else None
        qty = Decimal(quantity)
        fill = Fill(portfolio_id if portfolio_id is not None else
                    (order.portfolio_id if order else 0), coid, self.name,
                    trade_id or f"T{next(self._trades)}",
                    symbol or (order.symbol if order else "AAA"),
                    side or (order.side if order else Side.BUY), qty, Decimal(price),
                    Decimal(0), self._now(), Decimal(commission))
        if placed is None:
            self.external_fills.append(fill)  # a venue lists the trades of every order
        else:
            placed.fills.append(fill)
            placed.filled += qty
            if placed.status not in TERMINAL_STATUSES:
                placed.status = OrderStatus.FILLED if placed.filled >= placed.order.quantity \
                    else OrderStatus.PARTIALLY_FILLED
        if push:
            self.push(fill, threadsafe=threadsafe)
        return fill

    def push(self, report: Any, *, threadsafe: bool = False) -> None:
        assert self.sink is not None, "the venue is not connected"
        if threadsafe:
            self.sink.threadsafe(report)
        else:
            self.sink(report)

    def push_status(self, coid: str, status: OrderStatus, reason: str = "") -> None:
        placed = self.book.get(coid)
        if placed is not None:
            placed.status = status
        self.push(OrderStatusReport(coid, status, reason=reason, ts_event=self._now()))

    def reconnect(self) -> None:
        self.push(VenueReconnected(self.name, self._now()))

    def drop(self) -> None:
        """The live connection breaks: the broker's ``run()`` raises ConnectionResetError (the
        portfolio's runner fails and its supervisor restarts it)."""
        assert self._lost is not None, "the venue never connected"
        assert self.connections, "the venue is not connected"
        self._lost.set()

    async def connect(self, reports: ReportSink, clock: Clock,
                      task_status: TaskStatus[None]) -> None:
        """The broker's ``run()``: refused while ``refuse_connections`` lasts, else connected
        until cancelled (a clean close) or :meth:`drop`."""
        self.connect_attempts += 1
        if self.refuse_connections > 0:
            self.refuse_connections -= 1
            raise ConnectionRefusedError(f"{self.name}: connection refused")
        self.sink, self.clock = reports, clock
        self.connections += 1
        self.max_connections = max(self.max_connections, self.connections)
        lost = self._lost = anyio.Event()
        try:
            self.connected.set()
            task_status.started()
            await lost.wait()
            raise ConnectionResetError(f"{self.name}: connection reset by the venue")
        finally:
            self.connections -= 1

    def _now(self) -> int:
        return self.clock.now_ns() if self.clock is not None else 0


WORLDS: dict[str, VenueWorld] = {}


class ScriptedParams(PluginParams):
    world: str


class ScriptedVenue(PluginBase):
    """Broker ``scripted``: LTS's broker contract over a :class:`VenueWorld`."""

    Params = ScriptedParams
    plugin_name = "scripted"
    capabilities = Capabilities(modify=True, streaming=True)

    def __init__(self, **params: object) -> None:
        super().__init__(**params)
        self.world = WORLDS[self.params.world]
        self.name = self.world.name
        self.credentials_for = self.world.credentials_for

    def use_credentials(self, credentials: Any) -> None:
        self.world.credentials = credentials

    async def run(self, reports: ReportSink, clock: Clock, *,
                  task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        await self.world.connect(reports, clock, task_status)

    async def instruments(self, symbols: Sequence[str]) -> Mapping[str, Instrument]:
        return {s: i for s, i in self.world.instruments.items() if s in symbols}

    async def submit(self, order: Order) -> str | None:
        return await self.world.submit(order)

    async def cancel(self, order: Order) -> None:
        await self.world.cancel(order)

    async def modify(self, order: Order, change: ModifyOrder) -> None:
        await self.world.modify(order, change)

    async def query_order(self, order: Order) -> OrderStatusReport | None:
        self.world.queries.append(order.client_order_id)
        return self.world.report_of(order.client_order_id)

    async def open_orders(self) -> list[OrderStatusReport]:
        return [r for coid, placed in self.world.book.items()
                if placed.status not in TERMINAL_STATUSES
                and (r := self.world.report_of(coid)) is not None]

    async def fills(self, since_ns: int) -> list[Fill]:
        every = [f for placed in self.world.book.values() for f in placed.fills]
        return [f for f in every + self.world.external_fills if f.ts_event >= since_ns]

    async def balances(self) -> dict[str, Decimal]:
        return {}

    async def positions(self) -> dict[str, Decimal]:
        return {}


class FeedChannel:
    """Bars a test pushes into a feed the engine runs (a queue per symbol)."""

    def __init__(self) -> None:
        self.queues: dict[str, asyncio.Queue[Bar]] = {}
        self.ts = 1_704_153_600_000_000_000  # 2024-01-02 in ns
        self.last: dict[str, float] = {}

    def push(self, symbol: str, close: float, *, low: float | None = None,
             high: float | None = None, volume: float = 1_000_000.0) -> Bar:
        self.ts += 60_000_000_000
        open_ = self.last.get(symbol, close)
        bar = Bar(symbol, self.ts, open_,
                  high if high is not None else max(open_, close),
                  low if low is not None else min(open_, close), close, volume)
        self.last[symbol] = close
        self.queue(symbol).put_nowait(bar)
        return bar

    def queue(self, symbol: str) -> asyncio.Queue[Bar]:
        return self.queues.setdefault(symbol, asyncio.Queue())


CHANNELS: dict[str, FeedChannel] = {}


class ManualParams(PluginParams):
    channel: str


class ManualFeed(PluginBase):
    """Pipeline ``manual``: the bars a test pushes (live: never historical)."""

    Params = ManualParams
    plugin_name = "manual"
    historical = False

    def __init__(self, **params: object) -> None:
        super().__init__(**params)
        self.channel = CHANNELS[self.params.channel]

    async def bars(self, symbol: str, clock: Clock) -> AsyncIterator[Sequence[Bar]]:
        queue = self.channel.queue(symbol)
        while True:
            yield [await queue.get()]


class Quiet(PluginBase):
    """Strategy ``quiet``: never signals."""

    plugin_name = "quiet"

    def on_bar(self, bar: Bar) -> Signal | None:
        return None


__all__ = ["CHANNELS", "WORLDS", "FeedChannel", "ManualFeed", "Quiet", "ScriptedVenue",
           "VenueOrder", "VenueWorld"]
