"""Strategy ``bollinger_breakout``: a close above the upper Bollinger band buys, with a bracket.

A trading strategy (it needs an order type a signal cannot say: a bracket). At the close of bar
t, when the strategy holds no position in the symbol and has no open order in it, and the close
is above the upper band, it buys through :meth:`~lts.plugins.strategy.StrategyContext.bracket`:
a market entry whose fills are protected by a take-profit limit at
``close + tp_atr * ATR[t]`` and a stop-loss stop at ``close - sl_atr * ATR[t]`` (on the tick
grid, never to the trader's disadvantage), one cancelling the other; the engine places and ties
the exits. The next entry waits until both exits are gone and the position is flat.

Size: ``quantity``, or ``percent`` of equity at the close (10 % when neither is given), floored
to the lot size by the context.

Indicators: talipp's ``BB`` (:class:`~lts.plugins.strategy.indicators.Bands`: mean and
population standard deviation of the last ``period`` closes, bar t's included, plus ``k``
deviations) and ``ATR`` (:class:`~lts.plugins.strategy.indicators.Atr`, Wilder's average true
range over ``atr_period``): the ATR measures how far the price travels per bar, so it sets
exits that scale with the market's own noise.

Robust comparison: on a market that does not move, the band is the mean to the last bits and the
close can sit a rounding error above it. A breakout needs a band of some width (the deviation
above ``1e-9`` of the mean) and the close above it by more than ``1e-9`` of the close.

Warm-up: the band exists from bar ``period`` and the ATR from bar ``atr_period`` (1-based), so
the first decision is on bar ``max(period, atr_period)``:
:meth:`BollingerBreakout.warmup_bars` is ``max(period, atr_period) - 1``.
"""

from decimal import Decimal

from pydantic import Field, ValidationInfo, field_validator

from lts.domain.market import Bar
from lts.domain.orders import Side
from lts.plugins.base import PluginParams
from lts.plugins.strategy.base import TradingStrategy
from lts.plugins.strategy.indicators import Atr, Bands

__all__ = ["BollingerBreakout", "BollingerParams"]

#: Relative margin under which a close is not above the band (float rounding).
TIE = 1e-9
_DEFAULT_PERCENT = Decimal(10)


class BollingerParams(PluginParams):
    period: int = Field(20, ge=2, description="closes in the band's mean and deviation")
    k: float = Field(2.0, gt=0, description="band half-width in standard deviations")
    atr_period: int = Field(14, ge=1, description="bars in the average true range")
    tp_atr: float = Field(2.0, gt=0, description="take-profit this many ATRs above the close")
    sl_atr: float = Field(1.0, gt=0, description="stop-loss this many ATRs below the close")
    quantity: Decimal | None = Field(None, gt=0, description="fixed size per entry")
    percent: Decimal | None = Field(None, gt=0, le=100,
                                    description="size per entry, % of equity (default 10)")

    @field_validator("percent")
    @classmethod
    def _one_size(cls, percent: Decimal | None, info: ValidationInfo) -> Decimal | None:
        if percent is not None and info.data.get("quantity") is not None:
            raise ValueError("give quantity or percent, not both")
        return percent


class BollingerBreakout(TradingStrategy):
    Params = BollingerParams
    plugin_name = "bollinger_breakout"
    plugin_debug_vars = ["bars_seen", "entries", "last_band", "last_atr"]

    def __init__(self, **params: object) -> None:
        super().__init__(**params)
        self.bars_seen = 0
        self.entries = 0
        self.params_changed()

    def params_changed(self) -> None:
        """(Re)start from the params: new indicators warm up again."""
        p: BollingerParams = self.params
        self._bands = Bands(p.period, p.k)
        self._atr = Atr(p.atr_period)
        self.last_band: tuple[float, float, float] | None = None
        self.last_atr: float | None = None

    def warmup_bars(self) -> int:
        p: BollingerParams = self.params
        return max(p.period, p.atr_period) - 1

    def on_bar(self, bar: Bar) -> None:
        self.bars_seen += 1
        band = self.last_band = self._bands.add(bar.close)
        atr = self.last_atr = self._atr.add(bar.high, bar.low, bar.close)
        if band is None or atr is None:
            return
        _, middle, upper = band
        close = bar.close
        if upper - middle <= TIE * abs(middle) or close - upper <= TIE * abs(close):
            return  # no band, or not above it
        ctx, symbol = self.ctx, bar.symbol
        if ctx.position(symbol) != 0 or ctx.open_orders(symbol):
            return  # one trade at a time
        p: BollingerParams = self.params
        quantity = p.quantity
        if quantity is None:
            price = ctx.last_price(symbol)
            if price is None or price <= 0:
                return
            quantity = ctx.equity() * (p.percent or _DEFAULT_PERCENT) / 100 / price
        entry = ctx.bracket(symbol, Side.BUY, quantity,
                            take_profit=close + p.tp_atr * atr,
                            stop_loss=close - p.sl_atr * atr)
        if entry is not None:
            self.entries += 1
