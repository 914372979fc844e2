"""Brackets, OCO pairs and trailing stops emulated by the engine (issue 11; SYS-006).

Backtests through the real replay (paper venue: an order made on bar t works from bar t+1; a
limit fills at its price when the bar touches it, a stop at its stop when the range reaches it).
The paper venue's ``volume_cap`` forces partial fills (volume 1,000 and cap 0.004: 4 per bar).
What ties the orders together is each order's tag; the exits are found by their type.
"""

from decimal import Decimal
from typing import Any

import pytest

from lts.domain.commands import Accepted
from lts.domain.market import Bar
from lts.domain.orders import Order, Side
from lts.errors import InvalidParams
from lts.persistence.tables import positions
from lts.settings import RiskLimits

from .desk import EngineDesk
from .scripted_strategy import Script, Scripted, backtest, bars, fills_of, flat
from .strategy_desk import strategy_desk

pytestmark = pytest.mark.anyio

D = Decimal
SHORTS = RiskLimits(allow_short=True, max_leverage=D(2), max_orders_per_second=None,
                    max_open_orders=None)


def exits_of(script: Script) -> dict[str, str]:
    """The engine's exit orders the strategy heard of: ``{"tp": coid, "sl": coid}``."""
    found: dict[str, str] = {}
    for e in script.events:
        if e.side == "sell" and e.order_type == "limit":
            found.setdefault("tp", e.client_order_id)
        if e.side == "sell" and e.order_type == "stop":
            found.setdefault("sl", e.client_order_id)
        if e.side == "buy" and e.order_type == "limit":
            found.setdefault("buy tp", e.client_order_id)
        if e.side == "buy" and e.order_type == "stop":
            found.setdefault("buy sl", e.client_order_id)
    return found


class Watch:
    """Records, after every order event the strategy hears, the position and the open exits
    (the invariant: no exit can sell more than is held)."""

    def __init__(self) -> None:
        self.seen: list[tuple[Decimal, list[Order]]] = []

    def __call__(self, s: Scripted, event: Any) -> None:
        self.seen.append((s.ctx.position("AAA"), s.ctx.open_orders("AAA")))

    def oversold(self) -> list[tuple[Decimal, list[tuple[str, Decimal]]]]:
        bad = []
        for position, orders in self.seen:
            sells = [o for o in orders if o.side is Side.SELL]
            if any(o.leaves_quantity > position for o in sells):
                bad.append((position, [(o.order_type.value, o.leaves_quantity) for o in sells]))
        return bad


def entering(**bracket: Any) -> Any:
    ids: dict[str, Any] = {}

    def on_bar(s: Scripted, bar: Bar, i: int) -> None:
        if i == 0:
            ids["entry"] = s.ctx.bracket("AAA", Side.BUY, bracket.pop("quantity", 10),
                                         **bracket)
    return ids, on_bar


# -- 2. brackets --------------------------------------------------------------------------------

async def test_bracket_take_profit_hit_cancels_the_stop_loss() -> None:
    """The entry fills on bar 1: a take-profit limit and a stop-loss stop are placed for the
    10 filled; the price reaches the take-profit on bar 3: it fills and the stop-loss is
    canceled (bar 4 falls through it, nothing more trades). Neither exit is denied."""
    ids, on_bar = entering(take_profit=110, stop_loss=90)
    watch = Watch()
    script = Script(on_bar=on_bar, on_order=watch)
    data = {"AAA": bars("AAA", [flat(100), (100, 101, 99, 100), flat(100),
                                (100, 111, 99, 110), (110, 110, 80, 85), flat(85)])}
    result = await backtest(script, data)
    exits = exits_of(script)
    assert [e.status for e in script.events if e.status == "denied"] == []
    assert fills_of(result, ids["entry"]) == [(1, D(10), D(100))]
    assert fills_of(result, exits["tp"]) == [(3, D(10), D(110))]
    assert fills_of(result, exits["sl"]) == []
    assert script.statuses(exits["sl"])[-1] == "canceled"
    assert result.summary.final_positions == {"AAA": D(0)}
    assert watch.oversold() == []


