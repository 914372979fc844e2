"""Broker ``ccxt``: a real exchange through ccxt (REST) and ccxt.pro (execution streams).

Where it sits: between a portfolio's runner and an exchange ccxt speaks (Binance spot end to end
against LTS's local venue; Bybit and OKX through the same code, their request fields tested).
The runner owns the orders; this plugin places, cancels, changes and queries them with LTS's
client order ids (each exchange's own field: :mod:`lts.plugins.broker.ccxt_mapping`) and turns
what the exchange pushes into execution reports.

- :meth:`CcxtBroker.run` opens the exchange (:mod:`lts.plugins.ccxt_client`) with the owner's
  keys (``credentials_for`` is the exchange id), loads its markets and checks the key with a
  signed call (a refused key stops this portfolio with one clear reason, never the secret),
  subscribes to the user data stream, then says it is started. One permanent loop per stream
  (``watch_orders``: status reports; ``watch_my_trades``: fills) runs until cancelled; the loops,
  their reconnects and what they report (VenueDisconnected, VenueReconnected, VenueBanned, a key
  refused on reconnect ending :meth:`~CcxtBroker.run`) are :mod:`lts.plugins.broker.ccxt_streams`.
  ccxt 4.5.90 raises a refused Binance subscription as ``KeyError('spot')`` over the
  AuthenticationError; it is read as the refusal it is (:func:`~lts.plugins.ccxt_client.unwrap`).
- A ban (Binance's 418) halts the portfolio and no call goes out until its ``Retry-After`` has
  passed; a 429 backs off the same way (calls in the meantime raise
  :class:`~lts.errors.VenueUnavailable`); LTS's weight budget keeps it from coming to that.
- Errors: the venue refused (bad order, filters, funds, unknown order) ->
  :class:`~lts.errors.VenueRejected` with its reason; no answer, a broken connection after
  sending, a 5xx -> :class:`~lts.errors.VenueAnswerLost` (the order is UNKNOWN until a query by
  client order id settles it; never sent twice); nothing sent (unreachable, rate limited, banned,
  the key refused) -> :class:`~lts.errors.VenueUnavailable`. Every message is redacted of keys,
  secrets and signatures, and no exception leaves with ccxt's (which may hold the signed URL)
  chained to it.
- A change (``modify``) on Binance spot is its cancel-replace (ccxt's ``edit_order``,
  ``STOP_ON_FAILURE``): the order working under LTS's client order id is canceled by that id
  and a new one, for what is left to fill, takes the same id, so reports, fills and queries by
  client order id carry on; the new venue id is reported (an :class:`OrderStatusReport`). The
  replaced order's cancel is not the LTS order's end and is not reported. The venue's refusal
  (Binance's -2022: nothing done; -2021: canceled but the new order refused, the order then
  reported CANCELED) is :class:`~lts.errors.VenueRejected` with its words.
- Prices and quantities go as exact strings; one that is not on the market's grid is refused
  before sending (ccxt would round it silently). Reports and fills are read exactly (venue
  strings first). Trade ids are ``<symbol>:<venue trade id>`` (Binance numbers trades per symbol).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from decimal import Decimal
from functools import partial
from typing import Any, NoReturn

import anyio
from anyio.abc import TaskStatus
from pydantic import Field

from lts.domain.clock import Clock
from lts.domain.commands import ModifyOrder
from lts.domain.instruments import Instrument
from lts.domain.orders import (
    Fill,
    Order,
    OrderStatus,
    OrderStatusReport,
    OrderType,
    TimeInForce,
)
from lts.errors import (
    BrokerError,
    ConfigError,
    VenueAnswerLost,
    VenueRejected,
    VenueUnavailable,
)
from lts.persistence.credentials import BrokerCredentials
from lts.plugins.base import PluginBase
from lts.plugins.broker import Capabilities, ExecutionReport, ReportSink
from lts.plugins.broker import ccxt_mapping as mapping
from lts.plugins.broker.ccxt_streams import CcxtStreams, key_refused, subscribe
from lts.plugins.ccxt_client import (
    CcxtClient,
    CcxtParams,
    ErrorKind,
    classify,
    exchange_has,
    open_client,
    unwrap,
)

__all__ = ["CcxtBroker", "CcxtBrokerParams"]

log = logging.getLogger("lts.broker.ccxt")

_NS_PER_MS = 1_000_000
_TRADES_PAGE = 500


class CcxtBrokerParams(CcxtParams):
    streaming: bool = Field(True, description="execution reports over the exchange's "
                            "WebSocket (ccxt.pro); false: only from queries")
    reconnect_max_s: float = Field(30.0, gt=0, description="longest wait between reconnects")


class CcxtBroker(PluginBase):
    Params = CcxtBrokerParams
    plugin_name = "ccxt"
    plugin_debug_vars = ["name", "streams_down", "reconnects", "orders_sent", "reports_in",
                         "fills_in", "weight_used"]

    def __init__(self, **params: object) -> None:
        super().__init__(**params)
        p: CcxtBrokerParams = self.params
        self.name = p.exchange
        self.credentials_for = p.exchange
        self.exchange_id = p.exchange
        self._binance = p.exchange.startswith("binance")
        self._fields = mapping.fields_for(p.exchange)
        self.capabilities = Capabilities(
            order_types=frozenset({OrderType.MARKET, OrderType.LIMIT, OrderType.STOP_LIMIT}),
            time_in_force=frozenset({TimeInForce.GTC, TimeInForce.IOC, TimeInForce.FOK}),
            modify=exchange_has(p.exchange, "editOrder"), streaming=p.streaming)
        self._credentials: BrokerCredentials | None = None
        self._client: CcxtClient | None = None
        self._reports: ReportSink | None = None
        self._clock: Clock | None = None
        self._symbols: set[str] = set()
        self._coids: dict[str, str] = {}  # venue order id -> client order id
        self._current: dict[str, str] = {}  # client order id -> venue id working under it
        self._replacing: dict[str, list[OrderStatusReport]] = {}  # held while replacing
        self._portfolio = 0  # the portfolio this broker's orders belong to, once seen
        self._subscribe = partial(subscribe, binance=self._binance, market_type=p.market_type,
                                  timeout_s=p.timeout_ms / 1000)
        self._streams = CcxtStreams(self.name, report=self._report, now=self._now,
                                    resubscribe=self._subscribe,
                                    reconnect_max_s=p.reconnect_max_s)
        self.orders_sent = 0
        self.reports_in = 0
        self.fills_in = 0

    # -- NeedsCredentials -------------------------------------------------------------------------
    def use_credentials(self, credentials: BrokerCredentials) -> None:
        self._credentials = credentials

    @property
    def streams_down(self) -> list[str]:
        return sorted(self._streams.down)

    @property
    def reconnects(self) -> int:
        return self._streams.reconnects

    @property
    def weight_used(self) -> int | None:
        budget = self._client.budget if self._client is not None else None
        return budget.used if budget is not None else None

    # -- lifecycle --------------------------------------------------------------------------------
    async def run(self, reports: ReportSink, clock: Clock, *,
                  task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        if self._credentials is None:
            raise ConfigError(f"{self.name}: no API key given (the credential store has none "
                              "for this portfolio's owner)")
        self._reports, self._clock = reports, clock
        client = self._client = open_client(self.params, self._credentials)
        try:
            await self._connect(client)
            async with anyio.create_task_group() as tg:
                if self.params.streaming:
                    tg.start_soon(self._streams.watch, client, "orders", "watch_orders",
                                  self._on_orders)
                    tg.start_soon(self._streams.watch, client, "trades", "watch_my_trades",
                                  self._on_trades)
                task_status.started()
                await anyio.sleep_forever()
        finally:
            with anyio.CancelScope(shield=True):
                await client.close()
            self._client = None

    async def _connect(self, client: CcxtClient) -> None:
        """Markets, a signed call (the key works) and the user data stream, or one clear error."""
        try:
            await client.call("load_markets")
            await client.call("fetch_balance")
            if self.params.streaming:
                await self._subscribe(client)
        except Exception as exc:
            kind, reason = classify(exc), client.reason(exc)
            if kind is ErrorKind.AUTH:
                raise key_refused(self.name, reason) from None
            if kind is ErrorKind.BANNED:
                raise BrokerError(f"{self.name}: the venue bans this client ({reason})") \
                    from None
            raise VenueUnavailable(f"{self.name}: cannot connect ({reason})") from None

    # -- what the streams bring -------------------------------------------------------------------
    def _on_orders(self, orders: list[Mapping[str, Any]]) -> None:
        for order in orders:
            self._learn(order)
            self.reports_in += 1
            report = mapping.report_of(order)
            if report.status in (OrderStatus.CANCELED, OrderStatus.EXPIRED):
                coid = report.client_order_id
                held = self._replacing.get(coid)
                if held is not None:  # a cancel-replace is out: its cancel, most likely
                    held.append(report)
                    continue
                current = self._current.get(coid)
                if current is not None and report.broker_order_id != current:
                    log.debug("%s: order %s replaced by %s under %s: its end is not the "
                              "order's", self.name, report.broker_order_id, current, coid)
                    continue
            self._report(report)

    def _on_trades(self, trades: list[Mapping[str, Any]]) -> None:
        for trade in trades:
            fill = self._fill_of(trade)
            if fill is None:
                log.warning("%s: a trade without its order (%s) left to the resync", self.name,
                            trade.get("id"))
                continue
            self.fills_in += 1
            self._report(fill)

    # -- Broker: orders ---------------------------------------------------------------------------
    async def submit(self, order: Order) -> str | None:
        client = self._ready(order)
        kind, side, amount, price, params = mapping.order_args(self.exchange_id, order)
        self._on_grid(client, order.symbol, amount, price, params.get("triggerPrice"))
        try:
            self.orders_sent += 1
            placed = await client.call("create_order", order.symbol, kind, side, amount, price,
                                       params)
        except Exception as exc:
            self._raise(client, exc, sent=True)
        self._learn(placed, order.client_order_id)
        venue_id = placed.get("id")
        if venue_id is not None:
            self._current[order.client_order_id] = str(venue_id)
        if not self.params.streaming:
            self._report(self._report_with_fills(placed, order))
        return str(venue_id) if venue_id is not None else None

    async def cancel(self, order: Order) -> None:
        client = self._ready(order)
        try:
            await client.call("cancel_order", order.broker_order_id, order.symbol,
                              {self._fields.existing: order.client_order_id})
        except Exception as exc:
            self._raise(client, exc, sent=True)

    async def modify(self, order: Order, change: ModifyOrder) -> None:
        client = self._ready(order)
        if not self.capabilities.modify:
            raise VenueRejected(f"{self.name} does not change orders (cancel and place anew)")
        if self._binance:
            await self._cancel_replace(client, order, change)
            return
        if order.broker_order_id is None:
            raise VenueRejected("the venue's id of the order is not known yet")
        kind, side, amount, price, params = mapping.order_args(
            self.exchange_id, order, quantity=change.quantity, limit_price=change.limit_price,
            stop_price=change.stop_price)
        self._on_grid(client, order.symbol, amount, price, params.get("triggerPrice"))
        try:
            await client.call("edit_order", order.broker_order_id, order.symbol, kind, side,
                              amount, price, params)
        except Exception as exc:
            self._raise(client, exc, sent=True)

    async def _cancel_replace(self, client: CcxtClient, order: Order,
                              change: ModifyOrder) -> None:
        """Binance spot changes an order by cancel-replace (``STOP_ON_FAILURE``): the order
        working under LTS's client order id is canceled and a new one, for what is left to
        fill, takes the same client order id, so its reports and fills keep LTS's id. The
        cancel's own report is not the LTS order's end: it is held while the call is out and
        dropped once the venue says the new order stands (see :meth:`_on_orders`)."""
        coid = order.client_order_id
        total = change.quantity if change.quantity is not None else order.quantity
        quantity = total - order.filled_quantity
        if quantity <= 0:
            raise VenueRejected(f"quantity {total} is not above the {order.filled_quantity} "
                                "already filled")
        kind, side, amount, price, params = mapping.order_args(
            self.exchange_id, order, quantity=quantity, limit_price=change.limit_price,
            stop_price=change.stop_price)
        self._on_grid(client, order.symbol, amount, price, params.get("triggerPrice"))
        params["cancelOrigClientOrderId"] = coid  # whatever venue order works under it now
        before = self._current.get(coid)
        self._replacing[coid] = []
        try:
            self.orders_sent += 1
            placed = await client.call("edit_order", order.broker_order_id, order.symbol, kind,
                                       side, amount, price, params)
        except Exception as exc:
            failure = mapping.replace_failure(str(unwrap(exc)))
            if failure is not None:  # the venue answered: nothing done, or only the cancel
                self._release(coid)
                if failure.canceled is not None:
                    self._report(failure.canceled)
                raise VenueRejected(client.redact(failure.reason, 200)) from None
            if classify(exc) in (ErrorKind.TIMEOUT, ErrorKind.AMBIGUOUS, ErrorKind.OTHER):
                await self._settle_lost_replace(client, order, before)
            else:
                self._release(coid)
            self._raise(client, exc, sent=True)
        venue_id = str(placed.get("id"))
        self._current[coid] = venue_id
        self._release(coid, keep=venue_id)
        self._learn(placed, coid)
        # the new venue id (and, without the stream, the fills it took at once)
        self._report(mapping.report_of(placed) if self.params.streaming
                     else self._report_with_fills(placed, order))

    async def _settle_lost_replace(self, client: CcxtClient, order: Order,
                                   before: str | None) -> None:
        """No answer to a cancel-replace: a query by client order id says whether a new order
        works under it (the held cancel report is then the old order's, and dropped) or not."""
        coid = order.client_order_id
        try:
            found = await self._fetch_order(client, order.symbol, coid, None)
        except Exception:  # the held reports go on as they are
            found = None
        held = {r.broker_order_id for r in self._replacing.get(coid, ())}
        if found is not None and found.get("id") is not None:
            venue_id = str(found["id"])
            report = mapping.report_of(found)
            if venue_id != before and venue_id not in held and \
                    report.status not in (OrderStatus.CANCELED, OrderStatus.EXPIRED):
                self._current[coid] = venue_id
                self._learn(found, coid)
                self._release(coid, keep=venue_id)
                self._report(report)
                return
        self._release(coid)

    def _release(self, coid: str, keep: str | None = None) -> None:
        """The reports held while a cancel-replace of ``coid`` was out: all of them, or (with
        ``keep``, the venue id now working under it) only that order's."""
        for report in self._replacing.pop(coid, ()):
            if keep is None or report.broker_order_id == keep:
                self._report(report)

    # -- Broker: queries --------------------------------------------------------------------------
    async def query_order(self, order: Order) -> OrderStatusReport | None:
        client = self._ready(order)
        found = await self._fetch_order(client, order.symbol, order.client_order_id,
                                        order.broker_order_id)
        if found is None:
            return None
        self._learn(found, order.client_order_id)
        return await self._with_fills(client, found, order.portfolio_id)

    async def _fetch_order(self, client: CcxtClient, symbol: str, coid: str,
                           venue_id: str | None) -> dict[str, Any] | None:
        """The venue's order by client order id (its venue id, when known, for exchanges that
        look orders up by it); None when the venue does not know it."""
        try:
            if client.has("fetchOrder"):
                by = {self._fields.existing: coid} if coid else {}
                found: dict[str, Any] = await client.call("fetch_order", venue_id, symbol, by)
                return found
        except Exception as exc:
            kind = classify(exc)
            if kind is ErrorKind.NOT_FOUND:
                return None
            if kind not in (ErrorKind.UNSUPPORTED, ErrorKind.REJECTED):
                self._raise(client, exc, sent=False, query=True)
        # no lookup by client order id: the open orders, then the recent closed ones
        for method, feature in (("fetch_open_orders", "fetchOpenOrders"),
                                ("fetch_closed_orders", "fetchClosedOrders")):
            if not client.has(feature):
                continue
            orders = await self._query(client, method, symbol)
            for candidate in orders:
                if candidate.get("clientOrderId") == coid or (
                        venue_id is not None and str(candidate.get("id")) == venue_id):
                    return dict(candidate)
        return None

    async def _with_fills(self, client: CcxtClient, order: Mapping[str, Any],
                          portfolio_id: int) -> OrderStatusReport:
        """The order's report with the fills the venue has of it."""
        filled = mapping.to_dec(order.get("filled")) or Decimal(0)
        fills: tuple[Fill, ...] = ()
        if filled > 0 and order.get("symbol"):
            venue_id = str(order.get("id"))
            since = order.get("timestamp")
            trades = await self._trades(client, str(order["symbol"]),
                                        int(since) if since else None)
            coid = mapping.client_id_of(order)  # a replaced order's fills are its too
            fills = tuple(f for t in trades if (f := self._fill_of(t, portfolio_id)) is not None
                          and (str(t.get("order")) == venue_id or f.client_order_id == coid))
        return mapping.report_of(order, fills)

    def _report_with_fills(self, placed: Mapping[str, Any], order: Order) -> OrderStatusReport:
        """The answer to a submit as a report, with the trades it lists (no stream)."""
        fills = []
        for trade in placed.get("trades") or ():
            full = {**trade, "symbol": order.symbol, "side": order.side.value,
                    "order": placed.get("id"),
                    "timestamp": trade.get("timestamp") or placed.get("timestamp")}
            fill = self._fill_of(full, order.portfolio_id)
            if fill is not None:
                fills.append(fill)
        return mapping.report_of(placed, tuple(fills))

    async def open_orders(self) -> list[OrderStatusReport]:
        client = self._ready()
        reports = []
        for symbol in sorted(self._symbols):
            for order in await self._query(client, "fetch_open_orders", symbol):
                self._learn(order)
                reports.append(mapping.report_of(order))
        return reports

    async def fills(self, since_ns: int) -> list[Fill]:
        client = self._ready()
        fills = []
        for symbol in sorted(self._symbols):
            for trade in await self._trades(client, symbol, since_ns // _NS_PER_MS):
                fill = self._fill_of(trade)
                if fill is None:
                    venue_order = trade.get("order")
                    if venue_order is not None:  # an order this broker has not seen: ask
                        found = await self._fetch_order(client, symbol, "", str(venue_order))
                        if found is not None:
                            self._learn(found)
                            fill = self._fill_of(trade)
                if fill is not None:
                    fills.append(fill)
        return fills

    async def _trades(self, client: CcxtClient, symbol: str,
                      since_ms: int | None) -> list[dict[str, Any]]:
        """Every trade of the account in ``symbol`` since ``since_ms``, page by page."""
        trades: dict[str, dict[str, Any]] = {}
        while True:
            page = await self._query(client, "fetch_my_trades", symbol, since_ms, _TRADES_PAGE)
            fresh = [t for t in page if str(t.get("id")) not in trades]
            for trade in fresh:
                trades[str(trade.get("id"))] = trade
            if len(page) < _TRADES_PAGE or not fresh:
                break
            since_ms = max(int(t.get("timestamp") or 0) for t in page)
        return sorted(trades.values(), key=lambda t: (t.get("timestamp") or 0, str(t["id"])))

    async def balances(self) -> dict[str, Decimal]:
        balance = await self._query(self._ready(), "fetch_balance")
        totals: dict[str, Decimal] = {}
        raw = (balance.get("info") or {}).get("balances")
        if isinstance(raw, list):  # Binance: exact strings
            for row in raw:
                free, locked = mapping.to_dec(row.get("free")), mapping.to_dec(row.get("locked"))
                total = (free or Decimal(0)) + (locked or Decimal(0))
                if total:
                    totals[str(row.get("asset"))] = total
            return totals
        for asset, amount in (balance.get("total") or {}).items():
            value = mapping.to_dec(amount)
            if value:
                totals[str(asset)] = value
        return totals

    async def positions(self) -> dict[str, Decimal]:
        """Spot: what is held of each traded symbol's base asset, by symbol."""
        held = await self.balances()
        client = self._ready()
        positions = {}
        for symbol in sorted(self._symbols):
            market = client.markets.get(symbol) or {}
            base = market.get("base") or symbol.split("/")[0]
            if held.get(base):
                positions[symbol] = held[base]
        return positions

    async def instruments(self, symbols: Sequence[str]) -> Mapping[str, Instrument]:
        client = self._ready()
        self._symbols.update(symbols)
        markets = client.markets
        return {s: mapping.instrument_of(s, markets[s], client.precision_mode)
                for s in symbols if s in markets}

    # -- inside -----------------------------------------------------------------------------------
    def _ready(self, order: Order | None = None) -> CcxtClient:
        """The client, if calls may go out now (else VenueUnavailable: nothing is sent)."""
        client = self._client
        if client is None:
            raise VenueUnavailable(f"{self.name}: not connected")
        if order is not None:
            self._symbols.add(order.symbol)
            if not self._portfolio:
                self._portfolio = order.portfolio_id
        banned = self._streams.banned_for()
        if banned > 0:
            raise VenueUnavailable(f"{self.name}: banned by the venue for {banned:.0f} s more")
        backing_off = client.budget.blocked_for if client.budget is not None else 0.0
        if backing_off > 0:
            raise VenueUnavailable(f"{self.name}: rate limited, backing off {backing_off:.0f} s")
        return client

    def _on_grid(self, client: CcxtClient, symbol: str, amount: str, price: str | None,
                 trigger: str | None) -> None:
        """Refuse (before sending) a price or quantity ccxt would round."""
        if symbol not in client.markets:
            raise VenueRejected(f"{self.name} has no market {symbol}")
        try:
            if Decimal(client.amount_to_precision(symbol, amount)) != Decimal(amount):
                raise VenueRejected(f"quantity {amount} is not a whole number of {symbol} lots")
            for label, value in (("price", price), ("stop price", trigger)):
                if value is not None and \
                        Decimal(client.price_to_precision(symbol, value)) != Decimal(value):
                    raise VenueRejected(f"{label} {value} is not on {symbol}'s tick grid")
        except VenueRejected:
            raise
        except Exception as exc:  # ccxt: below its precision (InvalidOrder)
            raise VenueRejected(client.reason(exc)) from None

    async def _query(self, client: CcxtClient, method: str, *args: Any) -> Any:
        """A query's answer, or its failure as LTS's (nothing was changed at the venue)."""
        try:
            return await client.call(method, *args)
        except Exception as exc:
            self._raise(client, exc, sent=False, query=True)

    def _raise(self, client: CcxtClient, exc: Exception, *, sent: bool,
               query: bool = False) -> NoReturn:
        """ccxt's exception as LTS's, redacted, without ccxt's chained to it."""
        kind, reason = classify(exc), client.reason(exc)
        log.debug("%s: %s (%s)", self.name, reason, kind.value)
        if kind is ErrorKind.BANNED:
            self._streams.ban(client, reason)
            raise VenueUnavailable(f"{self.name}: banned by the venue ({reason})") from None
        if kind is ErrorKind.RATE_LIMITED:
            seconds = client.note_rate_limited()
            log.warning("%s: rate limited (429); backing off %.0f s", self.name, seconds)
            raise VenueUnavailable(f"{self.name}: rate limited, backing off {seconds:.0f} s") \
                from None
        if kind is ErrorKind.AUTH:
            raise VenueUnavailable(f"{self.name}: the API key was refused ({reason})") from None
        if kind is ErrorKind.UNREACHABLE:
            raise VenueUnavailable(f"{self.name}: unreachable ({reason})") from None
        if kind in (ErrorKind.REJECTED, ErrorKind.NOT_FOUND, ErrorKind.UNSUPPORTED):
            if query:
                raise BrokerError(f"{self.name}: {reason}") from None
            raise VenueRejected(reason) from None
        if not sent:
            raise BrokerError(f"{self.name}: {reason}") from None
        raise VenueAnswerLost(f"{self.name}: no answer ({reason})") from None

    def _learn(self, order: Mapping[str, Any], coid: str | None = None) -> None:
        venue_id = order.get("id")
        known = coid or order.get("clientOrderId")
        if venue_id is not None and known:
            self._coids[str(venue_id)] = str(known)

    def _client_id(self, from_trade: str | None, venue_order: str | None) -> str | None:
        if venue_order is not None and venue_order in self._coids:
            return self._coids[venue_order]
        return from_trade

    def _fill_of(self, trade: Mapping[str, Any], portfolio_id: int = 0) -> Fill | None:
        client = self._client
        markets = client.markets if client is not None else {}
        keyed = dict(trade)
        if trade.get("id") is not None and trade.get("symbol"):
            keyed["id"] = f"{trade['symbol']}:{trade['id']}"
        return mapping.fill_of(
            self.exchange_id, self.name, keyed, client_id=self._client_id,
            portfolio_id=portfolio_id or self._portfolio,
            quote_of=lambda s: (markets.get(s) or {}).get("quote") or s.partition("/")[2])

    def _report(self, report: ExecutionReport) -> None:
        if self._reports is not None:
            self._reports(report)

    def _now(self) -> int:
        assert self._clock is not None
        return self._clock.now_ns()

