"""The report's building blocks: ISO 8601 times for a million rows, and the chart's downsampling
that keeps every extreme (issue 11)."""

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lts.backtest.downsample import candles, envelope
from lts.backtest.iso_times import iso_utc, iso_utc_column
from lts.backtest.price_series import PriceSeries
from lts.domain.market import Bar
from lts.errors import DataError

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(-(2**62), 2**62), min_size=1, max_size=50))
def test_iso_times_match_the_standard_library(values: list[int]) -> None:
    texts = iso_utc(values)
    assert iso_utc_column(values).to_pylist() == texts
    assert len({len(t) for t in texts}) == 1  # one width per column
    for ns, text in zip(values, texts, strict=True):
        assert text.endswith("Z")
        parsed = datetime.fromisoformat(text)
        assert parsed.tzinfo is not None
        assert parsed == EPOCH + timedelta(microseconds=ns // 1000)
        if "." in text:  # the fraction is exact to the ns
            assert int(text[20:-1].ljust(9, "0")) == ns % 10**9


def test_iso_times_use_the_shortest_exact_fraction() -> None:
    assert iso_utc([0, 86_400 * 10**9]) == ["1970-01-01T00:00:00Z", "1970-01-02T00:00:00Z"]
    assert iso_utc([10**6, 0]) == ["1970-01-01T00:00:00.001Z", "1970-01-01T00:00:00.000Z"]
    assert iso_utc([1]) == ["1970-01-01T00:00:00.000000001Z"]
    assert iso_utc([]) == []
    assert iso_utc([951_782_400 * 10**9]) == ["2000-02-29T00:00:00Z"]  # a leap day


@settings(max_examples=100, deadline=None)
@given(st.lists(st.floats(-1e6, 1e6), min_size=1, max_size=3000), st.integers(4, 200))
def test_the_envelope_keeps_every_bucket_extreme(values: list[float], max_points: int) -> None:
    data = np.array(values)
    kept = envelope(data, max_points)
    assert len(kept) <= max(max_points, 4)
    assert list(kept) == sorted(set(kept.tolist()))
    assert {0, len(data) - 1} <= set(kept.tolist())
    assert data[kept].min() == data.min()
    assert data[kept].max() == data.max()


def test_candles_merge_bars_without_losing_a_high_or_a_low() -> None:
    ts = np.arange(10, dtype=np.int64)
    o = np.arange(10.0)
    h = o + np.array([1, 9, 1, 1, 1, 1, 1, 1, 1, 1])
    lo = o - np.array([1, 1, 1, 1, 1, 1, 1, 8, 1, 1])
    c = o + 0.5
    (t2, o2, h2, l2, c2), k = candles(ts, o, h, lo, c, 4)
    assert k == 3
    assert t2.tolist() == [0, 3, 6, 9]
    assert o2.tolist() == [0, 3, 6, 9]
    assert h2.tolist() == [10, 6, 9, 10]
    assert l2.tolist() == [-1, 2, -1, 8]
    assert c2.tolist() == [2.5, 5.5, 8.5, 9.5]
    assert candles(ts, o, h, lo, c, 10)[1] == 1


def test_a_price_series_from_bars_and_its_checks() -> None:
    bars = [Bar("X", 1, 1.0, 2.0, 0.5, 1.5, 10.0), Bar("X", 2, 1.5, 2.5, 1.0, 2.0, 10.0)]
    series = PriceSeries.from_bars("X", bars)
    assert (len(series), series.first_close, series.last_close) == (2, 1.5, 2.0)
    assert series.high.tolist() == [2.0, 2.5]
    with pytest.raises(DataError, match="go back"):
        PriceSeries("X", [2, 1], [1, 1], [1, 1], [1, 1], [1, 1])
    with pytest.raises(DataError, match="differ in length"):
        PriceSeries("X", [1, 2], [1], [1, 1], [1, 1], [1, 1])
