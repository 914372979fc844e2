"""Fills are never dropped, on the real engine (issue 9, defect 3). SYS-006 (orders and
positions), SYS-011 (recovery), SYS-013 (integrity).

The venue (:class:`~tests.engine.venue.VenueWorld`) trades as a real one does: after a cancel,
beyond the ordered quantity, before it acknowledged the order, for an order LTS never sent, the
same trade twice, from an SDK's own thread. In every case the books follow every fill: the
stored position is the signed sum of the fills, each order's filled quantity is the sum of its
fills, and the engine's own books, as the facade shows them, agree (every fill here is at 99
while the symbol is marked at 100, so the facade's equity is the initial cash plus one dollar
per unit held: a fill the books missed would show).
"""

from collections import defaultdict
from decimal import Decimal

import anyio
import pytest

from lts.domain.commands import Accepted, CancelOrder, Reply
from lts.domain.events import OrderAdopted
from lts.domain.orders import OrderStatus, OrderType, Side
from lts.persistence.tables import audit_logs, fills, orders, portfolios, positions

from .desk import EngineDesk

pytestmark = pytest.mark.anyio

PRICE = "99"  # every fill; the desk marks AAA at 100
EXTERNAL = "web_8f2a1c"  # an order placed outside LTS (the venue's web page), as a venue names it


def _accepted(reply: Reply) -> str:
    assert isinstance(reply, Accepted), reply
    assert reply.order is not None
    return reply.order.client_order_id


async def _working(desk: EngineDesk, quantity: int = 5, *, limit: str | None = None) -> str:
    """An order the venue has acknowledged (a limit order rests, a market order waits for the
    test's fills)."""
    reply = await desk.submit(Side.BUY, quantity, limit=limit,
                              order_type=OrderType.MARKET if limit is None else OrderType.LIMIT)
    coid = _accepted(reply)
    await desk.until(lambda: desk.state().open_orders and _status(desk, coid) == "accepted",
                     f"{coid} to be accepted")
    return coid


def _status(desk: EngineDesk, coid: str) -> str | None:
    mine = [e for e in desk.committed() if e.client_order_id == coid]
    return mine[-1].status if mine else None


async def _journal_fills(desk: EngineDesk) -> list[dict[str, object]]:
    return await desk.rows(fills, portfolio_id=desk.portfolio_id)


async def _fills_taken(desk: EngineDesk, count: int) -> None:
    async def taken() -> bool:
        return len(await _journal_fills(desk)) >= count
    await desk.until_async(taken, f"{count} fill(s) in the journal")


async def _books_follow_fills(desk: EngineDesk) -> dict[str, Decimal]:
    """The invariant (SYS-006, SYS-013), checked in the database and through the facade; the
    positions (signed sums of the fills) by symbol."""
    pid = desk.portfolio_id
    taken = await _journal_fills(desk)
    keys = [(f["broker"], f["trade_id"]) for f in taken]
    assert len(keys) == len(set(keys)), f"a trade recorded twice: {keys}"
    signed: dict[str, Decimal] = defaultdict(Decimal)
    per_order: dict[str, Decimal] = defaultdict(Decimal)
    [portfolio] = await desk.rows(portfolios, id=pid)
    cash = Decimal(portfolio["initial_cash"])
    for f in taken:
        quantity, commission = Decimal(str(f["quantity"])), Decimal(str(f["commission"]))
        price = Decimal(str(f["price"]))
        # a commission in the asset itself: the venue keeps it, the position does not hold it
        move = quantity - commission if f["side"] == "buy" else -(quantity + commission)
        signed[str(f["symbol"])] += move
        per_order[str(f["client_order_id"])] += quantity  # what traded
        cash -= move * price + Decimal(str(f["fee"])) + commission * price
    held = {s: q for s, q in signed.items() if q}

    stored = {r["symbol"]: Decimal(r["quantity"])
              for r in await desk.rows(positions, portfolio_id=pid)}
    assert {s: q for s, q in stored.items() if q} == held, "positions table != sum of fills"
    order_rows = {r["client_order_id"]: r for r in await desk.rows(orders, portfolio_id=pid)}
    for coid, quantity in per_order.items():
        assert coid in order_rows, f"fills of {coid}, which has no order row"
        assert Decimal(order_rows[coid]["filled_quantity"]) == quantity, (
            f"order {coid}: filled_quantity {order_rows[coid]['filled_quantity']}, its fills "
            f"sum to {quantity}")

    marks = desk.facade.last_prices(pid)
    equity = cash + sum((q * marks[s] for s, q in held.items()), Decimal(0))
    assert desk.state().equity == equity, (
        f"the engine's books (equity {desk.state().equity}) do not hold the fills' positions "
        f"{held} (equity {equity})")
    return held


