"""Strategy ``rsi_reversion`` through the real engine against a pandas RSI (SYS-001, SYS-005).

The reference: Wilder's RSI (average gain and loss seeded with the mean of the first ``period``
changes, then smoothed by ``1/period``, here pandas' ``ewm(alpha=1/period, adjust=False)``);
levels crossed below at t when ``r[t-1] >= level > r[t]``, above when ``r[t-1] <= level <
r[t]``; the target machine of the module's docstring; fills of the fixed ``quantity`` at bar
t's close or bar t+1's open.
"""

from decimal import Decimal

import numpy as np
import pandas as pd
import pytest

from lts.domain.market import Bar
from lts.errors import InvalidParams
from lts.plugins.strategy.rsi_reversion import RsiReversion

from ._support import LONG_ONLY, LOOSE, Row, cents, make_bars, replay, replay_after_history, rows

pytestmark = pytest.mark.anyio

PERIOD, LOWER, EXIT, UPPER = 6, 30.0, 50.0, 70.0
QTY = Decimal(4)


def wave(n: int = 300, seed: int = 5) -> list[float]:
    """A seeded noisy wave that reaches oversold and overbought again and again."""
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    path = 100 + 6 * np.sin(2 * np.pi * t / 23) + rng.normal(0, 0.8, n)
    return [round(float(c), 2) for c in path]


def wilder(series: pd.Series, period: int) -> pd.Series:
    seeded = series.copy()
    seeded[: period] = np.nan
    seeded[period] = series[1: period + 1].mean()
    return seeded.ewm(alpha=1 / period, adjust=False).mean()


def rsi(closes: list[float], period: int) -> np.ndarray:
    change = pd.Series(closes, dtype=float).diff()
    gain = wilder(change.clip(lower=0), period).to_numpy()
    loss = wilder((-change).clip(lower=0), period).to_numpy()
    with np.errstate(divide="ignore", invalid="ignore"):
        out = 100 - 100 / (1 + gain / loss)
    out[(loss == 0) & (gain > 0)] = 100.0
    out[(loss == 0) & (gain == 0)] = 50.0
    return out


def reference_targets(closes: list[float], long_only: bool) -> list[tuple[int, int]]:
    """(bar, new target: +1 long, 0 flat, -1 short)."""
    r = rsi(closes, PERIOD)
    defined = ~np.isnan(r)
    for level in (LOWER, EXIT, UPPER):  # no tie the two float paths could read differently
        assert np.all(np.abs(r[defined] - level) > 1e-6)
    target, out = 0, []
    for t in range(1, len(closes)):
        if not (defined[t - 1] and defined[t]):
            continue
        prev, now = r[t - 1], r[t]
        new = target
        if (target == 1 and prev <= EXIT < now) or (target == -1 and prev >= EXIT > now):
            new = 0
        if prev >= LOWER > now:
            new = 1
        elif not long_only and prev <= UPPER < now:
            new = -1
        if new != target:
            out.append((t, new))
            target = new
    return out


def reference_fills(bars: list[Bar], targets: list[tuple[int, int]], fill_at: str) -> list[Row]:
    position, out = Decimal(0), []
    for t, target in targets:
        at = t if fill_at == "close" else t + 1
        delta = target * QTY - position
        if delta == 0 or at >= len(bars):
            continue
        price = bars[t].close if fill_at == "close" else bars[at].open
        out.append((at, "buy" if delta > 0 else "sell", abs(delta), cents(price)))
        position += delta
    return out


def params(long_only: bool) -> dict[str, object]:
    return {"period": PERIOD, "lower": LOWER, "exit": EXIT, "upper": UPPER,
            "quantity": str(QTY), "long_only": long_only}


@pytest.mark.parametrize("fill_at", ["close", "next_open"])
@pytest.mark.parametrize("long_only", [True, False])
async def test_fills_where_the_reference_rsi_crosses(fill_at: str, long_only: bool) -> None:
    closes = wave()
    bars = make_bars(closes)
    targets = reference_targets(closes, long_only)
    assert {1, 0} <= {x for _, x in targets}
    assert len(targets) >= 10
    if not long_only:
        assert -1 in {x for _, x in targets}
    result = await replay(bars, "rsi_reversion", params(long_only), fill_at=fill_at,
                          risk=LONG_ONLY if long_only else LOOSE)
    assert rows(result.fills) == reference_fills(bars, targets, fill_at)


async def test_warm_up_then_live_decides_as_one_run() -> None:
    """The first possible decision is bar ``period + 1``; the data gives one right there (a
    rise, then a fall through 30), so history of ``warmup_bars`` and then live bars trade what
    one run trades, and a bar more of history would not."""
    rise = [100 + 0.5 * i for i in range(PERIOD + 1)]
    closes = [*rise, rise[-1] - 10, *wave(120)]
    warmup = RsiReversion(**params(True)).warmup_bars()
    assert warmup == PERIOD + 1
    assert reference_targets(closes, True)[0] == (warmup, 1)
    bars = make_bars(closes)
    whole = await replay(bars, "rsi_reversion", params(True), risk=LONG_ONLY)
    resumed = await replay_after_history({"X": bars}, warmup, "rsi_reversion", params(True),
                                         risk=LONG_ONLY)
    assert rows(whole.fills)[0][:2] == (warmup, "buy")
    assert rows(resumed) == rows(whole.fills)


def test_a_market_that_does_not_move_is_not_overbought() -> None:
    """Flat closes read RSI 50 (talipp alone says 100): no short on a dead market."""
    strategy = RsiReversion(period=3, long_only=False)
    signals = [strategy.on_bar(b) for b in make_bars([100.0] * 10)]
    assert signals == [None] * 10
    assert strategy.last_rsi == 50.0


def test_params_refused_naming_the_field() -> None:
    with pytest.raises(InvalidParams) as unknown:
        RsiReversion(period=6, oversold=20)
    assert (unknown.value.plugin, unknown.value.field) == ("rsi_reversion", "oversold")
    with pytest.raises(InvalidParams) as crossed:
        RsiReversion(lower=30, exit=25)
    assert crossed.value.field == "exit"
    with pytest.raises(InvalidParams) as bad:
        RsiReversion(upper=100)
    assert bad.value.field == "upper"
