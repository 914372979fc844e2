"""The strategy API, engine side (issue 11): a trading strategy orders through its context and
hears its orders, fills and timers; SYS-004 (strategies), SYS-006 (orders and positions).

Backtests run the real replay (:func:`lts.backtest.replay.run_replay`): the runner, the strategy
host, the order manager, risk, the paper venue and the journal on a SQLite file. The strategies
are the test's own user code (:mod:`tests.engine.scripted_strategy`). Paper venue rules: an
order made on bar t works from bar t+1; a market order fills at that bar's open.
"""

import logging
from decimal import Decimal
from typing import Any

import anyio
import pytest

from lts.bus import InProcessBus, Mailbox, Overflow
from lts.domain.market import Bar, WarmUp
from lts.engine.clock import LiveClock
from lts.engine.feeds import FeedHub
from lts.errors import JournalUnavailable, PluginError
from lts.persistence.tables import audit_logs
from lts.plugins.registry import Registry

from .desk import EngineDesk
from .scripted_strategy import MINUTE, T0, Script, Scripted, backtest, bars, fills_of, flat
from .strategy_desk import HistoryFeed, Market, strategy_desk

pytestmark = pytest.mark.anyio

D = Decimal


# -- 1. the four order types, cancel, modify, rounding, lots ------------------------------------

async def test_each_order_type_fills_where_the_paper_venue_says_and_the_strategy_hears_it(
        ) -> None:
    """Market, limit, stop and stop-limit from ``on_bar``: each fills on the bar and at the
    price the paper venue's rules give (the order works from the next bar); ``on_order`` sees
    SUBMITTED, ACCEPTED, FILLED for each, in that order; ``on_fill`` gets every fill once."""
    ids: dict[str, str | None] = {}

    def on_bar(s: Scripted, bar: Bar, i: int) -> None:
        ctx = s.ctx
        if i == 0:
            ids["market"] = ctx.buy("AAA", 10)
            ids["limit"] = ctx.buy("AAA", 10, limit=95)
            ids["stop"] = ctx.buy("AAA", 10, stop=105)
        if i == 2:
            ids["stop_limit"] = ctx.sell("AAA", 5, stop=103, limit="102.5")

    data = {"AAA": bars("AAA", [
        flat(100),
        (100, 101, 94, 96),  # market at the open 100; the limit touched: 95
        (96, 106, 95, 105),  # the buy stop triggers in the range: at 105
        (104, 104, 102, 102.2),  # the sell stop-limit triggers at 103 (limit 102.5 below it)
        flat(102)])}
    script = Script(on_bar=on_bar)
    result = await backtest(script, data)

    assert fills_of(result, ids["market"] or "") == [(1, D(10), D(100))]
    assert fills_of(result, ids["limit"] or "") == [(1, D(10), D(95))]
    assert fills_of(result, ids["stop"] or "") == [(2, D(10), D(105))]
    assert fills_of(result, ids["stop_limit"] or "") == [(3, D(5), D(103))]
    for coid in ids.values():
        assert coid is not None
        assert script.statuses(coid) == ["submitted", "accepted", "filled"], coid
    assert sorted(f.trade_id for f in script.fills) == sorted(f.trade_id for f in result.fills)
    assert len(script.fills) == 4
    assert result.summary.final_positions == {"AAA": D(25)}


async def test_the_strategy_hears_a_fill_before_the_bar_it_happened_on() -> None:
    """A market order from bar 0 fills at bar 1's open: ``on_fill`` comes before ``on_bar``
    of bar 1, which already sees the position it made."""
    seen: list[tuple[Any, ...]] = []

    def on_bar(s: Scripted, bar: Bar, i: int) -> None:
        if i == 0:
            s.ctx.buy("AAA", 10)
        seen.append(("bar", i, s.ctx.position("AAA")))

    script = Script(on_bar=on_bar, on_fill=lambda s, f: seen.append(("fill", f.quantity)))
    await backtest(script, {"AAA": bars("AAA", [flat(100)] * 3)})
    assert seen == [("bar", 0, 0), ("fill", 10), ("bar", 1, 10), ("bar", 2, 10)]