async def test_bracket_stop_loss_hit_cancels_the_take_profit() -> None:
    ids, on_bar = entering(take_profit="110", stop_loss="90")
    script = Script(on_bar=on_bar)
    data = {"AAA": bars("AAA", [flat(100), (100, 101, 99, 100), flat(100),
                                (100, 100, 89, 89), (89, 120, 89, 120), flat(120)])}
    result = await backtest(script, data)
    exits = exits_of(script)
    assert fills_of(result, ids["entry"]) == [(1, D(10), D(100))]
    assert fills_of(result, exits["sl"]) == [(3, D(10), D(90))]
    assert fills_of(result, exits["tp"]) == []
    assert script.statuses(exits["tp"])[-1] == "canceled"
    assert result.summary.final_positions == {"AAA": D(0)}


async def test_a_partly_filled_entry_grows_its_exits_and_they_never_sell_more_than_held(
        ) -> None:
    """Volume cap 4 a bar: the entry of 10 fills 4, 4, 2 (bars 1-3); the exits are placed
    for 4 and grow to 8 and 10 as it fills. Then the take-profit fills 4, 4, 2 (bars 5-7) and
    the stop-loss shrinks with it to 6, 2, then is canceled. No exit ever sells more than the
    position, no order is denied, the position ends flat."""
    ids, on_bar = entering(take_profit=110, stop_loss=80)
    watch = Watch()
    script = Script(on_bar=on_bar, on_order=watch)
    data = {"AAA": bars("AAA", [flat(100)] * 5 + [(100, 111, 99, 110)] * 3 + [flat(110)],
                        volume=1000)}
    result = await backtest(script, data, volume_cap="0.004")
    exits = exits_of(script)
    assert fills_of(result, ids["entry"]) == [(1, D(4), D(100)), (2, D(4), D(100)),
                                              (3, D(2), D(100))]
    def sizes(coid: str) -> list[Decimal]:
        return [e.quantity for e in script.events if e.client_order_id == coid
                and type(e).__name__ in ("OrderSubmitted", "OrderUpdated")]

    assert sizes(exits["tp"]) == [D(4), D(8), D(10)]
    assert sizes(exits["sl"]) == [D(4), D(8), D(10), D(6), D(2)]
    assert fills_of(result, exits["tp"]) == [(5, D(4), D(110)), (6, D(4), D(110)),
                                             (7, D(2), D(110))]
    assert script.statuses(exits["sl"])[-1] == "canceled"
    assert [e for e in script.events if e.status == "denied"] == []
    assert watch.oversold() == []
    assert result.summary.final_positions == {"AAA": D(0)}


async def test_an_exit_group_counts_once_for_the_orders_beside_it() -> None:
    """20 held, a bracket's exits for 10 of them: a plain sell of the other 10 is no short
    sale (the group exits 10 once, not 10 twice), and filled; a sell of 1 more is one."""
    ids: dict[str, Any] = {}

    def on_bar(s: Scripted, bar: Bar, i: int) -> None:
        if i == 0:
            ids["entry"] = s.ctx.bracket("AAA", Side.BUY, 10, take_profit=120, stop_loss=80)
            s.ctx.buy("AAA", 10)
        if i == 2:
            ids["rest"] = s.ctx.sell("AAA", 10)
        if i == 4:
            ids["short"] = s.ctx.sell("AAA", 1)

    script = Script(on_bar=on_bar)
    result = await backtest(script, {"AAA": bars("AAA", [flat(100)] * 6)})
    assert fills_of(result, ids["rest"]) == [(3, D(10), D(100))]
    assert [(e.client_order_id, e.reason) for e in script.events if e.status == "denied"] == \
        [(ids["short"], "SHORT_NOT_ALLOWED")]
    assert result.summary.final_positions == {"AAA": D(10)}


