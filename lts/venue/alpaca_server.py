"""A local Alpaca trading API: one equities account over the local exchange's matching.

Where it sits: beside the engine, like the Binance front (:mod:`lts.venue.binance_rest`). A
client (alpaca-py's ``TradingClient`` and ``TradingStream`` with their URLs pointed here, LTS's
``alpaca`` broker) trades on it through Alpaca's wire protocol. :class:`AlpacaVenue` is a thin
adapter: it keeps the orders as Alpaca shows them (UUID ids, the caller's ``client_order_id``,
lower-case statuses, replacements chained by ``replaces``/``replaced_by``) and the account's
fill activities, and leaves the matching to :class:`~lts.venue.exchange.Exchange`, where a
stock is a market of base ``AAPL`` and quote ``USD`` (:func:`equity`). Whatever the exchange
reports becomes a ``trade_updates`` event for the stream's listeners. The HTTP routes are in
:mod:`lts.venue.alpaca_rest`, the WebSocket in :mod:`lts.venue.alpaca_stream`;
:func:`build_app` puts them together.

As Alpaca: a ``stop`` order rests here until a bar reaches its stop, then goes to the book as a
market order; a ``day`` order rests like ``gtc`` (this venue has no session close); ``ioc``,
``fok`` and the unfilled rest of a market order end ``canceled``. A replacement (``PATCH``)
cancels the old order (status ``replaced``) and places a new one for the given quantity (by
default what the old one had left), its price changes applied. Equities carry no commission.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import ROUND_DOWN, Decimal
from typing import Any

import anyio
from starlette.applications import Starlette

from lts.venue.exchange import (
    BAD_SYMBOL,
    FILTER_FAILURE,
    Exchange,
    ExecutionReport,
    ExecutionType,
    Market,
    OrderType,
    Report,
    Side,
    Status,
    TimeInForce,
    VenueError,
)

__all__ = ["AlpacaError", "AlpacaFaults", "AlpacaOrder", "AlpacaVenue", "build_app", "equities",
           "equity", "iso", "plain"]

ACCOUNT = "alpaca"
USD = "USD"
ZERO = Decimal(0)
# Alpaca's error codes
FORBIDDEN = 40310000
UNPROCESSABLE = 40010001
NOT_FOUND = 40410000
NOT_CANCELABLE = 42210000

OPEN_STATUSES = frozenset({"new", "accepted", "pending_new", "partially_filled"})
_TIF = {"day": TimeInForce.GTC, "gtc": TimeInForce.GTC, "ioc": TimeInForce.IOC,
        "fok": TimeInForce.FOK}
_TYPES = frozenset({"market", "limit", "stop", "stop_limit"})
Event = dict[str, Any]


class AlpacaError(Exception):
    """A request Alpaca refuses: the HTTP status and Alpaca's ``{"code", "message"}``."""

    def __init__(self, status: int, code: int, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def equity(symbol: str, *, fractionable: bool = False) -> Market:
    """A stock as the exchange's market: base the stock, quote USD, cents, whole shares (or
    fractions to 1e-9 with $1 minimum, as Alpaca's fractional trading)."""
    step = Decimal("0.000000001") if fractionable else Decimal(1)
    return Market(symbol, symbol, USD, tick_size=Decimal("0.01"), step_size=step, min_qty=step,
                  max_qty=Decimal(10_000_000), min_price=Decimal("0.01"),
                  max_price=Decimal(1_000_000), min_notional=Decimal(1) if fractionable
                  else ZERO)


def iso(ns: int) -> str:
    """A time as Alpaca writes it: RFC 3339, microseconds, UTC."""
    return datetime.fromtimestamp(ns / 1e9, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def plain(value: Decimal | None) -> str | None:
    """A decimal as Alpaca writes it: a string, no exponent, no trailing zeros."""
    return None if value is None else f"{value.normalize():f}"


@dataclass
class AlpacaOrder:
    """An order as Alpaca shows it; ``qty`` is what it is for (from the notional, if one was
    given)."""

    id: str
    client_order_id: str
    symbol: str
    side: str
    type: str
    time_in_force: str
    qty: Decimal
    created_at: int
    notional: Decimal | None = None
    limit_price: Decimal | None = None
    stop_price: Decimal | None = None
    status: str = "new"
    filled_qty: Decimal = ZERO
    filled_value: Decimal = ZERO
    updated_at: int = 0
    filled_at: int | None = None
    canceled_at: int | None = None
    replaced_at: int | None = None
    replaces: str | None = None
    replaced_by: str | None = None
    in_book: bool = False  # at the exchange (a stop only once triggered)
    replacing: bool = False

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES

    @staticmethod
    def asset_id(symbol: str) -> str:
        return str(uuid.uuid5(uuid.NAMESPACE_URL, f"alpaca-local:{symbol}"))

    def json(self) -> dict[str, Any]:
        avg = self.filled_value / self.filled_qty if self.filled_qty else None

        def at(ns: int | None) -> str | None:
            return None if ns is None else iso(ns)

        return {
            "id": self.id, "client_order_id": self.client_order_id,
            "created_at": iso(self.created_at), "updated_at": iso(self.updated_at),
            "submitted_at": iso(self.created_at), "filled_at": at(self.filled_at),
            "expired_at": None, "canceled_at": at(self.canceled_at), "failed_at": None,
            "replaced_at": at(self.replaced_at), "replaced_by": self.replaced_by,
            "replaces": self.replaces, "asset_id": self.asset_id(self.symbol),
            "symbol": self.symbol, "asset_class": "us_equity",
            "notional": plain(self.notional), "qty": None if self.notional else plain(self.qty),
            "filled_qty": plain(self.filled_qty), "filled_avg_price": plain(avg),
            "order_class": "", "order_type": self.type, "type": self.type, "side": self.side,
            "position_intent": "buy_to_open" if self.side == "buy" else "sell_to_close",
            "time_in_force": self.time_in_force, "limit_price": plain(self.limit_price),
            "stop_price": plain(self.stop_price), "status": self.status, "extended_hours": False,
            "legs": None, "trail_percent": None, "trail_price": None, "hwm": None,
        }


class AlpacaFaults:
    """Misbehaviour on purpose: the next ``hang_orders`` order placements are made but their
    answers held back (the client times out: its answer is lost) until :meth:`release`."""

    def __init__(self) -> None:
        self.hang_orders = 0
        self._release: anyio.Event | None = None

    async def hold(self) -> None:
        """Wait (in a request's handler) until :meth:`release`."""
        if self._release is None:
            self._release = anyio.Event()
        await self._release.wait()

    def release(self) -> None:
        """Let every held answer go (from the server's event loop)."""
        if self._release is not None:
            self._release.set()
            self._release = None


@dataclass
class _Position:
    qty: Decimal = ZERO
    cost: Decimal = ZERO  # of the quantity held, at its entry prices


class AlpacaVenue:
    """One Alpaca account (``keys``: API key id -> secret) over ``exchange``, starting with
    ``cash`` dollars and no stock (no short selling: a sell needs the shares)."""

    def __init__(self, exchange: Exchange, keys: dict[str, str], *,
                 cash: Decimal = Decimal(100_000),
                 clock: Callable[[], int] = time.time_ns) -> None:
        self.exchange = exchange
        self.keys = keys
        self.clock = clock
        self.faults = AlpacaFaults()
        self.orders: dict[str, AlpacaOrder] = {}
        self.by_client: dict[str, str] = {}
        self.activities: list[dict[str, Any]] = []
        self.listeners: list[Callable[[Event], None]] = []  # the stream's, per connection
        self.stream_droppers: set[Callable[[], None]] = set()
        self.fractionable = {s for s, m in exchange.markets.items() if m.step_size < 1}
        self._stops: list[AlpacaOrder] = []
        self._positions: dict[str, _Position] = {}
        self._held: list[Event] | None = None  # events held back while a replacement is made
        exchange.add_account(ACCOUNT, {USD: cash})  # it holds no stock: positions from fills
        exchange.listeners.append(self._on_report)

    # -- account --------------------------------------------------------------------------------
    def authorized(self, key: str | None, secret: str | None) -> bool:
        return key is not None and secret is not None and self.keys.get(key) == secret

    def cash(self) -> Decimal:
        usd = self.exchange.balances(ACCOUNT).get(USD)
        return ZERO if usd is None else usd.free + usd.locked

    def buying_power(self) -> Decimal:
        usd = self.exchange.balances(ACCOUNT).get(USD)
        return ZERO if usd is None else usd.free

    def positions(self) -> dict[str, tuple[Decimal, Decimal]]:
        """symbol -> (quantity, average entry price) of what the account holds."""
        return {s: (p.qty, p.cost / p.qty) for s, p in self._positions.items() if p.qty}

    def last_price(self, symbol: str) -> Decimal | None:
        return self.exchange.last.get(symbol)

    def drop_streams(self) -> None:
        """Close every trade-updates WebSocket now (its clients see the connection drop)."""
        for drop in list(self.stream_droppers):
            drop()

    # -- orders ---------------------------------------------------------------------------------
    def place(self, request: dict[str, Any], *, replaces: AlpacaOrder | None = None
              ) -> AlpacaOrder:
        """A new order from Alpaca's request body (already JSON-decoded)."""
        symbol = str(request.get("symbol") or "").upper()
        market = self.exchange.markets.get(symbol)
        if market is None:
            raise AlpacaError(422, UNPROCESSABLE, f'asset "{symbol}" not found')
        side, kind = request.get("side"), request.get("type")
        tif = request.get("time_in_force")
        if side not in ("buy", "sell"):
            raise AlpacaError(422, UNPROCESSABLE, "side must be buy or sell")
        if kind not in _TYPES:
            raise AlpacaError(422, UNPROCESSABLE, f"invalid order type: {kind}")
        if tif not in _TIF:
            raise AlpacaError(422, UNPROCESSABLE, f"invalid time_in_force: {tif}")
        limit = _decimal(request, "limit_price")
        stop = _decimal(request, "stop_price")
        if kind in ("limit", "stop_limit") and limit is None:
            raise AlpacaError(422, UNPROCESSABLE, "limit_price is required")
        if kind in ("stop", "stop_limit") and stop is None:
            raise AlpacaError(422, UNPROCESSABLE, "stop_price is required")
        qty, notional = _decimal(request, "qty"), _decimal(request, "notional")
        if (qty is None) == (notional is None):
            raise AlpacaError(422, UNPROCESSABLE, "qty or notional is required")
        if notional is not None:
            qty = self._notional_qty(market, kind, notional)
        assert qty is not None
        if qty <= 0:
            raise AlpacaError(422, UNPROCESSABLE, "qty must be > 0")
        if qty % market.step_size:
            raise AlpacaError(422, UNPROCESSABLE,
                              f"fractional orders are not supported for {symbol}"
                              if market.step_size >= 1 else "qty is not a valid increment")
        coid = str(request.get("client_order_id") or uuid.uuid4())
        if len(coid) > 128:
            raise AlpacaError(422, UNPROCESSABLE, "client_order_id must be at most 128 "
                              "characters")
        if coid in self.by_client:
            raise AlpacaError(422, UNPROCESSABLE, "client_order_id must be unique")
        now = self.clock()
        order = AlpacaOrder(str(uuid.uuid4()), coid, symbol, side, kind, tif, qty, now,
                            notional=notional, limit_price=limit, stop_price=stop,
                            updated_at=now, replaces=replaces.id if replaces else None)
        self.orders[order.id] = order
        self.by_client[coid] = order.id
        if kind == "stop":
            assert stop is not None
            self._check_funds(market, order, self.last_price(symbol) or stop)
            self._stops.append(order)
            self._emit("new", order)
            return order
        try:
            self._to_book(order)
        except VenueError as err:
            del self.orders[order.id], self.by_client[coid]
            raise self._refusal(err, order) from None
        return order

    def cancel(self, order_id: str) -> AlpacaOrder:
        order = self.get(order_id)
        if not order.is_open:
            raise AlpacaError(422, NOT_CANCELABLE, "order is not cancelable")
        if order.in_book:
            self.exchange.cancel(ACCOUNT, order.symbol, client_order_id=order.id)
        else:  # a stop not triggered yet
            self._stops.remove(order)
            if order.replacing:
                order.replacing = False  # replace() gives it its status
            else:
                self._closed(order, "canceled")
        return order

    def replace(self, order_id: str, change: dict[str, Any]) -> AlpacaOrder:
        """Alpaca's ``PATCH``: the old order ends ``replaced``, a new one takes its place."""
        old = self.get(order_id)
        if not old.is_open:
            raise AlpacaError(422, NOT_CANCELABLE, "order is not replaceable")
        request: dict[str, Any] = {
            "symbol": old.symbol, "side": old.side, "type": old.type,
            "time_in_force": change.get("time_in_force") or old.time_in_force,
            "qty": change.get("qty") or plain(old.qty - old.filled_qty),
            "limit_price": change.get("limit_price") or plain(old.limit_price),
            "stop_price": change.get("stop_price") or plain(old.stop_price),
            "client_order_id": change.get("client_order_id")}
        if request["client_order_id"] in self.by_client:
            raise AlpacaError(422, UNPROCESSABLE, "client_order_id must be unique")
        self._held = []
        try:
            old.replacing = True
            self.cancel(old.id)
            try:
                new = self.place(request, replaces=old)
            except AlpacaError:
                old.replacing = False
                self._closed(old, "canceled")
                raise
            now = self.clock()
            old.status, old.replaced_by, old.replaced_at, old.updated_at = \
                "replaced", new.id, now, now
            self._emit("replaced", old)
        finally:
            held, self._held = self._held, None
            replaced = [e for e in held if e["event"] == "replaced"]
            for event in replaced + [e for e in held if e["event"] != "replaced"]:
                self._send(event)
        return new

    def get(self, order_id: str) -> AlpacaOrder:
        order = self.orders.get(order_id)
        if order is None:
            raise AlpacaError(404, NOT_FOUND, "order not found")
        return order

    def by_client_order_id(self, coid: str) -> AlpacaOrder:
        order_id = self.by_client.get(coid)
        if order_id is None:
            raise AlpacaError(404, NOT_FOUND, "order not found")
        return self.orders[order_id]

    # -- market data ----------------------------------------------------------------------------
    def on_bar(self, symbol: str, *, high: Decimal, low: Decimal, close: Decimal,
               volume: Decimal) -> None:
        """A bar traded: the exchange works its book, then stops it reached go to the book."""
        self.exchange.on_bar(symbol, high=high, low=low, close=close, volume=volume)
        for order in [o for o in self._stops if o.symbol == symbol]:
            stop = order.stop_price
            assert stop is not None
            if high >= stop if order.side == "buy" else low <= stop:
                self._stops.remove(order)
                try:
                    self._to_book(order)
                except VenueError as err:
                    self._closed(order, "rejected", reason=err.msg)

    # -- inside ---------------------------------------------------------------------------------
    def _to_book(self, order: AlpacaOrder) -> None:
        kind = {"market": OrderType.MARKET, "limit": OrderType.LIMIT,
                "stop": OrderType.MARKET, "stop_limit": OrderType.STOP_LOSS_LIMIT}[order.type]
        priced = kind is not OrderType.MARKET
        order.in_book = True
        try:
            self.exchange.place(ACCOUNT, order.symbol, Side(order.side.upper()), kind,
                                order.qty, price=order.limit_price if priced else None,
                                stop_price=order.stop_price if order.type == "stop_limit"
                                else None, time_in_force=_TIF[order.time_in_force],
                                client_order_id=order.id)
        except VenueError:
            order.in_book = False
            raise

    def _notional_qty(self, market: Market, kind: str, notional: Decimal) -> Decimal:
        if kind != "market" or market.symbol not in self.fractionable:
            raise AlpacaError(422, UNPROCESSABLE, "notional orders are market orders of "
                              "fractionable assets only")
        last = self.last_price(market.symbol)
        if last is None:
            raise AlpacaError(422, UNPROCESSABLE, f"no trade of {market.symbol} yet")
        step = market.step_size
        return (notional / last / step).to_integral_value(rounding=ROUND_DOWN) * step

    def _check_funds(self, market: Market, order: AlpacaOrder, price: Decimal) -> None:
        if order.side == "buy" and order.qty * price > self.buying_power():
            raise AlpacaError(403, FORBIDDEN, "insufficient buying power")
        held = self.exchange.balances(ACCOUNT).get(market.base)
        if order.side == "sell" and (held is None or held.free < order.qty):
            raise AlpacaError(403, FORBIDDEN, self._qty_message(order))

    def _qty_message(self, order: AlpacaOrder) -> str:
        held = self.exchange.balances(ACCOUNT).get(order.symbol)
        return (f"insufficient qty available for order (requested: {plain(order.qty)}, "
                f"available: {plain(held.free if held else ZERO)})")

    def _refusal(self, err: VenueError, order: AlpacaOrder) -> AlpacaError:
        if "insufficient balance" in err.msg:
            if order.side == "buy":
                return AlpacaError(403, FORBIDDEN, "insufficient buying power")
            return AlpacaError(403, FORBIDDEN, self._qty_message(order))
        if err.code == BAD_SYMBOL:
            return AlpacaError(422, UNPROCESSABLE, f'asset "{order.symbol}" not found')
        if err.code == FILTER_FAILURE and "PRICE" in err.msg:
            return AlpacaError(422, UNPROCESSABLE, "invalid limit_price: sub-penny increment "
                               "does not fulfill minimum pricing criteria")
        if err.code == FILTER_FAILURE and "NOTIONAL" in err.msg:
            return AlpacaError(403, FORBIDDEN, "cost basis must be >= 1")
        if "Market is closed" in err.msg:
            return AlpacaError(422, UNPROCESSABLE, f"no trade of {order.symbol} yet: a market "
                               "order has no price")
        return AlpacaError(422, UNPROCESSABLE, err.msg.rstrip(".").lower())

    def _on_report(self, report: Report) -> None:
        if not isinstance(report, ExecutionReport) or report.account != ACCOUNT:
            return
        order = self.orders.get(report.order.client_order_id)
        if order is None:
            return
        kind = report.execution_type
        now = self.clock()
        order.updated_at = now
        if kind is ExecutionType.NEW:
            if order.type != "stop":  # a stop was announced when it came
                self._emit("new", order)
        elif kind is ExecutionType.TRADE:
            trade = report.trade
            assert trade is not None
            self._filled(order, trade.qty, trade.price, now)
        elif order.replacing:
            order.replacing = False  # replace() gives it its status
        elif report.order.status is Status.CANCELED or kind is ExecutionType.EXPIRED:
            self._closed(order, "canceled")

    def _filled(self, order: AlpacaOrder, qty: Decimal, price: Decimal, now: int) -> None:
        order.filled_qty += qty
        order.filled_value += qty * price
        done = order.filled_qty >= order.qty
        order.status = "filled" if done else "partially_filled"
        if done:
            order.filled_at = now
        position = self._positions.setdefault(order.symbol, _Position())
        signed = qty if order.side == "buy" else -qty
        if order.side == "buy":
            position.cost += qty * price
        elif position.qty:
            position.cost -= position.cost * qty / position.qty
        position.qty += signed
        execution = str(uuid.uuid4())
        event = "fill" if done else "partial_fill"
        self.activities.append({
            "id": f"{datetime.fromtimestamp(now / 1e9, UTC):%Y%m%d%H%M%S%f}::{execution}",
            "activity_type": "FILL", "transaction_time": iso(now), "type": event,
            "price": plain(price), "qty": plain(qty), "side": order.side, "symbol": order.symbol,
            "leaves_qty": plain(order.qty - order.filled_qty), "order_id": order.id,
            "cum_qty": plain(order.filled_qty), "order_status": order.status, "_ns": now})
        self._emit(event, order, price=plain(price), qty=plain(qty), execution_id=execution,
                   position_qty=plain(position.qty))

    def _closed(self, order: AlpacaOrder, status: str, reason: str = "") -> None:
        order.status = status
        order.canceled_at = order.updated_at = self.clock()
        self._emit(status, order)

    def _emit(self, event: str, order: AlpacaOrder, **extra: Any) -> None:
        update: Event = {"event": event, "order": order.json(),
                         "timestamp": iso(order.updated_at), **extra}
        if self._held is not None:
            self._held.append(update)
        else:
            self._send(update)

    def _send(self, update: Event) -> None:
        for listener in list(self.listeners):
            listener(update)


def _decimal(request: dict[str, Any], name: str) -> Decimal | None:
    value = request.get(name)
    if value is None or value == "":
        return None
    try:
        number = Decimal(str(value))
    except ArithmeticError:
        raise AlpacaError(422, UNPROCESSABLE, f"invalid {name}") from None
    if not number.is_finite():
        raise AlpacaError(422, UNPROCESSABLE, f"invalid {name}")
    return number


def build_app(venue: AlpacaVenue) -> Starlette:
    """The trading API's HTTP routes and its ``/stream`` WebSocket, over ``venue``."""
    from lts.venue.alpaca_rest import rest_routes
    from lts.venue.alpaca_stream import stream_route

    return Starlette(routes=[*rest_routes(venue), stream_route(venue)])


def equities(symbols: Iterable[str], *, fractionable: Iterable[str] = ()) -> list[Market]:
    """Markets for ``symbols`` (those in ``fractionable`` trade fractions)."""
    fractions = set(fractionable)
    return [equity(s, fractionable=s in fractions) for s in symbols]
