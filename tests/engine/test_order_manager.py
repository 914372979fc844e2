"""The order manager on real parts: a migrated SQLite file, the running Journal, an InProcessBus,
a RiskCheck, a Ledger and the PaperBroker (or a recording fake venue where the test must control
what the venue answers). SYS-006 (order lifecycle, positions), SYS-013 (write-ahead, idempotent
fills, integrity).
"""

from decimal import Decimal

import pytest

from lts.domain.events import PositionChanged
from lts.domain.market import Bar
from lts.domain.orders import Fill, OrderStatus, OrderType, Side
from lts.engine.risk import RiskLimits, TradingState
from lts.persistence.tables import fills, order_events, orders, positions
from lts.plugins.broker.paper import PaperBroker

from ._support import SECOND, T0, make_fill, make_request
from .conftest import INITIAL_CASH, Desk, DeskFactory, RecordingVenue, StatusReader

pytestmark = pytest.mark.anyio

MINUTE = 60 * SECOND


def make_bar(open: float, *, minute: int = 0, volume: float = 1_000.0) -> Bar:
    return Bar("AAA", T0 + minute * MINUTE, open, open + 1, open - 1, open, volume)


def venue_fill(desk: Desk, quantity: str, price: str, trade_id: str, *, coid: str | None = None,
               side: Side = Side.BUY, fee: str = "0") -> Fill:
    return make_fill(quantity, price, side=side, fee=fee, trade_id=trade_id, broker="venue",
                     coid=coid or f"{desk.portfolio_id}-1", portfolio_id=desk.portfolio_id,
                     ts=desk.clock.ts)


def kinds(desk: Desk) -> list[tuple[str, int]]:
    return [(e.type, e.seq) for e in desk.events.drain()]


# -- write-ahead ----------------------------------------------------------------------------------

async def test_the_order_row_is_committed_before_the_venue_sees_the_order(
        make_desk: DeskFactory, read_status: StatusReader) -> None:
    """Write-ahead (architecture §5). The fake venue, inside ``submit``, reads the database
    through a connection of its own: only a committed row is visible there. The row it sees is
    the PENDING_SUBMIT insert; the SUBMITTED update follows without being waited for."""
    venue = RecordingVenue(read_status=read_status)
    desk = make_desk(venue, durable=True)
    desk.ledger.mark("AAA", 100.0)
    order = await desk.om.submit(make_request(10))

    coid = f"{desk.portfolio_id}-1"
    assert order.client_order_id == coid
    assert venue.rows_at_submit == [(coid, "pending_submit")]
    assert [o.client_order_id for o in venue.orders] == [coid]
    [row] = await desk.rows(orders)
    assert (row["status"], row["broker"], row["quantity"]) == ("submitted", "venue", Decimal(10))


async def test_without_durable_the_venue_may_see_the_order_first(
        make_desk: DeskFactory, read_status: StatusReader) -> None:
    """The backtest mode, and the proof that the probe above can tell the difference."""
    venue = RecordingVenue(read_status=read_status)
    desk = make_desk(venue, durable=False)
    desk.ledger.mark("AAA", 100.0)
    await desk.om.submit(make_request(10))
    assert venue.rows_at_submit == [(f"{desk.portfolio_id}-1", None)]
    assert [r["status"] for r in await desk.rows(orders)] == ["submitted"]


async def test_a_new_order_in_a_batch_commits_the_batch_changes_before_it(
        make_desk: DeskFactory, read_status: StatusReader, portfolio_id: int) -> None:
    """Order rows are written once per batch of bars, but a new order's write-ahead commit takes
    the batch's changes so far with it: when the venue sees the second order, the first one's
    fill and its FILLED row are on disk together (a crash in between leaves no fill without its
    order's filled quantity)."""
    first_coid = f"{portfolio_id}-1"
    venue = RecordingVenue(read_status=lambda _coid: read_status(first_coid))
    desk = make_desk(venue, durable=True)
    desk.ledger.mark("AAA", 100.0)
    await desk.om.submit(make_request(10))
    desk.om.begin_batch()
    desk.om.on_fill(venue_fill(desk, "10", "100", "T1"))
    await desk.om.submit(make_request(5))
    desk.om.end_batch()
    assert venue.rows_at_submit[1] == (f"{desk.portfolio_id}-2", "filled")


# -- denials --------------------------------------------------------------------------------------

