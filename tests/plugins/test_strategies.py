"""Strategies ``sma_crossover`` and ``buy_and_hold``: bars in, signals out (SYS-001).

The crossover rule, exactly: LONG at bar t when ``fast[t] > slow[t]`` and the last bar before t
whose means differed had ``fast < slow`` (a touch and go through equal means crosses on the bar
that leaves the tie); the cross below gives FLAT (SHORT with ``long_only=false``); nothing
before both means exist. The strategy keeps running integer sums; the reference below
recomputes every mean from scratch with exact fractions.
"""

import random
from collections.abc import Sequence
from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lts.domain.signals import Signal, Target
from lts.plugins.strategy.buy_and_hold import BuyAndHold
from lts.plugins.strategy.sma_crossover import SmaCrossover

from ._support import T0, make_bar

Marks = list[tuple[int, Target]]


def run(strategy: SmaCrossover | BuyAndHold, closes: Sequence[float],
        symbol: str = "AAA") -> list[tuple[int, Signal]]:
    out = []
    for i, close in enumerate(closes):
        signal = strategy.on_bar(make_bar(close=close, ts=T0 + i, symbol=symbol))
        if signal is not None:
            out.append((i, signal))
    return out


def marks(strategy: SmaCrossover, closes: Sequence[float]) -> Marks:
    return [(i, s.target) for i, s in run(strategy, closes)]


def reference(closes: Sequence[float], fast: int, slow: int, down: Target = Target.FLAT) -> Marks:
    """The rule recomputed naively, each mean from scratch, in exact arithmetic."""
    exact = [Fraction(c) for c in closes]

    def mean(t: int, n: int) -> Fraction:
        return sum(exact[t - n + 1:t + 1], Fraction(0)) / n

    def diff(t: int) -> Fraction:
        return mean(t, fast) - mean(t, slow)

    out: Marks = []
    before = Fraction(0)  # the last non-zero difference (none yet)
    for t in range(slow - 1, len(closes)):
        now = diff(t)
        if before < 0 < now:
            out.append((t, Target.LONG))
        elif before > 0 > now:
            out.append((t, down))
        if now:
            before = now
    return out


# -- sma_crossover --------------------------------------------------------------------------------

def test_nothing_during_warm_up() -> None:
    """The first possible signal is at bar ``slow`` (0-based): both means at t-1 and t."""
    closes = [10.0, 10.0, 10.0, 1.0, 50.0, 50.0]
    # fast=2, slow=4: the means exist from bar 3; bar 3 diff -6.75, bar 4 diff +7.75
    assert marks(SmaCrossover(fast=2, slow=4), closes) == [(4, Target.LONG)]
    assert marks(SmaCrossover(fast=2, slow=5), closes[:5]) == []


def test_cross_above_is_long_and_cross_below_is_flat() -> None:
    closes = [6.0, 5.0, 4.0, 9.0, 9.0, 1.0, 1.0]
    strategy = SmaCrossover(fast=1, slow=3, quantity=Decimal("2.5"))
    signals = run(strategy, closes, symbol="BBB")
    assert [(i, s.target) for i, s in signals] == [(3, Target.LONG), (5, Target.FLAT)]
    first = signals[0][1]
    assert first == Signal("BBB", Target.LONG, T0 + 3, Decimal("2.5"), "sma cross")
    assert strategy.signals == 2
    assert strategy.bars_seen == 7


def test_cross_below_is_short_when_not_long_only() -> None:
    closes = [6.0, 5.0, 4.0, 9.0, 9.0, 1.0, 1.0]
    assert marks(SmaCrossover(fast=1, slow=3, long_only=False), closes) == [
        (3, Target.LONG), (5, Target.SHORT)]


def test_touching_without_crossing_signals_nothing() -> None:
    """fast == slow is neither above nor below: the strict inequalities of the rule."""
    closes = [4.0, 2.0, 3.0, 3.0, 3.0, 4.0, 3.0]
    # fast=1, slow=2: diffs from bar 1: -1, +0.5, 0, 0, +0.5, -0.5
    assert marks(SmaCrossover(fast=1, slow=2), closes) == [(2, Target.LONG), (6, Target.FLAT)]
    assert reference(closes, 1, 2) == [(2, Target.LONG), (6, Target.FLAT)]


