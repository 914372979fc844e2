"""Strategy timers (issue 11): ``ctx.set_timer(at_ns=)`` and ``every_ns=`` call ``on_timer`` on
the engine's clock; SYS-004.

In a backtest the clock is the bars' time: a timer fires at its own time, before the first bar
at or after it (``on_timer``'s ``ts`` and ``ctx.now_ns()`` inside it are the timer's time, not
the bar's). Live, the runner wakes for a timer when no bar comes.
"""

from typing import Any

import pytest

from lts.domain.market import Bar
from lts.errors import InvalidParams

from .scripted_strategy import MINUTE, T0, Script, Scripted, backtest, bars, flat

pytestmark = pytest.mark.anyio

SECOND = 1_000_000_000


def journal(script: Script) -> list[tuple[Any, ...]]:
    """What the strategy heard, in order: ("bar", minute) and ("timer", name, ts, now) with
    times in seconds from T0."""
    heard: list[tuple[Any, ...]] = []
    script.memo["journal"] = heard

    def on_timer(s: Scripted, name: str, ts: int) -> None:
        heard.append(("timer", name, (ts - T0) / SECOND, (s.ctx.now_ns() - T0) / SECOND))

    script.on_timer = on_timer
    return heard


def noting_bars(then: Any = None) -> Any:
    def on_bar(s: Scripted, bar: Bar, i: int) -> None:
        heard = s.script.memo["journal"]
        assert isinstance(heard, list)
        heard.append(("bar", (bar.ts_event - T0) // MINUTE))
        if then is not None:
            then(s, i)
    return on_bar


async def test_timers_fire_at_their_time_before_the_bar_that_passes_them() -> None:
    """At bar 0: a one-off timer at 2.5 minutes and a repeating one every 2 minutes. The
    one-off fires between bars 2 and 3, at 150 s (its ``ts`` and the clock inside it); the
    repeating one at 120 s (before the bar of that very time), 240 s, 360 s."""
    def set_them(s: Scripted, i: int) -> None:
        if i == 0:
            s.ctx.set_timer("once", at_ns=T0 + 150 * SECOND)
            s.ctx.set_timer("every", every_ns=2 * MINUTE)

    script = Script()
    heard = journal(script)
    script.on_bar = noting_bars(set_them)
    await backtest(script, {"AAA": bars("AAA", [flat(100)] * 7)})
    assert heard == [
        ("bar", 0), ("bar", 1),
        ("timer", "every", 120, 120), ("bar", 2),
        ("timer", "once", 150, 150), ("bar", 3),
        ("timer", "every", 240, 240), ("bar", 4), ("bar", 5),
        ("timer", "every", 360, 360), ("bar", 6)]


async def test_a_canceled_timer_does_not_fire_and_one_set_again_is_replaced() -> None:
    """``every`` canceled after its first firing fires no more; ``moved`` set at 90 s then
    again at 210 s fires once, at 210 s."""
    def set_them(s: Scripted, i: int) -> None:
        if i == 0:
            s.ctx.set_timer("every", every_ns=MINUTE // 2)
            s.ctx.set_timer("moved", at_ns=T0 + 90 * SECOND)
            s.ctx.set_timer("moved", at_ns=T0 + 210 * SECOND)

    def cancel_on_first(s: Scripted, name: str, ts: int) -> None:
        if name == "every":
            s.ctx.cancel_timer("every")

    script = Script()
    heard = journal(script)
    noted = script.on_timer
    assert noted is not None

    def on_timer(s: Scripted, name: str, ts: int) -> None:
        noted(s, name, ts)
        cancel_on_first(s, name, ts)

    script.on_timer = on_timer
    script.on_bar = noting_bars(set_them)
    await backtest(script, {"AAA": bars("AAA", [flat(100)] * 5)})
    assert [h for h in heard if h[0] == "timer"] == [("timer", "every", 30, 30),
                                                    ("timer", "moved", 210, 210)]


async def test_a_gap_in_the_data_fires_a_repeating_timer_once() -> None:
    """Every minute, and the data jumps from minute 2 to minute 10: one firing for the gap
    (at its first due time), then on at minute 11."""
    def set_them(s: Scripted, i: int) -> None:
        if i == 0:
            s.ctx.set_timer("every", every_ns=MINUTE)

    script = Script()
    heard = journal(script)
    script.on_bar = noting_bars(set_them)
    data = bars("AAA", [flat(100)] * 3) + bars("AAA", [flat(100)] * 2, start=T0 + 10 * MINUTE)
    await backtest(script, {"AAA": data})
    assert heard == [("bar", 0), ("timer", "every", 60, 60), ("bar", 1),
                     ("timer", "every", 120, 120), ("bar", 2),
                     ("timer", "every", 180, 180), ("bar", 10),
                     ("timer", "every", 660, 660), ("bar", 11)]


async def test_a_timer_without_a_time_is_a_strategy_error() -> None:
    """Neither ``at_ns`` nor ``every_ns``, or both: InvalidParams (LTS's error, naming the
    field), raised to the strategy that asked."""
    raised: list[BaseException] = []

    def set_badly(s: Scripted, i: int) -> None:
        if i == 0:
            for kwargs in ({}, {"at_ns": T0, "every_ns": MINUTE}, {"every_ns": 0}):
                try:
                    s.ctx.set_timer("bad", **kwargs)
                except InvalidParams as exc:
                    raised.append(exc)

    script = Script()
    journal(script)
    script.on_bar = noting_bars(set_badly)
    await backtest(script, {"AAA": bars("AAA", [flat(100)] * 2)})
    assert len(raised) == 3
    assert script.timers == []
