"""Broker ``alpaca``: US equities through Alpaca's trading API, on alpaca-py.

Where it sits: a broker plugin (:mod:`lts.plugins.broker`) between a portfolio's runner and
Alpaca (or the local Alpaca venue, :mod:`lts.venue.alpaca_server`). Two paths, both alpaca-py's:

- Calls: the SDK's synchronous ``TradingClient`` in a worker thread, one client per thread,
  with timeouts and errors classified as LTS's (:mod:`lts.plugins.broker.alpaca_client`);
  bodies built and answers read as JSON, amounts as strings
  (:mod:`lts.plugins.broker.alpaca_mapping`).
- Reports: the SDK's ``TradingStream`` (``trade_updates``) in a thread of its own
  (:mod:`lts.plugins.broker.alpaca_stream`); each event becomes an execution report handed over
  with :meth:`~lts.plugins.broker.ReportSink.threadsafe`. The stream reconnects by itself; this
  plugin reports :class:`~lts.plugins.broker.VenueDisconnected` when it drops and
  :class:`~lts.plugins.broker.VenueReconnected` once it is back (the runner then resyncs).

LTS's client order id is Alpaca's ``client_order_id``. A change (``modify``) is Alpaca's
replace: a new order under the id ``<LTS id>~<n>``, for what is left to fill; it is reported
under the LTS id, and a query follows the chain (``replaced_by``) to the order now working,
with the fills of the whole chain (fill activities, the execution id as trade id).

Credentials come from the engine's sealed store (``credentials_for = "alpaca"``): the key id
and secret; the secret is never logged nor put in an error message.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import anyio
import anyio.from_thread
import anyio.lowlevel
from anyio.abc import TaskStatus
from pydantic import Field

from lts.domain.clock import Clock
from lts.domain.commands import ModifyOrder
from lts.domain.instruments import Instrument
from lts.domain.orders import Fill, Order, OrderStatusReport
from lts.errors import ConfigError, VenueRejected, VenueUnavailable
from lts.persistence.credentials import BrokerCredentials
from lts.plugins.base import PluginBase, PluginParams
from lts.plugins.broker import (
    Capabilities,
    ExecutionReport,
    ReportSink,
    VenueDisconnected,
    VenueReconnected,
)
from lts.plugins.broker import alpaca_client as client
from lts.plugins.broker import alpaca_mapping as mapping
from lts.plugins.broker.alpaca_mapping import NAME, Json
from lts.plugins.broker.alpaca_stream import TradeStream, stream_url

__all__ = ["AlpacaBroker", "AlpacaParams"]

log = logging.getLogger("lts.broker.alpaca")

_PAGE = 100  # activities per page (Alpaca's most)


class AlpacaParams(PluginParams):
    paper: bool = Field(True, description="Alpaca's paper account (else the live one)")
    url_override: str | None = Field(None, description="trading API base URL (no /v2)")
    stream_url_override: str | None = Field(
        None, description="trade_updates WebSocket URL (default: the API's host, /stream)")
    timeout: float = Field(10.0, gt=0, le=120, description="seconds a call waits for Alpaca")


class AlpacaBroker(PluginBase):
    Params = AlpacaParams
    plugin_name = "alpaca"
    plugin_debug_vars = ["connected", "reconnects", "orders_sent"]
    capabilities = Capabilities(modify=True, streaming=True)
    credentials_for = NAME

    def __init__(self, **params: object) -> None:
        super().__init__(**params)
        self.name = NAME
        self._keys: BrokerCredentials | None = None
        self._local = threading.local()
        self._reports: ReportSink | None = None
        self._clock: Clock | None = None
        self._portfolio_id = 0
        self._live: dict[str, tuple[str, str]] = {}  # LTS id -> (Alpaca id, its client id)
        self._client_ids: dict[str, str] = {}  # Alpaca id -> its client order id
        self.connected = False
        self.reconnects = 0
        self.orders_sent = 0

    # -- credentials ----------------------------------------------------------------------------
    def use_credentials(self, credentials: BrokerCredentials) -> None:
        self._keys = credentials

    def _credentials(self) -> BrokerCredentials:
        if self._keys is None:
            raise ConfigError("broker alpaca: no credentials (the engine hands them from the "
                              "credential store)")
        return self._keys

    def _key_hint(self) -> str:
        key = self._credentials().api_key
        return f"{key[:4]}..." if len(key) > 8 else "(short key)"

    # -- lifecycle ------------------------------------------------------------------------------
    async def run(self, reports: ReportSink, clock: Clock, *,
                  task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Check the account, start the trade updates stream, ready once it listens; until
        cancelled."""
        keys = self._credentials()
        self._reports, self._clock = reports, clock
        try:
            account: Json = await self._call("get", "/account")
        except VenueRejected as exc:
            raise VenueRejected(f"alpaca refused API key {self._key_hint()}: {exc.reason}"
                                ) from None
        if account.get("trading_blocked") or account.get("account_blocked"):
            raise VenueRejected("alpaca: trading is blocked on this account")
        token = anyio.lowlevel.current_token()
        ready, refused = anyio.Event(), threading.Event()

        def on_connected() -> None:
            if not ready.is_set():
                anyio.from_thread.run_sync(ready.set, token=token)
            elif not self.connected:
                self.connected = True
                self.reconnects += 1
                reports.threadsafe(VenueReconnected(NAME, clock.now_ns()))

        def on_lost(reason: str) -> None:
            if self.connected:
                self.connected = False
                reports.threadsafe(VenueDisconnected(NAME, clock.now_ns(), reason))

        def on_refused() -> None:
            refused.set()
            if not ready.is_set():
                anyio.from_thread.run_sync(ready.set, token=token)

        p: AlpacaParams = self.params
        stream = TradeStream(keys, paper=p.paper,
                             url=stream_url(p.url_override, p.stream_url_override),
                             on_connected=on_connected, on_lost=on_lost, on_refused=on_refused)
        stream.subscribe_trade_updates(self._on_update)
        stream.start()
        try:
            with anyio.move_on_after(p.timeout):
                await ready.wait()
            if refused.is_set():
                raise VenueRejected(f"alpaca: the trade updates stream refused API key "
                                    f"{self._key_hint()}")
            if not ready.is_set():
                raise VenueUnavailable("alpaca: the trade updates stream did not connect")
            self.connected = True
            task_status.started()
            await anyio.sleep_forever()
        finally:
            self.connected = False
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(stream.stop_and_wait)

    # -- the stream's events (in the stream's thread) -------------------------------------------
    async def _on_update(self, message: Json) -> None:
        data = message.get("data")
        if not isinstance(data, dict) or self._reports is None:
            return
        try:
            reports = self._reports_of(data)
        except (KeyError, ValueError, ArithmeticError, TypeError) as exc:
            log.warning("alpaca: a trade update not understood (%s): %s", type(exc).__name__,
                        str(data.get("event")))
            return
        for report in reports:
            self._reports.threadsafe(report)

    def _reports_of(self, update: Json) -> list[ExecutionReport]:
        self._remember(update["order"])
        return mapping.reports_of(update, self._portfolio_id)

    def _remember(self, order: Json) -> None:
        alpaca_coid = str(order["client_order_id"])
        self._client_ids[str(order["id"])] = alpaca_coid
        if order.get("status") != "replaced":
            self._live[mapping.lts_client_id(alpaca_coid)] = (str(order["id"]), alpaca_coid)

    # -- calls ----------------------------------------------------------------------------------
    def _client(self) -> client.TradingClient:
        """This thread's client (made on its first call)."""
        made: client.TradingClient | None = getattr(self._local, "client", None)
        if made is None:
            p: AlpacaParams = self.params
            made = client.trading_client(self._credentials(), paper=p.paper,
                                         url=p.url_override, timeout=p.timeout)
            self._local.client = made
        return made

    async def _call(self, method: str, path: str, data: Json | None = None) -> Any:
        """One request with this thread's client, in a worker thread: Alpaca's JSON answer
        (None for 204), errors translated."""
        return await anyio.to_thread.run_sync(client.request, self._client, method, path, data)

    async def submit(self, order: Order) -> str | None:
        self._portfolio_id = order.portfolio_id
        body = mapping.order_body(order)
        self.orders_sent += 1
        placed: Json = await self._call("post", "/orders", body)
        self._remember(placed)
        return str(placed["id"])

    async def cancel(self, order: Order) -> None:
        alpaca_id, _ = await self._working(order)
        await self._call("delete", f"/orders/{alpaca_id}")

    async def modify(self, order: Order, change: ModifyOrder) -> None:
        alpaca_id, alpaca_coid = await self._working(order)
        body: Json = {"client_order_id": mapping.next_replacement(order.client_order_id,
                                                                  alpaca_coid)}
        if change.quantity is not None:
            rest = change.quantity - order.filled_quantity
            if rest <= 0:
                raise VenueRejected("quantity below the filled quantity")
            body["qty"] = mapping.plain(rest)
        if change.limit_price is not None:
            body["limit_price"] = mapping.plain(change.limit_price)
        if change.stop_price is not None:
            body["stop_price"] = mapping.plain(change.stop_price)
        replaced: Json = await self._call("patch", f"/orders/{alpaca_id}", body)
        self._remember(replaced)

    async def _working(self, order: Order) -> tuple[str, str]:
        """The Alpaca order that works for ``order`` now (the last of its replacements)."""
        self._portfolio_id = order.portfolio_id
        known = self._live.get(order.client_order_id)
        if known is not None:
            return known
        chain = await self._chain(order.client_order_id)
        if not chain:
            raise VenueRejected("order not found")
        last = chain[-1]
        return str(last["id"]), str(last["client_order_id"])

    async def _chain(self, coid: str) -> list[Json]:
        """The order Alpaca has under ``coid`` and each replacement of it, in order."""
        try:
            first: Json = await self._call(
                "get", "/orders:by_client_order_id", {"client_order_id": coid})
        except VenueRejected:
            return []  # Alpaca does not know it (404)
        chain = [first]
        while chain[-1].get("status") == "replaced" and chain[-1].get("replaced_by") \
                and len(chain) < 100:
            next_id = str(chain[-1]["replaced_by"])
            chain.append(await self._call("get", f"/orders/{next_id}"))
        for order in chain:
            self._remember(order)
        return chain

    async def query_order(self, order: Order) -> OrderStatusReport | None:
        self._portfolio_id = order.portfolio_id
        coid = order.client_order_id
        chain = await self._chain(coid)
        if not chain:
            return None
        ids = {str(o["id"]) for o in chain}
        since = mapping.ts_ns(str(chain[0]["created_at"])) - 1_000_000_000
        fills = tuple(await self._activities(since, only=ids))
        last = chain[-1]
        return mapping.report_of(coid, last, mapping.ts_ns(str(last["updated_at"])),
                                 fills=fills)

    async def open_orders(self) -> list[OrderStatusReport]:
        listed: list[Json] = await self._call(
            "get", "/orders", {"status": "open", "limit": 500})
        reports = []
        for order in listed:
            self._remember(order)
            reports.append(mapping.report_of(mapping.lts_client_id(str(order["client_order_id"])),
                                             order, mapping.ts_ns(str(order["updated_at"]))))
        return reports

    async def fills(self, since_ns: int) -> list[Fill]:
        return await self._activities(since_ns)

    async def _activities(self, since_ns: int, only: set[str] | None = None) -> list[Fill]:
        """The account's fills after ``since_ns`` (of the orders ``only``, if given)."""
        after = datetime.fromtimestamp(since_ns // 1_000_000_000, UTC).isoformat()
        fills: list[Fill] = []
        token: str | None = None
        while True:
            query: Json = {"after": after, "direction": "asc", "page_size": _PAGE}
            if token:
                query["page_token"] = token
            page: list[Json] = await self._call("get", "/account/activities/FILL", query)
            for activity in page:
                order_id = str(activity["order_id"])
                if only is not None and order_id not in only:
                    continue
                ts = mapping.ts_ns(str(activity["transaction_time"]))
                if ts < since_ns:
                    continue
                alpaca_coid = self._client_ids.get(order_id)
                if alpaca_coid is None:
                    placed: Json = await self._call("get", f"/orders/{order_id}")
                    self._remember(placed)
                    alpaca_coid = str(placed["client_order_id"])
                fills.append(mapping.activity_fill(mapping.lts_client_id(alpaca_coid), activity,
                                                   ts, self._portfolio_id))
            if len(page) < _PAGE:
                return fills
            token = str(page[-1]["id"])

    async def balances(self) -> dict[str, Decimal]:
        account: Json = await self._call("get", "/account")
        return {str(account.get("currency") or "USD"): mapping.decimal(account["cash"])}

    async def positions(self) -> dict[str, Decimal]:
        held: list[Json] = await self._call("get", "/positions")
        return {str(p["symbol"]): mapping.decimal(p["qty"]) for p in held}

    async def instruments(self, symbols: Sequence[str]) -> Mapping[str, Instrument]:
        rules: dict[str, Instrument] = {}
        for symbol in symbols:
            try:
                asset: Json = await self._call("get", f"/assets/{symbol}")
            except VenueRejected:
                continue  # Alpaca does not list it: the asset's own rules stand
            if not asset.get("tradable", True):
                log.warning("alpaca: %s is not tradable at Alpaca", symbol)
                continue
            rules[symbol] = mapping.instrument_of(symbol, asset)
        return rules