@pytest.mark.parametrize(("state", "limits", "reason"), [
    (TradingState.HALTED, RiskLimits(), "TRADING_HALTED"),
    (TradingState.ACTIVE, RiskLimits(max_order_notional=Decimal(500)), "MAX_ORDER_NOTIONAL"),
])
async def test_a_denied_order_is_stored_with_its_reason_and_never_sent(
        make_desk: DeskFactory, state: TradingState, limits: RiskLimits, reason: str) -> None:
    venue = RecordingVenue()
    desk = make_desk(venue, state=state, limits=limits)
    desk.ledger.mark("AAA", 100.0)
    order = await desk.om.submit(make_request(10))

    assert (order.status, order.reason) == (OrderStatus.DENIED, reason)
    assert venue.orders == []
    assert desk.om.open == {}
    assert (desk.om.orders_created, desk.om.orders_denied) == (1, 1)
    [event] = desk.events.drain()
    assert (event.type, event.seq, event.status, event.reason) == (
        "order.denied", 1, "denied", reason)
    [row] = await desk.rows(orders)
    assert (row["status"], row["reason"]) == ("denied", reason)
    [stored] = await desk.rows(order_events)
    assert (stored["type"], stored["seq"], stored["payload"]["reason"]) == (
        "order.denied", 1, reason)


# -- the whole life of an order with the paper venue ----------------------------------------------

async def test_paper_order_events_carry_increasing_seq_on_the_bus_and_in_the_journal(
        make_desk: DeskFactory) -> None:
    desk = make_desk(PaperBroker(fees_bps=Decimal(5)))
    desk.tick(make_bar(100.0))
    first = await desk.om.submit(make_request(10))
    desk.tick(make_bar(101.0, minute=1))
    second = await desk.om.submit(make_request(4, Side.SELL))
    desk.tick(make_bar(102.0, minute=2))

    assert (first.status, second.status) == (OrderStatus.FILLED, OrderStatus.FILLED)
    events = desk.events.drain()
    assert [(e.type, e.seq, e.client_order_id) for e in events] == [
        ("order.submitted", 1, first.client_order_id),
        ("order.accepted", 2, first.client_order_id),
        ("order.filled", 3, first.client_order_id),
        ("order.submitted", 4, second.client_order_id),
        ("order.accepted", 5, second.client_order_id),
        ("order.filled", 6, second.client_order_id),
    ]
    fill = events[2].fill
    assert fill is not None
    assert (fill.quantity, fill.price, fill.fee) == (Decimal(10), Decimal(101), Decimal("0.505"))
    assert events[2].ts_event == T0 + MINUTE
    stored = await desk.rows(order_events, portfolio_id=desk.portfolio_id)
    assert [(r["seq"], r["type"]) for r in stored] == [(e.seq, e.type) for e in events]


async def test_event_seq_and_order_numbers_continue_from_the_journal(
        make_desk: DeskFactory) -> None:
    desk = make_desk(RecordingVenue(), next_order_number=7, next_event_seq=41)
    desk.ledger.mark("AAA", 100.0)
    order = await desk.om.submit(make_request(1))
    assert order.client_order_id == f"{desk.portfolio_id}-7"
    assert kinds(desk) == [("order.submitted", 42)]
    assert (await desk.om.submit(make_request(1))).client_order_id == f"{desk.portfolio_id}-8"


async def test_a_fill_updates_order_position_ledger_and_database_together(
        make_desk: DeskFactory) -> None:
    desk = make_desk(PaperBroker(fees_bps=Decimal(5)))
    desk.tick(make_bar(100.0))
    order = await desk.om.submit(make_request(10))
    desk.tick(make_bar(101.0, minute=1))

    assert desk.ledger.position("AAA") == Decimal(10)
    assert desk.ledger.cash == INITIAL_CASH - Decimal("1010.505")
    assert desk.om.open == {}
    assert desk.position_events.drain() == [PositionChanged(
        desk.portfolio_id, "AAA", Decimal(10), Decimal(101), Decimal(0), T0 + MINUTE)]

    [row] = await desk.rows(orders)
    assert (row["status"], row["filled_quantity"], row["avg_fill_price"]) == (
        "filled", Decimal(10), Decimal(101))
    [fill] = await desk.rows(fills)
    assert (fill["client_order_id"], fill["broker"], fill["trade_id"], fill["quantity"],
            fill["price"], fill["fee"]) == (order.client_order_id, "paper",
                                            f"{order.client_order_id}-1", Decimal(10),
                                            Decimal(101), Decimal("0.505"))
    [pos] = await desk.rows(positions)
    assert (pos["symbol"], pos["quantity"], pos["avg_price"], pos["realized_pnl"], pos["fees"],
            pos["ts_last"]) == ("AAA", Decimal(10), Decimal(101), Decimal(0), Decimal("0.505"),
                                T0 + MINUTE)

    await desk.om.submit(make_request(4, Side.SELL))
    desk.tick(make_bar(111.0, minute=2))
    [pos] = await desk.rows(positions)
    assert (pos["quantity"], pos["realized_pnl"]) == (Decimal(6), Decimal(40))


# -- idempotent fills -----------------------------------------------------------------------------