async def test_a_bracket_entry_filling_on_after_its_exits_ended_gets_new_exits() -> None:
    """Volume cap 4 a bar. The limit entry fills 4 (bar 1); the price gaps to the take-profit
    (bar 2): it fills those 4, the stop-loss is canceled. The price comes back and the entry
    fills 4 and 2 more (bars 3, 4): new exits protect them, and take the position flat at the
    take-profit (bars 5, 6). No exit ever sells more than held."""
    ids, on_bar = entering(take_profit=105, stop_loss=90, limit=100)
    watch = Watch()
    script = Script(on_bar=on_bar, on_order=watch)
    data = {"AAA": bars("AAA", [flat(100), flat(100), flat(106), flat(100), flat(100),
                                (100, 106, 100, 105), (100, 106, 100, 105), flat(100)],
                        volume=1000)}
    result = await backtest(script, data, volume_cap="0.004")
    assert fills_of(result, ids["entry"]) == [(1, D(4), D(100)), (3, D(4), D(100)),
                                              (4, D(2), D(100))]
    tps = [e.client_order_id for e in script.events
           if e.order_type == "limit" and e.side == "sell" and e.status == "submitted"]
    assert len(tps) == 2
    assert fills_of(result, tps[0]) == [(2, D(4), D(106))]
    assert fills_of(result, tps[1]) == [(5, D(4), D(105)), (6, D(2), D(105))]
    assert watch.oversold() == []
    assert [e for e in script.events if e.status == "denied"] == []
    assert result.summary.final_positions == {"AAA": D(0)}


async def test_a_bracket_whose_exit_the_strategy_canceled_gets_no_new_exits() -> None:
    """Volume cap 4 a bar: the limit entry fills 4 (bar 1), its exits are placed; the
    strategy cancels the stop-loss (bar 2): the take-profit goes with it. The entry fills on
    (bars 3, 4): the strategy took the exit over, no new exits come."""
    ids, enter = entering(take_profit=120, stop_loss=80, limit=100)

    def on_bar(s: Scripted, bar: Bar, i: int) -> None:
        enter(s, bar, i)
        if i == 2:
            ids["canceled"] = s.ctx.cancel(exits_of(s.script)["sl"])

    script = Script(on_bar=on_bar)
    data = {"AAA": bars("AAA", [flat(100)] * 2 + [flat(101)] + [flat(100)] * 3, volume=1000)}
    result = await backtest(script, data, volume_cap="0.004")
    exits = exits_of(script)
    assert ids["canceled"] is True
    assert fills_of(result, ids["entry"]) == [(1, D(4), D(100)), (3, D(4), D(100)),
                                              (4, D(2), D(100))]
    assert script.statuses(exits["tp"])[-1] == "canceled"
    assert len({e.client_order_id for e in script.events if e.side == "sell"}) == 2
    assert result.summary.final_positions == {"AAA": D(10)}


async def test_exit_prices_on_the_wrong_side_are_refused() -> None:
    """A buy bracket's take-profit must be above its stop-loss, a sell OCO pair's limit above
    its stop: else one would trade at once. InvalidParams to the strategy, nothing placed."""
    raised: list[str] = []

    def on_bar(s: Scripted, bar: Bar, i: int) -> None:
        if i == 0:
            for attempt in (
                lambda: s.ctx.bracket("AAA", Side.BUY, 1, take_profit=90, stop_loss=110),
                lambda: s.ctx.bracket("AAA", Side.SELL, 1, take_profit=110, stop_loss=90),
                lambda: s.ctx.oco("AAA", Side.SELL, 1, limit=90, stop=95),
                lambda: s.ctx.oco("AAA", Side.BUY, 1, limit=95, stop=90),
            ):
                try:
                    attempt()
                except InvalidParams as exc:
                    raised.append(exc.field)

    script = Script(on_bar=on_bar)
    result = await backtest(script, {"AAA": bars("AAA", [flat(100)] * 2)})
    assert raised == ["take_profit", "take_profit", "limit", "limit"]
    assert result.summary.orders == 0


