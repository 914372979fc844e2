"""The local exchange's state and matching: markets and their filters, accounts, orders, trades.

Where it sits: under the venue's protocol fronts (Binance-compatible REST and WebSocket), fed by
bars of LTS's own pipelines through :meth:`Exchange.on_bar`. Pure and synchronous (no I/O, exact
decimals, time from a clock it is given): a front calls it on its event loop, one call at a time,
and turns what it raises (:class:`VenueError`, with Binance's error codes) and what it reports
(:class:`ExecutionReport`, :class:`BalancesChanged`, to its listeners, synchronously) into the
wire protocol.

Matching, as a spot exchange does it with bars for the tape:

- A market order, or a limit order priced through the last price, takes liquidity at once at
  the last price (taker). Liquidity per bar is its volume times ``participation``: what is not
  there is not filled (a market or IOC order expires with the rest; FOK fills whole or expires).
- A resting limit order fills at its own price (maker) when a bar trades through it (a buy when
  the bar's low reaches its price, a sell when the high does), in time priority, as far as the
  bar's liquidity goes: partial fills.
- A stop-limit order rests untriggered until a bar reaches its stop price (one that would
  trigger at once is rejected), then works as a limit order: one whose limit is through the
  stop takes at once, at the stop price.
- A limit-maker order that would take is rejected.

Funds: an order locks what it may spend (a buy: quantity times its limit price, or the last price
for a market order; a sell: the base quantity) and releases the rest when it closes. Commission
is taken in the asset received (``fee_rate``).
"""

from __future__ import annotations

import copy
import enum
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from decimal import ROUND_DOWN, Decimal

ZERO = Decimal(0)
ONE = Decimal(1)

# Binance's error codes, as the venue answers them
FILTER_FAILURE = -1013
BAD_SYMBOL = -1121
MANDATORY_PARAM = -1102
ILLEGAL_PARAM = -1106
NEW_ORDER_REJECTED = -2010
CANCEL_REJECTED = -2011
NO_SUCH_ORDER = -2013
REPLACE_PARTIALLY_FAILED = -2021
REPLACE_FAILED = -2022


class Side(enum.StrEnum):
    BUY = "BUY"
    SELL = "SELL"


class OrderType(enum.StrEnum):
    LIMIT = "LIMIT"
    MARKET = "MARKET"
    LIMIT_MAKER = "LIMIT_MAKER"
    STOP_LOSS_LIMIT = "STOP_LOSS_LIMIT"


class TimeInForce(enum.StrEnum):
    GTC = "GTC"
    IOC = "IOC"
    FOK = "FOK"


class Status(enum.StrEnum):
    NEW = "NEW"
    PARTIALLY_FILLED = "PARTIALLY_FILLED"
    FILLED = "FILLED"
    CANCELED = "CANCELED"
    EXPIRED = "EXPIRED"


class ExecutionType(enum.StrEnum):
    NEW = "NEW"
    TRADE = "TRADE"
    CANCELED = "CANCELED"
    EXPIRED = "EXPIRED"


OPEN = frozenset({Status.NEW, Status.PARTIALLY_FILLED})
_PRICED = frozenset({OrderType.LIMIT, OrderType.LIMIT_MAKER, OrderType.STOP_LOSS_LIMIT})


class VenueError(Exception):
    """A request the exchange refuses: Binance's ``code`` and ``msg``."""

    def __init__(self, code: int, msg: str) -> None:
        super().__init__(f"{code}: {msg}")
        self.code = code
        self.msg = msg


@dataclass(frozen=True)
class Market:
    """A spot symbol and its filters (PRICE_FILTER, LOT_SIZE, NOTIONAL)."""

    symbol: str  # Binance's id: BTCUSDT
    base: str
    quote: str
    tick_size: Decimal = Decimal("0.01")
    step_size: Decimal = Decimal("0.00001")
    min_qty: Decimal = Decimal("0.00001")
    max_qty: Decimal = Decimal("9000")
    min_price: Decimal = Decimal("0.01")
    max_price: Decimal = Decimal("1000000")
    min_notional: Decimal = Decimal("5")


@dataclass
class Balance:
    free: Decimal = ZERO
    locked: Decimal = ZERO


