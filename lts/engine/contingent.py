"""Brackets, OCO exits and trailing stops, emulated by the engine for every venue.

Where it sits: in a portfolio's runner task, beside the order manager. A trading strategy asks
through its context (:mod:`lts.engine.strategy_context`); this places plain orders (market,
limit, stop) through the order manager, so every one is risk-checked, journaled before a venue
sees it and reconciled like any other. What ties them together is each order's tag
(:mod:`lts.domain.contingency`), durable with the order; after a restart :meth:`rebuild` reads it
back from the open orders, and what each group still has to exit from the fills of the journal's
recent bracket and exit orders, closed ones too: a restart between an entry's fill and its
exits places them, one between an exit's fill and its sibling's cancel cancels the sibling.

- **Exit group** (``oco <group>``): members on one side that exit one quantity between them.
  ``remaining`` is what is left to exit; each open member is kept at ``filled + remaining``
  (a partial fill of one shrinks the others). When nothing remains the others are canceled; when
  a member is canceled, rejected or expires first, the others are canceled too.
- **Bracket** (``bracket tp= sl=``): the entry's fills feed its exit group (named by the entry's
  id): the first fill places the take-profit limit and the stop-loss stop for what filled, later
  fills grow them. If the exits filled all there was while the entry works on, its next fills
  get a new pair; if an exit was canceled (by the strategy, or the venue), none.
- **Trailing stop** (``trail d`` or ``trail p%``): a stop order moved after each bar of its
  symbol to ``d`` (or ``p`` %) from the best price since it was placed (a sell stop below the
  highest high, only ever up; a buy stop above the lowest low, only ever down).

Changes to a member that is not yet acknowledged are refused by the order manager; the member's
next event (its acknowledgement) brings the group back in line.

Risk sees a group as what it is, one exit: the ledger counts the group's open members once
(:meth:`~lts.engine.ledger.Ledger.open_quantities`), and while one member is placed or resized
the others are set aside from the open orders, so a stop-loss beside its take-profit is not a
short sale.
"""

import logging
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal

from lts.domain.commands import Denied, ModifyOrder, Reply
from lts.domain.contingency import MAX_TAG, BracketTag, OcoTag, TrailTag, parse_tag
from lts.domain.events import OrderEvent
from lts.domain.instruments import Instrument
from lts.domain.market import Bar
from lts.domain.orders import Order, OrderRequest, OrderStatus, OrderType, Side, TimeInForce
from lts.domain.values import ZERO, to_decimal
from lts.engine.order_manager import OrderManager
from lts.errors import InvalidParams

__all__ = ["Contingencies"]

log = logging.getLogger("lts.orders")

_CLOSED = frozenset({"canceled", "rejected", "expired", "denied"})
_TERMINAL = _CLOSED | {"filled"}


@dataclass
class _Group:
    symbol: str
    side: Side  # the members' side
    remaining: Decimal = ZERO
    members: list[str] = field(default_factory=list)
    take_profit: Decimal | None = None  # a bracket's exits, placed on its entry's first fill
    stop_loss: Decimal | None = None
    done: bool = False
    broken: bool = False  # ended by a member canceled, rejected or expired (not by fills)


@dataclass
class _Trail:
    tag: TrailTag
    side: Side
    best: Decimal  # the highest high (a sell stop) or lowest low (a buy stop) since placed


