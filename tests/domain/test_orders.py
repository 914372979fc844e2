"""The order state machine (``TRANSITIONS``) and fill accounting on :class:`Order`.

SYS-006 (order and position tracking), SYS-013 (integrity): an order's status only moves along
an edge of the transition table, a refused move changes nothing, and nothing leaves a terminal
status. Issue 9: a fill is never refused (the venue traded, the position must follow): it leads
out of every open status, PENDING_SUBMIT included (a venue's fill may overtake the bookkeeping of
the send); one after the order closed, or beyond its quantity, is applied all the same, returns a
:class:`FillAnomaly` and marks the order for reconciliation. The filled quantity is always the sum
of the fills.
"""

import copy
from collections import deque
from decimal import Decimal, Inexact, localcontext

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from lts.domain.orders import (
    OPEN_STATUSES,
    TERMINAL_STATUSES,
    TRANSITIONS,
    FillAnomaly,
    InvalidTransition,
    Order,
    OrderRequest,
    OrderStatus,
    OrderType,
    Side,
    TimeInForce,
    can_transition,
)

S = OrderStatus
EXPECTED_TERMINAL = frozenset({S.FILLED, S.CANCELED, S.REJECTED, S.DENIED, S.EXPIRED})


def make_order(quantity: Decimal = Decimal(10), status: OrderStatus = S.PENDING_SUBMIT,
               side: Side = Side.BUY) -> Order:
    return Order(client_order_id="c-1", portfolio_id=1, symbol="AAPL", side=side,
                 quantity=quantity, status=status)


def reachable_from(start: OrderStatus) -> set[OrderStatus]:
    seen = {start}
    todo = deque([start])
    while todo:
        for nxt in TRANSITIONS[todo.popleft()]:
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


# --- the table -----------------------------------------------------------------------------

def test_every_status_has_a_row() -> None:
    """SYS-006: the table is total: no status is missing a row, no row names a stranger."""
    assert set(TRANSITIONS) == set(OrderStatus)
    for row in TRANSITIONS.values():
        assert isinstance(row, frozenset)
        assert row <= set(OrderStatus)


def test_terminal_statuses_are_exactly_the_five() -> None:
    assert TERMINAL_STATUSES == EXPECTED_TERMINAL
    assert frozenset(OrderStatus) - EXPECTED_TERMINAL == OPEN_STATUSES
    assert S.UNKNOWN in OPEN_STATUSES  # a timeout is not an outcome


@pytest.mark.parametrize("terminal", sorted(EXPECTED_TERMINAL, key=lambda s: s.value))
def test_terminal_status_has_no_exits(terminal: OrderStatus) -> None:
    """SYS-006: FILLED, CANCELED, REJECTED, DENIED and EXPIRED are final."""
    assert TRANSITIONS[terminal] == frozenset()
    order = make_order(status=terminal)
    assert not order.is_open
    before = copy.copy(order)
    for target in OrderStatus:
        assert not can_transition(terminal, target)
        with pytest.raises(InvalidTransition):
            order.transition(target, ts=99)
        assert order == before


@pytest.mark.parametrize("status", sorted(OPEN_STATUSES, key=lambda s: s.value))
def test_every_open_status_can_still_finish(status: OrderStatus) -> None:
    """No open status is a trap: each one reaches some terminal status."""
    assert TRANSITIONS[status]
    assert reachable_from(status) & TERMINAL_STATUSES


def test_every_status_is_reachable_from_pending_submit() -> None:
    assert reachable_from(S.PENDING_SUBMIT) == set(OrderStatus)


@pytest.mark.parametrize("status", sorted(OPEN_STATUSES, key=lambda s: s.value))
def test_fills_lead_out_of_every_open_status(status: OrderStatus) -> None:
    """Issue 9: a fill may come in any open status (a venue's fill may overtake the bookkeeping
    of the send, or a cancel), so the table never refuses the move a fill makes."""
    assert {S.PARTIALLY_FILLED, S.FILLED} <= TRANSITIONS[status]


def test_pending_submit_may_be_filled_before_it_is_marked_sent() -> None:
    order = make_order()
    order.transition(S.FILLED, ts=3)
    assert order.status is S.FILLED
    assert order.ts_last == 3
    assert not order.is_open