async def test_a_risk_denial_reaches_on_order_with_its_reason() -> None:
    """An order risk refuses (more than the cash pays for) is DENIED with the reason, heard
    in ``on_order``; its id is returned all the same; nothing fills."""
    ids: list[str | None] = []

    def on_bar(s: Scripted, bar: Bar, i: int) -> None:
        if i == 0:
            ids.append(s.ctx.buy("AAA", 5000))  # $500,000 with $100,000

    script = Script(on_bar=on_bar)
    result = await backtest(script, {"AAA": bars("AAA", [flat(100)] * 3)})
    [coid] = ids
    assert coid is not None
    [event] = script.events
    assert (event.client_order_id, event.status, event.reason) == \
        (coid, "denied", "BUYING_POWER")
    assert result.fills == []
    assert result.summary.denied == 1


async def test_cancel_and_modify_from_the_strategy() -> None:
    """A resting limit canceled from ``on_bar`` is CANCELED and never fills; another one moved
    (quantity and limit price) fills as modified; a cancel of an order no longer open says
    False."""
    ids: dict[str, Any] = {}

    def on_bar(s: Scripted, bar: Bar, i: int) -> None:
        ctx = s.ctx
        if i == 0:
            ids["canceled"] = ctx.buy("AAA", 2, limit=80)
            ids["moved"] = ctx.buy("AAA", 2, limit=80)
        if i == 1:
            ids["cancel"] = ctx.cancel(ids["canceled"])
            ids["modify"] = ctx.modify(ids["moved"], quantity=3, limit=97)
        if i == 3:
            ids["late cancel"] = ctx.cancel(ids["moved"])

    data = {"AAA": bars("AAA", [flat(100), flat(100), (96, 96, 79, 95), flat(95), flat(95)])}
    script = Script(on_bar=on_bar)
    result = await backtest(script, data)
    assert ids["cancel"] is True
    assert ids["modify"] is True
    assert ids["late cancel"] is False
    assert script.statuses(ids["canceled"]) == ["submitted", "accepted", "pending_cancel",
                                                "canceled"]
    assert fills_of(result, ids["canceled"]) == []
    # limit 97 marketable at the open of 96: filled at the open, 3 as modified
    assert fills_of(result, ids["moved"]) == [(2, D(3), D(96))]
    assert script.event_types(ids["moved"]) == ["OrderSubmitted", "OrderAccepted",
                                                "OrderUpdated", "OrderFilled"]


async def test_float_prices_land_on_the_tick_grid_on_the_trader_s_side() -> None:
    """Prices with many decimals go to the tick (0.01) never to the trader's disadvantage: a
    buy limit down, a sell limit up; a buy stop up, a sell stop down (it triggers no
    earlier than asked). Already on the grid: unchanged."""
    ids: dict[str, Any] = {}

    def on_bar(s: Scripted, bar: Bar, i: int) -> None:
        ctx = s.ctx
        if i == 0:
            ctx.buy("AAA", 10)
        if i == 1:
            ids["buy limit"] = ctx.buy("AAA", 1, limit=95.123456789)
            ids["sell limit"] = ctx.sell("AAA", 1, limit=104.100000001)
            ids["buy stop"] = ctx.buy("AAA", 1, stop=106.000000001)
            ids["sell stop"] = ctx.sell("AAA", 1, stop=96.999999)
            ids["buy stop limit"] = ctx.buy("AAA", 1, stop=106.111, limit=107.119)
            ids["on grid"] = ctx.buy("AAA", 1, limit=D("95.10"))
            ids["open"] = {o.client_order_id: o for o in ctx.open_orders()}

    script = Script(on_bar=on_bar)
    await backtest(script, {"AAA": bars("AAA", [flat(100)] * 3)})
    placed = ids["open"]
    prices = {name: (placed[coid].limit_price, placed[coid].stop_price)
              for name, coid in ids.items() if name != "open"}
    assert prices == {
        "buy limit": (D("95.12"), None), "sell limit": (D("104.11"), None),
        "buy stop": (None, D("106.01")), "sell stop": (None, D("96.99")),
        "buy stop limit": (D("107.11"), D("106.12")), "on grid": (D("95.10"), None)}


async def test_a_quantity_below_one_lot_places_nothing(caplog: pytest.LogCaptureFixture
                                                       ) -> None:
    """Lot 0.1: 0.05 floors to nothing (None, no order, no event, logged); 0.17 is 0.1."""
    got: list[str | None] = []

    def on_bar(s: Scripted, bar: Bar, i: int) -> None:
        if i == 0:
            got.append(s.ctx.buy("AAA", 0.05))
            got.append(s.ctx.buy("AAA", 0.17))

    script = Script(on_bar=on_bar)
    with caplog.at_level(logging.INFO, "lts.strategy"):
        result = await backtest(script, {"AAA": bars("AAA", [flat(100)] * 3)}, lot="0.1")
    assert got[0] is None
    assert got[1] is not None
    assert result.summary.orders == 1
    assert [(f.quantity, f.client_order_id) for f in result.fills] == [(D("0.1"), got[1])]
    assert "quantity 0.05 is less than one lot" in caplog.text


