"""Broker ``paper``: a simulated venue that fills orders from market data.

Rules (the default reproduces the usual backtest convention): an order made on bar t is worked
from bar t+1. Market orders fill at that bar's open (``fill_at=next_open``) or at once at the
last close (``fill_at=close``); limit orders at the open if it is through the limit, else at the
limit if the bar's range touches it; stop orders trigger on the range and fill at the open or the
stop; stop-limits trigger, then work as limits. Slippage moves the price against the order; fees
are basis points of notional. ``volume_cap`` (a fraction of the bar's volume) makes partial fills.
IOC cancels what the first bar could not fill; FOK fills whole on that bar or cancels; DAY expires
when the UTC day changes. The simulated venue keeps its book in memory: after a restart it knows
no order, and reconciliation reports them canceled.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Literal

from pydantic import Field

from lts.domain.clock import Clock
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
from lts.domain.values import ZERO, floor_to_step, to_decimal
from lts.plugins.base import PluginBase, PluginParams
from lts.plugins.broker import BrokerReports

_BPS = Decimal(10_000)
_DAY_NS = 86_400 * 1_000_000_000


class PaperParams(PluginParams):
    fees_bps: Decimal = Field(Decimal(0), ge=0, description="fee, basis points of notional")
    slippage_bps: Decimal = Field(Decimal(0), ge=0, description="price moved against the order")
    fill_at: Literal["next_open", "close"] = Field("next_open", description="market order price")
    volume_cap: float = Field(0.0, ge=0, le=1, description="max fraction of bar volume; 0: none")
    price_increment: Decimal = Field(Decimal("0.0001"), gt=0, description="fill price step")
    lot_size: Decimal = Field(Decimal("0.00000001"), gt=0, description="fill quantity step")


@dataclass
class _Working:
    order: Order
    leaves: Decimal
    day: int
    triggered: bool = False
    fills: int = 0


class PaperBroker(PluginBase):
    Params = PaperParams
    plugin_name = "paper"
    plugin_debug_vars = ["orders_received", "fills_made", "working_orders"]

    def __init__(self, **params: object) -> None:
        super().__init__(**params)
        self.name = "paper"
        self.params_changed()
        self._book: dict[str, dict[str, _Working]] = {}
        self._last_close: dict[str, float] = {}
        self._reports: BrokerReports | None = None
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

    def bind(self, reports: BrokerReports, clock: Clock) -> None:
        self._reports = reports
        self._clock = clock

    def _now(self) -> int:
        assert self._clock is not None, "bind() first"
        return self._clock.now_ns()

    def submit(self, order: Order) -> None:
        assert self._reports is not None, "bind() first"
        self.orders_received += 1
        now = self._now()
        self._reports.on_order_status(order.client_order_id, OrderStatus.ACCEPTED, now)
        work = _Working(order, order.leaves_quantity, now // _DAY_NS)
        last = self._last_close.get(order.symbol)
        if (order.order_type is OrderType.MARKET and self.params.fill_at == "close"
                and last is not None):
            self._execute(work, self._slipped(to_decimal(last), order.side), None, now)
            if work.leaves == 0:
                return
        self._book.setdefault(order.symbol, {})[order.client_order_id] = work

    def cancel(self, client_order_id: str) -> None:
        assert self._reports is not None, "bind() first"
        for book in self._book.values():
            if book.pop(client_order_id, None) is not None:
                self._reports.on_order_status(client_order_id, OrderStatus.CANCELED, self._now())
                return
        self._reports.on_order_status(client_order_id, OrderStatus.CANCELED, self._now(),
                                      "not working at the venue")

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
        assert self._reports is not None
        order = work.order
        tif = order.time_in_force
        if tif is TimeInForce.DAY and bar.ts_event // _DAY_NS > work.day:
            self._reports.on_order_status(order.client_order_id, OrderStatus.EXPIRED,
                                          bar.ts_event, "day order expired")
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
            self._reports.on_order_status(order.client_order_id, OrderStatus.CANCELED,
                                          bar.ts_event, f"{tif.value}: not filled on first bar")
            return True
        return False

    def _cap(self, bar: Bar) -> Decimal | None:
        if not self.params.volume_cap:
            return None
        return floor_to_step(to_decimal(bar.volume * self.params.volume_cap),
                             self.params.lot_size)

    def _slipped(self, price: Decimal, side: Side) -> Decimal:
        adj = price * (1 + self._slip) if side is Side.BUY else price * (1 - self._slip)
        return to_decimal(adj, self.params.price_increment)

    def _price(self, work: _Working, bar: Bar) -> Decimal | None:
        """The price this bar fills the order at, or None if it does not."""
        order = work.order
        buy = order.side is Side.BUY
        kind = order.order_type
        if kind is OrderType.MARKET:
            return self._slipped(to_decimal(bar.open), order.side)
        if kind in (OrderType.STOP, OrderType.STOP_LIMIT) and not work.triggered:
            stop = order.stop_price
            assert stop is not None
            open_ = to_decimal(bar.open)
            if (open_ >= stop) if buy else (open_ <= stop):
                work.triggered = True
                if kind is OrderType.STOP:
                    return self._slipped(open_, order.side)
            elif (to_decimal(bar.high) >= stop) if buy else (to_decimal(bar.low) <= stop):
                work.triggered = True
                if kind is OrderType.STOP:
                    return self._slipped(stop, order.side)
                limit = order.limit_price
                assert limit is not None
                ok = limit >= stop if buy else limit <= stop
                return stop if ok else None
            else:
                return None
        limit = order.limit_price
        assert limit is not None
        open_ = to_decimal(bar.open)
        if (open_ <= limit) if buy else (open_ >= limit):
            return open_
        touched = (to_decimal(bar.low) <= limit) if buy else (to_decimal(bar.high) >= limit)
        return limit if touched else None

    def _execute(self, work: _Working, price: Decimal, cap: Decimal | None, ts: int) -> None:
        assert self._reports is not None
        qty = work.leaves if cap is None else min(work.leaves, cap)
        if qty <= 0:
            return
        order = work.order
        work.fills += 1
        work.leaves -= qty
        self.fills_made += 1
        fee = (price * qty * self._fee).quantize(Decimal("0.00000001")) if self._fee else ZERO
        self._reports.on_fill(Fill(order.portfolio_id, order.client_order_id, self.name,
                                   f"{order.client_order_id}-{work.fills}", order.symbol,
                                   order.side, qty, price, fee, ts))

    async def reconcile(self, orders: Sequence[Order]) -> list[OrderStatusReport]:
        reports = []
        for order in orders:
            work = self._book.get(order.symbol, {}).get(order.client_order_id)
            if work is None:
                reports.append(OrderStatusReport(order.client_order_id, OrderStatus.CANCELED,
                                                 reason="unknown to the paper venue"))
            else:
                reports.append(OrderStatusReport(order.client_order_id, order.status))
        return reports
