"""The context a trading strategy acts through: the engine's side of
:class:`~lts.plugins.strategy.StrategyContext`.

Where it sits: one per trading strategy instance, made by the runner's strategy host
(:mod:`lts.engine.strategy_host`) and called only from the runner's task (the strategy's
callbacks run there). Orders go to the order manager as any request does (risk, write-ahead,
venue); brackets, OCO pairs and trailing stops go through :mod:`lts.engine.contingent`.

Conversions happen here, once: a number a strategy gives becomes an exact ``Decimal``; a price
goes to the instrument's tick grid never to the trader's disadvantage, a quantity is floored to
the lot size (a quantity that floors to zero places nothing and is logged).
"""

import logging
from collections.abc import Callable
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal, InvalidOperation

import msgspec

from lts.domain.clock import Clock
from lts.domain.commands import Accepted, ModifyOrder
from lts.domain.contingency import TrailTag
from lts.domain.instruments import Instrument
from lts.domain.orders import Order, OrderRequest, OrderType, Side, TimeInForce
from lts.domain.values import ZERO
from lts.engine.contingent import Contingencies
from lts.engine.ledger import Ledger
from lts.engine.order_manager import OrderManager
from lts.errors import InvalidParams
from lts.plugins.strategy import Number

__all__ = ["PortfolioContext"]

log = logging.getLogger("lts.strategy")

_HUNDRED = Decimal(100)


def _exact(value: Number, what: str) -> Decimal:
    try:
        number = value if isinstance(value, Decimal) else Decimal(str(value))
    except (InvalidOperation, ValueError):
        raise InvalidParams("strategy", what, f"not a number: {value!r}") from None
    if not number.is_finite():
        raise InvalidParams("strategy", what, f"not a finite number: {value!r}")
    return number


def _above_below(exit_side: Side, limit: Decimal, stop: Decimal, limit_name: str,
                 stop_name: str) -> None:
    """An exit pair's limit is the better price: above the stop for sells, below for buys
    (else one of them would trade at once)."""
    if (limit <= stop) if exit_side is Side.SELL else (limit >= stop):
        where = "above" if exit_side is Side.SELL else "below"
        raise InvalidParams("strategy", limit_name,
                            f"a {exit_side.value} exit's {limit_name} ({limit}) must be {where} "
                            f"its {stop_name} ({stop})")