async def _books_hold(desk: EngineDesk, units: int) -> None:
    """Until the engine's books hold ``units`` more units bought at 99 and marked at 100 (its
    equity is one dollar up per unit). Execution reports are taken into memory even while the
    journal cannot write (issue 9), so this holds with the journal held."""
    [portfolio] = await desk.rows(portfolios, id=desk.portfolio_id)
    want = Decimal(portfolio["initial_cash"]) + units
    await desk.until(lambda: desk.state().equity == want, f"the books to hold {units} unit(s)")


async def _duplicates_seen(desk: EngineDesk, count: int) -> None:
    await desk.until(lambda: desk.duplicate_fills() >= count,
                     f"{count} duplicate fill(s) recognised")


# -- after a cancel, beyond the quantity, before the acknowledgement ------------------------------

@pytest.mark.parametrize("late_fills", [1, 3], ids=["one-late-fill", "three-back-to-back"])
async def test_fills_after_a_cancel_move_the_position_and_mark_the_order(
        desk: EngineDesk, late_fills: int) -> None:
    """Defect 3 (SYS-006, SYS-013): the venue fills an order after LTS canceled it (routine on
    a real venue: the cancel crossed the trades). Each fill moves the position; the order stays
    CANCELED with its filled quantity the sum of the late fills, is marked ``fill_after_close``
    for reconciliation, and each late fill counts in the facade's ``anomalies``. Several late
    fills arrive back to back, as a sweep of the book reports them, faster than the journal
    commits (it is held meanwhile). Before issue 9 a fill for an order no longer open was logged
    and discarded: the position never moved."""
    coid = await _working(desk, 5, limit="99")
    assert isinstance(await desk.command(CancelOrder(coid)), Accepted)
    await desk.until(lambda: _status(desk, coid) == "canceled", f"{coid} to be canceled")

    await desk.facade.flush()
    async with desk.journal_held():  # the venue reports faster than the database commits
        for _ in range(late_fills):
            desk.venue.fill(coid, 1, PRICE)
        await _books_hold(desk, late_fills)
    await _fills_taken(desk, late_fills)

    assert await _books_follow_fills(desk) == {"AAA": Decimal(late_fills)}
    [row] = await desk.rows(orders, client_order_id=coid)
    assert (row["status"], row["anomaly"]) == ("canceled", "fill_after_close")
    assert desk.state().anomalies == late_fills
    assert desk.state().status == "running"


async def test_an_overfill_moves_the_position_by_every_unit(desk: EngineDesk) -> None:
    """Defect 3 (SYS-006): the venue fills 3 of an order of 2. The position is +3, the order
    FILLED with 3 filled and marked ``overfill``, one anomaly. Before issue 9 the overfill
    raised inside the broker's callback after its trade id had been recorded as seen, so the
    fill was lost for good."""
    coid = await _working(desk, 2)
    desk.venue.fill(coid, 3, PRICE)
    await _fills_taken(desk, 1)

    assert await _books_follow_fills(desk) == {"AAA": Decimal(3)}
    [row] = await desk.rows(orders, client_order_id=coid)
    assert (row["status"], row["anomaly"]) == ("filled", "overfill")
    assert desk.state().anomalies == 1
    assert desk.state().status == "running"