async def test_a_short_bracket_mirrors() -> None:
    """A sell entry (shorts allowed): a buy limit below, a buy stop above."""
    ids_side: dict[str, Any] = {}

    def short(s: Scripted, bar: Bar, i: int) -> None:
        if i == 0:
            ids_side["entry"] = s.ctx.bracket("AAA", Side.SELL, 10, take_profit=90,
                                              stop_loss=110)

    script = Script(on_bar=short)
    data = {"AAA": bars("AAA", [flat(100), flat(100), (100, 101, 89, 90), (90, 120, 90, 120)])}
    result = await backtest(script, data, risk=SHORTS)
    exits = exits_of(script)
    assert fills_of(result, exits["buy tp"]) == [(2, D(10), D(90))]
    assert script.statuses(exits["buy sl"])[-1] == "canceled"
    assert result.summary.final_positions == {"AAA": D(0)}


# -- 3. OCO pairs -------------------------------------------------------------------------------

def holding_then(action: Any) -> Any:
    """Buy 10 on bar 0 (filled on bar 1), then ``action(s, i)`` from bar 2 on."""
    def on_bar(s: Scripted, bar: Bar, i: int) -> None:
        if i == 0:
            s.ctx.buy("AAA", 10)
        elif i >= 2:
            action(s, i)
    return on_bar


async def test_oco_one_fills_the_other_is_canceled() -> None:
    ids: dict[str, Any] = {}

    def act(s: Scripted, i: int) -> None:
        if i == 2:
            ids["pair"] = s.ctx.oco("AAA", Side.SELL, 10, limit=110, stop=90)

    script = Script(on_bar=holding_then(act))
    data = {"AAA": bars("AAA", [flat(100)] * 3 + [(100, 111, 99, 110), (110, 110, 80, 80),
                                                  flat(80)])}
    result = await backtest(script, data)
    limit, stop = ids["pair"]
    assert fills_of(result, limit) == [(3, D(10), D(110))]
    assert script.statuses(stop)[-1] == "canceled"
    assert fills_of(result, stop) == []
    assert [e for e in script.events if e.status == "denied"] == []


async def test_oco_canceled_by_the_strategy_cancels_the_other() -> None:
    ids: dict[str, Any] = {}

    def act(s: Scripted, i: int) -> None:
        if i == 2:
            ids["pair"] = s.ctx.oco("AAA", Side.SELL, 10, limit=110, stop=90)
        if i == 3:
            ids["canceled"] = s.ctx.cancel(ids["pair"][1])

    script = Script(on_bar=holding_then(act))
    data = {"AAA": bars("AAA", [flat(100)] * 4 + [(100, 120, 80, 100), flat(100)])}
    result = await backtest(script, data)
    limit, stop = ids["pair"]
    assert ids["canceled"] is True
    assert script.statuses(stop)[-1] == "canceled"
    assert script.statuses(limit)[-1] == "canceled"
    assert [f for f in result.fills if f.client_order_id in (limit, stop)] == []
    assert result.summary.final_positions == {"AAA": D(10)}


async def test_oco_a_partial_fill_shrinks_the_other() -> None:
    """Volume cap 4 a bar: the limit of the pair fills 4 on bar 4: the stop shrinks to 6; the
    limit fills 4 more: the stop is at 2; then the last 2: the stop is canceled."""
    ids: dict[str, Any] = {}

    def act(s: Scripted, i: int) -> None:
        if i == 3:
            ids["pair"] = s.ctx.oco("AAA", Side.SELL, 10, limit=110, stop=90)

    watch = Watch()
    script = Script(on_bar=holding_then(act), on_order=watch)
    data = {"AAA": bars("AAA", [flat(100)] * 4 + [(100, 111, 99, 110)] * 3 + [flat(110)],
                        volume=1000)}
    result = await backtest(script, data, volume_cap="0.004")
    limit, stop = ids["pair"]
    assert fills_of(result, limit) == [(4, D(4), D(110)), (5, D(4), D(110)),
                                       (6, D(2), D(110))]
    assert [e.quantity for e in script.events if e.client_order_id == stop
            and type(e).__name__ == "OrderUpdated"] == [D(6), D(2)]
    assert script.statuses(stop)[-1] == "canceled"
    assert watch.oversold() == []


# -- 4. trailing stops --------------------------------------------------------------------------

