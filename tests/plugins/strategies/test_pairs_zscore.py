"""Strategy ``pairs_zscore`` through the real engine against pandas' rolling regression
(SYS-001; SYS-009: one strategy instance trading two assets of a portfolio).

The reference: on each bar (both symbols have one at every time) the rolling means, population
variances and covariance of ``a = log A`` and ``b = log B`` over ``lookback`` bars;
``beta = cov / var(b)`` (or the fixed param); the spread's deviation at t is
``(a - mean a) - beta (b - mean b)`` and its variance ``var a - 2 beta cov + beta² var b``;
``z`` their ratio. Targets: ``z > entry`` short the spread, ``z < -entry`` long, ``|z| < exit``
flat. Each leg moves to ``percent`` of equity at its close (floored to whole units), equity
being cash plus both legs at the decision bar's closes; fills at that bar's closes or the next
bar's opens.
"""

from decimal import ROUND_FLOOR, Decimal

import numpy as np
import pandas as pd
import pytest

from lts.domain.market import Bar
from lts.errors import InvalidParams
from lts.plugins.strategy.pairs_zscore import PairsZScore

from ._support import LOOSE, Row, cents, make_bars, replay, replay_after_history, rows

pytestmark = pytest.mark.anyio

LOOKBACK, ENTRY, EXIT, PCT = 30, 1.5, 0.3, Decimal(20)
CASH = Decimal(100_000)


def cointegrated(n: int = 400, seed: int = 21) -> dict[str, list[Bar]]:
    """B a seeded random walk; log A = 1.3 log B + a slow wave + noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    lb = np.log(50) + np.cumsum(rng.normal(0, 0.01, n))
    la = np.log(2) + 1.3 * lb + 0.04 * np.sin(2 * np.pi * t / 45) + rng.normal(0, 0.006, n)
    return {"A": make_bars([round(float(x), 2) for x in np.exp(la)], "A"),
            "B": make_bars([round(float(x), 2) for x in np.exp(lb)], "B")}


def zscores(bars: dict[str, list[Bar]], beta: float | None) -> np.ndarray:
    a = pd.Series([np.log(b.close) for b in bars["A"]])
    b = pd.Series([np.log(x.close) for x in bars["B"]])
    ra, rb = a.rolling(LOOKBACK), b.rolling(LOOKBACK)
    var_a, var_b = ra.var(ddof=0), rb.var(ddof=0)
    cov = ra.cov(b, ddof=0)
    slope = cov / var_b if beta is None else pd.Series(beta, index=a.index)
    deviation = (a - ra.mean()) - slope * (b - rb.mean())
    return (deviation / np.sqrt(var_a - 2 * slope * cov + slope**2 * var_b)).to_numpy()


def reference(bars: dict[str, list[Bar]], fill_at: str, beta: float | None
              ) -> dict[str, list[Row]]:
    z = zscores(bars, beta)
    defined = ~np.isnan(z)
    for edge in (ENTRY, EXIT):  # no tie the two float paths could read differently
        assert np.all(np.abs(np.abs(z[defined]) - edge) > 1e-6)
    n = len(z)
    spread, cash = 0, CASH
    held = {"A": Decimal(0), "B": Decimal(0)}
    out: dict[str, list[Row]] = {"A": [], "B": []}
    for t in np.flatnonzero(defined):
        target = spread
        if z[t] > ENTRY:
            target = -1
        elif z[t] < -ENTRY:
            target = 1
        elif abs(z[t]) < EXIT:
            target = 0
        if target == spread:
            continue
        spread = target
        at = t if fill_at == "close" else t + 1
        if at >= n:
            break
        closes = {s: Decimal(repr(bars[s][t].close)) for s in held}
        equity = cash + sum(held[s] * closes[s] for s in held)
        for symbol, sign in (("A", target), ("B", -target)):
            size = (equity * PCT / 100 / closes[symbol]).to_integral_value(ROUND_FLOOR)
            delta = sign * size - held[symbol]
            if delta == 0:
                continue
            bar = bars[symbol][t] if fill_at == "close" else bars[symbol][at]
            price = cents(bar.close if fill_at == "close" else bar.open)
            out[symbol].append((at, "buy" if delta > 0 else "sell", abs(delta), price))
            held[symbol] += delta
            cash -= delta * price
    return out


def params(beta: float | None = None, **more: object) -> dict[str, object]:
    return {"lookback": LOOKBACK, "entry": ENTRY, "exit": EXIT, "percent": str(PCT),
            "beta": beta, **more}


@pytest.mark.parametrize("fill_at", ["close", "next_open"])
@pytest.mark.parametrize("beta", [None, 1.3])
async def test_both_legs_where_the_reference_z_score_crosses(fill_at: str,
                                                             beta: float | None) -> None:
    bars = cointegrated()
    expected = reference(bars, fill_at, beta)
    assert len(expected["A"]) == len(expected["B"]) >= 8
    sides = {r[1] for r in expected["A"]}
    assert sides == {"buy", "sell"}
    result = await replay(bars, "pairs_zscore", params(beta, legs=["A", "B"]),
                          fill_at=fill_at, risk=LOOSE, cash=CASH)
    assert rows(result.fills, "A") == expected["A"]
    assert rows(result.fills, "B") == expected["B"]
    # the two legs trade on the same bars, in opposite directions
    for a, b in zip(expected["A"], expected["B"], strict=True):
        assert a[0] == b[0]
        assert a[1] != b[1]


async def test_acts_only_on_bars_of_the_same_time() -> None:
    """B misses a bar: A's bar of that time decides nothing, and everything after it is the
    reference's on the bars both have."""
    bars = cointegrated(260)
    gap = 150
    thin = {"A": bars["A"][:gap] + bars["A"][gap + 1:], "B": bars["B"][:gap] + bars["B"][gap + 1:]}
    with_gap = {"A": bars["A"], "B": bars["B"][:gap] + bars["B"][gap + 1:]}
    expected = await replay(thin, "pairs_zscore", params(), fill_at="close", risk=LOOSE)
    result = await replay(with_gap, "pairs_zscore", params(), fill_at="close", risk=LOOSE)
    assert rows(result.fills) == rows(expected.fills)
    assert len(expected.fills) >= 4