async def test_fills_streamed_before_the_acknowledgement_are_applied(desk: EngineDesk) -> None:
    """Defect 3 (SYS-006): the venue streams a partial fill before it answers the submit (its
    answer is held), then acknowledges, then fills the rest. The order ends FILLED, the
    position is +2, nothing is an anomaly. Before issue 9 a fill while the order waited for
    its acknowledgement raised inside the broker's callback."""
    desk.venue.submit_answer = "hold"
    coid = _accepted(await desk.submit(Side.BUY, 2))
    await desk.until(lambda: coid in desk.venue.held, "the submit to reach the venue")
    desk.venue.fill(coid, 1, PRICE, portfolio_id=desk.portfolio_id, symbol="AAA", side=Side.BUY)
    await _fills_taken(desk, 1)
    assert _status(desk, coid) == "partially_filled"

    desk.venue.release(coid)
    await desk.until(lambda: coid in desk.venue.book, "the venue to acknowledge")
    desk.venue.fill(coid, 1, PRICE)
    await _fills_taken(desk, 2)

    assert await _books_follow_fills(desk) == {"AAA": Decimal(2)}
    [row] = await desk.rows(orders, client_order_id=coid)
    assert (row["status"], row["anomaly"]) == ("filled", None)
    assert desk.state().anomalies == 0
    assert desk.state().status == "running"


# -- orders LTS never sent ------------------------------------------------------------------------

@pytest.mark.parametrize("quantities", [[3], [3, 2]], ids=["one-fill", "two-back-to-back"])
async def test_a_fill_for_an_order_lts_never_sent_is_adopted(
        desk: EngineDesk, quantities: list[int]) -> None:
    """Defect 3 (SYS-006, SYS-013): fills for an order placed outside LTS (at the venue's web
    page, with the venue's own id) are adopted: one order row ``ext-<portfolio>-<venue id>``
    tagged ``external`` and marked
    ``external`` whose quantity and filled quantity are the sum of its fills, one audit row
    ``order.adopted``, one ``OrderAdopted`` event, and the position follows, also when the
    fills come back to back, faster than the journal commits (it is held meanwhile). Before
    issue 9 such a fill was logged and discarded."""
    await desk.facade.flush()
    async with desk.journal_held():  # the venue reports faster than the database commits
        for quantity in quantities:
            desk.venue.fill(EXTERNAL, quantity, PRICE, portfolio_id=desk.portfolio_id,
                            symbol="AAA", side=Side.BUY)
        await _books_hold(desk, sum(quantities))
    await _fills_taken(desk, len(quantities))

    assert await _books_follow_fills(desk) == {"AAA": Decimal(sum(quantities))}
    adopted_as = f"ext-{desk.portfolio_id}-{EXTERNAL}"  # never a number of LTS's own
    [row] = await desk.rows(orders, client_order_id=adopted_as)
    assert (row["tag"], row["anomaly"]) == ("external", "external")
    assert Decimal(row["quantity"]) == Decimal(row["filled_quantity"]) == sum(quantities)
    audits = await desk.rows(audit_logs, action="order.adopted")
    assert [a["target"] for a in audits] == [f"order:{adopted_as}"]
    assert audits[0]["detail"]["venue_order"] == EXTERNAL
    adopted = [e for e in desk.committed() if isinstance(e, OrderAdopted)]
    assert [e.client_order_id for e in adopted] == [adopted_as]
    assert desk.state().status == "running"