def trailing(side: Side = Side.SELL, **trail: Any) -> tuple[dict[str, Any], Any]:
    """Bar 0: a market order of 10 the other way (filled on bar 1 at its open); bar 1: the
    trailing stop, at the last close. ``stops`` is its stop price as the strategy sees it at
    each bar from bar 1 (it moves after each bar, so it shows the bar before's move; None once
    filled)."""
    ids: dict[str, Any] = {"stops": []}

    def on_bar(s: Scripted, bar: Bar, i: int) -> None:
        if i == 0:
            (s.ctx.buy if side is Side.SELL else s.ctx.sell)("AAA", 10)
        if i == 1:
            ids["trail"] = s.ctx.trailing_stop("AAA", side, 10, **trail)
        if "trail" in ids:
            order = s.ctx.order(ids["trail"])
            ids["stops"].append(None if order is None or not order.is_open
                                else order.stop_price)
    return ids, on_bar


async def test_a_trailing_stop_by_amount_follows_the_high_up_only_and_triggers() -> None:
    """Trail 5 below the highest high since it was placed (at the last close, 100): 95; the
    highs 103, 108 move it to 98, 103; lower highs leave it; the low of bar 6 reaches 103:
    filled at 103 on that bar."""
    ids, on_bar = trailing(trail=5)
    script = Script(on_bar=on_bar)
    data = {"AAA": bars("AAA", [
        flat(100), flat(100),
        (100, 103, 99, 102),  # best 103 -> 98
        (102, 108, 101, 107),  # best 108 -> 103
        (107, 107, 104, 105),  # no new high: stays at 103
        (105, 106, 104, 104),  # a lower high: stays
        (104, 104, 102, 102),  # low 102 <= 103: triggered at 103
        flat(102)])}
    result = await backtest(script, data)
    # seen at bars 1..7
    assert ids["stops"] == [D(95), D(95), D(98), D(103), D(103), None, None]
    assert fills_of(result, ids["trail"]) == [(6, D(10), D(103))]


async def test_a_trailing_stop_by_percent() -> None:
    """10 %: placed at 100 -> 90; high 120 -> 108; high 110 -> stays; low 107 triggers at
    108."""
    ids, on_bar = trailing(trail_percent=10)
    script = Script(on_bar=on_bar)
    data = {"AAA": bars("AAA", [flat(100), flat(100), (100, 120, 100, 115),
                                (115, 110, 109, 109), (109, 109, 107, 108), flat(108)])}
    result = await backtest(script, data)
    assert ids["stops"] == [D(90), D(90), D(108), None, None]
    assert fills_of(result, ids["trail"]) == [(4, D(10), D(108))]


async def test_a_buy_trailing_stop_follows_the_low_down_only() -> None:
    """A short's buy stop 2.5 above the lowest low: 102.5; low 95 -> 97.5; low 96 leaves it;
    low 92 -> 94.5; the high of bar 5 reaches it: filled at 94.5."""
    ids, on_bar = trailing(Side.BUY, trail=2.5)
    script = Script(on_bar=on_bar)
    data = {"AAA": bars("AAA", [flat(100), flat(100), (100, 101, 95, 96),
                                (96, 97, 96, 97), (97, 97, 92, 93), (93, 96, 93, 95),
                                flat(95)])}
    result = await backtest(script, data, risk=SHORTS)
    assert ids["stops"] == [D("102.5"), D("102.5"), D("97.5"), D("97.5"), None, None]
    assert fills_of(result, ids["trail"]) == [(5, D(10), D("94.5"))]


async def test_a_trailing_stop_moves_on_the_bar_an_exit_beside_it_fills() -> None:
    """20 held: an OCO pair and a trailing stop each sell 10. The bar that fills the OCO limit
    at 120 also makes a new high (121): the trailing stop moves to 116 after it. (The move was
    checked before the bar's fill reached the OCO group, with its stop still open: a short sale,
    denied, and the stop stayed at 95.)"""
    ids: dict[str, Any] = {"stops": []}

    def on_bar(s: Scripted, bar: Bar, i: int) -> None:
        if i == 0:
            s.ctx.buy("AAA", 20)
        if i == 1:
            ids["oco"] = s.ctx.oco("AAA", Side.SELL, 10, limit=120, stop=80)
            ids["trail"] = s.ctx.trailing_stop("AAA", Side.SELL, 10, trail=5)
        if i == 3:
            order = s.ctx.order(ids["trail"])
            assert order is not None
            ids["stops"].append(order.stop_price)

    script = Script(on_bar=on_bar)
    result = await backtest(script, {"AAA": bars("AAA", [flat(100), flat(100),
                                                         (100, 121, 100, 120), flat(120)])})
    assert fills_of(result, ids["oco"][0]) == [(2, D(10), D(120))]
    assert ids["stops"] == [D(116)]
    assert [e for e in script.events if e.status == "denied"] == []


