"""Strategy ``momentum_rotation`` through the real engine against a pandas ranking (SYS-001;
SYS-009: one strategy instance over four assets of a portfolio).

The reference: rebalances on bars ``lookback, lookback + rebalance, ...`` (0-based; every
symbol has a bar at every time); the ranking is ``close[t] / close[t - lookback]`` (pandas'
``pct_change``), best first, equal returns by name; the top ``top`` are held. At a rebalance
bar t what shrinks is sold (out of the top: all; in the top: down to its share); what grows is
bought at t when nothing was sold, else on the next bar, once the sales filled. A share is
``percent / top`` % of equity (cash plus every position at the decision bar's closes) at the
close, floored to whole units. Fills at the decision bar's close or the next bar's open.
"""

from decimal import ROUND_FLOOR, Decimal

import numpy as np
import pandas as pd
import pytest

from lts.domain.market import Bar
from lts.errors import InvalidParams
from lts.plugins.strategy.momentum_rotation import MomentumRotation

from ._support import LONG_ONLY, Row, cents, make_bars, replay, replay_after_history, rows

pytestmark = pytest.mark.anyio

SYMBOLS = ["AAA", "BBB", "CCC", "DDD"]
LOOKBACK, REBALANCE, TOP, PCT = 10, 15, 2, Decimal(90)
CASH = Decimal(100_000)


def trends(n: int = 200, seed: int = 8) -> dict[str, list[Bar]]:
    """Four seeded walks whose drifts trade places every 37 bars: the leaders change."""
    rng = np.random.default_rng(seed)
    drifts = np.array([0.004, 0.002, -0.001, -0.003])
    out = {}
    for k, symbol in enumerate(SYMBOLS):
        mu = np.array([drifts[(k + t // 37) % 4] for t in range(n)])
        path = 50 * (k + 1) * np.exp(np.cumsum(mu + rng.normal(0, 0.006, n)))
        out[symbol] = make_bars([round(float(c), 2) for c in path], symbol)
    return out


def ranking(bars: dict[str, list[Bar]]) -> pd.DataFrame:
    closes = pd.DataFrame({s: [b.close for b in bars[s]] for s in SYMBOLS})
    return closes.pct_change(LOOKBACK)


def rebalance_bars(n: int) -> list[int]:
    return list(range(LOOKBACK, n, REBALANCE))


def top_k(momentum: pd.DataFrame, t: int) -> set[str]:
    row = momentum.iloc[t]
    assert row.nunique() == len(SYMBOLS)  # no tie the two float paths could order differently
    return set(sorted(SYMBOLS, key=lambda s: (-row[s], s))[:TOP])


def reference(bars: dict[str, list[Bar]], fill_at: str) -> dict[str, list[Row]]:
    n = len(bars[SYMBOLS[0]])
    momentum = ranking(bars)
    cash = CASH
    held = dict.fromkeys(SYMBOLS, Decimal(0))
    out: dict[str, list[Row]] = {s: [] for s in SYMBOLS}
    share = PCT / TOP

    def close(s: str, t: int) -> Decimal:
        return Decimal(repr(bars[s][t].close))

    def trade(s: str, delta: Decimal, t: int) -> None:
        nonlocal cash
        at = t if fill_at == "close" else t + 1
        if at >= n:
            return
        price = cents(bars[s][t].close if fill_at == "close" else bars[s][at].open)
        out[s].append((at, "buy" if delta > 0 else "sell", abs(delta), price))
        held[s] += delta
        cash -= delta * price

    def size(s: str, t: int) -> Decimal:
        equity = cash + sum(held[x] * close(x, t) for x in SYMBOLS)
        return (equity * share / 100 / close(s, t)).to_integral_value(ROUND_FLOOR)

    for t in rebalance_bars(n):
        best = top_k(momentum, t)
        sold = False
        for s in SYMBOLS:
            target = size(s, t) if s in best else Decimal(0)
            if held[s] > target:
                trade(s, target - held[s], t)
                sold = True
        buy_at = t + 1 if sold else t
        if buy_at >= n or (fill_at == "next_open" and buy_at + 1 >= n):
            break
        for s in sorted(best):
            delta = size(s, buy_at) - held[s]
            if delta > 0:
                trade(s, delta, buy_at)
    return out


def holdings_after(fills: dict[str, list[Row]], day: int) -> set[str]:
    return {s for s, rs in fills.items()
            if sum((q if side == "buy" else -q) for d, side, q, _ in rs if d <= day) > 0}


@pytest.mark.parametrize("fill_at", ["close", "next_open"])
async def test_holds_the_reference_top_after_each_rebalance(fill_at: str) -> None:
    bars = trends()
    n = len(bars[SYMBOLS[0]])
    momentum = ranking(bars)
    expected = reference(bars, fill_at)
    result = await replay(bars, "momentum_rotation",
                          {"lookback": LOOKBACK, "rebalance": REBALANCE, "top": TOP,
                           "percent": str(PCT)}, fill_at=fill_at, risk=LONG_ONLY, cash=CASH)
    got = {s: rows(result.fills, s) for s in SYMBOLS}
    assert got == expected
    assert result.summary.denied == 0
    settled = 2 if fill_at == "close" else 3  # the sales' bar, the buys' bar, their fill
    changes = 0
    for t in rebalance_bars(n)[:-1]:
        want = top_k(momentum, t)
        assert holdings_after(got, t + settled - 1) == want, t
        changes += want != top_k(momentum, t - REBALANCE) if t > LOOKBACK else 0
    assert changes >= 4  # the leaders did rotate


async def test_warm_up_then_live_decides_as_one_run() -> None:
    """``warmup_bars`` = lookback: the first rebalance is on the first live bar."""
    bars = trends(60)
    params = {"lookback": LOOKBACK, "rebalance": REBALANCE, "top": TOP, "percent": str(PCT)}
    warmup = MomentumRotation(**params).warmup_bars()
    assert warmup == LOOKBACK == int(np.flatnonzero(ranking(bars).notna().all(axis=1))[0])
    whole = await replay(bars, "momentum_rotation", params, risk=LONG_ONLY)
    resumed = await replay_after_history(bars, warmup, "momentum_rotation", params,
                                         risk=LONG_ONLY)
    assert min(rows(whole.fills))[0] == warmup
    assert sorted(rows(resumed)) == sorted(rows(whole.fills))


async def test_refused_at_start_with_more_top_than_symbols() -> None:
    bars = {s: b[:30] for s, b in trends(30).items() if s in ("AAA", "BBB")}
    with pytest.RaisesGroup(pytest.RaisesExc(InvalidParams, match="more than the 2"),
                            flatten_subgroups=True, allow_unwrapped=True):
        await replay(bars, "momentum_rotation", {"top": 3, "lookback": 5}, risk=LONG_ONLY)


def test_params_refused_naming_the_field() -> None:
    with pytest.raises(InvalidParams) as unknown:
        MomentumRotation(lookback=10, hold=2)
    assert (unknown.value.plugin, unknown.value.field) == ("momentum_rotation", "hold")
    with pytest.raises(InvalidParams) as bad:
        MomentumRotation(rebalance=0)
    assert bad.value.field == "rebalance"
    with pytest.raises(InvalidParams) as over:
        MomentumRotation(percent=101)
    assert over.value.field == "percent"