class PortfolioContext:
    """A trading strategy's window on its portfolio (see the protocol for each method)."""

    def __init__(self, slot: int, symbols: tuple[str, ...], *, orders: OrderManager,
                 contingent: Contingencies, ledger: Ledger,
                 instruments: dict[str, Instrument], clock: Clock,
                 set_timer: Callable[[int, str, int | None, int | None], None],
                 cancel_timer: Callable[[int, str], None], name: str) -> None:
        self._slot = slot
        self._symbols = symbols
        self._om = orders
        self._contingent = contingent
        self._ledger = ledger
        self._instruments = instruments
        self._clock = clock
        self._set_timer = set_timer
        self._cancel_timer = cancel_timer
        self._name = name
        self.warming = False
        self.unsized = 0  # targets that could not be sized (counted, logged)

    # -- reads -----------------------------------------------------------------------------------
    @property
    def symbols(self) -> tuple[str, ...]:
        return self._symbols

    @property
    def warming_up(self) -> bool:
        return self.warming

    def now_ns(self) -> int:
        return self._clock.now_ns()

    @property
    def cash(self) -> Decimal:
        return self._ledger.cash

    def equity(self) -> Decimal:
        return self._ledger.equity()

    def position(self, symbol: str) -> Decimal:
        return self._ledger.position(symbol)

    def last_price(self, symbol: str) -> Decimal | None:
        return self._ledger.last_price(symbol)

    def instrument(self, symbol: str) -> Instrument:
        return self._instruments[symbol]

    def open_orders(self, symbol: str | None = None) -> list[Order]:
        wanted = (symbol,) if symbol is not None else self._symbols
        return [msgspec.structs.replace(o) for o in self._om.open.values()
                if o.symbol in wanted and o.is_open]

    def order(self, client_order_id: str) -> Order | None:
        found = self._om.open.get(client_order_id) or self._om.recently_closed(client_order_id)
        return None if found is None else msgspec.structs.replace(found)

    # -- orders ----------------------------------------------------------------------------------
    def buy(self, symbol: str, quantity: Number, *, limit: Number | None = None,
            stop: Number | None = None, time_in_force: TimeInForce = TimeInForce.GTC,
            tag: str = "") -> str | None:
        return self._order(symbol, Side.BUY, quantity, limit, stop, time_in_force, tag)

    def sell(self, symbol: str, quantity: Number, *, limit: Number | None = None,
             stop: Number | None = None, time_in_force: TimeInForce = TimeInForce.GTC,
             tag: str = "") -> str | None:
        return self._order(symbol, Side.SELL, quantity, limit, stop, time_in_force, tag)

    def trailing_stop(self, symbol: str, side: Side, quantity: Number, *,
                      trail: Number | None = None,
                      trail_percent: Number | None = None) -> str | None:
        if (trail is None) == (trail_percent is None):
            raise InvalidParams("strategy", "trail", "give trail or trail_percent (one)")
        percent = trail_percent is not None
        amount = _exact(trail_percent if percent else trail, "trail")  # type: ignore[arg-type]
        if amount <= 0 or (percent and amount >= _HUNDRED):
            raise InvalidParams("strategy", "trail", f"out of range: {amount}")
        request = self._request(symbol, side, quantity, None, None, TimeInForce.GTC, "")
        reference = self._ledger.last_price(symbol)
        if request is None or reference is None:
            self._nothing(symbol, "no price yet" if reference is None else "")
            return None
        order = self._contingent.trailing_stop(request, TrailTag(amount, percent), reference)
        return order.client_order_id

    def bracket(self, symbol: str, side: Side, quantity: Number, *, take_profit: Number,
                stop_loss: Number, limit: Number | None = None) -> str | None:
        request = self._request(symbol, side, quantity, limit, None, TimeInForce.GTC, "")
        if request is None:
            return None
        exit_side = Side.SELL if side is Side.BUY else Side.BUY
        tp = self._price(symbol, _exact(take_profit, "take_profit"), exit_side, limit=True)
        sl = self._price(symbol, _exact(stop_loss, "stop_loss"), exit_side, limit=False)
        _above_below(exit_side, tp, sl, "take_profit", "stop_loss")
        order = self._contingent.bracket(request, tp, sl)
        return order.client_order_id

    def oco(self, symbol: str, side: Side, quantity: Number, *, limit: Number,
            stop: Number) -> tuple[str, str] | None:
        first = self._request(symbol, side, quantity, limit, None, TimeInForce.GTC, "")
        second = self._request(symbol, side, quantity, None, stop, TimeInForce.GTC, "")
        if first is None or second is None:
            return None
        assert first.limit_price is not None
        assert second.stop_price is not None
        _above_below(side, first.limit_price, second.stop_price, "limit", "stop")
        a, b = self._contingent.oco(first, second)
        return a.client_order_id, b.client_order_id

    def cancel(self, client_order_id: str) -> bool:
        return isinstance(self._om.cancel(client_order_id), Accepted)

    def modify(self, client_order_id: str, *, quantity: Number | None = None,
               limit: Number | None = None, stop: Number | None = None) -> bool:
        order = self._om.open.get(client_order_id)
        if order is None:
            return False
        sym, side = order.symbol, order.side
        change = ModifyOrder(
            client_order_id,
            quantity=None if quantity is None else self._instruments[sym].floor_quantity(
                _exact(quantity, "quantity")),
            limit_price=None if limit is None else self._price(sym, _exact(limit, "limit"),
                                                               side, limit=True),
            stop_price=None if stop is None else self._price(sym, _exact(stop, "stop"), side,
                                                             limit=False))
        answer = self._om.modify(change)
        if not isinstance(answer, Accepted):
            log.info("%s: modify of %s refused: %s", self._name, client_order_id,
                     getattr(answer, "reason", answer))
            return False
        return True

    def order_target(self, symbol: str, quantity: Number) -> str | None:
        target = self._instruments[symbol].floor_quantity(abs(_exact(quantity, "quantity")))
        if _exact(quantity, "quantity") < 0:
            target = -target
        delta = target - self._ledger.position(symbol)
        if delta == 0:
            return None
        side = Side.BUY if delta > 0 else Side.SELL
        return self._order(symbol, side, abs(delta), None, None, TimeInForce.GTC, "target")

    def order_target_percent(self, symbol: str, percent: Number) -> str | None:
        pct = _exact(percent, "percent")
        price = self._ledger.last_price(symbol)
        if pct == 0:
            return self.order_target(symbol, ZERO)
        if price is None or price <= 0:
            self._unsized(symbol, "no price yet")
            return None
        size = self._instruments[symbol].floor_quantity(
            abs(self._ledger.equity() * pct / _HUNDRED) / price)
        if size <= 0:
            lot = self._instruments[symbol].lot_size
            self._unsized(symbol, f"{pct}% of equity at {price} is less than one lot ({lot})")
            return None
        return self.order_target(symbol, size if pct > 0 else -size)

    # -- time ------------------------------------------------------------------------------------
    def set_timer(self, name: str, *, at_ns: int | None = None,
                  every_ns: int | None = None) -> None:
        if (at_ns is None) == (every_ns is None):
            raise InvalidParams("strategy", "set_timer", "give at_ns or every_ns (one)")
        if every_ns is not None and every_ns <= 0:
            raise InvalidParams("strategy", "every_ns", f"not a positive period: {every_ns}")
        self._set_timer(self._slot, name, at_ns, every_ns)

    def cancel_timer(self, name: str) -> None:
        self._cancel_timer(self._slot, name)

    # -- the conversions -------------------------------------------------------------------------
    def _order(self, symbol: str, side: Side, quantity: Number, limit: Number | None,
               stop: Number | None, tif: TimeInForce, tag: str) -> str | None:
        request = self._request(symbol, side, quantity, limit, stop, tif, tag)
        if request is None:
            return None
        return self._om.request(request, strategy=True).client_order_id

    def _request(self, symbol: str, side: Side, quantity: Number, limit: Number | None,
                 stop: Number | None, tif: TimeInForce, tag: str) -> OrderRequest | None:
        if self.warming:
            return None  # history: a decision from the past is no order
        if symbol not in self._symbols:
            raise InvalidParams("strategy", "symbol",
                                f"{symbol!r} is not one of this strategy's symbols "
                                f"({', '.join(self._symbols)})")
        qty = self._instruments[symbol].floor_quantity(_exact(quantity, "quantity"))
        if qty <= 0:
            self._nothing(symbol, f"quantity {quantity} is less than one lot")
            return None
        limit_price = None if limit is None else self._price(symbol, _exact(limit, "limit"),
                                                             side, limit=True)
        stop_price = None if stop is None else self._price(symbol, _exact(stop, "stop"), side,
                                                           limit=False)
        if limit_price is None:
            kind = OrderType.MARKET if stop_price is None else OrderType.STOP
        else:
            kind = OrderType.LIMIT if stop_price is None else OrderType.STOP_LIMIT
        return OrderRequest(symbol, side, qty, kind, tif, limit_price, stop_price, tag[:64])

    def _price(self, symbol: str, price: Decimal, side: Side, *, limit: bool) -> Decimal:
        """On the tick grid, never worse for the trader: a limit rounds away from the price it
        would pay (a buy down, a sell up); a stop rounds towards triggering later (a buy up,
        a sell down)."""
        buy = side is Side.BUY
        rounding = (ROUND_FLOOR if buy else ROUND_CEILING) if limit else \
            (ROUND_CEILING if buy else ROUND_FLOOR)
        return self._instruments[symbol].round_price(price, rounding)

    def _nothing(self, symbol: str, why: str) -> None:
        if why:
            log.info("%s: no order for %s: %s", self._name, symbol, why)

    def _unsized(self, symbol: str, why: str) -> None:
        self.unsized += 1
        if self.unsized == 1 or self.unsized % 1000 == 0:
            log.warning("%s: target for %s cannot be sized (%s); %d so far", self._name,
                        symbol, why, self.unsized)
