"""Broker ``paper``: a venue simulated in this process from market data.

Where it sits: a broker plugin that is also a :class:`~lts.plugins.broker.SimulatedVenue`: the
runner places orders in its book in line and gives it every bar of its symbols; fills and
status changes go to the runner's inbox as execution reports, like a real venue's.

Rules (the default reproduces the usual backtest convention): an order made on bar t is worked
from bar t+1. Market orders fill at that bar's open (``fill_at=next_open``) or at once at the
last close (``fill_at=close``); limit orders at the open if it is through the limit, else at the
limit if the bar's range touches it; stop orders trigger on the range and fill at the open or the
stop; stop-limits trigger, then work as limits. Slippage moves the price against the order; fees
are basis points of notional. ``volume_cap`` (a fraction of the bar's volume) makes partial fills.
IOC cancels what the first bar could not fill; FOK fills whole on that bar or cancels; DAY expires
when the UTC day changes.

Prices are on the instrument's tick grid (a market price to the nearest tick, a slipped price
rounded against the order: a buy up, a sell down); partial quantities are whole lots.

The book is the journal's open orders: after a restart :meth:`PaperBroker.restore` takes them
back (each one the journal holds open, a row not yet marked sent included: this venue's book
lives and dies with the process), so a resting order keeps working; one whose cancel was pending
is reported canceled. A restored DAY order still expires with the UTC day it was placed on, and a
stop that had filled in part stays triggered; a stop-limit triggered without a fill must trigger
again (the journal does not keep the trigger). Trade ids are ``<client order id>@<filled quantity
after the fill>`` (the number written plainly: ``5``, not ``5.00``): unique per fill, as the
filled quantity only grows, and numbered on from the journal's filled quantity after a restart
(``@``: never the ``<coid>-<n>`` ids the venue gave before issue 9).
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from typing import Literal

import anyio
import msgspec
from anyio.abc import TaskStatus
from pydantic import Field

from lts.domain.clock import Clock
from lts.domain.commands import ModifyOrder
from lts.domain.instruments import Instrument
from lts.domain.market import Bar
from lts.domain.orders import (
    Fill,
    Order,
    OrderStatus,
    OrderStatusReport,
    OrderType,
    Side,
    TimeInForce,
)
from lts.domain.values import ZERO, to_decimal
from lts.errors import VenueRejected
from lts.plugins.base import PluginBase, PluginParams
from lts.plugins.broker import Capabilities, ExecutionReport, ReportSink

__all__ = ["PaperBroker", "PaperParams"]

_BPS = Decimal(10_000)
_DAY_NS = 86_400 * 1_000_000_000
_FEE_STEP = Decimal("0.00000001")
#: Rules for a symbol the runner gave none for (tests that drive the venue alone).
_FREE = Instrument("", Decimal(0), Decimal(0))


class PaperParams(PluginParams):
    fees_bps: Decimal = Field(Decimal(0), ge=0, description="fee, basis points of notional")
    slippage_bps: Decimal = Field(Decimal(0), ge=0, description="price moved against the order")
    fill_at: Literal["next_open", "close"] = Field("next_open", description="market order price")
    volume_cap: float = Field(0.0, ge=0, le=1, description="max fraction of bar volume; 0: none")


@dataclass
class _Working:
    order: Order
    leaves: Decimal
    filled: Decimal
    day: int  # the UTC day it was placed on (DAY orders expire when it ends)
    triggered: bool = False


def _plain(number: Decimal) -> str:
    """``number`` without trailing zeros or an exponent: ``5.00000000`` -> ``5``."""
    return f"{number.normalize():f}"


class PaperBroker(PluginBase):
    Params = PaperParams
    plugin_name = "paper"
    plugin_debug_vars = ["orders_received", "fills_made", "working_orders"]
    capabilities = Capabilities(modify=True, simulated=True)

    def __init__(self, **params: object) -> None:
        super().__init__(**params)
        self.name = "paper"
        self.params_changed()
        self._book: dict[str, dict[str, _Working]] = {}
        self._last_close: dict[str, float] = {}
        self._instruments: dict[str, Instrument] = {}
        self._reports: ReportSink | None = None
        self._clock: Clock | None = None
        self.orders_received = 0
        self.fills_made = 0

    def params_changed(self) -> None:
        p: PaperParams = self.params
        self._slip = p.slippage_bps / _BPS
        self._fee = p.fees_bps / _BPS

    @property
    def working_orders(self) -> int:
        return sum(len(b) for b in self._book.values())

    # -- lifecycle (Broker) ----------------------------------------------------------------------
    async def run(self, reports: ReportSink, clock: Clock, *,
                  task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Nothing to connect to: ready at once."""
        self._reports = reports
        self._clock = clock
        task_status.started()

    def _report(self, report: ExecutionReport) -> None:
        assert self._reports is not None, "run() first"
        self._reports(report)

    def _now(self) -> int:
        assert self._clock is not None, "run() first"
        return self._clock.now_ns()

    def _rules(self, symbol: str) -> Instrument:
        return self._instruments.get(symbol, _FREE)

    # -- SimulatedVenue --------------------------------------------------------------------------
    def use_instruments(self, instruments: Mapping[str, Instrument]) -> None:
        self._instruments = dict(instruments)

    def place(self, order: Order) -> str | None:
        if order.order_type in (OrderType.LIMIT, OrderType.STOP_LIMIT) and \
                order.limit_price is None:
            raise VenueRejected("limit price required")
        if order.order_type in (OrderType.STOP, OrderType.STOP_LIMIT) and \
                order.stop_price is None:
            raise VenueRejected("stop price required")
        self.orders_received += 1
        now = self._now()
        work = _Working(order, order.leaves_quantity, order.filled_quantity, now // _DAY_NS)
        last = self._last_close.get(order.symbol)
        if (order.order_type is OrderType.MARKET and self.params.fill_at == "close"
                and last is not None):
            rules = self._rules(order.symbol)
            self._execute(work, self._slipped(self._market(order.symbol, last), order.side,
                                              rules), None, now)
            if work.leaves == 0:
                return f"paper-{order.client_order_id}"
        self._book.setdefault(order.symbol, {})[order.client_order_id] = work
        return f"paper-{order.client_order_id}"

    def withdraw(self, order: Order) -> None:
        self._book.get(order.symbol, {}).pop(order.client_order_id, None)

    def amend(self, order: Order, change: ModifyOrder) -> None:
        work = self._book.get(order.symbol, {}).get(order.client_order_id)
        if work is None:
            raise VenueRejected("unknown order")
        quantity = change.quantity if change.quantity is not None else work.order.quantity
        if quantity <= work.filled:
            raise VenueRejected("quantity below the filled quantity")
        old = work.order
        work.order = msgspec.structs.replace(
            old, quantity=quantity,
            limit_price=old.limit_price if change.limit_price is None else change.limit_price,
            stop_price=old.stop_price if change.stop_price is None else change.stop_price)
        work.leaves = quantity - work.filled

    def status_of(self, order: Order) -> OrderStatusReport | None:
        work = self._book.get(order.symbol, {}).get(order.client_order_id)
        if work is None:
            return None
        status = OrderStatus.PARTIALLY_FILLED if work.filled else OrderStatus.ACCEPTED
        return OrderStatusReport(order.client_order_id, status,
                                 broker_order_id=f"paper-{order.client_order_id}")

    def restore(self, orders: Sequence[Order]) -> list[OrderStatusReport]:
        now = self._now()
        reports = []
        for order in orders:
            coid = order.client_order_id
            book = self._book.setdefault(order.symbol, {})
            if order.status is OrderStatus.PENDING_CANCEL:
                book.pop(coid, None)
                reports.append(OrderStatusReport(coid, OrderStatus.CANCELED, ts_event=now,
                                                 reason="canceled at restart"))
                continue
            work = book.get(coid)
            if work is None:  # an order this book works already keeps its state (trigger)
                if order.leaves_quantity <= 0:
                    reports.append(OrderStatusReport(coid, OrderStatus.FILLED, ts_event=now,
                                                     broker_order_id=f"paper-{coid}"))
                    continue
                work = book[coid] = _Working(
                    order, order.leaves_quantity, order.filled_quantity,
                    (order.ts_init or now) // _DAY_NS,
                    # a stop that filled was triggered; its rest works on at the open
                    triggered=order.order_type is OrderType.STOP
                    and order.filled_quantity > 0)
            status = OrderStatus.PARTIALLY_FILLED if work.filled else OrderStatus.ACCEPTED
            reports.append(OrderStatusReport(coid, status, ts_event=now,
                                             broker_order_id=f"paper-{coid}"))
        return reports

    # -- Broker (async; the runner calls the in-line methods above) -----------------------------
    async def instruments(self, symbols: Sequence[str]) -> Mapping[str, Instrument]:
        return {}  # no venue rules: the assets' own

    async def submit(self, order: Order) -> str | None:
        return self.place(order)

    async def cancel(self, order: Order) -> None:
        self.withdraw(order)

    async def modify(self, order: Order, change: ModifyOrder) -> None:
        self.amend(order, change)

    async def query_order(self, order: Order) -> OrderStatusReport | None:
        return self.status_of(order)

    async def open_orders(self) -> list[OrderStatusReport]:
        return [r for book in self._book.values() for w in book.values()
                if (r := self.status_of(w.order)) is not None]

    async def fills(self, since_ns: int) -> list[Fill]:
        return []  # in-process: no fill is ever missed

    async def balances(self) -> dict[str, Decimal]:
        return {}

    async def positions(self) -> dict[str, Decimal]:
        return {}

    # -- market data -----------------------------------------------------------------------------
    def on_bar(self, bar: Bar) -> None:
        self._last_close[bar.symbol] = bar.close
        book = self._book.get(bar.symbol)
        if not book:
            return
        for coid, work in list(book.items()):
            if self._work(work, bar):
                del book[coid]

    def _work(self, work: _Working, bar: Bar) -> bool:
        """Work one order against one bar; True when it left the book."""
        order = work.order
        tif = order.time_in_force
        if tif is TimeInForce.DAY and bar.ts_event // _DAY_NS > work.day:
            self._report(OrderStatusReport(order.client_order_id, OrderStatus.EXPIRED,
                                           reason="day order expired", ts_event=bar.ts_event))
            return True
        price = self._price(work, bar)
        if price is not None:
            cap = self._cap(bar)
            whole = cap is None or cap >= work.leaves
            if tif is not TimeInForce.FOK or whole:  # FOK: the whole quantity or nothing
                self._execute(work, price, cap, bar.ts_event)
        if work.leaves == 0:
            return True
        if tif in (TimeInForce.IOC, TimeInForce.FOK):
            self._report(OrderStatusReport(order.client_order_id, OrderStatus.CANCELED,
                                           reason=f"{tif.value}: not filled on first bar",
                                           ts_event=bar.ts_event))
            return True
        return False

    def _cap(self, bar: Bar) -> Decimal | None:
        if not self.params.volume_cap:
            return None
        return self._rules(bar.symbol).floor_quantity(
            to_decimal(bar.volume * self.params.volume_cap))

    def _market(self, symbol: str, price: float) -> Decimal:
        """A market price on the tick grid (the nearest tick)."""
        return self._rules(symbol).round_price(to_decimal(price))

    def _slipped(self, price: Decimal, side: Side, rules: Instrument) -> Decimal:
        """``price`` moved against the order by the slippage, onto the grid against it too."""
        if not self._slip:
            return price
        adj = price * (1 + self._slip) if side is Side.BUY else price * (1 - self._slip)
        return rules.round_price(adj, ROUND_CEILING if side is Side.BUY else ROUND_FLOOR)

    def _price(self, work: _Working, bar: Bar) -> Decimal | None:
        """The price this bar fills the order at, or None if it does not."""
        order = work.order
        rules = self._rules(order.symbol)
        buy = order.side is Side.BUY
        kind = order.order_type
        market = self._market
        sym = order.symbol
        if kind is OrderType.MARKET or (kind is OrderType.STOP and work.triggered):
            # a triggered stop is a market order (what a volume cap left of it)
            return self._slipped(market(sym, bar.open), order.side, rules)
        if kind in (OrderType.STOP, OrderType.STOP_LIMIT) and not work.triggered:
            stop = order.stop_price
            assert stop is not None
            open_ = market(sym, bar.open)
            if (open_ >= stop) if buy else (open_ <= stop):
                work.triggered = True
                if kind is OrderType.STOP:
                    return self._slipped(open_, order.side, rules)
            elif (market(sym, bar.high) >= stop) if buy else (market(sym, bar.low) <= stop):
                work.triggered = True
                if kind is OrderType.STOP:
                    return self._slipped(stop, order.side, rules)
                limit = order.limit_price
                assert limit is not None
                ok = limit >= stop if buy else limit <= stop
                return stop if ok else None
            else:
                return None
        limit = order.limit_price
        assert limit is not None
        open_ = market(sym, bar.open)
        if (open_ <= limit) if buy else (open_ >= limit):
            return open_
        touched = (market(sym, bar.low) <= limit) if buy else (market(sym, bar.high) >= limit)
        return limit if touched else None

    def _execute(self, work: _Working, price: Decimal, cap: Decimal | None, ts: int) -> None:
        qty = work.leaves if cap is None else min(work.leaves, cap)
        if qty <= 0:
            return
        order = work.order
        work.leaves -= qty
        work.filled += qty
        self.fills_made += 1
        fee = (price * qty * self._fee).quantize(_FEE_STEP) if self._fee else ZERO
        self._report(Fill(order.portfolio_id, order.client_order_id, self.name,
                          f"{order.client_order_id}@{_plain(work.filled)}", order.symbol,
                          order.side, qty, price, fee, ts))
