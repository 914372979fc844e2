"""The order path on the real engine: commands in, committed events out (SYS-006, SYS-013).

An engine desk (:mod:`tests.engine.desk`): the real engine, its supervisor, runner, order
manager, risk and journal on SQLite and PostgreSQL; only the venue is scripted.
"""

import pytest

from lts.domain.commands import Accepted, CancelOrder, Denied, Reason
from lts.domain.orders import OrderType, Side
from lts.persistence.tables import orders

from .conftest import StatusReader
from .desk import EngineDesk

pytestmark = pytest.mark.anyio


async def test_the_order_row_is_committed_before_the_venue_sees_the_order(
        desk: EngineDesk, read_status: StatusReader) -> None:
    """Write-ahead (architecture §5): inside ``submit`` the venue reads the database through a
    connection of its own and finds the order's row already committed."""
    seen: list[str | None] = []
    desk.venue.on_submit = lambda order: seen.append(read_status(order.client_order_id))
    reply = await desk.submit(Side.BUY, 5)
    assert isinstance(reply, Accepted)
    assert reply.order is not None
    [at_submit] = seen
    assert at_submit in ("pending_submit", "submitted"), seen
    await desk.until(lambda: desk.state().open_orders == 1, "the order to be open")


async def test_events_go_out_only_once_committed_and_in_sequence(desk: EngineDesk) -> None:
    """Committed events only, outward: each event delivered has its row in the journal, and
    the sequence numbers run 1, 2, 3, ... without a gap."""
    reply = await desk.submit(Side.BUY, 2)
    assert isinstance(reply, Accepted)
    assert reply.order is not None
    coid = reply.order.client_order_id
    await desk.until(lambda: desk.venue.book.get(coid), "the venue to take the order")
    desk.venue.fill(coid, 2, "100.5")
    await desk.until(lambda: any(e.status == "filled" for e in desk.committed()),
                     "the fill event")
    events = desk.committed()
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    assert [type(e).__name__ for e in events] == ["OrderSubmitted", "OrderAccepted",
                                                  "OrderFilled"]
    [row] = await desk.rows(orders, client_order_id=coid)
    assert (row["status"], str(row["filled_quantity"])) == ("filled", "2")


async def test_a_denial_is_an_answer_with_its_reason_and_nothing_is_sent(
        desk: EngineDesk) -> None:
    reply = await desk.submit(Side.BUY, "0.5")  # lot size 1
    assert isinstance(reply, Denied)
    assert reply.reason is Reason.LOT_SIZE
    assert reply.order is not None
    assert reply.order.status.value == "denied"
    assert desk.venue.received == []


async def test_a_limit_order_rests_and_a_cancel_is_answered(desk: EngineDesk) -> None:
    reply = await desk.submit(Side.BUY, 1, order_type=OrderType.LIMIT, limit="90")
    assert isinstance(reply, Accepted)
    assert reply.order is not None
    coid = reply.order.client_order_id
    await desk.until(lambda: desk.venue.book.get(coid), "the venue to take the order")
    answer = await desk.command(CancelOrder(coid))
    assert isinstance(answer, Accepted)
    await desk.until(lambda: any(e.status == "canceled" for e in desk.committed()),
                     "the cancel")
    assert desk.venue.cancels == [coid]