# -- 8. one instance for several symbols ---------------------------------------------------------

async def test_a_multi_symbol_strategy_is_one_instance_with_its_bars_in_time_order() -> None:
    """``multi_symbol``: one instance for AAA and BBB, ``ctx.symbols`` names both, and their
    bars reach it interleaved in time order (BBB's a half step after AAA's, and at the same
    time at the end). It orders both and hears both symbols' orders."""
    ids: dict[str, Any] = {}

    def on_bar(s: Scripted, bar: Bar, i: int) -> None:
        if i == 0:
            ids["AAA"] = s.ctx.buy("AAA", 1)
        if i == 1:
            ids["BBB"] = s.ctx.buy("BBB", 2)

    half = MINUTE // 2
    data = {"AAA": bars("AAA", [flat(100)] * 4),
            "BBB": bars("BBB", [flat(50)] * 3, start=T0 + half) + bars("BBB", [flat(50)],
                                                                       start=T0 + 4 * MINUTE)}
    script = Script(on_bar=on_bar)
    result = await backtest(script, data, strategy="scripted_pair")
    assert len(script.instances) == 1
    assert script.symbols == [("AAA", "BBB")]
    heard = [(b.symbol, b.ts_event - T0) for b in script.live_bars()]
    assert heard == [("AAA", 0), ("BBB", half), ("AAA", MINUTE), ("BBB", MINUTE + half),
                     ("AAA", 2 * MINUTE), ("BBB", 2 * MINUTE + half), ("AAA", 3 * MINUTE),
                     ("BBB", 4 * MINUTE)]
    assert {e.symbol for e in script.events} == {"AAA", "BBB"}
    assert result.summary.final_positions == {"AAA": D(1), "BBB": D(2)}


async def test_a_strategy_per_asset_by_default() -> None:
    """Without ``multi_symbol``: one instance per asset, each with its own symbol."""
    script = Script()
    await backtest(script, {"AAA": bars("AAA", [flat(100)] * 2),
                            "BBB": bars("BBB", [flat(50)] * 2)})
    assert len(script.instances) == 2
    assert sorted(script.symbols) == [("AAA",), ("BBB",)]


# -- 9. a strategy that orders without end -------------------------------------------------------

def _ordering_without_end(s: Scripted, event: Any) -> None:
    s.ctx.sell("AAA", 1)  # denied (no short sales), which calls on_order again, ...


async def test_a_strategy_ordering_without_end_is_an_error_not_a_hang() -> None:
    """Each denial makes ``on_order`` order again: the host stops the chain and the
    replay fails with an error that says so (instead of looping forever); the error is LTS's
    own (a strategy's bug, a PluginError), from inside the replay's task group."""
    def on_bar(s: Scripted, bar: Bar, i: int) -> None:
        if i == 1:
            s.ctx.sell("AAA", 1)

    script = Script(on_bar=on_bar, on_order=_ordering_without_end)
    with pytest.RaisesGroup(pytest.RaisesExc(PluginError, match="order events in one pass"),
                            flatten_subgroups=True):
        await backtest(script, {"AAA": bars("AAA", [flat(100)] * 5)})
    assert len(script.events) > 1000
    assert len(script.live_bars()) == 2, "bars after the loop were taken"


async def test_live_a_strategy_ordering_without_end_puts_its_portfolio_in_error(
        migrated_url: str) -> None:
    """On the live engine the same loop is a failure at the portfolio boundary: the
    portfolio goes to ``error`` with the reason recorded (audited), its supervisor restarts
    it, and the engine and its other portfolio run on."""
    def on_bar(s: Scripted, bar: Bar, i: int) -> None:
        s.ctx.sell("AAA", 1)

    script = Script(on_bar=on_bar, on_order=_ordering_without_end)
    async with strategy_desk(migrated_url, script) as (desk, market):
        market.push("AAA", 100)
        await desk.until(lambda: script.made == 2 and desk.state().status == "running",
                         "the supervisor's restart")

        async def audited() -> list[dict[str, Any]] | None:
            try:  # thousands of denied orders are being written: the journal may be behind
                return await desk.rows(audit_logs, action="portfolio.error")
            except JournalUnavailable:
                return None

        failures = await desk.until_async(audited, "the portfolio's error")
        failure = next(f for f in failures if f["target"] == f"portfolio:{desk.portfolio_id}")
        assert "PluginError" in failure["detail"]["reason"]
        assert "order events in one pass" in failure["detail"]["reason"]
        other = desk.facade.state(desk.portfolio_id - 1)
        assert other is not None
        assert other.status == "running"