def test_a_pending_cancel_may_be_rejected() -> None:
    """The venue refused the order after all (its answer crossed the cancel)."""
    order = make_order(status=S.PENDING_CANCEL)
    order.transition(S.REJECTED, ts=4, reason="insufficient margin")
    assert (order.status, order.reason) == (S.REJECTED, "insufficient margin")


def test_the_table_has_the_edges_of_issue_9() -> None:
    """The rows, as the order manager relies on them."""
    live = {S.PARTIALLY_FILLED, S.FILLED, S.PENDING_CANCEL, S.CANCELED, S.EXPIRED, S.UNKNOWN}
    assert TRANSITIONS[S.PENDING_SUBMIT] == {S.SUBMITTED, S.DENIED, S.REJECTED, S.UNKNOWN,
                                             S.CANCELED, S.ACCEPTED, S.PARTIALLY_FILLED,
                                             S.FILLED}
    assert TRANSITIONS[S.SUBMITTED] == live | {S.ACCEPTED, S.REJECTED}
    assert TRANSITIONS[S.ACCEPTED] == live
    assert TRANSITIONS[S.PARTIALLY_FILLED] == live
    assert TRANSITIONS[S.PENDING_CANCEL] == live | {S.ACCEPTED, S.REJECTED}
    assert TRANSITIONS[S.UNKNOWN] == {S.SUBMITTED, S.ACCEPTED, S.PARTIALLY_FILLED, S.FILLED,
                                      S.CANCELED, S.REJECTED, S.EXPIRED, S.PENDING_CANCEL}
    # DENIED is risk's word on an order never sent: no other way in
    assert [s for s, row in TRANSITIONS.items() if S.DENIED in row] == [S.PENDING_SUBMIT]


def test_transition_records_time_and_reason() -> None:
    order = make_order()
    order.transition(S.SUBMITTED, ts=5)
    assert (order.status, order.ts_last, order.reason) == (S.SUBMITTED, 5, "")
    order.transition(S.REJECTED, ts=6, reason="insufficient margin")
    assert (order.status, order.ts_last, order.reason) == (S.REJECTED, 6, "insufficient margin")


def test_invalid_transition_is_a_value_error_naming_the_edge() -> None:
    order = make_order()
    with pytest.raises(InvalidTransition, match="c-1: pending_submit -> pending_cancel"):
        order.transition(S.PENDING_CANCEL, ts=1)
    assert issubclass(InvalidTransition, ValueError)


def test_from_request_starts_pending_submit() -> None:
    req = OrderRequest(symbol="MSFT", side=Side.SELL, quantity=Decimal(3),
                       order_type=OrderType.LIMIT, time_in_force=TimeInForce.DAY,
                       limit_price=Decimal("410.50"), tag="t")
    order = Order.from_request(req, client_order_id="c-9", portfolio_id=7, ts_init=42)
    assert order.status is S.PENDING_SUBMIT
    assert order.is_open
    assert (order.symbol, order.side, order.quantity) == ("MSFT", Side.SELL, Decimal(3))
    assert (order.order_type, order.time_in_force) == (OrderType.LIMIT, TimeInForce.DAY)
    assert (order.limit_price, order.stop_price, order.tag) == (Decimal("410.50"), None, "t")
    assert (order.ts_init, order.ts_last) == (42, 42)
    assert order.filled_quantity == 0
    assert order.avg_fill_price is None
    assert order.leaves_quantity == Decimal(3)


statuses = st.sampled_from(list(OrderStatus))


@settings(max_examples=200)
@given(start=statuses, targets=st.lists(statuses, max_size=40))
def test_random_transition_sequences_follow_the_table(
        start: OrderStatus, targets: list[OrderStatus]) -> None:
    """SYS-006, SYS-013: every accepted step is an edge of TRANSITIONS; every refused step raises
    InvalidTransition and leaves the order exactly as it was; once terminal, nothing moves."""
    order = make_order(status=start)
    terminal_at: OrderStatus | None = start if start in TERMINAL_STATUSES else None
    for ts, target in enumerate(targets, start=1):
        before = copy.copy(order)
        try:
            order.transition(target, ts=ts, reason=f"r{ts}")
        except InvalidTransition:
            assert target not in TRANSITIONS[before.status]
            assert order == before
        else:
            assert target in TRANSITIONS[before.status]
            assert terminal_at is None, f"moved out of terminal {terminal_at}"
            assert order.status is target
            assert order.ts_last == ts
            assert order.reason == f"r{ts}"
        if order.status in TERMINAL_STATUSES:
            terminal_at = terminal_at or order.status
            assert order.status is terminal_at
        assert order.is_open == (order.status not in TERMINAL_STATUSES)


