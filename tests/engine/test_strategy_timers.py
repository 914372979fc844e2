"""Strategy timers (issue 11): ``ctx.set_timer(at_ns=)`` and ``every_ns=`` call ``on_timer`` on
the engine's clock; SYS-004.

In a backtest the clock is the bars' time: a timer fires at its own time, before the first bar
at or after it (``on_timer``'s ``ts`` and ``ctx.now_ns()`` inside it are the timer's time, not
the bar's). Live, the runner wakes for a timer when no bar comes.
"""

from typing import Any

import pytest

from lts.domain.market import Bar
from lts.errors import InvalidParams, PluginError

from .scripted_strategy import MINUTE, T0, Script, Scripted, backtest, bars, flat
from .strategy_desk import strategy_desk

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


async def test_a_timer_canceled_by_an_earlier_one_due_at_the_same_bar_does_not_fire() -> None:
    """``a`` at 30 s and ``b`` at 40 s, both passed by the bar at 60 s; ``a`` cancels ``b``:
    ``b`` never fires (it had been taken out as due before ``a`` ran)."""
    def set_them(s: Scripted, i: int) -> None:
        if i == 0:
            s.ctx.set_timer("a", at_ns=T0 + 30 * SECOND)
            s.ctx.set_timer("b", at_ns=T0 + 40 * SECOND)

    script = Script()
    heard = journal(script)
    noted = script.on_timer
    assert noted is not None

    def on_timer(s: Scripted, name: str, ts: int) -> None:
        noted(s, name, ts)
        if name == "a":
            s.ctx.cancel_timer("b")

    script.on_timer = on_timer
    script.on_bar = noting_bars(set_them)
    await backtest(script, {"AAA": bars("AAA", [flat(100)] * 3)})
    assert heard == [("bar", 0), ("timer", "a", 30, 30), ("bar", 1), ("bar", 2)]


async def test_a_timer_that_sets_itself_for_now_without_end_fails_the_replay() -> None:
    """A timer that sets itself again for the time it fired at would fire forever at one
    instant: the host stops it with LTS's error instead of hanging."""
    def set_it(s: Scripted, i: int) -> None:
        if i == 0:
            s.ctx.set_timer("again", at_ns=T0 + SECOND)

    def again(s: Scripted, name: str, ts: int) -> None:
        s.ctx.set_timer("again", at_ns=ts)

    script = Script(on_timer=again)
    script.memo["journal"] = []
    script.on_bar = noting_bars(set_it)
    with pytest.RaisesGroup(pytest.RaisesExc(PluginError, match="timers due at once"),
                            flatten_subgroups=True):
        await backtest(script, {"AAA": bars("AAA", [flat(100)] * 3)})


# -- live: timers with no bars coming ------------------------------------------------------------

async def test_live_timers_fire_with_no_bars_coming(migrated_url: str) -> None:
    """The live engine, a feed that sends nothing: set at ``on_start``, a repeating timer
    every 50 ms and a one-off at 300 ms. The repeating one fires 50 ms after it was set, then
    every 50 ms (its ``ts``; the clock inside is at or after it) and cancels itself at the
    third; the one-off fires once, at its time, after them."""
    PERIOD = 50_000_000

    def on_start(s: Scripted) -> None:
        now = s.ctx.now_ns()
        s.script.memo["start"] = now
        s.ctx.set_timer("tick", every_ns=PERIOD)
        s.ctx.set_timer("once", at_ns=now + 6 * PERIOD)

    def on_timer(s: Scripted, name: str, ts: int) -> None:
        if name == "tick" and sum(t[0] == "tick" for t in s.script.timers) == 3:
            s.ctx.cancel_timer("tick")

    script = Script(on_start=on_start, on_timer=on_timer)
    async with strategy_desk(migrated_url, script) as (desk, _market):
        await desk.until(lambda: any(t[0] == "once" for t in script.timers),
                         "the one-off timer")
        start = script.memo["start"]
        assert isinstance(start, int)
        first = script.timers[0][1]  # a period after set_timer's own reading of the clock
        assert 0 <= first - start - PERIOD < PERIOD
        assert [(name, ts - first) for name, ts, _ in script.timers] == [
            ("tick", 0), ("tick", PERIOD), ("tick", 2 * PERIOD),
            ("once", start + 6 * PERIOD - first)]
        assert all(now >= ts for _, ts, now in script.timers)
        assert desk.state().bars == 0
