"""The order manager of one portfolio: every change to its orders, made in its runner's task.

Where it sits: the runner calls it for an order request (from the strategy path or a
``SubmitOrder`` command), for a cancel or a modify, for each execution report a broker streams
and for each outcome of its own I/O tasks (:mod:`lts.engine.outcomes`). It is never called from
another task, so no state here needs a lock, and nothing here waits.

- **Write-ahead.** A new order's row is committed before a venue sees it (``durable``, live);
  until then it is PENDING_SUBMIT and open in memory. When the insert commits the runner hands it
  to the venue; if it fails, the order is not open anywhere, memory included. A cancel that
  arrives first cancels it locally: it is never sent. A backtest (``durable=False``) hands the
  order over at once.
- **Venue calls** run in tasks (:mod:`lts.engine.venue_calls`), except on a simulated venue
  (paper), whose calls complete in line so a replay stays exact. A rejection makes the order
  REJECTED with the venue's reason; a lost answer makes it UNKNOWN, settled by a query, never
  resubmitted. A cancel of an order whose submit is still in flight waits for the answer. A
  modify of a working order is checked and sent by :mod:`lts.engine.amendments`.
- **What the venue says** (reports, fills, query answers) is taken in by the other half,
  :mod:`lts.engine.executions`: fills are never dropped, duplicates change nothing, an order LTS
  never sent is adopted.
- **Committed events only, outward** (:mod:`lts.engine.order_journal`): every change is an event
  with the portfolio's next sequence number; it reaches the bus only once committed.

Client order ids are ``<portfolio id>-<n>``, numbered on from the highest the journal holds.
"""

import logging
from collections import OrderedDict
from collections.abc import Callable, Mapping
from functools import partial
from typing import TYPE_CHECKING, Any, cast

from lts.bus import Bus
from lts.domain.clock import Clock
from lts.domain.commands import Accepted, Denied, Reason, Reply
from lts.domain.events import OrderDenied, OrderSubmitted
from lts.domain.instruments import Instrument
from lts.domain.orders import (
    Fill,
    Order,
    OrderRequest,
    OrderStatus,
    can_transition,
)
from lts.engine import venue_calls
from lts.engine.amendments import Amendments
from lts.engine.backtest_book import BacktestBook
from lts.engine.executions import ExecutionIntake, answer, copy_of
from lts.engine.ledger import Ledger
from lts.engine.order_journal import OrderBook, OrderJournal
from lts.engine.outcomes import (
    CallFailed,
    CallKind,
    Canceled,
    Queried,
    Submitted,
    WriteAhead,
)
from lts.engine.risk import RiskCheck
from lts.errors import JournalUnavailable, LeaseLost, VenueRejected
from lts.plugins.broker import Broker, SimulatedVenue

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

    from lts.persistence.journal import Journal

__all__ = ["OrderManager"]

log = logging.getLogger("lts.orders")

S = OrderStatus
_CANCEL_TRIES = 3  # a cancel whose answer was lost is sent this many times in all

Post = Callable[[Any], None]
Spawn = Callable[..., object]


