"""Strategy ``bollinger_breakout`` through the real engine: entries where a pandas Bollinger band
is broken, and each bracket's one exit where the reference ATR puts it (SYS-001, SYS-006).

The reference: the band is the rolling mean of the last ``period`` closes plus ``k`` population
deviations; the ATR is Wilder's average of true ranges (the first bar's: high - low), seeded
with their mean. An entry at bar t needs ``close > upper``, no position and no exit still open
(an exit filled on bar j is heard before that bar's on_bar: a new entry may come on bar j). The
entry fills at bar t's close or bar t+1's open; the take-profit (a sell limit at ``close +
tp_atr * ATR``, rounded up to the tick) and the stop-loss (a sell stop at ``close - sl_atr *
ATR``, rounded down) work from the bar after the entry's fill: a limit fills at the open when
the open is through it, else at its price when the high reaches it; a stop at the open when the
open is through it, else at its price when the low reaches it; a bar through both takes the stop
(tested on its own below, as is an exit on the bar right after a fill at the close).
"""

from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal

import numpy as np
import pandas as pd
import pytest

from lts.domain.market import Bar
from lts.errors import InvalidParams
from lts.plugins.strategy.bollinger_breakout import BollingerBreakout
from lts.settings import RiskLimits

from ._support import (
    LONG_ONLY,
    TICK,
    Row,
    cents,
    make_bars,
    replay,
    replay_after_history,
    rows,
)

pytestmark = pytest.mark.anyio

PERIOD, K, ATR_N, TP, SL = 20, 2.0, 10, 2.0, 1.5
QTY = Decimal(5)
CASH = Decimal(100_000)


def breakouts(segments: int = 10, seed: int = 3) -> list[Bar]:
    """Quiet bars around 100, a jump to a breakout, one calm bar, then a run up (to the
    take-profit) or down (to the stop-loss), and back to 100."""
    rng = np.random.default_rng(seed)
    opens: list[float] = []
    closes: list[float] = []
    highs: list[float] = []
    lows: list[float] = []

    def add(close: float, wick: float) -> None:
        open_ = closes[-1] if closes else close
        close = round(close, 2)
        opens.append(open_)
        closes.append(close)
        highs.append(round(max(open_, close) + wick, 2))
        lows.append(round(min(open_, close) - wick, 2))

    for segment in range(segments):
        for _ in range(PERIOD + 5):
            add(100 + rng.normal(0, 0.3), round(abs(rng.normal(0, 0.15)), 2))
        add(104.0 + rng.uniform(0, 1), 0.2)  # the breakout
        add(closes[-1], 0.05)  # calm: inside both exits
        step = 0.9 if segment % 2 == 0 else -0.9
        for _ in range(8):
            add(closes[-1] + step + rng.normal(0, 0.1), 0.1)
        start = closes[-1]
        for i in range(1, 7):
            add(start + (100 - start) * i / 6, 0.1)
    return [Bar("X", b.ts_event, o, h, lo, b.close, b.volume)
            for b, o, h, lo in zip(make_bars(closes), opens, highs, lows, strict=True)]


def indicators(bars: list[Bar]) -> tuple[np.ndarray, np.ndarray]:
    frame = pd.DataFrame([(b.high, b.low, b.close) for b in bars],
                         columns=["high", "low", "close"])
    upper = (frame.close.rolling(PERIOD).mean()
             + K * frame.close.rolling(PERIOD).std(ddof=0)).to_numpy()
    prev = frame.close.shift()
    tr = pd.concat([frame.high - frame.low, (frame.high - prev).abs(),
                    (frame.low - prev).abs()], axis=1).max(axis=1)
    seeded = tr.copy()
    seeded[: ATR_N - 1] = np.nan
    seeded[ATR_N - 1] = tr[:ATR_N].mean()
    atr = seeded.ewm(alpha=1 / ATR_N, adjust=False).mean().to_numpy()
    return upper, atr


def on_tick(price: float, rounding: str) -> Decimal:
    return (Decimal(repr(float(price))) / TICK).to_integral_value(rounding=rounding) * TICK


