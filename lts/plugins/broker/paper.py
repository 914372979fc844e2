"""Broker ``paper``: a venue simulated in this process from market data.

Where it sits: a broker plugin that is also a :class:`~lts.plugins.broker.SimulatedVenue`: the
runner places orders in its book in line and gives it every bar of its symbols; fills and
status changes go to the runner's inbox as execution reports, like a real venue's.

Rules (the default reproduces the usual backtest convention): an order made on bar t is worked
from bar t+1. Market orders fill at that bar's open (``fill_at=next_open``) or at once at the
last close (``fill_at=close``); limit orders at the open if it is through the limit, else at the
limit if the bar's range touches it; stop orders trigger on the range and fill at the open or the
stop; stop-limits trigger, then work as limits. ``volume_cap`` (a fraction of the bar's volume)
makes partial fills. IOC cancels what the first bar could not fill; FOK fills whole on that bar
or cancels; DAY expires when the UTC day changes.

Costs (:mod:`lts.plugins.broker.paper_costs`, ``docs/costs.md``): a limit order filled at its
limit rested on the book: a maker fill, never slipped. Every other fill (market, stop, a limit
through at the open, a stop-limit at its trigger, any IOC/FOK) is a taker fill: its price slips
against the order, no further than the bar's range nor the limit. Fees: the maker or taker rate
of notional per fill, a fixed amount once per order, a minimum per order, rounded up.

Fill prices are on the instrument's tick grid, rounded against the order (a buy up, a sell
down; triggers and touches compare the bar's prices at the nearest tick); partial quantities are
whole lots. A partly filled order restored after a restart has paid its fixed fee and minimum.

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
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Literal

import anyio
import msgspec
from anyio.abc import TaskStatus
from pydantic import Field, ValidationInfo, field_validator

from lts.domain.clock import Clock
from lts.domain.commands import ModifyOrder
from lts.domain.contingency import OcoTag, parse_tag
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
from lts.plugins.broker.paper_costs import PaperCosts

__all__ = ["PaperBroker", "PaperParams"]

_DAY_NS = 86_400 * 1_000_000_000
_STOPS = frozenset({OrderType.STOP, OrderType.STOP_LIMIT})
_TAKES_LIMIT = frozenset({OrderType.LIMIT, OrderType.STOP_LIMIT})
_FIRST_BAR_ONLY = frozenset({TimeInForce.IOC, TimeInForce.FOK})
#: Rules for a symbol the runner gave none for (tests that drive the venue alone).
_FREE = Instrument("", Decimal(0), Decimal(0))


class PaperParams(PluginParams):
    """The venue's terms. Fee rates: ``fees_bps`` is one rate for maker and taker fills alike;
    ``taker_bps`` (with ``maker_bps`` when the maker rate differs) set them apart. Refused:
    ``fees_bps`` together with either, and ``maker_bps`` alone (it leaves the taker rate open).
    None given: no rate."""

    fees_bps: Decimal | None = Field(
        None, ge=0, description="fee, basis points of notional, maker and taker alike")
    taker_bps: Decimal | None = Field(
        None, ge=0, description="fee of a taker fill, basis points of notional")
    maker_bps: Decimal | None = Field(
        None, ge=0, description="fee of a maker fill, basis points; default: taker_bps")
    fee_per_order: Decimal = Field(
        Decimal(0), ge=0, description="fixed fee per order, quote currency, on its first fill")
    min_fee_per_order: Decimal = Field(
        Decimal(0), ge=0, description="minimum fee per order, quote currency")
    slippage_bps: Decimal = Field(Decimal(0), ge=0, description="price moved against the order")
    fill_at: Literal["next_open", "close"] = Field("next_open", description="market order price")
    volume_cap: float = Field(0.0, ge=0, le=1, description="max fraction of bar volume; 0: none")

    @field_validator("taker_bps", "maker_bps")
    @classmethod
    def _one_way_to_give_rates(cls, value: Decimal | None,
                               info: ValidationInfo) -> Decimal | None:
        if value is None:
            return value
        if info.data.get("fees_bps") is not None:
            raise ValueError("fees_bps is the rate of maker and taker fills alike: "
                             "give fees_bps or taker_bps/maker_bps, not both")
        if info.field_name == "maker_bps" and info.data.get("taker_bps") is None:
            raise ValueError("give taker_bps too (market and stop orders pay it)")
        return value

    def costs(self) -> PaperCosts:
        taker = self.taker_bps if self.taker_bps is not None else self.fees_bps or Decimal(0)
        return PaperCosts.from_bps(
            taker_bps=taker, maker_bps=taker if self.maker_bps is None else self.maker_bps,
            fee_per_order=self.fee_per_order, min_fee_per_order=self.min_fee_per_order,
            slippage_bps=self.slippage_bps)


@dataclass
class _Working:
    order: Order
    leaves: Decimal
    filled: Decimal
    day: int  # the UTC day it was placed on (DAY orders expire when it ends)
    triggered: bool = False
    accrued: Decimal | None = None  # its fees before the minimum (None: no fill yet)
    group: str | None = field(init=False, default=None)  # its tag's exit group (read once)

    def __post_init__(self) -> None:
        tag = parse_tag(self.order.tag)  # read once, not on every bar
        self.group = tag.group if isinstance(tag, OcoTag) else None


def _nearest(rules: Instrument, price: float) -> Decimal:
    """A bar's price at the nearest tick: what triggers and touches compare."""
    return rules.round_price(to_decimal(price))


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
        self._last_bar: dict[str, Bar] = {}
        self._instruments: dict[str, Instrument] = {}
        self._reports: ReportSink | None = None
        self._clock: Clock | None = None
        self.orders_received = 0
        self.fills_made = 0

    def params_changed(self) -> None:
        p: PaperParams = self.params
        self._costs = p.costs()

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
        if order.order_type in _TAKES_LIMIT and order.limit_price is None:
            raise VenueRejected("limit price required")
        if order.order_type in _STOPS and order.stop_price is None:
            raise VenueRejected("stop price required")
        self.orders_received += 1
        now = self._now()
        work = _Working(order, order.leaves_quantity, order.filled_quantity, now // _DAY_NS)
        last = self._last_bar.get(order.symbol)
        if (order.order_type is OrderType.MARKET and self.params.fill_at == "close"
                and last is not None):  # no bar after the order: the last one's close and range
            rules = self._rules(order.symbol)
            self._execute(work, self._taker(order, rules, last, last.close), False, None, now)
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
                    and order.filled_quantity > 0,
                    accrued=self._costs.accrued_unknown() if order.filled_quantity else None)
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
        self._last_bar[bar.symbol] = bar
        book = self._book.get(bar.symbol)
        if not book:
            return
        items = list(book.items())
        if not any(work.group for _, work in items):
            for coid, work in items:
                if self._work(work, bar):
                    del book[coid]
            return
        # an exit group fills once per bar (the engine shrinks or cancels the others after
        # it hears of the fill, as a venue's own OCO would at once); a bar through both the
        # take-profit and the stop-loss takes the stop: the pessimistic reading of a bar
        items.sort(key=lambda item: item[1].order.order_type not in _STOPS)
        traded: set[str] = set()
        for coid, work in items:
            group = work.group
            if group in traded:
                continue
            leaves = work.leaves
            if self._work(work, bar):
                del book[coid]
            if group is not None and work.leaves != leaves:
                traded.add(group)

    def _work(self, work: _Working, bar: Bar) -> bool:
        """Work one order against one bar; True when it left the book."""
        order = work.order
        tif = order.time_in_force
        if tif is TimeInForce.DAY and bar.ts_event // _DAY_NS > work.day:
            self._report(OrderStatusReport(order.client_order_id, OrderStatus.EXPIRED,
                                           reason="day order expired", ts_event=bar.ts_event))
            return True
        priced = self._price(work, bar)
        if priced is not None:
            cap = self._cap(bar)
            whole = cap is None or cap >= work.leaves
            if tif is not TimeInForce.FOK or whole:  # FOK: the whole quantity or nothing
                self._execute(work, *priced, cap, bar.ts_event)
        if work.leaves == 0:
            return True
        if tif in _FIRST_BAR_ONLY:
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

    def _taker(self, order: Order, rules: Instrument, bar: Bar, price: float | Decimal,
               limit: Decimal | None = None) -> Decimal:
        """A taker fill's price from ``price`` (a bar's price, or the order's stop) in ``bar``:
        on the grid against the order, slipped, within the bar and the limit."""
        side = order.side
        base = (price if isinstance(price, Decimal)
                else PaperCosts.against(to_decimal(price), side, rules))
        return self._costs.taker_price(base, side, rules, high=bar.high, low=bar.low,
                                       limit=limit)

    def _price(self, work: _Working, bar: Bar) -> tuple[Decimal, bool] | None:
        """The price this bar fills the order at and whether that is a maker fill, or None if
        the bar does not fill it."""
        order = work.order
        buy = order.side is Side.BUY
        kind = order.order_type
        rules = self._rules(order.symbol)
        if kind is OrderType.MARKET or (kind is OrderType.STOP and work.triggered):
            # a triggered stop is a market order (what a volume cap left of it)
            return self._taker(order, rules, bar, bar.open), False
        open_ = _nearest(rules, bar.open)
        if kind in _STOPS and not work.triggered:
            stop = order.stop_price
            assert stop is not None
            if (open_ >= stop) if buy else (open_ <= stop):  # gapped through: the open
                work.triggered = True
                if kind is OrderType.STOP:
                    return self._taker(order, rules, bar, bar.open), False
            elif ((_nearest(rules, bar.high) >= stop) if buy
                  else (_nearest(rules, bar.low) <= stop)):
                work.triggered = True
                if kind is OrderType.STOP:
                    return self._taker(order, rules, bar, stop), False
                limit = order.limit_price
                assert limit is not None
                ok = limit >= stop if buy else limit <= stop
                # the limit arrives marketable at the stop: a taker fill
                return (self._taker(order, rules, bar, stop, limit), False) if ok else None
            else:
                return None
        limit = order.limit_price
        assert limit is not None
        if (open_ <= limit) if buy else (open_ >= limit):  # marketable at the open: a taker
            return self._taker(order, rules, bar, bar.open, limit), False
        touched = ((_nearest(rules, bar.low) <= limit) if buy
                   else (_nearest(rules, bar.high) >= limit))
        if not touched:
            return None
        # it rested on the book and the market came to it: a maker fill at its limit (an
        # IOC or FOK never rests: a taker fill, at the limit all the same)
        return limit, order.time_in_force not in _FIRST_BAR_ONLY

    def _execute(self, work: _Working, price: Decimal, maker: bool, cap: Decimal | None,
                 ts: int) -> None:
        qty = work.leaves if cap is None else min(work.leaves, cap)
        if qty <= 0:
            return
        order = work.order
        work.leaves -= qty
        work.filled += qty
        self.fills_made += 1
        costs = self._costs
        if costs.free:
            fee = work.accrued = ZERO
        else:
            fee, work.accrued = costs.fill_fee(work.accrued, price * qty, maker=maker)
        self._report(Fill(order.portfolio_id, order.client_order_id, self.name,
                          f"{order.client_order_id}@{_plain(work.filled)}", order.symbol,
                          order.side, qty, price, fee, ts))