async def test_a_duplicate_fill_changes_nothing(make_desk: DeskFactory) -> None:
    desk = make_desk(RecordingVenue())
    desk.ledger.mark("AAA", 100.0)
    order = await desk.om.submit(make_request(10, order_type=OrderType.LIMIT, limit="100"))
    desk.om.on_order_status(order.client_order_id, OrderStatus.ACCEPTED, T0)
    first = venue_fill(desk, "4", "100", "T1")

    desk.om.on_fill(first)
    desk.om.on_fill(first)
    assert desk.om.duplicate_fills == 1
    assert (order.status, order.filled_quantity) == (OrderStatus.PARTIALLY_FILLED, Decimal(4))
    assert desk.ledger.position("AAA") == Decimal(4)
    assert desk.ledger.cash == INITIAL_CASH - Decimal(400)
    assert [k for k, _ in kinds(desk)] == ["order.submitted", "order.accepted",
                                           "order.partially_filled"]
    assert len(desk.position_events.drain()) == 1

    desk.om.on_fill(venue_fill(desk, "6", "100", "T2"))
    desk.om.on_fill(first)  # late duplicate after the order is done
    assert desk.om.duplicate_fills == 2
    assert order.status is OrderStatus.FILLED
    assert desk.ledger.position("AAA") == Decimal(10)
    assert [f["trade_id"] for f in await desk.rows(fills)] == ["T1", "T2"]
    [pos] = await desk.rows(positions)
    assert pos["quantity"] == Decimal(10)


async def test_fills_seen_before_a_restart_are_ignored(make_desk: DeskFactory) -> None:
    desk = make_desk(RecordingVenue(), seen_trades={("venue", "T1")})
    desk.ledger.mark("AAA", 100.0)
    order = await desk.om.submit(make_request(10))
    desk.om.on_fill(venue_fill(desk, "10", "100", "T1"))
    assert desk.om.duplicate_fills == 1
    assert order.filled_quantity == 0
    assert await desk.rows(fills) == []


# -- venue answers --------------------------------------------------------------------------------

async def test_a_venue_that_refuses_to_send_makes_a_rejection(make_desk: DeskFactory) -> None:
    desk = make_desk(RecordingVenue(refuse=ConnectionError("venue down")))
    desk.ledger.mark("AAA", 100.0)
    order = await desk.om.submit(make_request(10))
    assert (order.status, order.reason) == (OrderStatus.REJECTED,
                                            "broker refused: ConnectionError")
    assert desk.om.open == {}
    assert [k for k, _ in kinds(desk)] == ["order.submitted", "order.rejected"]
    [row] = await desk.rows(orders)
    assert (row["status"], row["reason"]) == ("rejected", "broker refused: ConnectionError")


async def test_cancel_goes_through_pending_cancel_to_canceled(make_desk: DeskFactory) -> None:
    desk = make_desk(PaperBroker())
    desk.tick(make_bar(100.0))
    order = await desk.om.submit(make_request(10, order_type=OrderType.LIMIT, limit="90"))
    assert desk.om.cancel(order.client_order_id) is True
    assert order.status is OrderStatus.CANCELED
    assert desk.om.cancel(order.client_order_id) is False
    assert [k for k, _ in kinds(desk)] == ["order.submitted", "order.accepted",
                                           "order.pending_cancel", "order.canceled"]
    assert [r["status"] for r in await desk.rows(orders)] == ["canceled"]


async def test_no_acknowledgement_in_time_is_unknown_not_rejected(
        make_desk: DeskFactory) -> None:
    desk = make_desk(RecordingVenue())
    desk.ledger.mark("AAA", 100.0)
    order = await desk.om.submit(make_request(10))
    desk.clock.ts = T0 + 5 * SECOND
    assert desk.om.mark_unacknowledged(10 * SECOND) == 0
    desk.clock.ts = T0 + 11 * SECOND
    assert desk.om.mark_unacknowledged(10 * SECOND) == 1
    assert (order.status, order.reason) == (OrderStatus.UNKNOWN, "no acknowledgement in time")
    assert order.client_order_id in desk.om.open  # still open until reconciled
    [row] = await desk.rows(orders)
    assert row["status"] == "unknown"


async def test_illegal_unknown_or_repeated_reports_change_nothing(make_desk: DeskFactory) -> None:
    desk = make_desk(RecordingVenue())
    desk.ledger.mark("AAA", 100.0)
    order = await desk.om.submit(make_request(10))
    desk.om.on_order_status(order.client_order_id, OrderStatus.PENDING_SUBMIT, T0)
    desk.om.on_order_status("no-such-order", OrderStatus.CANCELED, T0)
    assert order.status is OrderStatus.SUBMITTED
    desk.om.on_order_status(order.client_order_id, OrderStatus.ACCEPTED, T0)
    desk.om.on_order_status(order.client_order_id, OrderStatus.ACCEPTED, T0)  # repeated: no event
    assert kinds(desk) == [("order.submitted", 1), ("order.accepted", 2)]
