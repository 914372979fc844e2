"""Strategy ``grid`` through the real engine on a sine-wave price against a simulation of its
rules and the paper venue's limit fills (SYS-001, SYS-006).

The reference: level i at ``center - i * step`` (the center: the first live close); a buy at
every level from the first bar, rounded down to the tick, a sell one level up (rounded up) for
each filled buy, a buy again at the level for each filled sell. An order placed on bar t works
from bar t+1: a buy fills at the open when the open is at or below its limit, else at its limit
when the low reaches it; a sell mirrors it with the high.
"""

import math
from collections.abc import Callable
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal

import pytest

from lts.domain.market import Bar
from lts.errors import InvalidParams
from lts.plugins.strategy.grid import Grid

from ._support import LONG_ONLY, TICK, Row, cents, make_bars, replay, replay_after_history, rows

pytestmark = pytest.mark.anyio

QTY = Decimal(3)


def sine(n: int = 150, center: float = 100.0, amplitude: float = 7.0,
         period: int = 30) -> list[Bar]:
    closes = [round(center + amplitude * math.sin(2 * math.pi * t / period), 2)
              for t in range(n)]
    return make_bars(closes, wick=0.3)


def reference(bars: list[Bar], levels: int, step_of: Callable[[Decimal], Decimal],
              start: int = 0) -> list[Row]:
    center = cents(bars[start].close)
    step = step_of(center)

    def level(i: int) -> Decimal:
        return center - i * step

    book: list[tuple[str, int, Decimal, int]] = []  # (side, level, limit, works from)
    for i in range(1, levels + 1):
        book.append(("buy", i, level(i).quantize(TICK, ROUND_FLOOR), start + 1))
    out: list[Row] = []
    for j in range(start + 1, len(bars)):
        b = bars[j]
        still, placed = [], []
        for side, i, limit, works in book:
            price = None
            if works <= j and side == "buy":
                price = cents(b.open) if cents(b.open) <= limit else \
                    (limit if cents(b.low) <= limit else None)
            elif works <= j:
                price = cents(b.open) if cents(b.open) >= limit else \
                    (limit if cents(b.high) >= limit else None)
            if price is None:
                still.append((side, i, limit, works))
                continue
            out.append((j, side, QTY, price))
            if side == "buy":
                placed.append(("sell", i, level(i - 1).quantize(TICK, ROUND_CEILING), j + 1))
            else:
                placed.append(("buy", i, level(i).quantize(TICK, ROUND_FLOOR), j + 1))
        book = still + placed
    return out


@pytest.mark.parametrize("fill_at", ["close", "next_open"])
@pytest.mark.parametrize(("unit", "spacing", "center"), [
    ("absolute", Decimal(2), None),
    ("percent", Decimal("1.7"), Decimal("100.37")),  # levels off the tick grid
])
async def test_buys_and_sells_at_the_grid_levels(fill_at: str, unit: str, spacing: Decimal,
                                                 center: Decimal | None) -> None:
    bars = sine()
    if center is not None:  # the center is the first close: start the wave there
        bars = make_bars([float(center)] + [b.close for b in bars[1:]], wick=0.3)

    def step_of(c: Decimal) -> Decimal:
        return spacing if unit == "absolute" else c * spacing / 100
    expected = reference(bars, 3, step_of)
    sells = [r for r in expected if r[1] == "sell"]
    assert len(sells) >= 10
    c = cents(bars[0].close)
    levels = [c - i * step_of(c) for i in range(4)]
    # every level trades; off the tick grid (percent) buys round down and sells up
    assert {r[3] for r in expected if r[1] == "buy"} == \
        {lv.quantize(TICK, ROUND_FLOOR) for lv in levels[1:]}
    assert {r[3] for r in expected if r[1] == "sell"} == \
        {lv.quantize(TICK, ROUND_CEILING) for lv in levels[:3]}
    if unit == "percent":
        assert all(lv % TICK != 0 for lv in levels[1:])
    params = {"levels": 3, "spacing": str(spacing), "spacing_unit": unit,
              "quantity": str(QTY)}
    result = await replay(bars, "grid", params, fill_at=fill_at, risk=LONG_ONLY)
    assert sorted(rows(result.fills)) == sorted(expected)
    # every sell sold what a buy one level lower had bought: never short
    held = Decimal(0)
    for _, side, qty, _ in rows(result.fills):
        held += qty if side == "buy" else -qty
        assert held >= 0


async def test_history_is_ignored_the_grid_centers_on_the_first_live_bar() -> None:
    """``warmup_bars`` is 0: history given anyway (a restart's) changes nothing; the grid
    starts at the first live close, as a run starting there."""
    bars = sine(120)
    assert Grid(quantity=1).warmup_bars() == 0
    params = {"levels": 3, "spacing": "2", "spacing_unit": "absolute", "quantity": str(QTY)}
    at = 7
    from_there = await replay(bars[at:], "grid", params, risk=LONG_ONLY)
    resumed = await replay_after_history({"X": bars}, at, "grid", params, risk=LONG_ONLY)
    assert sorted(rows(resumed)) == sorted(rows(from_there.fills))
    assert sorted(rows(resumed)) == sorted(reference(bars, 3, lambda c: Decimal(2), start=at))


def test_params_refused_naming_the_field() -> None:
    with pytest.raises(InvalidParams) as unknown:
        Grid(levels=3, step=2)
    assert (unknown.value.plugin, unknown.value.field) == ("grid", "step")
    with pytest.raises(InvalidParams) as zero:
        Grid(levels=10, spacing=10)
    assert zero.value.field == "spacing"
    with pytest.raises(InvalidParams) as below:
        Grid(levels=5, spacing_unit="absolute", spacing=30, center=100)
    assert below.value.field == "center"
    with pytest.raises(InvalidParams) as bad:
        Grid(quantity=0)
    assert bad.value.field == "quantity"
