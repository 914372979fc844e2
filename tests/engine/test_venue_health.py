"""A venue's stream drops, comes back, or bans the client: the portfolio's view of that venue
(issue 10, behaviour under faults). SYS-006 (orders), SYS-011 (recovery).

While the stream is lost LTS may have missed execution reports, so it sends no new order there
(``VENUE_STALE``) until a resync after the reconnect has run: it then knows every fill the
venue made meanwhile, and trades again by itself. A ban (Binance's 418) halts the portfolio
with the venue's reason instead of hammering it.
"""

from decimal import Decimal

import pytest

from lts.domain.commands import Accepted, Denied, Reason, SetTradingState, TradingState
from lts.domain.orders import OrderType, Side
from lts.persistence.tables import positions
from lts.plugins.broker import VenueBanned, VenueDisconnected

from .desk import EngineDesk

pytestmark = pytest.mark.anyio


async def test_no_order_goes_to_a_venue_whose_stream_is_lost_until_it_resynced(
        desk: EngineDesk) -> None:
    await desk.marked()
    world = desk.venue
    resting = await desk.submit(Side.BUY, 5, order_type=OrderType.LIMIT, limit="99")
    assert isinstance(resting, Accepted)
    assert resting.order is not None
    coid = resting.order.client_order_id
    await desk.until(lambda: coid in world.book, "the venue to hold the order")

    world.push(VenueDisconnected(world.name, desk.engine.clock.now_ns(), "socket closed"))
    await desk.until(lambda: desk.state().venues, "the portfolio to see the venue stale")
    assert "socket closed" in (desk.state().venues or "")
    sent = len(world.received)
    denied = await desk.submit(Side.BUY, 1)
    assert isinstance(denied, Denied)
    assert denied.reason is Reason.VENUE_STALE
    assert len(world.received) == sent  # nothing went out

    # meanwhile the venue traded the resting order; the report never arrived
    world.fill(coid, 5, "99", push=False)
    world.reconnect()
    await desk.until(lambda: desk.state().venues is None, "the resync to finish")
    await desk.until(lambda: desk.state().open_orders == 0, "the missed fill to close the order")
    rows = await desk.rows(positions, portfolio_id=desk.portfolio_id)
    assert [Decimal(r["quantity"]) for r in rows] == [Decimal(5)]

    again = await desk.submit(Side.SELL, 5)  # trading on, by itself
    assert isinstance(again, Accepted), again
    await desk.until(lambda: len(world.received) == sent + 1, "the next order to reach the venue")


async def test_a_drop_during_a_resync_keeps_the_venue_stale(desk: EngineDesk) -> None:
    await desk.marked()
    world = desk.venue
    now = desk.engine.clock.now_ns
    world.push(VenueDisconnected(world.name, now(), "first drop"))
    world.reconnect()
    world.push(VenueDisconnected(world.name, now(), "second drop"))
    await desk.until(lambda: "waiting" in (desk.state().venues or ""),
                     "the second drop to show")
    denied = await desk.submit(Side.BUY, 1)
    assert isinstance(denied, Denied)
    assert denied.reason is Reason.VENUE_STALE
    world.reconnect()
    await desk.until(lambda: desk.state().venues is None, "the venue to be fresh again")
    assert isinstance(await desk.submit(Side.BUY, 1), Accepted)


async def test_a_ban_halts_the_portfolio_with_the_venues_reason(desk: EngineDesk) -> None:
    await desk.marked()
    world = desk.venue
    world.push(VenueBanned(world.name, desk.engine.clock.now_ns(),
                           "418: IP banned until 1767225600000"))
    await desk.until(lambda: desk.state().trading_state == "HALTED", "the portfolio to halt")
    assert "IP banned" in (desk.state().venues or "")
    denied = await desk.submit(Side.BUY, 1)
    assert isinstance(denied, Denied)
    assert denied.reason is Reason.TRADING_HALTED
    # an operator resumes once the ban is over
    assert isinstance(await desk.command(SetTradingState(TradingState.ACTIVE)), Accepted)
    assert desk.state().venues is None
    assert isinstance(await desk.submit(Side.BUY, 1), Accepted)
