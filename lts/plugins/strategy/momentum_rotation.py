"""Strategy ``momentum_rotation``: hold the ``top`` symbols with the best recent return.

A trading strategy with ``multi_symbol = True``: one instance for every asset of the portfolio
that names it with the same params. Each symbol's bars arrive separately; a time at which every
symbol has a bar is an *aligned* bar, and the strategy acts at the last of them.

Rules: on aligned bars it keeps each symbol's last ``lookback + 1`` closes. The first rebalance
is on the first aligned bar with a ``lookback``-bar return for every symbol, then every
``rebalance`` aligned bars. A rebalance ranks the symbols by ``close[t] / close[t - lookback]``
(best first; equal returns by symbol name) and holds the first ``top``, each at
``percent / top`` % of equity, and nothing of the rest:

1. at the rebalance bar, what must shrink is sold: the symbols out of the top closed
   (:meth:`~lts.plugins.strategy.StrategyContext.order_target` 0), the ones in the top worth more
   than their share cut to it;
2. what must grow is bought with
   :meth:`~lts.plugins.strategy.StrategyContext.order_target_percent`, at once when nothing was
   sold, else on the first aligned bar at which none of those sells is open any more: the risk
   check pays a buy from cash, which a sale still on its way has not brought in yet (buying
   first would be denied, or would borrow).

Indicator: none from talipp (a ``lookback``-bar return is one division; talipp's ``ROC`` would
keep the same closes in a list of its own).

Warm-up: the first rebalance needs ``lookback + 1`` aligned closes, so it is on the aligned bar
``lookback + 1``: :meth:`MomentumRotation.warmup_bars` is ``lookback``. A rebalance due while the
strategy takes in history is done on the first live aligned bar instead.
"""

from collections import deque
from decimal import Decimal

from pydantic import Field

from lts.domain.market import Bar
from lts.domain.orders import Side
from lts.errors import InvalidParams
from lts.plugins.base import PluginParams
from lts.plugins.strategy.base import TradingStrategy

__all__ = ["MomentumRotation", "RotationParams"]


class RotationParams(PluginParams):
    lookback: int = Field(20, ge=1, description="aligned bars in the return that ranks")
    top: int = Field(1, ge=1, description="symbols held")
    rebalance: int = Field(20, ge=1, description="aligned bars between rebalances")
    percent: Decimal = Field(Decimal(95), gt=0, le=100,
                             description="% of equity invested, shared equally by the top")


class MomentumRotation(TradingStrategy):
    Params = RotationParams
    plugin_name = "momentum_rotation"
    multi_symbol = True
    plugin_debug_vars = ["aligned", "rebalances", "holding", "buys_pending"]

    def __init__(self, **params: object) -> None:
        super().__init__(**params)
        self.aligned = 0
        self.rebalances = 0
        self.holding: list[str] = []
        self.params_changed()

    def params_changed(self) -> None:
        p: RotationParams = self.params
        self._closes: dict[str, deque[float]] = {}  # per symbol, on aligned bars
        self._last: dict[str, tuple[int, float]] = {}  # symbol -> (time, close) of its last bar
        self._done_ts: int | None = None
        self._next = p.lookback + 1  # the aligned bar of the next rebalance (1-based)
        self._due = False  # a rebalance came due while warming up
        self._sells: set[str] = set()  # this rebalance's sells still open
        self.buys_pending = False
        if hasattr(self, "ctx"):
            self._closes = {s: deque(maxlen=p.lookback + 1) for s in self.ctx.symbols}

    def warmup_bars(self) -> int:
        p: RotationParams = self.params
        return p.lookback

    def on_start(self) -> None:
        p: RotationParams = self.params
        symbols = self.ctx.symbols
        if p.top > len(symbols):
            raise InvalidParams(self.plugin_name, "top",
                                f"{p.top} is more than the {len(symbols)} symbol(s) to rank")
        self.params_changed()
        self.holding = sorted(s for s in symbols if self.ctx.position(s) != 0)

    def on_bar(self, bar: Bar) -> None:
        ts = bar.ts_event
        last = self._last
        last[bar.symbol] = (ts, bar.close)
        if self._done_ts == ts or any(last.get(s, (None,))[0] != ts for s in self._closes):
            return
        self._done_ts = ts
        self.aligned += 1
        for symbol, closes in self._closes.items():
            closes.append(last[symbol][1])
        if self.aligned == self._next:
            self._next += self.params.rebalance
            self._due = True
        if self.ctx.warming_up:
            return
        if self._due:
            self._due = False
            self._rebalance()
        elif self.buys_pending:
            self._buy_when_sold()

    def _ranking(self) -> list[str]:
        def momentum(symbol: str) -> float:
            closes = self._closes[symbol]
            return closes[-1] / closes[0] if closes[0] > 0 else float("-inf")
        return sorted(self._closes, key=lambda s: (-momentum(s), s))

    def _rebalance(self) -> None:
        p: RotationParams = self.params
        ctx = self.ctx
        self.rebalances += 1
        self.holding = sorted(self._ranking()[:p.top])
        share = p.percent / p.top
        equity = ctx.equity()
        self._sells = set()
        for symbol in self._closes:
            held = ctx.position(symbol)
            price = ctx.last_price(symbol)
            if symbol not in self.holding:
                coid = ctx.order_target(symbol, 0)
            elif held > 0 and price is not None and held * price > equity * share / 100:
                coid = ctx.order_target_percent(symbol, share)
            else:
                continue
            if coid is not None:
                order = ctx.order(coid)
                if order is not None and order.is_open and order.side is Side.SELL:
                    self._sells.add(coid)
        self.buys_pending = True
        self._buy_when_sold()

    def _buy_when_sold(self) -> None:
        ctx = self.ctx
        self._sells = {c for c in self._sells
                       if (o := ctx.order(c)) is not None and o.is_open}
        if self._sells:
            return
        self.buys_pending = False
        share = self.params.percent / self.params.top
        equity = ctx.equity()
        for symbol in self.holding:
            price = ctx.last_price(symbol)
            if price is None or ctx.position(symbol) * price < equity * share / 100:
                ctx.order_target_percent(symbol, share)  # a buy (or nothing: under a lot)
