"""Pre-trade risk checks (ARCHITECTURE.md §6): approve an order request, or deny it with a reason.

Where it sits: portfolio plugin (or a person, through the API) --OrderRequest--> **RiskCheck** -->
order manager --Order(PENDING_SUBMIT)--> journal --> broker. It runs inside the portfolio's
decision path as a plain call. It never raises: it returns a :class:`Reason`, and the order
manager turns a denial into an order in state DENIED and an ``order.denied`` event.

It reads the portfolio through :class:`PortfolioView` (the ledger), the symbol's
:class:`Instrument`, the number of open orders and the time. The checks, cheapest and most
fundamental first:

1. trading state: HALTED denies everything; REDUCING lets only reducing orders through;
2. values: a positive, finite, storable quantity; the prices the order type takes (and no
   others), positive, finite and storable;
3. instrument: lot size, minimum quantity, tick size; price band around the last price;
   minimum notional;
4. max open orders, max order rate;
5. a reducing order is approved here: no exposure limit nor buying power refuses it;
6. buying power (cash minus what open buys commit); no short sale unless allowed;
7. max order notional, max position;
8. leverage (where shorts are allowed) and max gross exposure, from one gross figure;
9. max daily loss.

Definitions (one each, used by every check). An order *reduces* when it shrinks the position
whatever the open orders do, and never flips it: a sell of ``q`` reduces when
``position - open sells >= q``, a buy when ``-(position + open buys) >= q``. A sell that does not
reduce may end short: it is a short sale. An order is valued at
:func:`~lts.plugins.portfolio.valuation_price` (its limit price; a stop order at the higher of
its stop and the last price; a market order at the last price). Position and gross exposure are
worst cases over the open orders (:meth:`PortfolioView.gross_exposure`).
"""

from collections import deque
from decimal import Context, Decimal, localcontext

from lts.domain.commands import Reason, TradingState
from lts.domain.instruments import Instrument, storable
from lts.domain.orders import OrderRequest, OrderType, Side
from lts.plugins.portfolio import PortfolioView, valuation_price
from lts.settings import RiskLimits

__all__ = ["RiskCheck", "RiskLimits"]

_SECOND_NS = 1_000_000_000
_DAY_NS = 86_400 * _SECOND_NS

#: Storable values have at most 38 digits, so products and grid remainders of them are exact at
#: 80 digits; no trap is set, so no value an order carries can make a check raise.
_EXACT = Context(prec=80, traps=[])

_TAKES_LIMIT = frozenset({OrderType.LIMIT, OrderType.STOP_LIMIT})
_TAKES_STOP = frozenset({OrderType.STOP, OrderType.STOP_LIMIT})


