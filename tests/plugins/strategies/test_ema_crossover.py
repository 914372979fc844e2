"""Strategy ``ema_crossover`` through the real engine against pandas' exponential averages
(SYS-001: bars in, signals, sized orders and fills out; SYS-005: its params validated).

The reference: each average seeded with the mean of its first n closes, then pandas'
``ewm(span=n, adjust=False)``; a cross at t is ``diff[t-1] < 0 < diff[t]`` (LONG) or
``diff[t-1] > 0 > diff[t]`` (FLAT, SHORT with ``long_only=false``); the fixed ``quantity``
moves the position to +q, 0 or -q; the fill is at bar t's close (``fill_at=close``) or bar
t+1's open (``next_open``).
"""

from decimal import Decimal

import numpy as np
import pandas as pd
import pytest

from lts.domain.market import Bar
from lts.errors import InvalidParams
from lts.plugins.strategy.ema_crossover import EmaCrossover

from ._support import LONG_ONLY, LOOSE, Row, cents, make_bars, replay, replay_after_history, rows

pytestmark = pytest.mark.anyio

FAST, SLOW = 5, 13
QTY = Decimal(7)


def closes_with_crosses(n: int = 240, seed: int = 11) -> list[float]:
    """A seeded walk around a slow wave: a dozen crosses, none of them a near tie."""
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    path = 100 + 8 * np.sin(2 * np.pi * t / 60) + np.cumsum(rng.normal(0, 0.4, n))
    return [round(float(c), 2) for c in path]


def ema(closes: list[float], n: int) -> pd.Series:
    series = pd.Series(closes, dtype=float)
    seeded = series.copy()
    seeded[: n - 1] = np.nan
    seeded[n - 1] = series[:n].mean()
    return seeded.ewm(span=n, adjust=False).mean()  # the leading NaNs are skipped


def reference_crosses(closes: list[float], fast: int, slow: int) -> list[tuple[int, int]]:
    """(bar, +1 cross above / -1 cross below)."""
    diff = (ema(closes, fast) - ema(closes, slow)).to_numpy()
    defined = ~np.isnan(diff)
    # no tie anywhere the rule looks: the float paths of talipp and pandas cannot disagree
    assert np.all(np.abs(diff[defined]) > 1e-6)
    out = []
    for t in range(1, len(closes)):
        if not (defined[t - 1] and defined[t]):
            continue
        if diff[t - 1] < 0 < diff[t]:
            out.append((t, 1))
        elif diff[t - 1] > 0 > diff[t]:
            out.append((t, -1))
    return out


def first_decidable(closes: list[float], slow: int) -> int:
    diff = (ema(closes, FAST) - ema(closes, slow)).to_numpy()
    return next(t for t in range(1, len(diff)) if not np.isnan(diff[t - 1]))


def reference_fills(bars: list[Bar], crosses: list[tuple[int, int]], fill_at: str,
                    long_only: bool) -> list[Row]:
    position = Decimal(0)
    out: list[Row] = []
    for t, direction in crosses:
        target = QTY if direction > 0 else (Decimal(0) if long_only else -QTY)
        delta = target - position
        at = t if fill_at == "close" else t + 1
        if delta == 0 or at >= len(bars):
            continue
        price = bars[t].close if fill_at == "close" else bars[at].open
        out.append((at, "buy" if delta > 0 else "sell", abs(delta), cents(price)))
        position = target
    return out


@pytest.mark.parametrize("fill_at", ["close", "next_open"])
@pytest.mark.parametrize("long_only", [True, False])
async def test_fills_at_the_reference_crosses(fill_at: str, long_only: bool) -> None:
    closes = closes_with_crosses()
    bars = make_bars(closes)
    crosses = reference_crosses(closes, FAST, SLOW)
    assert len(crosses) >= 8
    assert {d for _, d in crosses} == {1, -1}
    result = await replay(bars, "ema_crossover",
                          {"fast": FAST, "slow": SLOW, "quantity": str(QTY),
                           "long_only": long_only},
                          fill_at=fill_at, risk=LONG_ONLY if long_only else LOOSE)
    expected = reference_fills(bars, crosses, fill_at, long_only)
    assert rows(result.fills) == expected
    if not long_only:  # reversals: twice the size through zero
        assert any(q == 2 * QTY for _, _, q, _ in expected)


async def test_warm_up_then_live_decides_as_one_run() -> None:
    """``warmup_bars`` is the bar of the first possible decision: fed exactly that much history
    and then the rest live, the strategy trades what one unbroken run trades. The data crosses
    at that very bar, so a warm-up one bar longer would swallow the first trade."""
    down = [round(100 - 0.1 * i, 2) for i in range(SLOW)]
    closes = [*down, 115.0, *closes_with_crosses(80)]
    warmup = EmaCrossover(fast=FAST, slow=SLOW).warmup_bars()
    assert warmup == first_decidable(closes, SLOW) == SLOW
    assert reference_crosses(closes, FAST, SLOW)[0] == (warmup, 1)
    bars = make_bars(closes)
    params = {"fast": FAST, "slow": SLOW, "quantity": str(QTY)}
    whole = await replay(bars, "ema_crossover", params, risk=LONG_ONLY)
    resumed = await replay_after_history({"X": bars}, warmup, "ema_crossover", params,
                                         risk=LONG_ONLY)
    assert rows(whole.fills)[0][:2] == (warmup, "buy")
    assert rows(resumed) == rows(whole.fills)


def test_params_refused_naming_the_field() -> None:
    with pytest.raises(InvalidParams) as unknown:
        EmaCrossover(fast=5, slow=13, slwo=20)
    assert (unknown.value.plugin, unknown.value.field) == ("ema_crossover", "slwo")
    with pytest.raises(InvalidParams) as crossed:
        EmaCrossover(fast=13, slow=5)
    assert crossed.value.field == "slow"
    with pytest.raises(InvalidParams) as bad:
        EmaCrossover(fast=0)
    assert bad.value.field == "fast"