# -- 5. after a restart, tied together again from the orders' tags ------------------------------

def _last_status(desk: EngineDesk, coid: str) -> str | None:
    statuses = [e.status for e in desk.committed() if e.client_order_id == coid]
    return statuses[-1] if statuses else None


async def _until_status(desk: EngineDesk, coids: Any, status: str) -> None:
    wanted = list(coids)
    await desk.until(lambda: all(_last_status(desk, c) == status for c in wanted),
                     f"{', '.join(wanted)} to be {status}")


async def test_contingencies_work_on_after_the_portfolio_restarts(migrated_url: str) -> None:
    """The live engine (paper venue, the store of the run). Before the restart: 20 held, an
    open bracket entry (buy 10 at 95, take-profit 110, stop-loss 90), an OCO pair selling 10
    (limit 120, stop 80) and a trailing stop selling 10 (5 below the high, moved to 99). The
    portfolio stops gracefully and starts again: a new runner, a new paper book restored from
    the journal, a new strategy instance that places nothing. Then: the OCO limit fills and
    its stop is canceled; the trailing stop moves up from 99 to 116 and triggers; the bracket
    entry fills and gets its exits, whose stop-loss fills and cancels the take-profit. No
    order is denied; the position ends flat."""
    def on_bar(s: Scripted, bar: Bar, i: int) -> None:
        ctx, memo = s.ctx, s.script.memo
        if "entry" not in memo:
            memo["buy"] = ctx.buy("AAA", 20)
            memo["entry"] = ctx.bracket("AAA", Side.BUY, 10, take_profit=110, stop_loss=90,
                                        limit=95)
        elif "oco" not in memo and ctx.position("AAA") == 20:
            memo["oco"] = ctx.oco("AAA", Side.SELL, 10, limit=120, stop=80)
            memo["trail"] = ctx.trailing_stop("AAA", Side.SELL, 10, trail=5)

    script = Script(on_bar=on_bar)
    memo = script.memo
    async with strategy_desk(migrated_url, script) as (desk, market):
        market.push("AAA", 100)
        await desk.until(lambda: "entry" in memo, "the first orders")
        await _until_status(desk, [memo["buy"], memo["entry"]], "accepted")
        market.push("AAA", 100)  # the buy fills: the OCO pair and the trailing stop
        await desk.until(lambda: "oco" in memo, "the exits")
        oco_limit, oco_stop = memo["oco"]
        trail = memo["trail"]
        await _until_status(desk, [oco_limit, oco_stop, trail], "accepted")
        market.push("AAA", 103, high=104)
        await desk.until(lambda: any(e.client_order_id == trail and e.stop_price == D(99)
                                     for e in desk.committed()), "the trailing stop at 99")

        await desk.restart()
        assert script.made == 2
        market.push("AAA", 120, high=121)  # the OCO limit fills; the trailing high is 121
        await _until_status(desk, [oco_limit], "filled")
        await _until_status(desk, [oco_stop], "canceled")
        await desk.until(lambda: any(e.client_order_id == trail and e.stop_price == D(116)
                                     for e in desk.committed()), "the trailing stop at 116")
        market.push("AAA", 95, low=94)  # down from 120: the trailing stop at 116, the entry
        await _until_status(desk, [trail, memo["entry"]], "filled")
        exits = await desk.until(lambda: _exits_accepted(desk, memo["entry"]), "the exits")
        market.push("AAA", 89)  # the stop-loss
        await _until_status(desk, [exits["sl"]], "filled")
        await _until_status(desk, [exits["tp"]], "canceled")

        filled = {e.client_order_id: (e.filled_quantity, e.avg_fill_price)
                  for e in desk.committed() if e.status == "filled"}
        assert filled == {memo["buy"]: (D(20), D(100)), oco_limit: (D(10), D(120)),
                          trail: (D(10), D(116)), memo["entry"]: (D(10), D(95)),
                          exits["sl"]: (D(10), D(90))}
        assert [e for e in desk.committed() if e.status == "denied"] == []
        assert desk.state().open_orders == 0
        [held] = await desk.rows(positions, portfolio_id=desk.portfolio_id)
        assert held["quantity"] == 0


