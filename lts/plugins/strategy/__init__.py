"""Strategy plugins: market data in; signals, or orders through a context, out.

Where it sits: inside a portfolio's runner, on its decision path. Two kinds of strategy share the
one call the runner makes per bar (:meth:`Strategy.on_bar`):

- a **signal strategy** returns a :class:`~lts.domain.signals.Signal` (a target: long, flat,
  short) and the portfolio plugin sizes it (allocation); it never sees an order;
- a **trading strategy** (:class:`~lts.plugins.strategy.base.TradingStrategy`) returns nothing
  and acts through its :class:`StrategyContext`: market, limit, stop, stop-limit and trailing
  stop orders, brackets and OCO pairs, cancel and modify, positions, cash, open orders,
  instrument rules and timers; it hears about its orders, fills and timers through callbacks.

Either never sees a broker: what it asks goes through the same risk checks and order manager as
any order. The engine implements the context (:mod:`lts.engine.strategy_context`).
"""

from decimal import Decimal
from typing import Protocol

from lts.domain.instruments import Instrument
from lts.domain.market import Bar
from lts.domain.orders import Order, Side, TimeInForce
from lts.domain.signals import Signal

__all__ = ["Number", "Strategy", "StrategyContext"]

#: A price or quantity as a strategy may give it; the context converts it once, exactly.
Number = Decimal | int | float | str


class Strategy(Protocol):
    def on_bar(self, bar: Bar) -> Signal | None:
        """Called once per bar of this strategy's symbols, in time order; a signal strategy
        returns a signal or None, a trading strategy None (it acts through its context)."""
        ...


class StrategyContext(Protocol):
    """What a trading strategy may see and do. Read-only views are the portfolio's own figures
    (the same the risk check uses); every order method returns the client order id of the order
    it made (a denied order has one too: its ``on_order`` says DENIED and why), or None when it
    placed nothing: while the strategy warms up on history, or when a size comes to zero.

    Prices are converted once to the instrument's tick grid, never to the trader's disadvantage
    (a buy limit rounds down, a sell limit up; a buy stop up, a sell stop down); quantities are
    floored to the lot size.
    """

    @property
    def symbols(self) -> tuple[str, ...]:
        """The symbols this strategy trades (one, or several for a multi-symbol strategy)."""
        ...

    @property
    def warming_up(self) -> bool:
        """True while the strategy takes in history: order methods place nothing then."""
        ...

    def now_ns(self) -> int:
        """The engine's clock (the bar's time in a backtest), ns since the epoch."""
        ...

    # -- the portfolio ---------------------------------------------------------------------------
    @property
    def cash(self) -> Decimal: ...

    def equity(self) -> Decimal:
        """Cash plus every position at its last price."""
        ...

    def position(self, symbol: str) -> Decimal:
        """Signed quantity held (long positive)."""
        ...

    def last_price(self, symbol: str) -> Decimal | None: ...

    def instrument(self, symbol: str) -> Instrument:
        """Tick size, lot size, minimum quantity and notional of ``symbol``."""
        ...

    def open_orders(self, symbol: str | None = None) -> list[Order]:
        """Copies of the portfolio's open orders (of ``symbol``, or of this strategy's)."""
        ...

    def order(self, client_order_id: str) -> Order | None:
        """A copy of the order, while it is open or one of the recently closed."""
        ...

    # -- orders ----------------------------------------------------------------------------------
    def buy(self, symbol: str, quantity: Number, *, limit: Number | None = None,
            stop: Number | None = None, time_in_force: TimeInForce = TimeInForce.GTC,
            tag: str = "") -> str | None:
        """A buy: market; limit with ``limit``; stop with ``stop``; stop-limit with both."""
        ...

    def sell(self, symbol: str, quantity: Number, *, limit: Number | None = None,
             stop: Number | None = None, time_in_force: TimeInForce = TimeInForce.GTC,
             tag: str = "") -> str | None:
        """A sell (a short sale when more than the position: the risk limits decide)."""
        ...

    def trailing_stop(self, symbol: str, side: Side, quantity: Number, *,
                      trail: Number | None = None,
                      trail_percent: Number | None = None) -> str | None:
        """A stop that follows the price: a sell stop sits ``trail`` (or ``trail_percent`` %)
        below the highest price since it was placed and only moves up; a buy stop mirrors it.
        Emulated by the engine as a stop order it moves after each bar."""
        ...

    def bracket(self, symbol: str, side: Side, quantity: Number, *, take_profit: Number,
                stop_loss: Number, limit: Number | None = None) -> str | None:
        """An entry (market, or limit with ``limit``) whose fills are protected by an exit
        pair: a take-profit limit and a stop-loss stop, one cancelling the other. The exits
        are placed as the entry fills, for what it filled. Returns the entry's id."""
        ...

    def oco(self, symbol: str, side: Side, quantity: Number, *, limit: Number,
            stop: Number) -> tuple[str, str] | None:
        """A pair of orders on one side, one cancelling the other: a limit at ``limit`` and a
        stop at ``stop`` (a sell pair is a take-profit above and a stop-loss below). When one
        fills, the other is canceled (a partial fill shrinks it to what is left); when one is
        canceled, rejected or expires, so is the other. Returns (limit's id, stop's id)."""
        ...

    def cancel(self, client_order_id: str) -> bool:
        """Ask to cancel; False when the order is not open."""
        ...

    def modify(self, client_order_id: str, *, quantity: Number | None = None,
               limit: Number | None = None, stop: Number | None = None) -> bool:
        """Ask to change an open order; False when refused (the order's ``on_order`` does not
        change; the log says why)."""
        ...

    def order_target(self, symbol: str, quantity: Number) -> str | None:
        """A market order that moves the position to ``quantity`` (signed), if it is not
        there; open orders of the symbol are not counted."""
        ...

    def order_target_percent(self, symbol: str, percent: Number) -> str | None:
        """Like :meth:`order_target`, sized at ``percent`` of equity at the last price (signed:
        negative is short), floored to the lot size. A target that cannot be sized (no price,
        or less than one lot) is a counted, logged denial, never silence."""
        ...

    # -- time ------------------------------------------------------------------------------------
    def set_timer(self, name: str, *, at_ns: int | None = None,
                  every_ns: int | None = None) -> None:
        """Call ``on_timer(name, ts)`` at ``at_ns``, or every ``every_ns`` from now (on the
        engine's clock: bar time in a backtest). Setting a name again replaces it."""
        ...

    def cancel_timer(self, name: str) -> None: ...