@dataclass
class Order:
    order_id: int
    client_order_id: str
    account: str
    symbol: str
    side: Side
    type: OrderType
    time_in_force: TimeInForce
    price: Decimal  # 0: none (a market order)
    stop_price: Decimal  # 0: none
    orig_qty: Decimal
    time: int  # ms
    executed_qty: Decimal = ZERO
    cumulative_quote_qty: Decimal = ZERO
    status: Status = Status.NEW
    update_time: int = 0
    triggered: bool = True  # a stop order: its stop price was reached
    reserve_price: Decimal = ZERO  # funds locked per unit still to fill (a sell: 1 base)

    @property
    def remaining(self) -> Decimal:
        return self.orig_qty - self.executed_qty

    @property
    def is_open(self) -> bool:
        return self.status in OPEN


@dataclass(frozen=True)
class Trade:
    trade_id: int
    order_id: int
    account: str
    symbol: str
    side: Side
    price: Decimal
    qty: Decimal
    quote_qty: Decimal
    commission: Decimal
    commission_asset: str
    time: int
    maker: bool


@dataclass(frozen=True)
class ExecutionReport:
    """An order changed: a copy of it as it is now, and the trade that changed it, if any."""

    account: str
    execution_type: ExecutionType
    order: Order
    trade: Trade | None = None


@dataclass(frozen=True)
class BalancesChanged:
    account: str
    balances: dict[str, Balance] = field(default_factory=dict)


Report = ExecutionReport | BalancesChanged


class CancelReplaceFailed(VenueError):
    """A cancel-replace that did not do both (Binance's -2021 when one half failed, -2022 when
    nothing was done): what became of each half. ``canceled``: the order the cancel closed;
    ``placed``: the new order; an error for a half that failed; neither for one not attempted."""

    def __init__(self, *, canceled: Order | None, cancel_error: VenueError | None,
                 placed: Order | None, new_error: VenueError | None) -> None:
        partial = canceled is not None or placed is not None
        super().__init__(REPLACE_PARTIALLY_FAILED if partial else REPLACE_FAILED,
                         "Order cancel-replace partially failed." if partial
                         else "Order cancel-replace failed.")
        self.canceled, self.cancel_error = canceled, cancel_error
        self.placed, self.new_error = placed, new_error


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def _on_grid(value: Decimal, step: Decimal) -> bool:
    return step <= 0 or value % step == 0