# --- fills ---------------------------------------------------------------------------------

def test_partial_then_full_fill() -> None:
    """SYS-006: a partial fill gives PARTIALLY_FILLED, the rest gives FILLED, with the
    quantity-weighted average fill price, exactly."""
    order = make_order(quantity=Decimal(5))
    order.transition(S.SUBMITTED, ts=1)

    order.apply_fill(Decimal(2), Decimal("100.00"), ts=2)
    assert order.status is S.PARTIALLY_FILLED
    assert order.filled_quantity == Decimal(2)
    assert order.leaves_quantity == Decimal(3)
    assert order.avg_fill_price == Decimal("100.00")
    assert order.ts_last == 2
    assert order.is_open

    order.apply_fill(Decimal(3), Decimal("101.00"), ts=3)
    assert order.status is S.FILLED
    assert order.filled_quantity == Decimal(5)
    assert order.leaves_quantity == 0
    assert order.avg_fill_price == Decimal("100.6")  # (2*100 + 3*101) / 5
    assert order.ts_last == 3
    assert not order.is_open


def test_average_fill_price_is_the_weighted_mean_over_three_fills() -> None:
    order = make_order(quantity=Decimal(6), status=S.ACCEPTED)
    order.apply_fill(Decimal(1), Decimal("10.00"), ts=1)
    order.apply_fill(Decimal(2), Decimal("10.03"), ts=2)
    assert order.avg_fill_price == Decimal("10.02")  # (10.00 + 20.06) / 3
    order.apply_fill(Decimal(3), Decimal("10.06"), ts=3)
    assert order.avg_fill_price == Decimal("10.04")  # (10.00 + 20.06 + 30.18) / 6
    assert order.status is S.FILLED


def test_single_fill_for_the_whole_quantity_fills() -> None:
    order = make_order(quantity=Decimal("0.125"), status=S.SUBMITTED, side=Side.SELL)
    order.apply_fill(Decimal("0.125"), Decimal("64000.01"), ts=1)
    assert order.status is S.FILLED
    assert order.avg_fill_price == Decimal("64000.01")


@pytest.mark.parametrize(("first", "second"), [(None, Decimal(6)), (Decimal(2), Decimal(4)),
                                               (Decimal(4), Decimal("1.001"))])
def test_an_overfill_is_applied_fills_the_order_and_marks_it(first: Decimal | None,
                                                             second: Decimal) -> None:
    """Issue 9: a fill beyond the quantity is the venue's word: applied whole (never clipped,
    never refused), the order is FILLED and marked OVERFILL for reconciliation."""
    order = make_order(quantity=Decimal(5), status=S.SUBMITTED)
    if first is not None:
        assert order.apply_fill(first, Decimal("1.00"), ts=1) is None
        assert order.anomaly is None
    assert order.apply_fill(second, Decimal("2.00"), ts=2) is FillAnomaly.OVERFILL
    filled = (first or Decimal(0)) + second
    assert (order.status, order.filled_quantity, order.ts_last) == (S.FILLED, filled, 2)
    assert order.leaves_quantity == 5 - filled < 0
    assert order.anomaly is FillAnomaly.OVERFILL
    assert order.avg_fill_price == ((first or Decimal(0)) * 1 + second * 2) / filled
    assert not order.is_open


