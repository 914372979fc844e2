"""The candle charts' bars as the ``activity`` answer carries them (lts.api.dashboard_bars):
the bars after the time a page has, as the JSON objects the page draws, each bar encoded once
for every page and every look; the bars a feed no longer keeps dropped; a feed that went back in
time and an asset no longer traded start over."""

import json

import msgspec

from lts.api.dashboard_bars import BarCharts
from lts.domain.market import Bar

T0 = 1_700_000_000 * 10**9
SECOND = 10**9


def bars(symbol: str, first: int, last: int) -> list[Bar]:
    return [Bar(symbol, T0 + k * SECOND, 100.0 + k, 101.0 + k, 99.0 + k, 100.5 + k, 10.0)
            for k in range(first, last + 1)]


def drawn(answer: dict[str, list[msgspec.Raw]]) -> dict[str, list[dict[str, float]]]:
    decoded: dict[str, list[dict[str, float]]] = json.loads(msgspec.json.encode(answer))
    return decoded


def test_a_page_gets_its_bars_as_objects_and_then_only_the_newer_ones() -> None:
    charts = BarCharts()
    recent = {"AAA": bars("AAA", 0, 4), "BBB": bars("BBB", 0, 1)}
    first = drawn(charts.after(1, recent, 0))
    assert first["AAA"][0] == {"t": T0, "open": 100.0, "high": 101.0, "low": 99.0,
                               "close": 100.5}
    assert [b["t"] for b in first["AAA"]] == [T0 + k * SECOND for k in range(5)]
    assert len(first["BBB"]) == 2
    recent = {"AAA": bars("AAA", 0, 7), "BBB": bars("BBB", 0, 1)}
    newer = drawn(charts.after(1, recent, T0 + 4 * SECOND))
    assert [b["t"] for b in newer["AAA"]] == [T0 + k * SECOND for k in (5, 6, 7)]
    assert newer["BBB"] == []


def test_each_bar_is_encoded_once_for_every_page_that_asks() -> None:
    charts = BarCharts()
    recent = {"AAA": bars("AAA", 0, 9)}
    one = charts.after(7, recent, 0)["AAA"]
    other_page = charts.after(7, {"AAA": bars("AAA", 0, 10)}, 0)["AAA"]
    assert all(a is b for a, b in zip(one, other_page[:10], strict=True))
    assert len(other_page) == 11


def test_bars_the_feed_no_longer_keeps_are_dropped() -> None:
    charts = BarCharts()
    charts.after(1, {"AAA": bars("AAA", 0, 9)}, 0)
    kept = drawn(charts.after(1, {"AAA": bars("AAA", 5, 12)}, 0))
    assert [b["t"] for b in kept["AAA"]] == [T0 + k * SECOND for k in range(5, 13)]


def test_a_feed_that_went_back_in_time_and_an_asset_gone_start_over() -> None:
    charts = BarCharts()
    charts.after(1, {"AAA": bars("AAA", 50, 60), "BBB": bars("BBB", 0, 3)}, 0)
    again = drawn(charts.after(1, {"AAA": bars("AAA", 0, 2)}, 0))
    assert list(again) == ["AAA"]
    assert [b["t"] for b in again["AAA"]] == [T0 + k * SECOND for k in range(3)]
    assert drawn(charts.after(1, {"AAA": []}, 0)) == {"AAA": []}