class RiskCheck:
    """The pre-trade checks of one portfolio; ``state`` is its kill switch. Owned by the
    portfolio's runner, like its ledger (architecture §5)."""

    def __init__(self, limits: RiskLimits, state: TradingState = TradingState.ACTIVE) -> None:
        self.limits = limits
        self.state = state
        self._recent: deque[int] = deque()  # times of the orders approved in the last second
        self._day = -1
        self._day_start_equity = Decimal(0)
        self.denials = 0

    def observe_equity(self, now: int, equity: Decimal) -> None:
        """Take the day's starting equity (the daily-loss baseline) at the first look of each
        UTC day; the live runner looks every second, a backtest at its first order check."""
        day = now // _DAY_NS
        if day != self._day:
            self._day, self._day_start_equity = day, equity

    def check(self, request: OrderRequest, view: PortfolioView, instrument: Instrument,
              open_orders: int, now: int) -> Reason | None:
        """``None`` approves ``request``; otherwise the reason it is denied. Never raises."""
        with localcontext(_EXACT):
            reason = self._check(request, view, instrument, open_orders, now)
        if reason is None:
            self._recent.append(now)
        else:
            self.denials += 1
        return reason

    def _check(self, request: OrderRequest, view: PortfolioView, instrument: Instrument,
               open_orders: int, now: int) -> Reason | None:
        if self.state is TradingState.HALTED:
            return Reason.TRADING_HALTED
        if not _valid_quantity(request.quantity):
            return Reason.INVALID_QUANTITY
        if not _valid_prices(request):
            return Reason.INVALID_PRICE
        position = view.position(request.symbol)
        buys, sells = view.open_quantities(request.symbol)
        reduces = _reduces(request, position, buys, sells)
        if self.state is TradingState.REDUCING and not reduces:
            return Reason.REDUCING_ONLY
        last = view.last_price(request.symbol)
        price = valuation_price(request, last)
        reason = (_nonconforming(request, instrument)
                  or self._outside_band(request, last)
                  or _below_min_notional(request, instrument, price)
                  or self._throttled(open_orders, now))
        if reason is not None:
            return reason
        if reduces:
            return None  # reducing risk is never refused by buying power or exposure limits
        if price is None:
            return Reason.NO_PRICE
        return (self._unfunded(request, view, price, position, sells)
                or self._over_limits(request, price, position, buys, sells)
                or self._over_exposed(request, view)
                or self._daily_loss(view, now))

    # -- instrument and flow --------------------------------------------------------------------
    def _outside_band(self, request: OrderRequest, last: Decimal | None) -> Reason | None:
        band = self.limits.price_band
        if band is None or last is None:
            return None
        reach = last * band
        for price in (request.limit_price, request.stop_price):
            if price is not None and abs(price - last) > reach:
                return Reason.PRICE_BAND
        return None

    def _throttled(self, open_orders: int, now: int) -> Reason | None:
        lim = self.limits
        if lim.max_open_orders is not None and open_orders >= lim.max_open_orders:
            return Reason.MAX_OPEN_ORDERS
        if lim.max_orders_per_second is not None:
            recent = self._recent
            while recent and recent[0] <= now - _SECOND_NS:
                recent.popleft()
            if len(recent) >= lim.max_orders_per_second:
                return Reason.MAX_ORDER_RATE
        return None

    # -- money and exposure (orders that do not reduce) -----------------------------------------
    def _unfunded(self, request: OrderRequest, view: PortfolioView, price: Decimal,
                  position: Decimal, sells: Decimal) -> Reason | None:
        """Buying power: a buy is paid from cash no open buy has claimed; a sale beyond the
        long position is a short sale."""
        lim = self.limits
        if request.side is Side.BUY:
            if lim.buying_power and \
                    price * request.quantity > view.cash - view.committed_cash():
                return Reason.BUYING_POWER
        elif position - sells - request.quantity < 0 and not lim.allow_short:
            return Reason.SHORT_NOT_ALLOWED
        return None

    def _over_limits(self, request: OrderRequest, price: Decimal, position: Decimal,
                     buys: Decimal, sells: Decimal) -> Reason | None:
        """Max order notional; max position: the larger absolute position of "every open buy
        fills" and "every open sell fills", this order counted as one more open order (the
        worst case the gross exposure takes too)."""
        lim = self.limits
        if lim.max_order_notional is not None and \
                price * request.quantity > lim.max_order_notional:
            return Reason.MAX_ORDER_NOTIONAL
        if lim.max_position is not None:
            if request.side is Side.BUY:
                buys += request.quantity
            else:
                sells += request.quantity
            if max(abs(position + buys), abs(position - sells)) > lim.max_position:
                return Reason.MAX_POSITION
        return None

    def _over_exposed(self, request: OrderRequest, view: PortfolioView) -> Reason | None:
        """Gross exposure with the order counted as one more open order: at most
        ``max_leverage`` times equity where shorts are allowed, at most ``max_gross_exposure``."""
        lim = self.limits
        leverage = lim.max_leverage if lim.allow_short else None
        if leverage is None and lim.max_gross_exposure is None:
            return None
        gross = view.gross_exposure(with_order=request)
        if leverage is not None and gross > leverage * view.equity():
            return Reason.MAX_LEVERAGE
        if lim.max_gross_exposure is not None and gross > lim.max_gross_exposure:
            return Reason.MAX_GROSS_EXPOSURE
        return None

    def _daily_loss(self, view: PortfolioView, now: int) -> Reason | None:
        if self.limits.max_daily_loss is None:
            return None
        equity = view.equity()
        self.observe_equity(now, equity)
        if self._day_start_equity - equity > self.limits.max_daily_loss:
            return Reason.MAX_DAILY_LOSS
        return None


def _valid_quantity(quantity: Decimal) -> bool:
    return quantity.is_finite() and quantity > 0 and storable(quantity)


def _valid_prices(request: OrderRequest) -> bool:
    """The prices the order type takes are there and valid; a price it does not take is absent
    (it would be journaled with the order, and a venue refuses it)."""
    return (_valid_price(request.limit_price, request.order_type in _TAKES_LIMIT)
            and _valid_price(request.stop_price, request.order_type in _TAKES_STOP))


def _valid_price(price: Decimal | None, taken: bool) -> bool:
    if price is None:
        return not taken
    return taken and price.is_finite() and price > 0 and storable(price)


def _reduces(request: OrderRequest, position: Decimal, buys: Decimal, sells: Decimal) -> bool:
    """Shrinks the position whatever the open orders do, and never flips it."""
    if request.side is Side.SELL:
        return position - sells >= request.quantity
    return -(position + buys) >= request.quantity


def _nonconforming(request: OrderRequest, instrument: Instrument) -> Reason | None:
    """The venue's grid for the symbol: lot size, minimum quantity, tick size."""
    if not instrument.quantity_conforms(request.quantity):
        return Reason.LOT_SIZE
    if request.quantity < instrument.min_quantity:
        return Reason.MIN_QUANTITY
    for price in (request.limit_price, request.stop_price):
        if price is not None and not instrument.price_conforms(price):
            return Reason.TICK_SIZE
    return None


def _below_min_notional(request: OrderRequest, instrument: Instrument,
                        price: Decimal | None) -> Reason | None:
    """Quantity times the order's price (unknown for a market order never priced: unchecked)."""
    if price is not None and price * request.quantity < instrument.min_notional:
        return Reason.MIN_NOTIONAL
    return None