async def test_a_portfolio_with_an_adopted_order_restarts_and_numbers_on(
        desk: EngineDesk) -> None:
    """Defect 3 with SYS-011 (recovery): after adopting an external order whose id is the
    venue's (not ``<portfolio>-<n>``), the portfolio restarts from its journal, keeps the
    position and numbers its own orders on from where it was."""
    own = await _working(desk, 1)
    desk.venue.fill(own, 1, PRICE)
    desk.venue.fill(EXTERNAL, 2, PRICE, portfolio_id=desk.portfolio_id, symbol="AAA",
                    side=Side.BUY)
    await _fills_taken(desk, 2)

    await desk.restart()
    await desk.marked()
    assert await _books_follow_fills(desk) == {"AAA": Decimal(3)}
    after = _accepted(await desk.submit(Side.BUY, 1))
    assert after == f"{desk.portfolio_id}-2", f"numbering did not go on: {own} then {after}"


# -- duplicates --------------------------------------------------------------------------------

async def test_a_commission_taken_in_the_asset_bought_is_not_held(desk: EngineDesk) -> None:
    """Binance takes its commission from what a buy receives: 5 bought, 4.995 held. The order
    filled its 5, the position holds what the venue holds (its balance), the cash paid is
    5 x 99; after a restart (the books rebuilt from the journal's fills) the same."""
    coid = await _working(desk, 5)
    desk.venue.fill(coid, 5, PRICE, commission="0.005")
    await _fills_taken(desk, 1)
    await desk.until(lambda: desk.state().open_orders == 0, "the order to be filled")
    assert await _books_follow_fills(desk) == {"AAA": Decimal("4.995")}
    [row] = await desk.rows(orders, client_order_id=coid)
    assert (row["status"], Decimal(row["filled_quantity"])) == ("filled", 5)
    [portfolio] = await desk.rows(portfolios, id=desk.portfolio_id)
    # marked at 100: cash less 5 x 99, plus 4.995 x 100
    assert desk.state().equity == Decimal(portfolio["initial_cash"]) - 495 + Decimal("499.5")
    await desk.restart()
    await desk.marked()
    assert await _books_follow_fills(desk) == {"AAA": Decimal("4.995")}


async def test_a_trade_reported_twice_changes_nothing(desk: EngineDesk) -> None:
    """Defect 3 (SYS-013): the same trade id reported again changes nothing: while its order is
    open, after the order closed, and again after a restart (then only the journal knows it).
    The journal holds each trade once and the books stay with the first report."""
    coid = await _working(desk, 5)
    first = desk.venue.fill(coid, 2, PRICE)
    desk.venue.push(first)  # again while the order is open
    await _fills_taken(desk, 1)
    await _duplicates_seen(desk, 1)
    assert await _books_follow_fills(desk) == {"AAA": Decimal(2)}

    last = desk.venue.fill(coid, 3, PRICE)
    await _fills_taken(desk, 2)
    await desk.until(lambda: _status(desk, coid) == "filled", f"{coid} to be filled")
    desk.venue.push(last)  # after the order closed
    desk.venue.push(first)
    await _duplicates_seen(desk, 3)
    assert await _books_follow_fills(desk) == {"AAA": Decimal(5)}

    await desk.restart()
    await desk.marked()
    desk.venue.push(first)  # after a restart: only the journal remembers it
    desk.venue.push(last)
    await _duplicates_seen(desk, 2)
    assert await _books_follow_fills(desk) == {"AAA": Decimal(5)}
    assert len(await _journal_fills(desk)) == 2
    assert desk.state().anomalies == 0


async def test_a_fill_pushed_from_another_thread_is_applied(desk: EngineDesk) -> None:
    """Defect 3 (SYS-006): a venue SDK reports a fill from its own thread (``threadsafe``); the
    runner takes it like any other and the books follow."""
    coid = await _working(desk, 3)
    await anyio.to_thread.run_sync(
        lambda: desk.venue.fill(coid, 3, PRICE, threadsafe=True))
    await _fills_taken(desk, 1)
    assert await _books_follow_fills(desk) == {"AAA": Decimal(3)}
    await desk.until(lambda: _status(desk, coid) == "filled", f"{coid} to be filled")
    assert desk.venue.book[coid].status is OrderStatus.FILLED