class Exchange:
    """One spot exchange: its markets, accounts, orders and trades."""

    def __init__(self, markets: Iterable[Market], *, fee_rate: Decimal = Decimal("0.001"),
                 participation: Decimal = Decimal("0.1"),
                 clock: Callable[[], int] = _now_ms) -> None:
        self.markets = {m.symbol: m for m in markets}
        self.fee_rate = fee_rate
        self.participation = participation
        self.clock = clock
        self.accounts: dict[str, dict[str, Balance]] = {}
        self.orders: dict[int, Order] = {}
        self.trades: list[Trade] = []
        self.last: dict[str, Decimal] = {}
        self.listeners: list[Callable[[Report], None]] = []
        self._book: dict[str, list[Order]] = {s: [] for s in self.markets}  # time priority
        self._by_client: dict[tuple[str, str], int] = {}  # (account, client id) -> newest id
        self._liquidity: dict[str, Decimal] = {}  # what the current bar has left to trade
        self._next_order = 1
        self._next_trade = 1

    # -- accounts -------------------------------------------------------------------------------
    def add_account(self, account: str, balances: dict[str, Decimal]) -> None:
        self.accounts[account] = {asset: Balance(free=amount) for asset, amount in
                                  balances.items()}

    def balances(self, account: str) -> dict[str, Balance]:
        return self._account(account)

    # -- orders ---------------------------------------------------------------------------------
    def place(self, account: str, symbol: str, side: Side, type: OrderType, quantity: Decimal,
              *, price: Decimal | None = None, stop_price: Decimal | None = None,
              time_in_force: TimeInForce | None = None,
              client_order_id: str | None = None) -> Order:
        """A new order: checked against the filters and the account's funds, then matched as
        far as the market allows (see the module's docstring)."""
        market = self._market(symbol)
        balances = self._account(account)
        self._check_params(type, price, stop_price, time_in_force)
        last = self.last.get(symbol)
        self._check_filters(market, type, quantity, price, last)
        coid = client_order_id or f"venue-{self._next_order}"
        known = self._by_client.get((account, coid))
        if known is not None and self.orders[known].is_open:
            raise VenueError(NEW_ORDER_REJECTED, "Duplicate order sent.")
        marketable = type is OrderType.MARKET or (
            type in (OrderType.LIMIT, OrderType.LIMIT_MAKER) and last is not None and price
            is not None and (price >= last if side is Side.BUY else price <= last))
        if type is OrderType.LIMIT_MAKER and marketable:
            raise VenueError(NEW_ORDER_REJECTED, "Order would immediately match and take.")
        if type is OrderType.MARKET and last is None:
            raise VenueError(NEW_ORDER_REJECTED, "Market is closed.")
        if type is OrderType.STOP_LOSS_LIMIT and last is not None and stop_price is not None \
                and (last >= stop_price if side is Side.BUY else last <= stop_price):
            raise VenueError(NEW_ORDER_REJECTED, "Stop price would trigger immediately.")
        reserve = ONE if side is Side.SELL else (price if price is not None else last)
        assert reserve is not None
        asset = market.base if side is Side.SELL else market.quote
        need = quantity * reserve
        funds = balances.setdefault(asset, Balance())
        if funds.free < need:
            raise VenueError(NEW_ORDER_REJECTED,
                             "Account has insufficient balance for requested action.")
        now = self.clock()
        order = Order(self._next_order, coid, account, symbol, side, type,
                      time_in_force or TimeInForce.GTC, price or ZERO, stop_price or ZERO,
                      quantity, now, update_time=now,
                      triggered=type is not OrderType.STOP_LOSS_LIMIT, reserve_price=reserve)
        self._next_order += 1
        funds.free -= need
        funds.locked += need
        self.orders[order.order_id] = order
        self._by_client[(account, coid)] = order.order_id
        self._report(order, ExecutionType.NEW)
        self._balances_changed(account, asset)
        if marketable:
            self._take(order)
        if order.is_open:
            if type is OrderType.MARKET or order.time_in_force is not TimeInForce.GTC:
                self._close(order, Status.EXPIRED)
            else:
                self._book[symbol].append(order)
        return order

    def cancel(self, account: str, symbol: str, *, order_id: int | None = None,
               client_order_id: str | None = None) -> Order:
        order = self._find(account, symbol, order_id, client_order_id, CANCEL_REJECTED,
                           "Unknown order sent.")
        if not order.is_open:
            raise VenueError(CANCEL_REJECTED, "Unknown order sent.")
        self._close(order, Status.CANCELED)
        return order

    def cancel_replace(self, account: str, symbol: str, side: Side, type: OrderType,
                       quantity: Decimal, *, price: Decimal | None = None,
                       stop_price: Decimal | None = None,
                       time_in_force: TimeInForce | None = None,
                       client_order_id: str | None = None,
                       cancel_order_id: int | None = None,
                       cancel_client_order_id: str | None = None,
                       allow_failure: bool = False) -> tuple[Order, Order]:
        """Cancel an order and place a new one on the same symbol (Binance's cancel-replace):
        the new order's parameters and filters are checked first (a plain :class:`VenueError`,
        nothing done); then the cancel, and, unless it failed (``allow_failure``: even then),
        the new order, which may take the canceled one's client order id. What did not do both
        raises :class:`CancelReplaceFailed`. Returns (the canceled order, the new one)."""
        market = self._market(symbol)
        self._account(account)
        self._check_params(type, price, stop_price, time_in_force)
        self._check_filters(market, type, quantity, price, self.last.get(symbol))
        canceled: Order | None = None
        cancel_error: VenueError | None = None
        try:
            canceled = self._find(account, symbol, cancel_order_id, cancel_client_order_id,
                                  CANCEL_REJECTED, "Unknown order sent.")
            if cancel_order_id is not None and cancel_client_order_id is not None \
                    and canceled.client_order_id != cancel_client_order_id:
                raise VenueError(CANCEL_REJECTED, "Unknown order sent.")
            self.cancel(account, symbol, order_id=canceled.order_id)
        except VenueError as err:
            canceled, cancel_error = None, err
            if not allow_failure:
                raise CancelReplaceFailed(canceled=None, cancel_error=err, placed=None,
                                          new_error=None) from None
        try:
            placed = self.place(account, symbol, side, type, quantity, price=price,
                                stop_price=stop_price, time_in_force=time_in_force,
                                client_order_id=client_order_id)
        except VenueError as err:
            raise CancelReplaceFailed(canceled=canceled, cancel_error=cancel_error,
                                      placed=None, new_error=err) from None
        if canceled is None:
            raise CancelReplaceFailed(canceled=None, cancel_error=cancel_error, placed=placed,
                                      new_error=None)
        return canceled, placed

    def order(self, account: str, symbol: str, *, order_id: int | None = None,
              client_order_id: str | None = None) -> Order:
        return self._find(account, symbol, order_id, client_order_id, NO_SUCH_ORDER,
                          "Order does not exist.")

    def open_orders(self, account: str, symbol: str | None = None) -> list[Order]:
        if symbol is not None:
            self._market(symbol)
        return [o for o in self.orders.values() if o.account == account and o.is_open
                and (symbol is None or o.symbol == symbol)]

    def all_orders(self, account: str, symbol: str) -> list[Order]:
        self._market(symbol)
        return [o for o in self.orders.values() if o.account == account and o.symbol == symbol]

    def my_trades(self, account: str, symbol: str, *, from_id: int = 0) -> list[Trade]:
        self._market(symbol)
        return [t for t in self.trades
                if t.account == account and t.symbol == symbol and t.trade_id >= from_id]

    # -- market data ----------------------------------------------------------------------------
    def on_bar(self, symbol: str, high: Decimal, low: Decimal, close: Decimal,
               volume: Decimal) -> None:
        """A bar of ``symbol`` traded: stops trigger, resting limit orders it trades through
        fill (maker, at their price, in time priority, within the bar's liquidity)."""
        self._market(symbol)
        self.last[symbol] = close
        self._liquidity[symbol] = volume * self.participation
        book = self._book[symbol]
        for order in list(book):
            if not order.triggered:
                stop = order.stop_price
                if not (high >= stop if order.side is Side.BUY else low <= stop):
                    continue
                order.triggered = True
                if order.price >= stop if order.side is Side.BUY else order.price <= stop:
                    # it enters the book marketable: it takes, at the price that triggered it
                    self._fill(order, stop, self._available(order), maker=False)
                    continue
            if low <= order.price if order.side is Side.BUY else high >= order.price:
                self._fill(order, order.price, self._available(order), maker=True)
        book[:] = [o for o in book if o.is_open]

    # -- persistence (lts.venue.state) ------------------------------------------------------------
    @property
    def next_ids(self) -> tuple[int, int]:
        """The ids the next order and the next trade will get."""
        return self._next_order, self._next_trade

    def restore(self, accounts: dict[str, dict[str, Balance]], orders: Iterable[Order],
                trades: Iterable[Trade], last: dict[str, Decimal],
                next_ids: tuple[int, int]) -> None:
        """Put back a saved state: the open orders rest in the book again, in time priority
        (order id), and client order ids find their newest order."""
        orders = sorted(orders, key=lambda o: o.order_id)
        unknown = {o.symbol for o in orders} - set(self.markets)
        if unknown:
            raise VenueError(BAD_SYMBOL, f"Invalid symbol: {', '.join(sorted(unknown))}.")
        self.accounts.clear()  # in place: whoever holds these sees the restored state
        self.accounts.update(accounts)
        self.orders.clear()
        self.orders.update((o.order_id, o) for o in orders)
        self.trades[:] = trades
        self.last.clear()
        self.last.update((s, p) for s, p in last.items() if s in self.markets)
        self._book = {s: [o for o in orders if o.symbol == s and o.is_open]
                      for s in self.markets}
        self._by_client = {(o.account, o.client_order_id): o.order_id for o in orders}
        self._next_order, self._next_trade = next_ids

    # -- inside ---------------------------------------------------------------------------------
    def _market(self, symbol: str) -> Market:
        market = self.markets.get(symbol)
        if market is None:
            raise VenueError(BAD_SYMBOL, "Invalid symbol.")
        return market

    def _account(self, account: str) -> dict[str, Balance]:
        balances = self.accounts.get(account)
        if balances is None:
            raise VenueError(-2015, "Invalid API-key, IP, or permissions for action.")
        return balances

    @staticmethod
    def _check_params(type: OrderType, price: Decimal | None, stop_price: Decimal | None,
                      time_in_force: TimeInForce | None) -> None:
        if type in _PRICED and price is None:
            raise VenueError(MANDATORY_PARAM, "Mandatory parameter 'price' was not sent, was "
                             "empty/null, or malformed.")
        if type is OrderType.STOP_LOSS_LIMIT and stop_price is None:
            raise VenueError(MANDATORY_PARAM, "Mandatory parameter 'stopPrice' was not sent, was"
                             " empty/null, or malformed.")
        if type in (OrderType.LIMIT, OrderType.STOP_LOSS_LIMIT) and time_in_force is None:
            raise VenueError(MANDATORY_PARAM, "Mandatory parameter 'timeInForce' was not sent, "
                             "was empty/null, or malformed.")
        if type is OrderType.MARKET and price is not None:
            raise VenueError(ILLEGAL_PARAM, "Parameter 'price' sent when not required.")

    @staticmethod
    def _check_filters(market: Market, type: OrderType, quantity: Decimal,
                       price: Decimal | None, last: Decimal | None) -> None:
        if price is not None and not (market.min_price <= price <= market.max_price
                                      and _on_grid(price, market.tick_size)):
            raise VenueError(FILTER_FAILURE, "Filter failure: PRICE_FILTER")
        if not (market.min_qty <= quantity <= market.max_qty
                and _on_grid(quantity, market.step_size)):
            raise VenueError(FILTER_FAILURE, "Filter failure: LOT_SIZE")
        valued = price if type is not OrderType.MARKET else last
        if valued is not None and valued * quantity < market.min_notional:
            raise VenueError(FILTER_FAILURE, "Filter failure: NOTIONAL")

    def _find(self, account: str, symbol: str, order_id: int | None,
              client_order_id: str | None, code: int, msg: str) -> Order:
        self._market(symbol)
        if order_id is None and client_order_id is not None:
            order_id = self._by_client.get((account, client_order_id))
        order = self.orders.get(order_id) if order_id is not None else None
        if order is None or order.account != account or order.symbol != symbol:
            raise VenueError(code, msg)
        return order

    def _available(self, order: Order) -> Decimal:
        """What the current bar's liquidity lets ``order`` fill, on the lot grid."""
        step = self.markets[order.symbol].step_size
        qty = min(order.remaining, self._liquidity.get(order.symbol, ZERO))
        if step > 0:
            qty = (qty / step).to_integral_value(rounding=ROUND_DOWN) * step
        return qty

    def _take(self, order: Order) -> None:
        """Take liquidity at the last price (a marketable order, on arrival)."""
        qty = self._available(order)
        if order.time_in_force is TimeInForce.FOK and qty < order.orig_qty:
            return  # whole or nothing: it expires
        self._fill(order, self.last[order.symbol], qty, maker=False)

    def _fill(self, order: Order, price: Decimal, qty: Decimal, *, maker: bool) -> None:
        if qty <= 0:
            return
        market = self.markets[order.symbol]
        balances = self.accounts[order.account]
        self._liquidity[order.symbol] = self._liquidity.get(order.symbol, ZERO) - qty
        quote_qty = price * qty
        released = qty * order.reserve_price
        if order.side is Side.BUY:
            received, asset_received, asset_paid, paid = qty, market.base, market.quote, quote_qty
        else:
            received, asset_received, asset_paid, paid = quote_qty, market.quote, market.base, qty
        commission = received * self.fee_rate
        spent = balances[asset_paid]
        spent.locked -= released
        spent.free += released - paid  # a buy filled below its limit price gets the difference
        balances.setdefault(asset_received, Balance()).free += received - commission
        now = self.clock()
        trade = Trade(self._next_trade, order.order_id, order.account, order.symbol, order.side,
                      price, qty, quote_qty, commission, asset_received, now, maker)
        self._next_trade += 1
        self.trades.append(trade)
        order.executed_qty += qty
        order.cumulative_quote_qty += quote_qty
        order.status = Status.FILLED if order.remaining == 0 else Status.PARTIALLY_FILLED
        order.update_time = now
        self._report(order, ExecutionType.TRADE, trade)
        self._balances_changed(order.account, asset_paid, asset_received)

    def _close(self, order: Order, status: Status) -> None:
        """Cancel or expire ``order``: what it still holds locked is free again."""
        market = self.markets[order.symbol]
        asset = market.base if order.side is Side.SELL else market.quote
        funds = self.accounts[order.account][asset]
        held = order.remaining * order.reserve_price
        funds.locked -= held
        funds.free += held
        order.status = status
        order.update_time = self.clock()
        book = self._book[order.symbol]
        if order in book:
            book.remove(order)
        self._report(order, ExecutionType.CANCELED if status is Status.CANCELED
                      else ExecutionType.EXPIRED)
        self._balances_changed(order.account, asset)

    def _report(self, order: Order, kind: ExecutionType, trade: Trade | None = None) -> None:
        if self.listeners:
            report = ExecutionReport(order.account, kind, copy.copy(order), trade)
            for listener in self.listeners:
                listener(report)

    def _balances_changed(self, account: str, *assets: str) -> None:
        if self.listeners:
            balances = self.accounts[account]
            report = BalancesChanged(account, {a: copy.copy(balances[a]) for a in assets})
            for listener in self.listeners:
                listener(report)