def reference(bars: list[Bar], fill_at: str, percent: Decimal | None) -> list[Row]:
    upper, atr = indicators(bars)
    out: list[Row] = []
    cash, free_from, t = CASH, 0, 0
    while t < len(bars):
        close = bars[t].close
        if t < free_from or np.isnan(upper[t]) or np.isnan(atr[t]) or not close > upper[t]:
            t += 1
            continue
        assert close - upper[t] > 1e-6  # no tie the float paths could read differently
        qty = QTY if percent is None else \
            (cash * percent / 100 / Decimal(repr(close))).to_integral_value(ROUND_FLOOR)
        entry = t if fill_at == "close" else t + 1
        if entry >= len(bars):
            break
        price = cents(close if fill_at == "close" else bars[entry].open)
        out.append((entry, "buy", qty, price))
        tp = on_tick(close + TP * atr[t], ROUND_CEILING)
        sl = on_tick(close - SL * atr[t], ROUND_FLOOR)
        after = bars[t + 1]  # the bar after the signal: no exit there (tested on its own)
        assert sl < cents(after.low)
        assert cents(after.high) < tp
        for j in range(entry + 1, len(bars)):
            b = bars[j]
            hit_tp, hit_sl = cents(b.high) >= tp, cents(b.low) <= sl
            assert not (hit_tp and hit_sl)  # one bar through both: tested on its own
            if hit_tp or hit_sl:
                exit_price = (max(cents(b.open), tp) if hit_tp else min(cents(b.open), sl))
                out.append((j, "sell", qty, exit_price))
                cash += qty * (exit_price - price)
                free_from, t = j, j  # the exit's fill is heard before bar j's on_bar
                break
        else:
            break
    return out


@pytest.mark.parametrize("fill_at", ["close", "next_open"])
@pytest.mark.parametrize("percent", [None, Decimal(30)])
async def test_entries_and_one_exit_each_at_the_reference(fill_at: str,
                                                          percent: Decimal | None) -> None:
    bars = breakouts()
    expected = reference(bars, fill_at, percent)
    entries = [r for r in expected if r[1] == "buy"]
    exits = [r for r in expected if r[1] == "sell"]
    assert len(entries) == len(exits) >= 8
    won = [x[3] > e[3] for e, x in zip(entries, exits, strict=True)]
    assert True in won  # take-profits
    assert False in won  # and stop-losses
    params: dict[str, object] = {"period": PERIOD, "k": K, "atr_period": ATR_N,
                                 "tp_atr": TP, "sl_atr": SL}
    params.update({"quantity": str(QTY)} if percent is None else {"percent": str(percent)})
    result = await replay(bars, "bollinger_breakout", params, fill_at=fill_at,
                          risk=LONG_ONLY, cash=CASH)
    assert rows(result.fills) == expected
    assert result.summary.final_positions == {"X": Decimal(0)}
    assert result.summary.round_trips == len(entries)
    # the other exit of each pair was canceled: every order but the fills' ended unfilled
    assert result.summary.orders == 3 * len(entries)


async def test_warm_up_then_live_decides_as_one_run() -> None:
    """``warmup_bars`` = max(period, atr_period) - 1: the band and the ATR both exist on the
    first live bar; a breakout right there trades the same as in one run."""
    bars = breakouts(3)
    warmup = BollingerBreakout(period=PERIOD, atr_period=ATR_N).warmup_bars()
    assert warmup == PERIOD - 1
    upper, atr = indicators(bars)
    first = int(np.flatnonzero(~np.isnan(upper) & ~np.isnan(atr))[0])
    assert first == warmup
    # make the first decidable bar a breakout
    b = bars[warmup]
    bars[warmup] = Bar("X", b.ts_event, b.open, 107.2, b.low, 107.0, b.volume)
    bars[warmup + 1] = Bar("X", bars[warmup + 1].ts_event, 107.0, 107.05, 106.95, 107.0, 1e6)
    assert reference(bars, "close", None)[0][0] == warmup
    params = {"period": PERIOD, "k": K, "atr_period": ATR_N, "tp_atr": TP, "sl_atr": SL,
              "quantity": str(QTY)}
    whole = await replay(bars, "bollinger_breakout", params, risk=LONG_ONLY)
    resumed = await replay_after_history({"X": bars}, warmup, "bollinger_breakout", params,
                                         risk=LONG_ONLY)
    assert rows(whole.fills)[0][0] == warmup
    assert rows(resumed) == rows(whole.fills)


