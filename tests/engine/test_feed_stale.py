"""A feed that stops sending (issue 12, operations): the asset is stale after
``engine.feed_stale_seconds`` (and three of its usual intervals between bars); its strategy's
new orders are denied ``FEED_STALE`` while the operator's still go; the portfolio's state names
the asset; the first data back ends it all. SYS-004, SYS-010.

The real engine, a live feed the test pushes bars into, a scripted trading strategy that tries
one buy each time the test asks (on a timer, so it can try with no bars coming).
"""

from typing import Any

import anyio
import pytest

from lts.domain.commands import Accepted
from lts.domain.orders import OrderType, Side

from .scripted_strategy import Script, Scripted
from .strategy_desk import strategy_desk

pytestmark = pytest.mark.anyio

STALE_AFTER = 1.0  # seconds: far above a loaded machine's stalls
TICK = 20_000_000  # the strategy's timer, ns


def trying_script() -> Script:
    """Buys 1 AAA at the next timer after ``memo["try"]`` is set, once per setting."""
    def on_start(s: Scripted) -> None:
        s.ctx.set_timer("tick", every_ns=TICK)

    def on_timer(s: Scripted, name: str, ts: int) -> None:
        if s.script.memo.pop("try", None):
            tries = s.script.memo.setdefault("tries", [])
            assert isinstance(tries, list)
            tries.append(s.ctx.buy("AAA", 1))

    return Script(on_start=on_start, on_timer=on_timer)


def outcome(script: Script, coid: str) -> tuple[str, str | None] | None:
    """The first answer the strategy heard for its order: (status, reason)."""
    for event in script.events:
        if event.client_order_id == coid and event.status in ("denied", "accepted",
                                                               "submitted", "filled"):
            return event.status, event.reason
    return None


async def attempt(desk: Any, script: Script) -> tuple[str, str | None]:
    """One buy from the strategy, and how it went."""
    done = len(script.memo.get("tries", []))  # type: ignore[arg-type]
    script.memo["try"] = True
    await desk.until(lambda: len(script.memo.get("tries", [])) > done,  # type: ignore[arg-type]
                     "the strategy's try")
    coid = script.memo["tries"][-1]  # type: ignore[index]
    assert isinstance(coid, str)
    answer: tuple[str, str | None] = await desk.until(lambda: outcome(script, coid),
                                                     "the order's first event")
    return answer


async def test_a_feed_that_stops_pauses_its_strategy_until_data_returns(
        migrated_url: str) -> None:
    """The feed sends nothing from its start: after ``feed_stale_seconds`` the asset is stale,
    the strategy's buy is denied FEED_STALE and the operator's is accepted. Then bars come (a
    live feed, pushed every 50 ms): the asset is fresh again and the strategy's buy goes."""
    script = trying_script()
    engine = {"feed_stale_seconds": STALE_AFTER, "ack_timeout": 0.4}
    async with strategy_desk(migrated_url, script, engine=engine) as (desk, market):
        await desk.until(lambda: desk.state().stale_feeds == ("AAA",), "AAA stale")
        assert await attempt(desk, script) == ("denied", "FEED_STALE")
        # an operator's order still goes (a limit: no price has been seen yet)
        reply = await desk.submit(Side.BUY, 1, order_type=OrderType.LIMIT, limit="99")
        assert isinstance(reply, Accepted), reply

        async with anyio.create_task_group() as tg:
            tg.start_soon(live_feed, market)
            await desk.until(lambda: desk.state().stale_feeds == (), "AAA fresh again")
            assert (await attempt(desk, script))[0] != "denied"
            tg.cancel_scope.cancel()


async def live_feed(market: Any) -> None:
    """A bar every 50 ms (a live market), until canceled."""
    price = 100.0
    while True:
        market.push("AAA", price)
        price += 0.01
        await anyio.sleep(0.05)


async def test_a_feed_is_late_only_after_three_of_its_intervals(migrated_url: str) -> None:
    """A feed whose history has bars a minute apart is not stale after the setting's 0.3 s of
    waiting for its first live bar (it is late after three minutes), while the engine's other
    portfolio, on a feed that has said nothing of its interval, is stale by then."""
    script = trying_script()
    engine = {"feed_stale_seconds": 0.3, "ack_timeout": 0.4}
    async with strategy_desk(migrated_url, script, engine=engine, backfill=5,
                             history={"AAA": [100.0, 100.5, 101.0, 100.8, 101.2]}
                             ) as (desk, _market):
        started = anyio.current_time()
        other = desk.facade.state(1)  # the desk's own portfolio, on a quiet feed
        assert other is not None
        assert other.portfolio_id != desk.portfolio_id

        def other_stale_and_a_second_gone() -> bool:
            state = desk.facade.state(1)
            return state is not None and bool(state.stale_feeds) and \
                anyio.current_time() - started > 1.0

        await desk.until(other_stale_and_a_second_gone, "the other portfolio stale")
        assert desk.state().stale_feeds == ()
        assert (await attempt(desk, script))[0] != "denied"