def _exits_accepted(desk: EngineDesk, entry: str) -> dict[str, str] | None:
    """The bracket's exits once both work (events after the entry filled)."""
    events = desk.committed()
    after = next((i for i, e in enumerate(events)
                  if e.client_order_id == entry and e.status == "filled"), None)
    if after is None:
        return None
    found = {("tp" if e.order_type == "limit" else "sl"): e.client_order_id
             for e in events[after:] if e.side == "sell" and e.status == "accepted"}
    return found if len(found) == 2 else None


async def test_a_bracket_filled_without_its_exits_gets_them_at_the_restart(
        migrated_url: str) -> None:
    """The state a crash between a bracket entry's fill and its exits' write-ahead leaves: the
    database refuses the exits' rows (a trigger), so the entry is filled and no exit exists
    anywhere, the position unprotected. After a restart (a new runner from the journal, the
    database writing again), the journal's entry with no exit member gets its take-profit and
    stop-loss for what it filled; the stop-loss then fills and cancels the take-profit."""
    def on_bar(s: Scripted, bar: Bar, i: int) -> None:
        if "entry" not in s.script.memo:
            s.script.memo["entry"] = s.ctx.bracket("AAA", Side.BUY, 10, take_profit=110,
                                                   stop_loss=90)

    script = Script(on_bar=on_bar)
    memo = script.memo
    async with strategy_desk(migrated_url, script) as (desk, market):
        refused = await desk.refuse_inserts("orders", "NEW.tag LIKE 'oco %'")
        market.push("AAA", 100)
        await desk.until(lambda: "entry" in memo, "the entry")
        entry = str(memo["entry"])
        await _until_status(desk, [entry], "accepted")
        market.push("AAA", 100)  # the entry fills at the open; its exits are refused
        await _until_status(desk, [entry], "filled")
        await desk.until(lambda: desk.state().open_orders == 0,
                         "the exits refused (never durable, never sent)")
        assert _exits_accepted(desk, entry) is None

        await desk.accept_inserts("orders", refused)
        await desk.restart()
        exits = await desk.until(lambda: _exits_accepted(desk, entry), "the exits placed")
        working = {e.order_type: (e.quantity, e.limit_price, e.stop_price)
                   for e in desk.committed()
                   if e.client_order_id in exits.values() and e.status == "accepted"}
        assert working == {"limit": (D(10), D(110), None), "stop": (D(10), None, D(90))}
        market.push("AAA", 89)  # the stop-loss
        await _until_status(desk, [exits["sl"]], "filled")
        await _until_status(desk, [exits["tp"]], "canceled")
        [held] = await desk.rows(positions, portfolio_id=desk.portfolio_id)
        assert held["quantity"] == 0