@pytest.mark.parametrize("status", sorted(EXPECTED_TERMINAL, key=lambda s: s.value))
def test_a_fill_after_close_is_applied_without_moving_the_status(status: OrderStatus) -> None:
    """Issue 9: a fill for a canceled, expired, rejected, denied or filled order (routine on a
    real venue: a fill crossing the cancel) adds to the filled quantity; the status stays
    terminal and the order is marked AFTER_CLOSE."""
    order = make_order(quantity=Decimal(5), status=status)
    order.ts_last = 10
    assert order.apply_fill(Decimal(2), Decimal("3.00"), ts=5) is FillAnomaly.AFTER_CLOSE
    assert (order.status, order.filled_quantity, order.avg_fill_price) == (
        status, Decimal(2), Decimal("3.00"))
    assert order.ts_last == 10  # never back in time
    assert order.anomaly is FillAnomaly.AFTER_CLOSE
    assert order.apply_fill(Decimal(1), Decimal("6.00"), ts=20) is FillAnomaly.AFTER_CLOSE
    assert (order.status, order.filled_quantity, order.avg_fill_price, order.ts_last) == (
        status, Decimal(3), Decimal(4), 20)
    assert not order.is_open


def test_a_filled_order_filled_again_is_after_close_not_overfill() -> None:
    order = make_order(quantity=Decimal(5), status=S.ACCEPTED)
    assert order.apply_fill(Decimal(5), Decimal("1.00"), ts=1) is None
    assert order.apply_fill(Decimal("0.001"), Decimal("1.00"), ts=2) is FillAnomaly.AFTER_CLOSE
    assert (order.status, order.filled_quantity) == (S.FILLED, Decimal("5.001"))


def test_the_first_anomaly_stays_on_the_order() -> None:
    order = make_order(quantity=Decimal(5), status=S.ACCEPTED)
    assert order.apply_fill(Decimal(6), Decimal("1.00"), ts=1) is FillAnomaly.OVERFILL
    assert order.apply_fill(Decimal(1), Decimal("1.00"), ts=2) is FillAnomaly.AFTER_CLOSE
    assert order.anomaly is FillAnomaly.OVERFILL
    assert order.filled_quantity == 7


@pytest.mark.parametrize("quantity", [Decimal(0), Decimal("-0"), Decimal(-1), Decimal("-0.001")])
@pytest.mark.parametrize("status", [S.SUBMITTED, S.CANCELED])
def test_non_positive_fill_quantity_raises_value_error(quantity: Decimal,
                                                       status: OrderStatus) -> None:
    """Not a fill at all: the one thing ``apply_fill`` refuses, changing nothing."""
    order = make_order(quantity=Decimal(5), status=status)
    before = copy.copy(order)
    with pytest.raises(ValueError, match="positive") as excinfo:
        order.apply_fill(quantity, Decimal("1.00"), ts=1)
    assert excinfo.type is ValueError  # not InvalidTransition, which is also a ValueError
    assert order == before


@pytest.mark.parametrize("status", sorted(OPEN_STATUSES, key=lambda s: s.value))
def test_a_fill_is_taken_in_every_open_status(status: OrderStatus) -> None:
    """PENDING_SUBMIT included (issue 9: before, that fill raised inside the broker callback)."""
    order = make_order(quantity=Decimal(5), status=status)
    assert order.apply_fill(Decimal(1), Decimal("1.00"), ts=1) is None
    assert order.status is S.PARTIALLY_FILLED
    assert order.apply_fill(Decimal(4), Decimal("1.00"), ts=2) is None
    assert order.status is S.FILLED
    assert order.anomaly is None


cents = st.integers(min_value=1, max_value=10_000_000).map(lambda n: Decimal(n).scaleb(-2))
lots = st.integers(min_value=1, max_value=100_000).map(lambda n: Decimal(n).scaleb(-3))


@settings(max_examples=200)
@given(parts=st.lists(st.tuples(lots, cents), min_size=1, max_size=25),
       start=st.sampled_from(sorted(OPEN_STATUSES, key=lambda s: s.value)))