@settings(max_examples=150, deadline=None)
@given(closes=st.lists(st.integers(min_value=1, max_value=20), min_size=0, max_size=60),
       fast=st.integers(min_value=1, max_value=6), extra=st.integers(min_value=1, max_value=8),
       long_only=st.booleans())
def test_matches_the_naive_rule_on_tick_prices(closes: list[int], fast: int, extra: int,
                                               long_only: bool) -> None:
    """Whole-number prices keep the strategy's float sums exact, so ties really are ties."""
    slow = fast + extra
    prices = [float(c) for c in closes]
    down = Target.FLAT if long_only else Target.SHORT
    assert marks(SmaCrossover(fast=fast, slow=slow, long_only=long_only), prices) == \
        reference(prices, fast, slow, down)


@pytest.mark.parametrize("seed", range(20))
def test_matches_the_naive_rule_on_a_random_walk(seed: int) -> None:
    rng = random.Random(seed)
    price, closes = 100.0, []
    for _ in range(400):
        price *= 1 + rng.gauss(0, 0.01)
        closes.append(price)
    fast = rng.randint(1, 10)
    slow = rng.randint(fast + 1, 30)
    expected = reference(closes, fast, slow)
    assert marks(SmaCrossover(fast=fast, slow=slow), closes) == expected
    assert expected  # a 400-bar walk crosses: the comparison is not vacuous


def test_a_touch_and_go_through_equal_means_crosses_where_it_leaves_the_tie() -> None:
    """Means above, equal, then below: the cross below is on the bar that leaves the tie (the
    engines it is compared with in bench/parity.py read it so); above, equal, above: none."""
    # fast=1, slow=2: diffs from bar 1: +1, 0, -0.5 (touch and go), then +1.5, 0, +0.5
    closes = [2.0, 4.0, 4.0, 3.0, 6.0, 6.0, 7.0]
    assert marks(SmaCrossover(fast=1, slow=2), closes) == [(3, Target.FLAT), (4, Target.LONG)]
    assert reference(closes, 1, 2) == [(3, Target.FLAT), (4, Target.LONG)]


def test_prices_finer_than_a_hundred_millionth_are_compared_exactly() -> None:
    """A coin at 0.0000000868 with ten decimals: every price is its own (closes rounded to
    1e-8 had 29 distinct values in 1,554 and missed most crosses: bench/parity.py MICRO)."""
    closes = [0.0000000868, 0.0000000861, 0.0000000866, 0.0000000871, 0.0000000863]
    # fast=1, slow=2: diffs from bar 1: -3.5e-10, +2.5e-10, +2.5e-10, -4e-10
    assert marks(SmaCrossover(fast=1, slow=2), closes) == [(2, Target.LONG), (4, Target.FLAT)]
    assert reference(closes, 1, 2) == [(2, Target.LONG), (4, Target.FLAT)]


def test_equal_means_on_a_cent_grid_are_not_a_cross() -> None:
    closes = [0.7, 1.3, 0.3, 0.3]
    # fast=1, slow=2: bar 2 crosses below (0.3 < 0.8); at bar 3 fast == slow == 0.3 exactly
    # in decimal, but the running sums give fast 0.3000000000000001 > slow 0.29999999999999993.
    assert marks(SmaCrossover(fast=1, slow=2), closes) == [(2, Target.FLAT)]


# -- buy_and_hold ---------------------------------------------------------------------------------

def test_buy_and_hold_signals_long_once() -> None:
    strategy = BuyAndHold(quantity=Decimal(7))
    signals = run(strategy, [100.0, 90.0, 120.0, 80.0], symbol="CCC")
    assert signals == [(0, Signal("CCC", Target.LONG, T0, Decimal(7), "buy and hold"))]
    assert strategy.get_debug_info()["bought"] is True


def test_buy_and_hold_leaves_sizing_to_the_portfolio_by_default() -> None:
    [(_, signal)] = run(BuyAndHold(), [100.0, 101.0])
    assert signal.quantity is None