async def test_no_exits_at_the_restart_for_a_position_closed_another_way(
        migrated_url: str) -> None:
    """As above, the bracket's exits refused; then the position is sold at market (by hand,
    through the API) before the restart. The restart places no exit: there is nothing left to
    protect, and a stop-loss would sell what is no longer held (short sales are allowed here,
    so the risk check would not have refused it)."""
    def on_bar(s: Scripted, bar: Bar, i: int) -> None:
        if "entry" not in s.script.memo:
            s.script.memo["entry"] = s.ctx.bracket("AAA", Side.BUY, 10, take_profit=110,
                                                   stop_loss=90)

    script = Script(on_bar=on_bar)
    memo = script.memo
    shorts = {"allow_short": True, "max_leverage": "2"}
    async with strategy_desk(migrated_url, script, risk=shorts) as (desk, market):
        refused = await desk.refuse_inserts("orders", "NEW.tag LIKE 'oco %'")
        market.push("AAA", 100)
        await desk.until(lambda: "entry" in memo, "the entry")
        entry = str(memo["entry"])
        await _until_status(desk, [entry], "accepted")
        market.push("AAA", 100)  # the entry fills; its exits are refused
        await _until_status(desk, [entry], "filled")
        await desk.until(lambda: desk.state().open_orders == 0,
                         "the exits refused (never durable, never sent)")
        await desk.accept_inserts("orders", refused)
        sold = await desk.submit(Side.SELL, 10)
        assert isinstance(sold, Accepted)
        assert sold.order is not None
        market.push("AAA", 101)  # the market sell fills at this bar's open
        await _until_status(desk, [sold.order.client_order_id], "filled")

        await desk.restart()
        market.push("AAA", 89)  # through where the stop-loss would have been
        await desk.marked(89.0)
        assert desk.state().open_orders == 0
        assert [e.client_order_id for e in desk.committed() if e.side == "sell"
                and e.status in ("accepted", "filled")] == [sold.order.client_order_id] * 2
        [held] = await desk.rows(positions, portfolio_id=desk.portfolio_id)
        assert held["quantity"] == 0

async def test_an_exit_left_open_after_its_sibling_filled_is_canceled_at_the_restart(
        migrated_url: str) -> None:
    """The state a crash between one exit's fill and its sibling's cancel leaves: an OCO pair
    selling the 10 held, whose limit filled; the journal is set back to hold the stop open
    (as it would be had the engine stopped before canceling it). After a restart the pair is
    seen to have exited all it had to (a member filled it all): the stop is canceled, and a
    fall through it sells nothing (the position stays flat, not short)."""
    def on_bar(s: Scripted, bar: Bar, i: int) -> None:
        ctx, memo = s.ctx, s.script.memo
        if "buy" not in memo:
            memo["buy"] = ctx.buy("AAA", 10)
        elif "oco" not in memo and ctx.position("AAA") == 10:
            memo["oco"] = ctx.oco("AAA", Side.SELL, 10, limit=120, stop=80)

    script = Script(on_bar=on_bar)
    memo = script.memo
    async with strategy_desk(migrated_url, script, risk={"allow_short": True,
                                                          "max_leverage": "2"}) as (desk, market):
        market.push("AAA", 100)
        await desk.until(lambda: "buy" in memo, "the buy")
        await _until_status(desk, [str(memo["buy"])], "accepted")
        market.push("AAA", 100)  # the buy fills; the pair is placed
        await desk.until(lambda: "oco" in memo, "the pair")
        limit, stop = memo["oco"]  # type: ignore[misc]
        await _until_status(desk, [limit, stop], "accepted")
        market.push("AAA", 120, high=121)  # the limit fills, the stop is canceled
        await _until_status(desk, [limit], "filled")
        await _until_status(desk, [stop], "canceled")

        await desk.facade.deactivate(desk.portfolio_id)
        own = desk.own_connection()
        try:  # the stop as the journal held it before its cancel
            own.execute("UPDATE orders SET status = 'accepted' WHERE client_order_id = ?",
                        stop)
        finally:
            own.close()
        desk.facade.activate(desk.portfolio_id)
        await desk.running()
        await desk.until(lambda: [e.status for e in desk.committed()
                                  if e.client_order_id == stop][-2:] == ["pending_cancel",
                                                                        "canceled"] and
                         len([e for e in desk.committed() if e.client_order_id == stop
                              and e.status == "canceled"]) == 2, "the stop canceled again")
        market.push("AAA", 70, low=60)  # through the old stop: nothing sells
        await desk.marked(70.0)
        [held] = await desk.rows(positions, portfolio_id=desk.portfolio_id)
        assert held["quantity"] == 0
        assert [e.client_order_id for e in desk.committed()
                if e.status == "filled"] == [memo["buy"], limit]