class OrderManager(ExecutionIntake):
    def __init__(self, portfolio_id: int, *, journal: "Journal | None",
                 db: "AsyncEngine | None", bus: Bus,
                 clock: Clock,
                 risk: RiskCheck, ledger: Ledger, instruments: Mapping[str, Instrument],
                 brokers: Mapping[str, Broker], open_orders: dict[str, Order],
                 trades: dict[str, set[tuple[str, str]]], durable: bool,
                 next_order_number: int, next_event_seq: int, post: Post, spawn: Spawn,
                 fence: int | None = None,
                 observe_tick_to_order: Callable[[float], None] | None = None) -> None:
        self.portfolio_id = portfolio_id
        self.journal = journal
        self.db = db
        self.bus = bus
        self.clock = clock
        self.risk = risk
        self.ledger = ledger
        self.instruments = instruments
        self.brokers = brokers  # by symbol
        self.open = open_orders
        self.durable = durable
        self._trades = trades  # trade ids applied, per open order
        # closed (or external) orders late fills may land on, with their trade ids
        self._late: OrderedDict[str, tuple[Order, set[tuple[str, str]]]] = OrderedDict()
        self._checking: dict[str, list[Fill]] = {}  # venue id -> fills awaiting one lookup
        self._number = next_order_number
        self._post = post
        self._spawn = spawn
        self._observe = observe_tick_to_order
        # no journal: a backtest's portfolio, whose books stay in memory
        self.book: OrderBook = BacktestBook(portfolio_id, bus, next_event_seq=next_event_seq) \
            if journal is None else OrderJournal(portfolio_id, journal, bus,
                                                 next_event_seq=next_event_seq, fence=fence)
        self._emit = self.book.emit
        self._changed = self.book.changed
        self.begin_batch = self.book.begin_batch
        self.end_batch = self.book.end_batch
        amendments = Amendments(open_orders=open_orders, brokers=brokers,
                                instruments=instruments, risk=risk, ledger=ledger, clock=clock,
                                book=self.book, post=post, spawn=spawn)
        #: a working order's new quantity or prices (:mod:`lts.engine.amendments`)
        self.modify = amendments.modify
        self.on_modified = amendments.on_modified
        self._modify_refused = amendments.refused
        self._replies: dict[str, Any] = {}  # client order id -> the sender's future
        self._bar_ts: dict[str, int] = {}  # orders from a bar: its time (tick-to-order)
        self._in_flight: set[str] = set()  # submits sent, no answer yet
        self._cancel_after_ack: set[str] = set()
        self._cancel_failed: dict[str, tuple[int, bool, str]] = {}  # tries, refused, reason
        self._queried: set[str] = set()  # queries in flight
        self._not_found: dict[str, int] = {}  # first time a query did not find the order
        self._grace_ns = 10_000_000_000  # the acknowledgement timeout (set by housekeeping)
        self.to_reconcile: set[str] = set()
        #: venues whose execution reports may have been missed: no new orders there
        self.stale_venues: set[str] = set()
        #: assets whose market data stopped: no new orders from strategies
        self.stale_feeds: set[str] = set()
        self.stopping = False
        self.orders_created = 0
        self.orders_denied = 0
        self.duplicate_fills = 0
        self.anomalies = 0

    @property
    def next_client_order_id(self) -> str:
        """The id the next order request will get."""
        return f"{self.portfolio_id}-{self._number}"

    def recently_closed(self, coid: str) -> Order | None:
        """One of the last few orders that closed (kept for late fills), else None."""
        late = self._late.get(coid)
        return None if late is None else late[0]

    @property
    def fills_committed(self) -> int:
        return self.book.fills_committed

    # -- requests -> orders -------------------------------------------------------------------
    def request(self, request: OrderRequest, reply: Any = None, bar_ts: int | None = None,
                *, strategy: bool = False) -> Order:
        """Check ``request`` and make it an order: DENIED at once, or PENDING_SUBMIT until its
        row is durable (then it is handed to the venue). ``reply`` (a future) gets the answer.
        ``strategy``: a strategy's own decision (not an operator's command, not the exit of a
        contingent order), refused while the asset's market data has stopped."""
        now = self.clock.now_ns()
        coid = f"{self.portfolio_id}-{self._number}"
        self._number += 1
        order = Order.from_request(request, client_order_id=coid,
                                   portfolio_id=self.portfolio_id, ts_init=now)
        self.orders_created += 1
        broker = self.brokers.get(request.symbol)
        reason = Reason.FEED_STALE if strategy and request.symbol in self.stale_feeds \
            else self._refusal(request, broker, now)
        if reason is not None:
            return self._deny(order, reason, broker.name if broker else "", reply)
        assert broker is not None
        self.open[coid] = order
        self._trades[coid] = set()
        durable = self.book.insert(order, broker.name)
        if reply is not None:
            self._replies[coid] = reply
        if bar_ts is not None and self._observe is not None:
            self._bar_ts[coid] = bar_ts
        if self.durable:
            durable.add_done_callback(partial(self._written_ahead, coid))
        else:
            self._send(order)
        return order

    def _refusal(self, request: OrderRequest, broker: Broker | None, now: int) -> Reason | None:
        if broker is None:
            return Reason.UNKNOWN_SYMBOL
        if self.stopping:
            return Reason.STOPPING
        caps = broker.capabilities
        if request.order_type not in caps.order_types or \
                request.time_in_force not in caps.time_in_force:
            return Reason.UNSUPPORTED
        if self.durable and self.journal is not None and not self.journal.available:
            return Reason.JOURNAL_UNAVAILABLE
        if broker.name in self.stale_venues:
            return Reason.VENUE_STALE
        instrument = self.instruments[request.symbol]
        return self.risk.check(request, self.ledger, instrument, len(self.open), now)

    def _deny(self, order: Order, reason: Reason, broker: str, reply: Any) -> Order:
        order.transition(S.DENIED, order.ts_init, reason.value)
        self.orders_denied += 1
        if reason is not Reason.UNKNOWN_SYMBOL:  # a symbol not traded here has no venue row
            self.book.insert(order, broker)
            self._emit(OrderDenied, order, order.ts_init)
        log.info("order %s denied: %s %s %s (%s)", order.client_order_id, order.side.value,
                 order.quantity, order.symbol, reason.value)
        if reply is not None:
            answer(reply, Denied(reason, order=copy_of(order)))
        return order

    def _written_ahead(self, coid: str, future: Any) -> None:
        """The insert's future resolved (a done callback): tell the runner, in order."""
        if future.cancelled():
            self._post(WriteAhead(coid, "the journal stopped", unavailable=True))
            return
        error = future.exception()
        if error is None:
            self._post(WriteAhead(coid))
        else:  # a bad value, or no journal to write it (stopped, the lease lost)
            self._post(WriteAhead(coid, f"{type(error).__name__}: {error}"[:200],
                                  unavailable=isinstance(error, JournalUnavailable | LeaseLost)))

    def on_write_ahead(self, outcome: WriteAhead) -> None:
        coid = outcome.client_order_id
        order = self.open.get(coid)
        reply = self._replies.get(coid)
        if outcome.error:
            # the row is not durable: the order is not open anywhere, memory included
            if order is not None and order.status is S.PENDING_SUBMIT:
                self._forget(coid)
            self._replies.pop(coid, None)
            self._bar_ts.pop(coid, None)
            log.error("order %s could not be made durable (%s); not sent", coid, outcome.error)
            reason = Reason.JOURNAL_UNAVAILABLE if outcome.unavailable else Reason.INVALID_PARAMS
            if reply is not None:
                answer(reply, Denied(reason, outcome.error))
            return
        if order is None or order.status is not S.PENDING_SUBMIT:
            self._replies.pop(coid, None)  # canceled before it was sent
            self._bar_ts.pop(coid, None)
            if order is not None and reply is not None:
                answer(reply, Accepted(copy_of(order)))
            return
        self._send(order)

    # -- to the venue ----------------------------------------------------------------------------
    def _send(self, order: Order) -> None:
        """SUBMITTED, and to the venue. A real venue's call is started before the change is
        journaled: its task runs first, so the request is on the wire before the journal's
        writer takes the loop (the write-ahead row is durable already)."""
        coid = order.client_order_id
        now = self.clock.now_ns()
        order.transition(S.SUBMITTED, now)
        broker = self.brokers[order.symbol]
        simulated = broker.capabilities.simulated
        if not simulated:
            self._in_flight.add(coid)
            self._spawn(venue_calls.submit, broker, copy_of(order), self._post)
        self._changed(order)
        self._emit(OrderSubmitted, order, now)
        if log.isEnabledFor(logging.INFO):  # per order: not even its arguments when off
            log.info("order %s submitted: %s %s %s %s", coid, order.side.value, order.quantity,
                     order.symbol, order.order_type.value)
        if simulated:
            venue = cast(SimulatedVenue, broker)
            try:
                self.on_submitted(Submitted(coid, venue.place(order)))
            except VenueRejected as exc:
                self.on_call_failed(CallFailed(CallKind.SUBMIT, coid, exc.reason, rejected=True))
        if self._bar_ts:
            bar_ts = self._bar_ts.pop(coid, None)
            if bar_ts is not None and self._observe is not None:
                self._observe((self.clock.now_ns() - bar_ts) / 1e9)
        if self._replies:
            reply = self._replies.pop(coid, None)
            if reply is not None:
                answer(reply, Accepted(copy_of(order)))

    def on_submitted(self, outcome: Submitted) -> None:
        coid = outcome.client_order_id
        self._in_flight.discard(coid)
        order = self.open.get(coid)
        if order is None:
            return  # filled (or closed) before the acknowledgement came back
        if outcome.broker_order_id and order.broker_order_id != outcome.broker_order_id:
            order.broker_order_id = outcome.broker_order_id
            self._changed(order)
        if coid in self._cancel_after_ack:
            self._cancel_after_ack.discard(coid)
            self._dispatch_cancel(order)
        elif order.status in (S.SUBMITTED, S.UNKNOWN, S.PENDING_SUBMIT):
            self._move(order, S.ACCEPTED, self.clock.now_ns())

    def on_call_failed(self, outcome: CallFailed) -> None:
        coid = outcome.client_order_id
        order = self.open.get(coid)
        now = self.clock.now_ns()
        if outcome.kind is CallKind.SUBMIT:
            self._in_flight.discard(coid)
            self._cancel_after_ack.discard(coid)
            if order is None:
                return
            settled = S.REJECTED if outcome.rejected or not outcome.sent else S.UNKNOWN
            if order.status is S.UNKNOWN and settled is S.UNKNOWN:
                return  # the acknowledgement timeout said so already
            if order.status in (S.SUBMITTED, S.UNKNOWN, S.PENDING_CANCEL) and \
                    can_transition(order.status, settled):
                self._move(order, settled, now, outcome.reason)
            else:
                # the venue's own reports moved it on (accepted, filled): the call's failure
                # contradicts them; a query says where it stands
                log.warning("submit of %s failed (%s) while the venue reports it %s; querying",
                            coid, outcome.reason, order.status.value)
                self._query(order)
        elif outcome.kind is CallKind.CANCEL:
            if order is not None:
                # refused (already filled, unknown at the venue) or lost: ask where it stands;
                # the answer decides (see on_report)
                tries = self._cancel_failed.get(coid, (0, False, ""))[0] + 1
                self._cancel_failed[coid] = (tries, outcome.rejected, outcome.reason)
                log.warning("cancel of %s: %s; querying the venue", coid, outcome.reason)
                self._query(order)
        elif order is not None:
            self._modify_refused(order, outcome.reason, now)

    # -- cancel ----------------------------------------------------------------------------------
    def cancel(self, coid: str) -> Reply:
        order = self.open.get(coid)
        if order is None:
            return Denied(Reason.ORDER_NOT_OPEN, f"order {coid} is not open")
        now = self.clock.now_ns()
        if order.status is S.PENDING_SUBMIT:  # not durable yet, or durable and not yet sent
            self._move(order, S.CANCELED, now, "canceled before it was sent")
        elif order.status is S.PENDING_CANCEL:
            pass
        elif coid in self._in_flight:  # sent, no answer yet: cancel once it is acknowledged
            self._move(order, S.PENDING_CANCEL, now)
            self._cancel_after_ack.add(coid)
        else:
            self._move(order, S.PENDING_CANCEL, now)
            self._dispatch_cancel(order)
        return Accepted(copy_of(order))

    def _dispatch_cancel(self, order: Order) -> None:
        broker = self.brokers[order.symbol]
        if broker.capabilities.simulated:
            cast(SimulatedVenue, broker).withdraw(order)
            self.on_canceled(Canceled(order.client_order_id))
        else:
            self._spawn(venue_calls.cancel, broker, copy_of(order), self._post)

    def resume_cancels(self, why: str) -> None:
        """Orders the journal holds PENDING_CANCEL (a restart came while their cancel was on
        its way, and the call died with the runner): if the venue says they still work, the
        cancel is sent again (see :meth:`_cancel_not_done`)."""
        for order in self.open.values():
            if order.status is S.PENDING_CANCEL:
                self._cancel_failed[order.client_order_id] = (0, False, why)

    def _cancel_not_done(self, order: Order) -> None:
        """The venue says a PENDING_CANCEL order works on. While our cancel is on its way that
        is expected; once the cancel failed, a lost one is sent again (a cancel may be
        repeated safely) and a refused one puts the order back to work, with the reason."""
        coid = order.client_order_id
        failed = self._cancel_failed.get(coid)
        if failed is None:
            return  # our cancel is on its way
        tries, refused, reason = failed
        if not refused and tries < _CANCEL_TRIES:
            self._dispatch_cancel(order)  # the failure stays counted until it succeeds
            return
        del self._cancel_failed[coid]
        working = S.PARTIALLY_FILLED if order.filled_quantity else S.ACCEPTED
        self._move(order, working, self.clock.now_ns(), f"cancel failed: {reason}"[:200])

    def on_canceled(self, outcome: Canceled) -> None:
        order = self.open.get(outcome.client_order_id)
        if order is not None:
            self._move(order, S.CANCELED, self.clock.now_ns())

    # -- time ------------------------------------------------------------------------------------
    def housekeeping(self, ack_timeout_ns: int) -> None:
        """Sent orders without an answer for ``ack_timeout_ns`` become UNKNOWN (a timeout is
        never a rejection); UNKNOWN orders, cancels without an answer and orders marked for
        reconciliation are queried (one query per order at a time)."""
        now = self.clock.now_ns()
        self._grace_ns = ack_timeout_ns
        for order in list(self.open.values()):
            late = now - order.ts_last > ack_timeout_ns
            if order.status is S.SUBMITTED and late:
                # the call may still answer (it stays in flight): "not found" settles nothing
                self._move(order, S.UNKNOWN, now, "no acknowledgement in time")
            if order.status is S.UNKNOWN or (order.status is S.PENDING_CANCEL and late):
                self._query(order)
        for coid in list(self.to_reconcile):
            marked = self.open.get(coid)
            if marked is None:
                self.to_reconcile.discard(coid)
            else:
                self._query(marked)

    def _query(self, order: Order) -> None:
        coid = order.client_order_id
        if coid in self._queried:
            return
        broker = self.brokers[order.symbol]
        self._queried.add(coid)
        if broker.capabilities.simulated:
            self.on_queried(Queried(coid, cast(SimulatedVenue, broker).status_of(order)))
        else:
            self._spawn(venue_calls.query, broker, copy_of(order), self._post)

    # -- control ---------------------------------------------------------------------------------
    def cancel_unsent(self, why: str) -> int:
        """Orders not yet handed to the venue are canceled here (HALTED, a stop)."""
        now = self.clock.now_ns()
        unsent = [o for o in self.open.values() if o.status is S.PENDING_SUBMIT]
        for order in unsent:
            self._move(order, S.CANCELED, now, why)
        return len(unsent)

    @property
    def looking_up(self) -> int:
        """Orders whose fills wait for a journal lookup."""
        return len(self._checking)

    @property
    def in_flight(self) -> int:
        """Submits sent without an answer yet."""
        return len(self._in_flight)

    def give_up_in_flight(self, why: str) -> None:
        """A stop waited long enough: submits still unanswered are UNKNOWN (the next start
        queries them); fills still waiting for a journal lookup are left to the next start's
        reconciliation (the venue lists them again)."""
        for coid, fills in self._checking.items():
            log.warning("order %s: %d fill(s) not yet taken in (%s); the next start fetches "
                        "them from the venue", coid, len(fills), why)
        self._checking.clear()
        now = self.clock.now_ns()
        for coid in list(self._in_flight):
            order = self.open.get(coid)
            if order is not None and order.status in (S.SUBMITTED, S.PENDING_CANCEL):
                self._move(order, S.UNKNOWN, now, why)
        self._in_flight.clear()
