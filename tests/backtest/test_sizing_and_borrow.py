"""A backtest's costs and sizing that live outside the paper venue: the borrow cost of shorts,
charged daily from cash, and percent-of-equity targets that cannot be sized (counted, logged,
never silent). The real engine through run_replay."""

import logging
import math
from decimal import Decimal as D

import pytest

from lts.backtest.replay import ReplayOptions, run_replay
from lts.domain.market import Bar
from lts.domain.orders import Side
from lts.settings import RiskLimits

pytestmark = pytest.mark.anyio

DAY = 86_400 * 1_000_000_000
T0 = 1_700_006_400 * 1_000_000_000  # a UTC midnight


def bars(closes: list[float], step: int = DAY, symbol: str = "X") -> list[Bar]:
    return [Bar(symbol, T0 + i * step, c, c, c, c, 1_000.0) for i, c in enumerate(closes)]


def sell_then_hold() -> dict[str, object]:
    """buy_and_hold takes no side: the short comes from a fixed-quantity SELL through
    sma_crossover's long/short mode on a falling series (the first cross below)."""
    return {"fast": 2, "slow": 3, "long_only": False}


async def test_a_short_pays_its_borrow_cost_each_day_from_cash() -> None:
    """SYS-006 (P&L): 10 units short at 100 for 3 days at 365 bps a year costs
    10 * 100 * 0.0365 / 365 = 0.10 a day (the price held flat), charged at each new day."""
    closes = [100.0, 101.0, 102.0, 101.0, 100.0, 100.0, 100.0, 100.0]
    opts = ReplayOptions(symbol="X", strategy="sma_crossover", params=sell_then_hold(),
                         quantity=D(10), fill_at="close", borrow_bps=D(365),
                         risk=RiskLimits(allow_short=True, max_orders_per_second=None,
                                         max_open_orders=None))
    result = await run_replay(bars(closes), opts)
    sells = [f for f in result.fills if f.side is Side.SELL]
    assert len(sells) == 1
    assert sells[0].quantity == 10
    short_day = (sells[0].ts_event - T0) // DAY
    held_days = len(closes) - 1 - short_day  # charged at each later bar's new day
    charged = result.summary.borrow_costs
    assert charged == D("0.10") * held_days  # the price stayed at 100 the whole time
    assert result.summary.final_equity == D(100_000) + sum(
        (f.price * f.quantity * (1 if f.side is Side.SELL else -1) for f in result.fills),
        D(0)) - 10 * D(100) - charged
    # without a rate, nothing is charged and equity is higher by exactly that
    free = await run_replay(bars(closes), ReplayOptions(
        symbol="X", strategy="sma_crossover", params=sell_then_hold(), quantity=D(10),
        fill_at="close", risk=opts.risk))
    assert free.summary.borrow_costs == 0
    assert free.summary.final_equity - result.summary.final_equity == charged


async def test_a_target_that_buys_less_than_one_lot_is_counted_and_logged(
        caplog: pytest.LogCaptureFixture) -> None:
    """A price of 185,000 with 10% of 100,000 and lot 1: no order, one unsized signal per
    cross, and a log line that says why; with lot 0.001 it is sized."""
    closes = [185_000.0 + round(1_000 * math.sin(i / 3)) for i in range(60)]  # crosses
    caplog.set_level(logging.WARNING, "lts.sizing")
    opts = ReplayOptions(symbol="BTC", strategy="sma_crossover", params={"fast": 2, "slow": 4})
    unsized = await run_replay(bars(closes, symbol="BTC"), opts)
    assert unsized.summary.orders == 0
    assert unsized.summary.unsized >= 3
    assert any("buys less than one lot (1) at 18" in r.getMessage() for r in caplog.records)
    sized = await run_replay(bars(closes, symbol="BTC"), ReplayOptions(
        symbol="BTC", strategy="sma_crossover", params={"fast": 2, "slow": 4},
        lot_size=D("0.001")))
    assert sized.summary.unsized == 0
    assert sized.summary.orders > 0
    first = sized.fills[0]  # 10% of 100,000 at the signal bar's close, floored to the lot
    assert D("0.053") <= first.quantity <= D("0.054")  # 10,000 / 186,000 .. 184,000, floored
    assert first.quantity == first.quantity.quantize(D("0.001"))