async def test_warm_up_then_live_decides_as_one_run() -> None:
    """``warmup_bars`` = lookback - 1: the first z-score is on the first live bar."""
    bars = cointegrated()
    warmup = PairsZScore(**params()).warmup_bars()
    z = zscores(bars, None)
    assert warmup == LOOKBACK - 1 == int(np.flatnonzero(~np.isnan(z))[0])
    # start the data where the first z-score (its window: the first lookback bars) is beyond
    # the entry: the first decidable bar trades
    start = next(t for t in range(len(z) - warmup) if abs(z[t + warmup]) > ENTRY)
    cut = {s: b[start:start + 200] for s, b in bars.items()}
    whole = await replay(cut, "pairs_zscore", params(), risk=LOOSE)
    resumed = await replay_after_history(cut, warmup, "pairs_zscore", params(), risk=LOOSE)
    first = min(f.ts_event for f in whole.fills)
    assert first == cut["A"][warmup].ts_event
    assert sorted(rows(resumed)) == sorted(rows(whole.fills))


@pytest.mark.parametrize(("symbols", "legs", "words"), [
    (["A", "B", "C"], None, "needs exactly two symbols, has 3"),
    (["A", "B"], ["A", "C"], "are not the strategy's symbols"),
])
async def test_refused_at_start_without_exactly_its_two_legs(symbols: list[str],
                                                             legs: list[str] | None,
                                                             words: str) -> None:
    bars = cointegrated(60)
    bars["C"] = make_bars([10.0] * 60, "C")
    with pytest.RaisesGroup(pytest.RaisesExc(InvalidParams, match=words), flatten_subgroups=True,
                            allow_unwrapped=True):
        await replay({s: bars[s] for s in symbols}, "pairs_zscore",
                     params(**({} if legs is None else {"legs": legs})), risk=LOOSE)


def test_params_refused_naming_the_field() -> None:
    with pytest.raises(InvalidParams) as unknown:
        PairsZScore(lookback=30, hedge=1.0)
    assert (unknown.value.plugin, unknown.value.field) == ("pairs_zscore", "hedge")
    with pytest.raises(InvalidParams) as inside:
        PairsZScore(entry=1.0, exit=1.0)
    assert inside.value.field == "exit"
    with pytest.raises(InvalidParams) as legs:
        PairsZScore(legs=["A", "A"])
    assert legs.value.field == "legs"