class Contingencies:
    def __init__(self, orders: OrderManager, instruments: Mapping[str, Instrument]) -> None:
        self._om = orders
        self._instruments = instruments
        self._groups: dict[str, _Group] = {}
        self._group_of: dict[str, str] = {}  # member or bracket entry -> group
        self._entries: set[str] = set()  # brackets whose entry is still open
        self._seen: dict[str, Decimal] = {}  # filled quantity last seen, per order
        self._trails: dict[str, _Trail] = {}
        self.trailing_symbols: set[str] = set()

    # -- placing -------------------------------------------------------------------------------
    def bracket(self, entry: OrderRequest, take_profit: Decimal, stop_loss: Decimal) -> Order:
        tag = BracketTag(take_profit, stop_loss).text()
        if len(tag) > MAX_TAG:
            raise InvalidParams("strategy", "bracket",
                                f"prices too long to record in the order's tag ({tag!r})")
        order = self._om.request(_tagged(entry, tag), strategy=True)
        if order.is_open:
            coid = order.client_order_id
            self._groups[coid] = _Group(entry.symbol, _other(entry.side),
                                        take_profit=take_profit, stop_loss=stop_loss)
            self._group_of[coid] = coid
            self._entries.add(coid)
            self._seen[coid] = ZERO
        return order

    def oco(self, first: OrderRequest, second: OrderRequest) -> tuple[Order, Order]:
        group = self._om.next_client_order_id
        tag = OcoTag(group).text()
        self._groups[group] = _Group(first.symbol, first.side, remaining=first.quantity)
        a = self._place_member(group, _tagged(first, tag))
        b = self._place_member(group, _tagged(second, tag))
        self._keep_in_line(self._groups[group])  # one refused: the other goes too
        return a, b

    def trailing_stop(self, request: OrderRequest, trail: TrailTag,
                      reference: Decimal) -> Order:
        """A stop ``trail`` away from ``reference`` (the last price), on the tick grid."""
        stop = self._trail_price(request.symbol, request.side, trail, reference)
        req = OrderRequest(request.symbol, request.side, request.quantity, OrderType.STOP,
                           request.time_in_force, stop_price=stop, tag=trail.text())
        order = self._om.request(req)
        if order.is_open:
            self._trails[order.client_order_id] = _Trail(trail, request.side, reference)
            self.trailing_symbols.add(request.symbol)
        return order

    def _place_member(self, group: str, request: OrderRequest) -> Order:
        with self._alone(self._groups[group]):
            order = self._om.request(request)
        coid = order.client_order_id
        self._groups[group].members.append(coid)
        self._group_of[coid] = group
        self._seen[coid] = ZERO
        if not order.is_open:
            self._member_closed(self._groups[group])
        return order

    # -- after a restart ---------------------------------------------------------------------
    def rebuild(self, open_orders: Iterable[Order], linked: Iterable[Order] = ()) -> None:
        """Tie the open orders together again as their tags say. ``linked``: the journal's
        latest bracket entries and exit-group members, closed ones included
        (:func:`~lts.persistence.repositories.load_linked_orders`); what each group still has
        to exit is read from their fills (:meth:`_settle`)."""
        orders = list(open_orders)
        known = {o.client_order_id: o for o in linked}
        known.update((o.client_order_id, o) for o in orders)  # the open ones as reconciled
        for order in orders:
            tag = parse_tag(order.tag)
            coid = order.client_order_id
            self._seen[coid] = order.filled_quantity
            if isinstance(tag, BracketTag):
                group = self._groups.setdefault(coid, _Group(order.symbol, _other(order.side)))
                group.take_profit, group.stop_loss = tag.take_profit, tag.stop_loss
                self._group_of[coid] = coid
                self._entries.add(coid)
            elif isinstance(tag, TrailTag) and order.stop_price is not None:
                self._trails[coid] = _Trail(tag, order.side, _best_from(tag, order))
                self.trailing_symbols.add(order.symbol)
        for order in orders:
            tag = parse_tag(order.tag)
            if isinstance(tag, OcoTag):
                group = self._groups.setdefault(tag.group, _Group(order.symbol, order.side))
                group.members.append(order.client_order_id)
                group.remaining = max(group.remaining, order.leaves_quantity)
                self._group_of[order.client_order_id] = tag.group
        self._settle(known)
        for group in self._groups.values():
            self._keep_in_line(group)

    def _settle(self, known: Mapping[str, Order]) -> None:
        """Each group's quantity still to exit, from the fills of its entry and of every member
        it ever had, and never more than the position holds on the entry's side (it may have
        been closed another way meanwhile): a restart between a bracket entry's fill and the
        placing of its exits places them; one between an exit's fill and its sibling's cancel
        cancels the sibling (no exit is left to sell what is no longer held)."""
        exited: dict[str, Decimal] = {}
        placed: set[str] = set()  # groups that ever had a member
        completed: set[str] = set()  # groups a member of which filled all it was asked
        for order in known.values():
            tag = parse_tag(order.tag)
            if isinstance(tag, OcoTag):
                exited[tag.group] = exited.get(tag.group, ZERO) + order.filled_quantity
                placed.add(tag.group)
                if order.status is OrderStatus.FILLED:
                    completed.add(tag.group)
        for name, order in known.items():
            tag = parse_tag(order.tag)
            if not isinstance(tag, BracketTag) or order.filled_quantity <= 0:
                continue
            owed = min(order.filled_quantity - exited.get(name, ZERO), self._held(order))
            group = self._groups.get(name)
            if group is not None and group.members:  # its exits work: sized to what is owed
                group.remaining = max(owed, ZERO)
            elif owed > 0 and name in placed:
                log.warning("bracket %s: %s %s filled is not covered by exits (they closed "
                            "before the restart); none placed", name, owed, order.symbol)
            elif owed > 0:  # it filled, and the engine stopped before its exits were placed
                if group is None:  # the entry is closed: a group for its exits alone
                    group = self._groups[name] = _Group(order.symbol, _other(order.side))
                group.take_profit, group.stop_loss = tag.take_profit, tag.stop_loss
                group.remaining = owed
                log.warning("bracket %s: %s %s filled with no exits placed (the engine stopped "
                            "in between); placing them", name, owed, order.symbol)
                self._place_exits(name, group)
            completed.discard(name)  # a bracket's group is settled by its entry's fills
        for name in completed:  # an OCO pair one member of which exited it all
            group = self._groups.get(name)
            if group is not None and group.members:
                group.remaining = ZERO

    def _held(self, entry: Order) -> Decimal:
        """What the position holds on the side ``entry`` bought or sold into (zero if none)."""
        position = self._om.ledger.position(entry.symbol)
        return max(position if entry.side is Side.BUY else -position, ZERO)

    # -- what happened -------------------------------------------------------------------------
    def on_event(self, event: OrderEvent) -> None:
        """An order changed (the runner hands over every event of its orders)."""
        coid = event.client_order_id
        if coid in self._trails and event.status in _TERMINAL:
            del self._trails[coid]
            self.trailing_symbols = {t.symbol for t in self._trail_orders()}
        name = self._group_of.get(coid)
        if name is None:
            return
        group = self._groups.get(name)
        if group is None:
            return
        filled = event.filled_quantity - self._seen.get(coid, ZERO)
        if filled > 0:
            self._seen[coid] = event.filled_quantity
        if coid in self._entries:  # a bracket's entry
            if filled > 0 and not (group.done and group.broken):
                if group.done:  # its exits filled, and it fills on: a new pair for that
                    group = self._reopen(name, group)
                group.remaining += filled
                if not group.members:
                    self._place_exits(name, group)
            if event.status in _TERMINAL:
                self._entries.discard(coid)
        else:
            if filled > 0:
                group.remaining -= filled
            if event.status in _CLOSED and not group.done:
                self._member_closed(group)
        self._keep_in_line(group)
        if name not in self._entries and self._over(group):
            self._forget(name)

    def on_bar(self, bar: Bar) -> None:
        """Move the trailing stops of ``bar.symbol`` after the bar."""
        for coid, trail in list(self._trails.items()):
            order = self._om.open.get(coid)
            if order is None or order.symbol != bar.symbol or order.stop_price is None:
                continue
            if trail.side is Side.SELL:
                trail.best = max(trail.best, to_decimal(bar.high))
            else:
                trail.best = min(trail.best, to_decimal(bar.low))
            stop = self._trail_price(order.symbol, trail.side, trail.tag, trail.best)
            better = stop > order.stop_price if trail.side is Side.SELL \
                else stop < order.stop_price
            if better:
                answer = self._om.modify(ModifyOrder(coid, stop_price=stop))
                if isinstance(answer, Denied):
                    log.warning("trailing stop %s not moved to %s: %s %s", coid, stop,
                                answer.reason.value, answer.detail)

    # -- the rules -------------------------------------------------------------------------------
    def _place_exits(self, name: str, group: _Group) -> None:
        assert group.take_profit is not None
        assert group.stop_loss is not None
        tag = OcoTag(name).text()
        quantity = group.remaining
        for request in (
            OrderRequest(group.symbol, group.side, quantity, OrderType.LIMIT,
                         TimeInForce.GTC, limit_price=group.take_profit, tag=tag),
            OrderRequest(group.symbol, group.side, quantity, OrderType.STOP,
                         TimeInForce.GTC, stop_price=group.stop_loss, tag=tag),
        ):
            if group.done:
                break
            self._place_member(name, request)
        self._keep_in_line(group)

    def _over(self, group: _Group) -> bool:
        """Nothing more can happen to a group whose entry (if any) is closed: no exit was ever
        placed (the entry filled nothing), or every member has closed."""
        if not group.members:
            return group.remaining == 0
        return group.done and not any(c in self._om.open for c in group.members)

    def _reopen(self, name: str, done: _Group) -> _Group:
        """A bracket whose exits ended (one filled what there was) while its entry works on:
        a fresh group for the entry's next fills. The old exits are let go (their cancels
        confirm on their own)."""
        for coid in done.members:
            self._group_of.pop(coid, None)
            self._seen.pop(coid, None)
        group = self._groups[name] = _Group(done.symbol, done.side,
                                            take_profit=done.take_profit,
                                            stop_loss=done.stop_loss)
        return group

    def _member_closed(self, group: _Group) -> None:
        """One member ended without filling what remains: the group ends with it."""
        if group.remaining > 0:
            log.warning("exit group of %s %s: a member closed with %s left to exit; canceling "
                        "the others", group.side.value, group.symbol, group.remaining)
        group.done = group.broken = True

    def _keep_in_line(self, group: _Group) -> None:
        om = self._om
        live = [om.open[c] for c in group.members if c in om.open]
        if group.done or (group.members and group.remaining <= 0):
            group.done = True
            for order in live:
                if order.status.value != "pending_cancel":
                    om.cancel(order.client_order_id)
            return
        for order in live:
            want = order.filled_quantity + group.remaining
            if order.quantity != want and order.status.value != "pending_cancel":
                answer = self._resize(group, order.client_order_id, want)
                if isinstance(answer, Denied):
                    log.debug("exit %s not resized yet: %s", order.client_order_id,
                              answer.reason.value)

    def _resize(self, group: _Group, coid: str, quantity: Decimal) -> Reply:
        with self._alone(group, coid):
            return self._om.modify(ModifyOrder(coid, quantity=quantity))

    @contextmanager
    def _alone(self, group: _Group, member: str | None = None) -> Iterator[None]:
        """The group's open members other than ``member`` set aside while the order manager
        checks one: the group exits its quantity once, whichever member does it."""
        open_orders = self._om.open
        aside = {c: open_orders.pop(c) for c in group.members
                 if c != member and c in open_orders}
        try:
            yield
        finally:
            open_orders.update(aside)

    def _forget(self, name: str) -> None:
        group = self._groups.pop(name, None)
        if group is None:
            return
        for coid in [name, *group.members]:
            self._group_of.pop(coid, None)
            self._seen.pop(coid, None)

    def _trail_orders(self) -> list[Order]:
        return [o for c in self._trails if (o := self._om.open.get(c)) is not None]

    def _trail_price(self, symbol: str, side: Side, trail: TrailTag,
                     reference: Decimal) -> Decimal:
        distance = trail.distance(reference)
        instrument = self._instruments[symbol]
        if side is Side.SELL:
            return instrument.round_price(reference - distance, ROUND_FLOOR)
        return instrument.round_price(reference + distance, ROUND_CEILING)


def _tagged(request: OrderRequest, tag: str) -> OrderRequest:
    return OrderRequest(request.symbol, request.side, request.quantity, request.order_type,
                        request.time_in_force, request.limit_price, request.stop_price, tag)


def _other(side: Side) -> Side:
    return Side.SELL if side is Side.BUY else Side.BUY


def _best_from(tag: TrailTag, order: Order) -> Decimal:
    """The best price a trailing stop's price implies (after a restart)."""
    stop = order.stop_price
    assert stop is not None
    sign = Decimal(1) if order.side is Side.SELL else Decimal(-1)
    if tag.percent:
        return stop / (1 - sign * tag.amount / 100)
    return stop + sign * tag.amount