# -- 10. target sizing ---------------------------------------------------------------------------

async def test_order_target_percent_sizes_at_a_share_of_equity_floored_to_the_lot() -> None:
    """50 % of $100,000 at 30: 1,666.66 floored to lot 10 -> 1,660; then 20 % sells down to
    660 (equity moved with the price); then -0 % (flat). Each fills at the next open."""
    def on_bar(s: Scripted, bar: Bar, i: int) -> None:
        if i == 0:
            s.ctx.order_target_percent("AAA", 50)
        if i == 2:
            s.ctx.order_target_percent("AAA", "20")
        if i == 4:
            s.ctx.order_target_percent("AAA", 0)

    script = Script(on_bar=on_bar)
    result = await backtest(script, {"AAA": bars("AAA", [flat(30)] * 6)}, lot="10")
    assert [(f.side.value, f.quantity) for f in result.fills] == [
        ("buy", D(1660)), ("sell", D(1000)), ("sell", D(660))]
    assert result.summary.unsized == 0


async def test_order_target_percent_below_one_lot_is_counted_and_logged(
        caplog: pytest.LogCaptureFixture) -> None:
    """A $300,000 asset, lot 1, 1 % of $100,000: less than one share. No order; the summary
    counts each such target; the log says why, once (not at every bar)."""
    def on_bar(s: Scripted, bar: Bar, i: int) -> None:
        s.ctx.order_target_percent("AAA", 1)

    script = Script(on_bar=on_bar)
    with caplog.at_level(logging.INFO, "lts.strategy"):
        result = await backtest(script, {"AAA": bars("AAA", [flat(300_000)] * 4)})
    assert result.summary.orders == 0
    assert result.fills == []
    assert result.summary.unsized == 4
    [line] = [r.getMessage() for r in caplog.records if "cannot be sized" in r.getMessage()]
    assert "1% of equity at 300000" in line
    assert "less than one lot (1)" in line


# -- 7. warm-up on a live feed, at the start and after a supervised restart ----------------------

class Crash(Exception):
    """The test strategy's own bug."""


def ordering_every_bar(crash_at: float) -> Script:
    """A strategy that needs 3 bars of history, tries to buy 1 at every bar (noting what the
    context returned, warming or not) and raises once, live, at the bar closing at
    ``crash_at``."""
    placed: list[tuple[bool, str | None]] = []

    def on_bar(s: Scripted, bar: Bar, i: int) -> None:
        placed.append((s.ctx.warming_up, s.ctx.buy("AAA", 1)))
        if bar.close == crash_at and not s.ctx.warming_up and not s.script.memo.get("crashed"):
            s.script.memo["crashed"] = True
            raise Crash("the strategy's bug")

    return Script(on_bar=on_bar, warmup=3, memo={"placed": placed})


async def _heard(desk: EngineDesk, script: Script, instance: int, live: int) -> None:
    await desk.until(lambda: len(script.closes(instance, warming=False)) >= live,
                     f"instance {instance} to hear {live} live bar(s)")