async def test_a_market_gone_flat_is_no_breakout() -> None:
    """A falling walk (no breakout), then 300 bars at its last close. talipp's band mean is a
    running sum, so on the flat bars it sits a rounding error below the close with a band of
    zero width: read as is, the close is 'above the band' on every one of them (seed 3: from
    bar 78 on). No entry."""
    rng = np.random.default_rng(3)
    walk = [round(float(x), 2) for x in 200 - np.cumsum(np.abs(rng.normal(0, 1, 60)))]
    bars = make_bars(walk + [walk[-1]] * 300, wick=0.5)
    params = {"period": PERIOD, "k": K, "atr_period": ATR_N, "quantity": "1"}
    result = await replay(bars, "bollinger_breakout", params, risk=LONG_ONLY)
    assert rows(result.fills) == []


def test_params_refused_naming_the_field() -> None:
    with pytest.raises(InvalidParams) as unknown:
        BollingerBreakout(period=20, stddev=2)
    assert (unknown.value.plugin, unknown.value.field) == ("bollinger_breakout", "stddev")
    with pytest.raises(InvalidParams) as both:
        BollingerBreakout(quantity=1, percent=10)
    assert both.value.field == "percent"
    with pytest.raises(InvalidParams) as bad:
        BollingerBreakout(k=0)
    assert bad.value.field == "k"


# -- two engine bugs found on the way, fixed (issue 11: the strategy API's engine side) -----------

def _one_breakout(after_entry: Bar | None = None, *, fill_at: str = "close") -> list[Bar]:
    """Ten flat bars, a breakout on bar 10 (entry at its close), then ``after_entry``."""
    closes = [100.0, 100.5] * 5
    bars = make_bars(closes, wick=0.25)
    bars.append(Bar("X", bars[-1].ts_event + bars[1].ts_event - bars[0].ts_event,
                    100.5, 110.25, 100.25, 110.0, 1e6))
    calm = 110.0
    for i in range(6):
        ts = bars[-1].ts_event + bars[1].ts_event - bars[0].ts_event
        if i == 0 and after_entry is not None:
            bars.append(Bar("X", ts, after_entry.open, after_entry.high, after_entry.low,
                            after_entry.close, 1e6))
        else:
            bars.append(Bar("X", ts, calm, calm + 0.1, calm - 0.1, calm, 1e6))
    return bars


_SMALL = {"period": 5, "k": 1.0, "atr_period": 3, "tp_atr": 2, "sl_atr": 2, "quantity": 10}


async def test_close_fill_exits_work_on_the_next_bar() -> None:
    """Entry filled at bar 10's close; bar 11 falls through the stop-loss (~101): the stop
    fills on bar 11 (the entry's fill at the close is taken in on bar 10, so its exits are
    placed there and work from the next bar; they were a bar late before)."""
    crash = Bar("X", 0, 110.0, 110.1, 90.0, 92.0, 1e6)
    bars = _one_breakout(crash)
    result = await replay(bars, "bollinger_breakout", _SMALL, fill_at="close", risk=LONG_ONLY)
    fills = rows(result.fills)
    assert [(d, s) for d, s, _, _ in fills[:2]] == [(10, "buy"), (11, "sell")]
    assert fills[1][3] < Decimal(110)  # the stop-loss's exit (a later breakout may follow)


@pytest.mark.parametrize("fill_at", ["close", "next_open"])
async def test_a_bar_through_both_exits_fills_one(fill_at: str) -> None:
    """A bar through both the take-profit and the stop-loss fills one exit, the stop (the
    pessimistic reading of a bar), and the position ends flat (both filled before, leaving a
    short the risk limits forbid)."""
    wide = Bar("X", 0, 110.0, 140.0, 80.0, 110.0, 1e6)
    bars = _one_breakout()
    bars[13] = Bar("X", bars[13].ts_event, wide.open, wide.high, wide.low, wide.close, 1e6)
    result = await replay(bars, "bollinger_breakout", _SMALL, fill_at=fill_at,
                          risk=RiskLimits(max_orders_per_second=None, max_open_orders=None))
    fills = rows(result.fills)
    assert [s for _, s, _, _ in fills] == ["buy", "sell"]
    assert result.summary.final_positions == {"X": Decimal(0)}
    assert fills[1][0] == 13  # on the wide bar
    assert Decimal(str(fills[1][3])) < Decimal(110)  # the stop's price, not the take-profit's
