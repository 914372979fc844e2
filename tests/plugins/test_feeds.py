"""Pipeline plugins ``synthetic`` (seeded GBM) and ``replay`` (bars handed over in batches)."""

from collections.abc import Sequence
from itertools import pairwise
from pathlib import Path

import anyio
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lts.domain.market import Bar
from lts.plugins.pipeline.replay import ReplayFeed
from lts.plugins.pipeline.synthetic import SyntheticFeed

from ._support import MINUTE, T0, make_bar


class SteppingClock:
    """Each reading is one minute after the last."""

    def __init__(self) -> None:
        self.now = T0

    def now_ns(self) -> int:
        self.now += MINUTE
        return self.now


def series(feed: SyntheticFeed, symbol: str, n: int = 50) -> list[Bar]:
    gbm = feed.series(symbol)
    return [gbm.next_bar(symbol, T0 + i * MINUTE) for i in range(n)]


def assert_valid(bars: Sequence[Bar], start_price: float) -> None:
    assert bars[0].open == start_price
    for prev, bar in pairwise(bars):
        assert bar.open == prev.close  # the open is the previous close
    for bar in bars:
        assert bar.low <= min(bar.open, bar.close)
        assert max(bar.open, bar.close) <= bar.high
        assert bar.low > 0
        assert bar.volume > 0


# -- synthetic ------------------------------------------------------------------------------------

def test_same_seed_and_symbol_give_the_same_series() -> None:
    assert series(SyntheticFeed(seed=11), "AAA") == series(SyntheticFeed(seed=11), "AAA")


def test_another_symbol_or_seed_gives_another_series() -> None:
    closes = [b.close for b in series(SyntheticFeed(seed=11), "AAA")]
    assert [b.close for b in series(SyntheticFeed(seed=11), "BBB")] != closes
    assert [b.close for b in series(SyntheticFeed(seed=12), "AAA")] != closes


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(min_value=0, max_value=2**32), volatility=st.floats(0.0, 0.1),
       drift=st.floats(-0.01, 0.01), start=st.sampled_from([1.0, 100.0, 2500.5]))
def test_synthetic_bars_are_valid(seed: int, volatility: float, drift: float,
                                  start: float) -> None:
    feed = SyntheticFeed(seed=seed, volatility=volatility, drift=drift, start_price=start)
    assert_valid(series(feed, "AAA", 100), start)


@pytest.mark.anyio
async def test_synthetic_feed_yields_max_bars_stamped_by_the_clock() -> None:
    feed = SyntheticFeed(seed=3, interval=0.001, max_bars=4)
    clock = SteppingClock()
    batches = [list(batch) async for batch in feed.bars("AAA", clock)]
    assert [len(b) for b in batches] == [1, 1, 1, 1]
    bars = [b for batch in batches for b in batch]
    assert [b.ts_event for b in bars] == [T0 + i * MINUTE for i in range(1, 5)]
    assert [b.close for b in bars] == [b.close for b in series(SyntheticFeed(seed=3), "AAA", 4)]
    assert feed.bars_made == 4
    assert_valid(bars, 100.0)


async def _first_bar_times(feeds: dict[str, SyntheticFeed]) -> dict[str, float]:
    """Seconds from the start to each symbol's first bar (all feeds started together)."""
    start, first = anyio.current_time(), {}

    async def first_of(symbol: str, feed: SyntheticFeed) -> None:
        async for _ in feed.bars(symbol, SteppingClock()):
            first[symbol] = anyio.current_time() - start
            return

    async with anyio.create_task_group() as tg:
        for symbol, feed in feeds.items():
            tg.start_soon(first_of, symbol, feed)
    return first


@pytest.mark.anyio
async def test_symbols_tick_at_their_own_phase_unless_aligned() -> None:
    """Ticks of different instruments arrive spread over the interval (the engine is not hit by
    every symbol at once); ``aligned`` bars come together, one interval after the start."""
    symbols = [f"S{i:02d}" for i in range(20)]
    spread = await _first_bar_times({s: SyntheticFeed(seed=5, interval=2.0) for s in symbols})
    assert sum(1 for t in spread.values() if t < 1.0) >= 5, spread  # phases: about half < 1 s
    aligned = await _first_bar_times(
        {s: SyntheticFeed(seed=5, interval=2.0, aligned=True) for s in symbols})
    assert min(aligned.values()) >= 2.0, aligned


@pytest.mark.anyio
async def test_a_feed_cancelled_while_waiting_leaves_the_others_due_then() -> None:
    """Feeds due at the same instant share one timer; cancelling one cancels only itself."""
    got: list[str] = []

    async def take(symbol: str, n: int) -> None:
        feed = SyntheticFeed(seed=1, interval=0.05, aligned=True, max_bars=n)
        async for batch in feed.bars(symbol, SteppingClock()):
            got.extend(bar.symbol for bar in batch)

    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            tg.start_soon(take, "KEEP", 3)
            with anyio.CancelScope() as doomed:
                doomed.cancel()
                await take("GONE", 3)
    assert got == ["KEEP"] * 3


# -- replay ---------------------------------------------------------------------------------------

@pytest.mark.anyio
async def test_replay_hands_preloaded_bars_over_in_batches() -> None:
    bars = [make_bar(100.0 + i, ts=T0 + i * MINUTE) for i in range(5)]
    feed = ReplayFeed(bars, batch=2)
    batches = [list(b) async for b in feed.bars("AAA", SteppingClock())]
    assert batches == [bars[0:2], bars[2:4], bars[4:5]]
    assert feed.bars_sent == 5
    assert feed.historical is True


@pytest.mark.anyio
async def test_replay_loads_its_file(tmp_path: Path) -> None:
    path = tmp_path / "bars.csv"
    path.write_text("ts,open,high,low,close,volume\n"
                    "1704153600,1,2,0.5,1.5,10\n1704153660,1.5,2.5,1,2,20\n")
    feed = ReplayFeed(path=str(path))
    batches = [list(b) async for b in feed.bars("XYZ", SteppingClock())]
    assert batches == [[Bar("XYZ", T0, 1.0, 2.0, 0.5, 1.5, 10.0),
                        Bar("XYZ", T0 + MINUTE, 1.5, 2.5, 1.0, 2.0, 20.0)]]