async def test_warm_up_from_the_feed_s_history_and_again_after_a_supervised_restart(
        migrated_url: str) -> None:
    """The feed starts with 5 bars of history; the strategy declares 3: it takes the last 3
    with ``ctx.warming_up`` and every order it tries then is refused (None, nothing placed);
    the first live bar orders. The strategy raises on a live bar: the portfolio goes to error
    and its supervisor restarts it; the new instance is warm again on the latest 3 bars
    (before its first live bar), and trades on."""
    script = ordering_every_bar(crash_at=96)
    placed = script.memo["placed"]
    assert isinstance(placed, list)
    async with strategy_desk(migrated_url, script, backfill=5,
                             history={"AAA": [90, 91, 92, 93, 94]}) as (desk, market):
        await desk.until(lambda: script.closes(1, warming=True) == [92, 93, 94],
                         "the warm-up on the feed's history")
        assert [p for p in placed if p[0]] == [(True, None)] * 3
        market.push("AAA", 95)
        await _heard(desk, script, 1, 1)
        assert placed[-1][0] is False
        assert placed[-1][1] is not None
        await desk.until(lambda: any(e.status == "accepted" for e in desk.committed()),
                         "the live order")

        market.push("AAA", 96)  # the strategy raises
        await desk.until(lambda: script.made == 2 and desk.state().status == "running",
                         "the supervisor's restart")
        await desk.until(lambda: len(script.closes(2, warming=True)) >= 3, "the new warm-up")
        assert script.closes(2, warming=True) == [94, 95, 96]
        market.push("AAA", 97)
        await _heard(desk, script, 2, 1)
        assert script.closes(2, warming=False) == [97]
        assert desk.state().restarts == 1
        # every order came from a live bar (95, 96 before it raised, 97), none warming
        assert [p[1] is None for p in placed] == [True] * 3 + [False] * 2 + [True] * 3 + [False]
        last = placed[-1][1]
        await desk.until(lambda: any(e.client_order_id == last for e in desk.committed()),
                         "the last order's events")
        made = {e.client_order_id for e in desk.committed()}
        assert made == {p[1] for p in placed if p[1] is not None}


async def test_a_restarted_portfolio_that_was_its_feed_s_only_subscriber_is_warm_again(
        migrated_url: str) -> None:
    """A feed with no history of its own (a stream): the strategy starts cold and hears 4
    live bars. It raises on the 5th; its portfolio was the feed's only subscriber, so the feed
    stops and starts again with the restart. The hub kept the bars the strategy declared it
    needs (3), for a while after the last subscriber left: the new instance is warm on them
    before its first live bar."""
    script = ordering_every_bar(crash_at=14)
    async with strategy_desk(migrated_url, script) as (desk, market):
        for close in (10, 11, 12, 13):
            market.push("AAA", close)
        await _heard(desk, script, 1, 4)
        assert script.closes(1, warming=True) == []
        market.push("AAA", 14)  # the strategy raises
        await desk.until(lambda: script.made == 2 and desk.state().status == "running",
                         "the supervisor's restart")
        market.push("AAA", 15)
        await _heard(desk, script, 2, 1)
        assert script.closes(2, warming=True) == [12, 13, 14]
        assert script.closes(2, warming=False) == [15]


async def test_a_signal_strategy_s_declared_warm_up_survives_a_restart(
        migrated_url: str) -> None:
    """ema_crossover (a signal strategy) declares slow=3 bars of warm-up: the feed hub keeps
    that many, so after a restart the first live bar that crosses is traded at once. Cold, it
    would need 3 live bars before its first decision, and that cross would pass unseen."""
    async with strategy_desk(migrated_url, Script(), strategy="ema_crossover",
                             strategy_params={"fast": 2, "slow": 3, "quantity": "1"}
                             ) as (desk, market):
        for close in (13, 12, 11, 10):  # falling: the fast mean below the slow one
            market.push("AAA", close)
        await desk.until(lambda: desk.state().bars >= 4, "the falling bars")
        await desk.restart()
        market.push("AAA", 20)  # the fast mean jumps above the slow one: a cross up
        await desk.until(lambda: any(e.status == "accepted" for e in desk.committed()),
                         "the cross ordered at once, the order at the venue")
        market.push("AAA", 21)  # the market order fills at this bar's open
        await desk.until(lambda: desk.state().fills == 1, "its fill")


async def test_a_multi_symbol_strategy_warms_up_on_both_histories_in_time_order(
        migrated_url: str) -> None:
    """Two symbols' histories (interleaved in time) reach one multi-symbol strategy merged
    in time order, the last 3 of each, all while warming up, before its first live bar."""
    script = Script(warmup=3)
    history = [("AAA", 10.0), ("BBB", 20.0), ("AAA", 11.0), ("BBB", 21.0), ("AAA", 12.0),
               ("BBB", 22.0), ("AAA", 13.0), ("BBB", 23.0)]
    async with strategy_desk(migrated_url, script, symbols=("AAA", "BBB"),
                             strategy="scripted_pair", backfill=5,
                             history_in_order=history) as (desk, market):
        await desk.until(lambda: len(script.closes(1, warming=True)) == 6, "the warm-up")
        market.push("BBB", 24)
        await _heard(desk, script, 1, 1)
        assert [(h.bar.symbol, h.bar.close, h.warming_up) for h in script.bars] == [
            ("AAA", 11, True), ("BBB", 21, True), ("AAA", 12, True), ("BBB", 22, True),
            ("AAA", 13, True), ("BBB", 23, True), ("BBB", 24, False)]