def test_random_split_into_fills_ends_filled(parts: list[tuple[Decimal, Decimal]],
                                             start: OrderStatus) -> None:
    """SYS-006: however a quantity is split into fills, the order ends FILLED with
    filled_quantity == quantity; before the last fill it is PARTIALLY_FILLED."""
    quantity = sum((q for q, _ in parts), Decimal(0))
    order = make_order(quantity=quantity, status=start)
    filled = Decimal(0)
    with localcontext() as ctx:
        ctx.clear_flags()
        for i, (q, price) in enumerate(parts):
            assert order.apply_fill(q, price, ts=i + 1) is None
            filled += q
            assert order.filled_quantity == filled
            assert order.leaves_quantity == quantity - filled
            last = i == len(parts) - 1
            assert order.status is (S.FILLED if last else S.PARTIALLY_FILLED)
        exact_mean = sum((q * p for q, p in parts), Decimal(0)) / quantity
        rounded = bool(ctx.flags[Inexact])
    event("average rounded" if rounded else "average exact")
    assert order.filled_quantity == quantity
    assert order.leaves_quantity == 0
    assert not order.is_open
    assert order.anomaly is None

    prices = [p for _, p in parts]
    assert order.avg_fill_price is not None
    assert min(prices) <= order.avg_fill_price <= max(prices)
    if rounded:
        # A running mean that does not terminate (say 1/3) is rounded to 28 digits.
        assert abs(order.avg_fill_price - exact_mean) <= Decimal("1e-18")
    else:
        assert order.avg_fill_price == exact_mean

    # one more: applied, after close, the status stays FILLED
    assert order.apply_fill(Decimal("0.001"), Decimal("1.00"), ts=len(parts) + 1) is \
        FillAnomaly.AFTER_CLOSE
    assert (order.status, order.filled_quantity) == (S.FILLED, quantity + Decimal("0.001"))
    assert order.anomaly is FillAnomaly.AFTER_CLOSE


Step = tuple[str, OrderStatus | tuple[Decimal, Decimal]]
steps = st.one_of(statuses.map(lambda s: ("move", s)),
                  st.tuples(lots, cents).map(lambda f: ("fill", f)))


@settings(max_examples=300)
@given(start=statuses, quantity=lots, script=st.lists(steps, max_size=40))
def test_random_moves_and_fills_follow_the_model(start: OrderStatus, quantity: Decimal,
                                                 script: list[Step]) -> None:
    """Status changes and fills interleaved at random, from any status:

    - a fill is never refused; the filled quantity is the sum of every fill applied;
    - a fill in an open status gives PARTIALLY_FILLED or FILLED (OVERFILL beyond the quantity);
      in a terminal status it changes no status (AFTER_CLOSE);
    - the order is marked with the first anomaly, and only if there was one;
    - a status change is taken iff the table has the edge; a refused one changes nothing;
    - once terminal, the status never changes again."""
    order = make_order(quantity=quantity, status=start)
    fills: list[tuple[Decimal, Decimal]] = []
    first_anomaly: FillAnomaly | None = None
    terminal_at: OrderStatus | None = start if start in TERMINAL_STATUSES else None
    for ts, (kind, arg) in enumerate(script, start=1):
        before = copy.copy(order)
        if kind == "move":
            assert isinstance(arg, OrderStatus)
            try:
                order.transition(arg, ts=ts)
            except InvalidTransition:
                assert not can_transition(before.status, arg)
                assert order == before
            else:
                assert can_transition(before.status, arg)
                assert order.status is arg
        else:
            assert isinstance(arg, tuple)
            q, price = arg
            anomaly = order.apply_fill(q, price, ts=ts)
            fills.append((q, price))
            total = before.filled_quantity + q
            if before.status in TERMINAL_STATUSES:
                expected = FillAnomaly.AFTER_CLOSE
                assert order.status is before.status
            else:
                expected = FillAnomaly.OVERFILL if total > quantity else None
                assert order.status is (S.FILLED if total >= quantity else S.PARTIALLY_FILLED)
            assert anomaly is expected
            first_anomaly = first_anomaly or anomaly
            event(f"fill: {anomaly.value if anomaly else 'allowed'}")
        assert order.filled_quantity == sum((q for q, _ in fills), Decimal(0))
        assert order.anomaly is first_anomaly
        if terminal_at is not None:
            assert order.status is terminal_at, f"moved out of terminal {terminal_at}"
        elif order.status in TERMINAL_STATUSES:
            terminal_at = order.status
        assert order.is_open == (order.status not in TERMINAL_STATUSES)
    if fills:
        prices = [p for _, p in fills]
        assert order.avg_fill_price is not None
        assert min(prices) <= order.avg_fill_price <= max(prices)
    else:
        assert order.avg_fill_price is None
