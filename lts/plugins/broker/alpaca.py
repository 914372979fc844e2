"""Broker ``alpaca``: US equities through Alpaca's trading API, on alpaca-py.

Where it sits: a broker plugin (:mod:`lts.plugins.broker`) between a portfolio's runner and
Alpaca (or the local Alpaca venue, :mod:`lts.venue.alpaca_server`). Two paths, both alpaca-py's:

- Calls: the SDK's synchronous ``TradingClient`` in a worker thread
  (``anyio.to_thread.run_sync``), one client per thread, each request with a timeout (the SDK
  sets none) and retried by the SDK only on 429 (nothing was done). Bodies are built and read
  here as JSON with amounts as strings: the SDK's request models carry floats, and money is
  exact. Alpaca's error status becomes :class:`~lts.errors.VenueRejected` with Alpaca's
  message; a request that may have reached Alpaca without an answer (timeout, connection lost,
  5xx) becomes :class:`~lts.errors.VenueAnswerLost`; one refused before it was sent becomes
  :class:`~lts.errors.VenueUnavailable`.
- Reports: the SDK's ``TradingStream`` (``trade_updates``) in a thread of its own, running its
  own event loop; each event becomes an execution report handed over with
  :meth:`~lts.plugins.broker.ReportSink.threadsafe`. The stream reconnects by itself; this
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

import asyncio
import contextlib
import json
import logging
import re
import threading
import warnings
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import anyio
import anyio.from_thread
import anyio.lowlevel
import requests
from anyio.abc import TaskStatus
from pydantic import Field

from lts.domain.clock import Clock
from lts.domain.commands import ModifyOrder
from lts.domain.instruments import Instrument
from lts.domain.orders import Fill, Order, OrderStatus, OrderStatusReport, OrderType, Side
from lts.errors import (
    BrokerError,
    ConfigError,
    VenueAnswerLost,
    VenueRejected,
    VenueUnavailable,
)
from lts.persistence.credentials import BrokerCredentials
from lts.plugins.base import PluginBase, PluginParams
from lts.plugins.broker import (
    Capabilities,
    ExecutionReport,
    ReportSink,
    VenueDisconnected,
    VenueReconnected,
)

with warnings.catch_warnings():  # alpaca-py's stream imports websockets' legacy client
    warnings.filterwarnings("ignore", "websockets.legacy is deprecated", DeprecationWarning)
    from alpaca.common.exceptions import APIError
    from alpaca.trading.client import TradingClient
    from alpaca.trading.stream import TradingStream

__all__ = ["AlpacaBroker", "AlpacaParams"]

log = logging.getLogger("lts.broker.alpaca")

Json = dict[str, Any]
NAME = "alpaca"
_REPLACED = "~"  # <LTS client order id>~<n>: the n-th replacement of that order
_PAGE = 100  # activities per page (Alpaca's most)
_STOP_SECONDS = 10.0  # the stream's thread is given this long to end

#: Alpaca's order status -> LTS's (the working ones become PARTIALLY_FILLED once filled in part)
STATUS: dict[str, OrderStatus] = {
    "new": OrderStatus.ACCEPTED, "accepted": OrderStatus.ACCEPTED,
    "pending_new": OrderStatus.ACCEPTED, "accepted_for_bidding": OrderStatus.ACCEPTED,
    "pending_replace": OrderStatus.ACCEPTED, "held": OrderStatus.ACCEPTED,
    "stopped": OrderStatus.ACCEPTED, "pending_review": OrderStatus.ACCEPTED,
    "suspended": OrderStatus.ACCEPTED, "done_for_day": OrderStatus.ACCEPTED,
    "calculated": OrderStatus.ACCEPTED,
    "partially_filled": OrderStatus.PARTIALLY_FILLED, "filled": OrderStatus.FILLED,
    "pending_cancel": OrderStatus.PENDING_CANCEL, "canceled": OrderStatus.CANCELED,
    "expired": OrderStatus.EXPIRED, "rejected": OrderStatus.REJECTED,
}
#: trade_updates events that move an order's status (fills are reported as fills; ``replaced``
#: and the pending ones are the venue's bookkeeping, the new order carries on)
EVENT_STATUS: dict[str, OrderStatus] = {
    "new": OrderStatus.ACCEPTED, "accepted": OrderStatus.ACCEPTED,
    "canceled": OrderStatus.CANCELED, "expired": OrderStatus.EXPIRED,
    "rejected": OrderStatus.REJECTED, "done_for_day": OrderStatus.ACCEPTED,
}
_ORDER_TYPE = {OrderType.MARKET: "market", OrderType.LIMIT: "limit", OrderType.STOP: "stop",
               OrderType.STOP_LIMIT: "stop_limit"}
_TIME = re.compile(r"(?P<head>[^.Z+]+)(?:\.(?P<frac>\d+))?(?P<zone>Z|[+-]\d\d:\d\d)?$")


class AlpacaParams(PluginParams):
    paper: bool = Field(True, description="Alpaca's paper account (else the live one)")
    url_override: str | None = Field(None, description="trading API base URL (no /v2)")
    stream_url_override: str | None = Field(
        None, description="trade_updates WebSocket URL (default: the API's host, /stream)")
    timeout: float = Field(10.0, gt=0, le=120, description="seconds a call waits for Alpaca")


def plain(number: Decimal) -> str:
    """A decimal as Alpaca takes it: a string, no exponent, no trailing zeros."""
    return f"{number.normalize():f}"


def decimal(value: Any) -> Decimal:
    """An amount from Alpaca (a string, as it sends them; never through a float)."""
    return Decimal(value if isinstance(value, str) else str(value))


def ts_ns(text: str) -> int:
    """An RFC 3339 time from Alpaca (up to nanoseconds) in ns since the epoch, exactly."""
    match = _TIME.match(text)
    if match is None:
        raise ValueError(f"not a time: {text!r}")
    zone = match["zone"] or "Z"
    head = datetime.fromisoformat(match["head"] + ("+00:00" if zone == "Z" else zone))
    frac = int((match["frac"] or "0")[:9].ljust(9, "0"))
    return int(head.timestamp()) * 1_000_000_000 + frac


def lts_client_id(alpaca_id: str) -> str:
    """The LTS client order id of an Alpaca order (a replacement's is its original's)."""
    head, sep, tail = alpaca_id.rpartition(_REPLACED)
    return head if sep and tail.isdigit() else alpaca_id


def status_of(order: Json) -> OrderStatus:
    status = STATUS.get(str(order.get("status")), OrderStatus.ACCEPTED)
    if status is OrderStatus.ACCEPTED and decimal(order.get("filled_qty") or "0") > 0:
        return OrderStatus.PARTIALLY_FILLED
    return status


class _TimedSession(requests.Session):
    """requests' session with a timeout on every request (alpaca-py sets none)."""

    def __init__(self, timeout: float) -> None:
        super().__init__()
        self.timeout = timeout

    def request(self, method: str, url: str,  # type: ignore[override]
                *args: Any, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", self.timeout)
        return super().request(method, url, *args, **kwargs)


class _TradeStream(TradingStream):
    """alpaca-py's ``TradingStream`` that says when it connects, drops and is refused (the
    SDK reconnects on its own but tells no one), and that can be stopped from any thread."""

    def __init__(self, keys: BrokerCredentials, *, paper: bool, url: str | None,
                 on_connected: Callable[[], None], on_lost: Callable[[str], None],
                 on_refused: Callable[[], None]) -> None:
        super().__init__(keys.api_key, keys.api_secret, paper=paper, raw_data=True,
                         url_override=url)  # type: ignore[arg-type]  # the SDK's hint lacks None
        self._on_connected, self._on_lost, self._on_refused = on_connected, on_lost, on_refused
        self._stopping = False

    async def _auth(self) -> None:
        try:
            await super()._auth()  # type: ignore[no-untyped-call]
        except ValueError:
            self._on_refused()
            raise

    async def _start_ws(self) -> None:
        await super()._start_ws()  # type: ignore[no-untyped-call]
        self._on_connected()

    async def _consume(self) -> None:
        try:
            await super()._consume()  # type: ignore[no-untyped-call]
        except Exception as exc:
            if not self._stopping:
                self._on_lost(f"trade updates stream lost: {type(exc).__name__}")
            raise

    def stop_and_wait(self, thread: threading.Thread, timeout: float) -> None:
        """End the stream and its thread (blocks: call it from a worker thread)."""
        self._stopping = True
        waited = 0.0
        while self._loop is None and thread.is_alive() and waited < timeout:
            thread.join(0.01)
            waited += 0.01
        loop: asyncio.AbstractEventLoop | None = self._loop
        if loop is not None and thread.is_alive():
            with contextlib.suppress(RuntimeError, TimeoutError):  # its loop ended already
                asyncio.run_coroutine_threadsafe(self._shut(), loop).result(timeout)
        thread.join(timeout)

    async def _shut(self) -> None:
        await self.stop_ws()
        await self.close()


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
        self._symbols: dict[str, tuple[str, Side]] = {}  # LTS id -> symbol, side
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

        stream = _TradeStream(keys, paper=self.params.paper, url=self._stream_url(),
                              on_connected=on_connected, on_lost=on_lost, on_refused=on_refused)
        stream.subscribe_trade_updates(self._on_update)
        thread = threading.Thread(target=stream.run, name="alpaca-trade-updates", daemon=True)
        thread.start()
        try:
            with anyio.move_on_after(self.params.timeout):
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
                await anyio.to_thread.run_sync(stream.stop_and_wait, thread, _STOP_SECONDS)

    def _stream_url(self) -> str | None:
        p: AlpacaParams = self.params
        if p.stream_url_override:
            return p.stream_url_override
        if p.url_override:  # Alpaca serves the stream on the API's own host
            return re.sub(r"^http", "ws", p.url_override.rstrip("/")) + "/stream"
        return None

    def _key_hint(self) -> str:
        key = self._credentials().api_key
        return f"{key[:4]}..." if len(key) > 8 else "(short key)"

    def _now(self) -> int:
        assert self._clock is not None, "run() first"
        return self._clock.now_ns()

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
        event = str(update.get("event"))
        order: Json = update["order"]
        self._remember(order)
        coid = lts_client_id(str(order["client_order_id"]))
        ts = ts_ns(str(update.get("timestamp") or order["updated_at"]))
        if event in ("fill", "partial_fill"):
            if update.get("qty") is None or update.get("price") is None:
                return [OrderStatusReport(coid, status_of(order), ts_event=ts,
                                          broker_order_id=str(order["id"]))]
            return [self._fill(coid, order, str(update.get("execution_id")),
                               decimal(update["qty"]), decimal(update["price"]), ts)]
        if event == "order_cancel_rejected":  # the order works on
            return [OrderStatusReport(coid, status_of(order), reason="cancel rejected",
                                      ts_event=ts, broker_order_id=str(order["id"]))]
        status = EVENT_STATUS.get(event)
        if status is None:
            return []
        if status is OrderStatus.ACCEPTED and decimal(order.get("filled_qty") or "0") > 0:
            status = OrderStatus.PARTIALLY_FILLED
        return [OrderStatusReport(coid, status, reason="" if status is OrderStatus.ACCEPTED
                                  else f"alpaca: {event}", ts_event=ts,
                                  broker_order_id=str(order["id"]))]

    def _fill(self, coid: str, order: Json, trade_id: str, qty: Decimal, price: Decimal,
              ts: int) -> Fill:
        side = Side(str(order["side"]).removesuffix("_short"))
        return Fill(self._portfolio_of(coid), coid, NAME, trade_id, str(order["symbol"]), side,
                    qty, price, Decimal(0), ts)

    def _remember(self, order: Json) -> None:
        alpaca_coid = str(order["client_order_id"])
        self._client_ids[str(order["id"])] = alpaca_coid
        if order.get("status") != "replaced":
            self._live[lts_client_id(alpaca_coid)] = (str(order["id"]), alpaca_coid)

    def _portfolio_of(self, coid: str) -> int:
        """LTS's client order ids are ``<portfolio>-<n>``; else the portfolio last seen."""
        head, sep, _ = coid.partition("-")
        return int(head) if sep and head.isdigit() else self._portfolio_id

    # -- calls ----------------------------------------------------------------------------------
    def _client(self) -> TradingClient:
        client: TradingClient | None = getattr(self._local, "client", None)
        if client is None:
            keys = self._credentials()
            client = TradingClient(keys.api_key, keys.api_secret, paper=self.params.paper,
                                   raw_data=True, url_override=self.params.url_override)
            client._session = _TimedSession(self.params.timeout)
            client._retry_codes = [429]  # a 504 may have placed the order: never sent twice
            self._local.client = client
        return client

    async def _call(self, method: str, path: str, data: Json | None = None) -> Any:
        """One request with this thread's client, in a worker thread: Alpaca's JSON answer
        (None for 204), errors translated."""
        def call() -> Any:
            try:
                return getattr(self._client(), method)(path, data)
            except APIError as exc:
                raise _venue_error(exc) from None
            except requests.exceptions.ConnectTimeout:
                raise VenueUnavailable("alpaca: not reachable (connect timed out)") from None
            except requests.exceptions.ConnectionError as exc:
                if _never_sent(exc):
                    raise VenueUnavailable("alpaca: not reachable (connection refused)"
                                           ) from None
                raise VenueAnswerLost("alpaca: connection lost before the answer") from None
            except requests.exceptions.RequestException as exc:
                raise VenueAnswerLost(f"alpaca: no answer ({type(exc).__name__})") from None

        return await anyio.to_thread.run_sync(call)

    async def submit(self, order: Order) -> str | None:
        self._portfolio_id = order.portfolio_id
        body: Json = {"symbol": order.symbol, "qty": plain(order.quantity),
                      "side": order.side.value, "type": _ORDER_TYPE[order.order_type],
                      "time_in_force": order.time_in_force.value,
                      "client_order_id": order.client_order_id}
        if order.limit_price is not None:
            body["limit_price"] = plain(order.limit_price)
        if order.stop_price is not None:
            body["stop_price"] = plain(order.stop_price)
        self.orders_sent += 1
        placed: Json = await self._call("post", "/orders", body)
        self._remember(placed)
        return str(placed["id"])

    async def cancel(self, order: Order) -> None:
        alpaca_id, _ = await self._working(order)
        await self._call("delete", f"/orders/{alpaca_id}")

    async def modify(self, order: Order, change: ModifyOrder) -> None:
        alpaca_id, alpaca_coid = await self._working(order)
        body: Json = {"client_order_id": _next_replacement(order.client_order_id, alpaca_coid)}
        if change.quantity is not None:
            rest = change.quantity - order.filled_quantity
            if rest <= 0:
                raise VenueRejected("quantity below the filled quantity")
            body["qty"] = plain(rest)
        if change.limit_price is not None:
            body["limit_price"] = plain(change.limit_price)
        if change.stop_price is not None:
            body["stop_price"] = plain(change.stop_price)
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
        since = ts_ns(str(chain[0]["created_at"])) - 1_000_000_000
        fills = tuple(f for f in await self._activities(since, only=ids))
        last = chain[-1]
        return OrderStatusReport(coid, status_of(last), fills,
                                 broker_order_id=str(last["id"]),
                                 ts_event=ts_ns(str(last["updated_at"])))

    async def open_orders(self) -> list[OrderStatusReport]:
        listed: list[Json] = await self._call(
            "get", "/orders", {"status": "open", "limit": 500})
        reports = []
        for order in listed:
            self._remember(order)
            reports.append(OrderStatusReport(
                lts_client_id(str(order["client_order_id"])), status_of(order),
                broker_order_id=str(order["id"]), ts_event=ts_ns(str(order["updated_at"]))))
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
                ts = ts_ns(str(activity["transaction_time"]))
                if ts < since_ns:
                    continue
                alpaca_coid = self._client_ids.get(order_id)
                if alpaca_coid is None:
                    placed: Json = await self._call("get", f"/orders/{order_id}")
                    self._remember(placed)
                    alpaca_coid = str(placed["client_order_id"])
                coid = lts_client_id(alpaca_coid)
                fills.append(self._fill(coid, activity, str(activity["id"]).rpartition("::")[2],
                                        decimal(activity["qty"]), decimal(activity["price"]),
                                        ts))
            if len(page) < _PAGE:
                return fills
            token = str(page[-1]["id"])

    async def balances(self) -> dict[str, Decimal]:
        account: Json = await self._call("get", "/account")
        return {str(account.get("currency") or "USD"): decimal(account["cash"])}

    async def positions(self) -> dict[str, Decimal]:
        held: list[Json] = await self._call("get", "/positions")
        return {str(p["symbol"]): decimal(p["qty"]) for p in held}

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
            tick = decimal(asset.get("price_increment") or "0.01")
            lot = decimal(asset.get("min_trade_increment") or "1") \
                if asset.get("fractionable") else Decimal(1)
            least = decimal(asset.get("min_order_size") or lot) if asset.get("fractionable") \
                else lot
            rules[symbol] = Instrument(symbol, tick, lot, least, Decimal(0))
        return rules


def _next_replacement(coid: str, working: str) -> str:
    """The client order id of the next replacement of LTS order ``coid``."""
    _, sep, tail = working.rpartition(_REPLACED)
    number = int(tail) + 1 if sep and tail.isdigit() and lts_client_id(working) == coid else 1
    return f"{coid}{_REPLACED}{number}"


def _venue_error(exc: APIError) -> BrokerError:
    """Alpaca's HTTP error as LTS's: its message, never the request's headers."""
    status = exc.status_code
    try:
        message = str(json.loads(str(exc))["message"])
    except (ValueError, KeyError, TypeError):
        message = f"HTTP {status}"
    if status == 429:
        return VenueUnavailable(f"alpaca: rate limited: {message}")
    if status is None or status >= 500:
        return VenueAnswerLost(f"alpaca: HTTP {status}: {message}")
    return VenueRejected(message)


def _never_sent(exc: requests.exceptions.ConnectionError) -> bool:
    """Whether the connection failed before the request went out (refused, unresolvable)."""
    from urllib3.exceptions import NewConnectionError

    reason = getattr(exc.args[0] if exc.args else None, "reason", None)
    return isinstance(reason, NewConnectionError)