async def test_a_multi_symbol_strategy_takes_one_symbol_s_history_before_its_first_live_bar(
        migrated_url: str) -> None:
    """Only AAA has history; BBB's feed has none. The strategy cannot wait for BBB's: it
    takes AAA's before its first live bar, whichever symbol that bar is of."""
    script = Script(warmup=3)
    async with strategy_desk(migrated_url, script, symbols=("AAA", "BBB"),
                             strategy="scripted_pair", backfill=5,
                             history={"AAA": [10, 11, 12, 13]}) as (desk, market):
        market.push("BBB", 24)
        await _heard(desk, script, 1, 1)
        assert [(h.bar.symbol, h.bar.close, h.warming_up) for h in script.bars] == [
            ("AAA", 11, True), ("AAA", 12, True), ("AAA", 13, True), ("BBB", 24, False)]


async def test_the_hub_keeps_a_stopped_feed_s_latest_bars_for_a_while_only() -> None:
    """The feed hub on its own: a subscriber that needs 2 bars, a feed without history of its
    own. The only subscriber leaves; one subscribing again within ``keep_seconds`` gets the
    latest 2 bars first; after ``keep_seconds`` (0 here: at once) it gets none."""
    for keep, expected in ((600.0, [101.0, 102.0]), (0.0, [])):
        key = f"hub-{keep}"
        market = Market(key)
        async with anyio.create_task_group() as tg:
            hub = FeedHub(Registry.discover(), InProcessBus(), LiveClock(), tg, keep_seconds=keep)
            hub.provide("history", {}, "AAA", HistoryFeed(channel=key))
            box: Mailbox[object] = Mailbox(100, Overflow.BLOCK, name="first")
            lease = hub.acquire("history", {}, "AAA", box, history=2)
            for close in (100.0, 101.0, 102.0):
                market.push("AAA", close)
            got: list[object] = []
            with anyio.fail_after(5):
                while len(got) < 3:
                    got += await box.get_batch()
            lease.release()
            again: Mailbox[object] = Mailbox(100, Overflow.BLOCK, name="again")
            lease = hub.acquire("history", {}, "AAA", again, history=2)
            warm = [b.close for w in again.drain() if isinstance(w, WarmUp) for b in w.bars]
            assert warm == expected, keep
            lease.release()
            tg.cancel_scope.cancel()


async def test_the_grid_is_read_back_from_its_open_orders_after_a_restart(
        migrated_url: str) -> None:
    """grid (levels 3, 1 apart, center 100) rests buys at 99, 98, 97; a dip to 98.5 fills the
    buy at 99 and a sell for it rests at 100. A restart (a new runner from the journal, a new
    strategy instance) reads the grid back from the open orders' tags: no order is placed twice
    (still buys at 98 and 97 and the sell at 100), and the grid trades on: the sell fills on a
    rise and the buy at 99 rests again."""
    params = {"levels": 3, "spacing_unit": "absolute", "spacing": "1", "center": "100",
              "quantity": "1"}

    def working() -> list[tuple[str, Decimal | None]]:
        """The orders working at the venue, as the committed events last left each."""
        last = {e.client_order_id: e for e in desk.committed()}
        return sorted((e.side, e.limit_price) for e in last.values()
                      if e.status in ("accepted", "partially_filled"))

    async with strategy_desk(migrated_url, Script(), strategy="grid",
                             strategy_params=params) as (desk, market):
        market.push("AAA", 100)
        grid = [("buy", D(97)), ("buy", D(98)), ("buy", D(99))]
        await desk.until(lambda: working() == grid, "the grid's buys")
        market.push("AAA", 99.5, low=98.5)  # the buy at 99 fills
        after_dip = [("buy", D(97)), ("buy", D(98)), ("sell", D(100))]
        await desk.until(lambda: working() == after_dip, "the sell one level up")

        await desk.restart()
        market.push("AAA", 99.5, low=99.2, high=99.8)  # nothing fills: the grid stands
        await desk.until(lambda: desk.state().bars >= 1, "a bar after the restart")
        assert working() == after_dip
        market.push("AAA", 100.5, high=100.6)  # the sell at 100 fills; the buy at 99 again
        await desk.until(lambda: working() == grid, "the buy at 99 again")
        filled = sorted((e.side, e.avg_fill_price) for e in desk.committed()
                        if e.status == "filled")
        assert filled == [("buy", D(99)), ("sell", D(100))]
