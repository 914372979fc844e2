"""Broker ``ccxt`` against the local exchange (lts.venue), over real HTTP, with the real ccxt.

The venue (its matching engine, its Binance REST and WebSocket fronts: tests/plugins/_venue.py)
runs under uvicorn on a free loopback port; the broker is LTS's, configured as a user would
(``exchange="binance"`` and ``urls`` pointing at the venue), given its keys as the engine gives
them, and run in a task group as the runner runs it (REST only unless ``streaming``). Reports
land in a list; tests wait for them with deadlines. The venue's faults (lost answers, 5xx, 429
and 418, repeated reports, dropped WebSockets) are set in process.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from decimal import Decimal as D
from typing import Any

import anyio
import pytest

from lts.domain.commands import ModifyOrder
from lts.domain.instruments import Instrument
from lts.domain.orders import (
    Fill,
    Order,
    OrderStatus,
    OrderStatusReport,
    OrderType,
    Side,
    TimeInForce,
)
from lts.errors import (
    ConfigError,
    InvalidParams,
    VenueAnswerLost,
    VenueRejected,
    VenueUnavailable,
)
from lts.persistence.credentials import BrokerCredentials
from lts.plugins.broker import (
    ExecutionReport,
    VenueBanned,
    VenueDisconnected,
    VenueReconnected,
)
from lts.plugins.broker.ccxt_broker import CcxtBroker

from ._support import SettableClock
from ._venue import ACCOUNT, DEADLINE, KEY, MARKET, SECRET, Venue, serve_venue, until, wall_ms

pytestmark = pytest.mark.anyio
SYMBOL = "BTC/USDT"


class Reports(list[ExecutionReport]):
    """A report sink: every report, in order; ``wait_for`` waits for one that matches."""

    def __init__(self) -> None:
        super().__init__()
        self._changed = anyio.Event()

    def __call__(self, report: ExecutionReport) -> None:
        self.append(report)
        self._changed.set()
        self._changed = anyio.Event()

    def threadsafe(self, report: ExecutionReport) -> None:
        self(report)

    async def wait_for(self, match: Callable[[ExecutionReport], bool],
                       seconds: float = DEADLINE) -> ExecutionReport:
        with anyio.fail_after(seconds):
            while True:
                for report in self:
                    if match(report):
                        return report
                await self._changed.wait()


@pytest.fixture
async def venue() -> AsyncIterator[Venue]:
    async with serve_venue() as served:
        yield served


@asynccontextmanager
async def running(venue: Venue, *, key: str = KEY, secret: str = SECRET,
                  **params: Any) -> AsyncIterator[tuple[CcxtBroker, Reports]]:
    """The broker connected to ``venue`` (REST only unless ``streaming``), as a runner runs it."""
    params.setdefault("streaming", False)
    broker = CcxtBroker(exchange="binance", urls=venue.urls, **params)
    broker.use_credentials(BrokerCredentials(key, secret))
    reports = Reports()
    async with anyio.create_task_group() as tg:
        with anyio.fail_after(15):
            await tg.start(broker.run, reports, SettableClock())
        await broker.instruments([SYMBOL])
        yield broker, reports
        tg.cancel_scope.cancel()


def order(coid: str = "1-1", quantity: str = "0.5", side: Side = Side.BUY, *,
          kind: OrderType = OrderType.LIMIT, limit: str | None = "29000",
          tif: TimeInForce = TimeInForce.GTC, portfolio: int = 1) -> Order:
    return Order(client_order_id=coid, portfolio_id=portfolio, symbol=SYMBOL, side=side,
                 quantity=D(quantity), order_type=kind, time_in_force=tif,
                 limit_price=D(limit) if limit is not None else None,
                 status=OrderStatus.SUBMITTED)


# -- params -------------------------------------------------------------------------------------

def test_params_refuse_an_unknown_exchange_and_unknown_keys() -> None:
    with pytest.raises(InvalidParams, match="param 'exchange': 'binanse' is not a ccxt"):
        CcxtBroker(exchange="binanse")
    with pytest.raises(InvalidParams, match="param 'api_key': unknown param"):
        CcxtBroker(exchange="binance", api_key="x")
    broker = CcxtBroker(exchange="binance")
    assert (broker.name, broker.credentials_for) == ("binance", "binance")
    assert broker.capabilities.modify  # ccxt's binance has editOrder (cancel-replace)
    assert broker.capabilities.streaming


# -- orders -------------------------------------------------------------------------------------

async def test_a_limit_order_is_placed_with_lts_client_id_queried_and_canceled(
        venue: Venue) -> None:
    async with running(venue) as (broker, _):
        venue_id = await broker.submit(order("1-7"))
        placed = venue.exchange.order("acct", "BTCUSDT", client_order_id="1-7")
        assert venue_id == str(placed.order_id)
        assert (placed.price, placed.orig_qty, placed.time_in_force.value) == \
            (D(29000), D("0.5"), "GTC")

        report = await broker.query_order(order("1-7"))
        assert report is not None
        assert (report.client_order_id, report.status, report.broker_order_id) == \
            ("1-7", OrderStatus.ACCEPTED, venue_id)
        assert [r.client_order_id for r in await broker.open_orders()] == ["1-7"]

        await broker.cancel(order("1-7"))
        assert not placed.is_open or venue.exchange.order(
            "acct", "BTCUSDT", client_order_id="1-7").status.value == "CANCELED"
        report = await broker.query_order(order("1-7"))
        assert report is not None
        assert report.status is OrderStatus.CANCELED
        assert await broker.open_orders() == []
        with pytest.raises(VenueRejected, match="Unknown order"):
            await broker.cancel(order("1-7"))  # canceled already: the venue says so


async def test_an_order_the_venue_never_had_is_none_on_query(venue: Venue) -> None:
    async with running(venue) as (broker, _):
        assert await broker.query_order(order("1-99")) is None


async def test_a_resting_order_fills_and_the_query_carries_its_fills(venue: Venue) -> None:
    async with running(venue) as (broker, _):
        await broker.submit(order("1-2", "0.5", limit="29000"))
        venue.bar("29500", low="28900", high="29600", volume="100")  # trades through 29000
        report = await broker.query_order(order("1-2"))
        assert report is not None
        assert report.status is OrderStatus.FILLED
        (fill,) = report.fills
        trade = venue.exchange.trades[-1]
        assert fill.trade_id == f"{SYMBOL}:{trade.trade_id}"
        assert (fill.client_order_id, fill.portfolio_id, fill.side, fill.quantity,
                fill.price) == ("1-2", 1, Side.BUY, D("0.5"), D(29000))
        # the venue took its commission in BTC (0.1 %): the position holds that much less
        assert (fill.fee, fill.commission) == (D(0), D("0.0005"))
        balance = venue.exchange.balances(ACCOUNT)["BTC"]
        assert fill.position_quantity == balance.free + balance.locked - D(1)  # it held 1 BTC
        assert fill.ts_event == trade.time * 1_000_000

        fills = await broker.fills(0)
        assert [f.trade_id for f in fills] == [fill.trade_id]
        assert await broker.fills((trade.time + 1) * 1_000_000) == []


async def test_a_market_order_fills_at_once_and_its_answer_is_reported(venue: Venue) -> None:
    async with running(venue) as (broker, reports):
        await broker.submit(order("1-3", "0.01", kind=OrderType.MARKET, limit=None))
        report = await reports.wait_for(lambda r: isinstance(r, OrderStatusReport))
        assert isinstance(report, OrderStatusReport)
        assert report.status is OrderStatus.FILLED
        (fill,) = report.fills
        assert (fill.quantity, fill.price) == (D("0.01"), D(30000))
        # the same trade from a query: the same id (the runner applies it once)
        fills = await broker.fills(0)
        assert [f.trade_id for f in fills] == [fill.trade_id]


async def test_fills_of_an_order_placed_outside_lts_are_passed_with_its_id(
        venue: Venue) -> None:
    from lts.venue.exchange import OrderType as VenueType
    from lts.venue.exchange import Side as VenueSide
    async with running(venue) as (broker, _):
        venue.exchange.place("acct", "BTCUSDT", VenueSide.BUY, VenueType.MARKET, D("0.01"),
                             client_order_id="web-123")
        (fill,) = await broker.fills(0)
        assert (fill.client_order_id, fill.quantity) == ("web-123", D("0.01"))


async def test_the_venue_s_refusals_are_rejections_with_its_reason(venue: Venue) -> None:
    async with running(venue) as (broker, _):
        with pytest.raises(VenueRejected, match="NOTIONAL"):
            await broker.submit(order("1-4", "0.0001", limit="29000"))  # 2.9 USDT < 5
        with pytest.raises(VenueRejected, match="insufficient balance"):
            await broker.submit(order("1-5", "50", limit="29000"))
        with pytest.raises(VenueRejected, match="tick grid"):
            await broker.submit(order("1-6", "0.5", limit="29000.005"))  # never rounded
        with pytest.raises(VenueRejected, match="lots"):
            await broker.submit(order("1-8", "0.500001", limit="29000"))
        assert venue.exchange.orders == {}  # none of them was placed


# -- modify: Binance spot's cancel-replace -------------------------------------------------------

def at_venue(venue: Venue, coid: str) -> list[Any]:
    """The venue's orders under client order id ``coid``, oldest first."""
    return [o for o in venue.exchange.orders.values() if o.client_order_id == coid]


async def test_modify_replaces_the_order_under_lts_id_and_it_fills_at_the_new_price(
        venue: Venue) -> None:
    async with running(venue) as (broker, reports):
        working = order("1-9", "0.5", limit="29000")
        working.broker_order_id = await broker.submit(working)
        reports.clear()
        await broker.modify(working, ModifyOrder("1-9", quantity=D("0.4"),
                                                 limit_price=D("28500")))
        old, new = at_venue(venue, "1-9")
        assert (old.status.value, new.status.value) == ("CANCELED", "NEW")
        assert (new.price, new.orig_qty) == (D(28500), D("0.4"))
        assert str(old.order_id) == working.broker_order_id
        # the runner learns the new venue id from a report
        (told,) = reports
        assert isinstance(told, OrderStatusReport)
        assert (told.client_order_id, told.status, told.broker_order_id) == \
            ("1-9", OrderStatus.ACCEPTED, str(new.order_id))
        # queries by LTS's id find the new order, though the runner still holds the old id
        report = await broker.query_order(working)
        assert report is not None
        assert (report.status, report.broker_order_id) == \
            (OrderStatus.ACCEPTED, str(new.order_id))
        assert [r.broker_order_id for r in await broker.open_orders()] == [str(new.order_id)]

        venue.bar("28800", low="28700", volume="100")  # not down to 28,500: rests on
        assert new.executed_qty == 0
        venue.bar("28450", low="28400", volume="100")  # through 28,500: fills there
        report = await broker.query_order(working)
        assert report is not None
        assert report.status is OrderStatus.FILLED
        (fill,) = report.fills
        assert (fill.client_order_id, fill.quantity, fill.price) == ("1-9", D("0.4"), D(28500))
        assert [f.client_order_id for f in await broker.fills(0)] == ["1-9"]

        # a second change: it cancels whatever works under the id now (filled: unknown)
        with pytest.raises(VenueRejected, match=r"Unknown order sent"):
            await broker.modify(working, ModifyOrder("1-9", limit_price=D("28000")))


async def test_a_streamed_modify_keeps_fills_and_reports_under_lts_id(venue: Venue) -> None:
    """The replaced order's cancel is not the LTS order's end: no CANCELED is reported; the
    partly filled order goes on for what is left, at its new price, under the same id."""
    async with running(venue, streaming=True) as (broker, reports):
        working = order("7-2", "0.5", limit="29000", portfolio=7)
        working.broker_order_id = await broker.submit(working)
        await reports.wait_for(status("7-2", OrderStatus.ACCEPTED))
        venue.bar("28950", low="28900", volume="2")  # 0.2 BTC of liquidity: a partial fill
        await until(lambda: len(fills_of(reports, "7-2")) == 1)
        working.filled_quantity = D("0.2")
        await broker.modify(working, ModifyOrder("7-2", limit_price=D("28600")))
        old, new = at_venue(venue, "7-2")
        assert old.status.value == "CANCELED"
        assert (new.price, new.orig_qty) == (D(28600), D("0.3"))  # what was left
        await reports.wait_for(lambda r: isinstance(r, OrderStatusReport)
                               and r.broker_order_id == str(new.order_id))
        venue.bar("28550", low="28500", volume="100")
        await reports.wait_for(status("7-2", OrderStatus.FILLED))
        await until(lambda: len(fills_of(reports, "7-2")) == 2)
        assert [(f.quantity, f.price, f.portfolio_id) for f in fills_of(reports, "7-2")] == \
            [(D("0.2"), D(29000), 7), (D("0.3"), D(28600), 7)]
        assert not [r for r in reports if isinstance(r, OrderStatusReport)
                    and r.status is OrderStatus.CANCELED]
        # a modified order canceled later: that cancel is the order's end, and reported
        other = order("7-3", "0.1", limit="28000", portfolio=7)
        other.broker_order_id = await broker.submit(other)
        await broker.modify(other, ModifyOrder("7-3", limit_price=D("28100")))
        await broker.cancel(other)
        _, replaced = at_venue(venue, "7-3")
        ended = await reports.wait_for(status("7-3", OrderStatus.CANCELED))
        assert isinstance(ended, OrderStatusReport)
        assert ended.broker_order_id == str(replaced.order_id)


async def test_a_modify_the_venue_refuses_is_rejected_with_its_words(venue: Venue) -> None:
    async with running(venue) as (broker, reports):
        working = order("1-9", "0.5", limit="29000")
        working.broker_order_id = await broker.submit(working)
        # below what already filled: nothing to replace it with, nothing sent
        working.filled_quantity = D("0.2")
        sent = venue.api_requests()
        with pytest.raises(VenueRejected, match=r"not above the 0\.2 already filled"):
            await broker.modify(working, ModifyOrder("1-9", quantity=D("0.2")))
        assert venue.api_requests() == sent
        working.filled_quantity = D(0)
        # the venue's filters, before anything is done
        with pytest.raises(VenueRejected, match="tick grid"):
            await broker.modify(working, ModifyOrder("1-9", limit_price=D("28500.001")))
        # the cancel is done, the new order is not (funds): rejected, and the order is canceled
        with pytest.raises(VenueRejected, match=r"partially failed.*insufficient balance") \
                as refused:
            await broker.modify(working, ModifyOrder("1-9", quantity=D(50)))
        assert SECRET not in str(refused.value)
        assert refused.value.__cause__ is None
        (old,) = at_venue(venue, "1-9")
        assert old.status.value == "CANCELED"
        canceled = await reports.wait_for(status("1-9", OrderStatus.CANCELED))
        assert isinstance(canceled, OrderStatusReport)
        assert canceled.broker_order_id == str(old.order_id)
        # a closed order: the venue does not know it any more (nothing is placed)
        with pytest.raises(VenueRejected, match=r"cancel-replace failed.*Unknown order sent"):
            await broker.modify(working, ModifyOrder("1-9", limit_price=D("28000")))
        assert at_venue(venue, "1-9") == [old]


# -- rules, balances ----------------------------------------------------------------------------

async def test_instruments_come_from_the_venue_s_filters(venue: Venue) -> None:
    async with running(venue) as (broker, _):
        rules = await broker.instruments([SYMBOL, "ETH/USDT"])
        assert rules == {SYMBOL: Instrument(SYMBOL, D("0.01"), D("0.00001"), D("0.00001"),
                                            D(5))}


async def test_balances_and_spot_positions_are_exact(venue: Venue) -> None:
    async with running(venue) as (broker, _):
        await broker.submit(order("1-10", "0.5", limit="29000"))  # locks 14,500 USDT
        assert await broker.balances() == {"USDT": D(100_000), "BTC": D(1)}
        assert await broker.positions() == {SYMBOL: D(1)}


# -- credentials --------------------------------------------------------------------------------

async def test_a_refused_key_stops_with_one_clear_reason_and_no_secret(
        venue: Venue, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)  # ccxt logs every request at DEBUG, headers included
    broker = CcxtBroker(exchange="binance", urls=venue.urls, streaming=False)
    broker.use_credentials(BrokerCredentials("wrong-key-777", SECRET))
    with pytest.raises(ConfigError) as err:
        await broker.run(Reports(), SettableClock())
    text = str(err.value)
    assert text.startswith("binance: the API key was refused (")
    assert "Invalid API-key" in text
    assert err.value.__cause__ is None
    assert err.value.__suppress_context__
    for secret in (SECRET, "wrong-key-777"):
        assert secret not in text
        assert secret not in caplog.text


async def test_a_wrong_secret_is_a_refused_key_too(venue: Venue) -> None:
    broker = CcxtBroker(exchange="binance", urls=venue.urls, streaming=False)
    broker.use_credentials(BrokerCredentials(KEY, "not-the-secret-42"))
    with pytest.raises(ConfigError, match=r"API key was refused .*Signature") as err:
        await broker.run(Reports(), SettableClock())
    assert "not-the-secret-42" not in str(err.value)
    assert "signature=" not in str(err.value).lower()


async def test_no_credentials_is_a_clear_error() -> None:
    broker = CcxtBroker(exchange="binance", urls={"public": "http://127.0.0.1:9/api/v3",
                                                  "private": "http://127.0.0.1:9/api/v3"})
    with pytest.raises(ConfigError, match="binance: no API key"):
        await broker.run(Reports(), SettableClock())


# -- the connection -----------------------------------------------------------------------------

async def test_an_unreachable_venue_is_unavailable_and_an_order_is_never_sent(
        venue: Venue) -> None:
    broker = CcxtBroker(exchange="binance", streaming=False,
                        urls={"public": "http://127.0.0.1:1/api/v3",
                              "private": "http://127.0.0.1:1/api/v3"})
    broker.use_credentials(BrokerCredentials(KEY, SECRET))
    with pytest.raises(VenueUnavailable, match="binance: cannot connect"):
        await broker.run(Reports(), SettableClock())
    with pytest.raises(VenueUnavailable, match="not connected"):
        await broker.submit(order("1-11"))


# -- the user data stream -----------------------------------------------------------------------

def status(coid: str, wanted: OrderStatus) -> Callable[[ExecutionReport], bool]:
    return lambda r: isinstance(r, OrderStatusReport) and r.client_order_id == coid \
        and r.status is wanted


def fills_of(reports: Reports, coid: str) -> list[Fill]:
    return [r for r in reports if isinstance(r, Fill) and r.client_order_id == coid]


def count(reports: Reports, kind: type) -> int:
    return sum(1 for r in reports if isinstance(r, kind))


async def test_a_resting_order_streams_accepted_partially_filled_filled_and_its_fills(
        venue: Venue) -> None:
    async with running(venue, streaming=True) as (broker, reports):
        venue_id = await broker.submit(order("7-2", "0.5", limit="29000", portfolio=7))
        await reports.wait_for(status("7-2", OrderStatus.ACCEPTED))
        venue.bar("28950", low="28900", volume="3")  # 0.3 BTC of liquidity: a partial fill
        await reports.wait_for(status("7-2", OrderStatus.PARTIALLY_FILLED))
        await until(lambda: len(fills_of(reports, "7-2")) == 1)
        venue.bar("28950", low="28900", volume="10")  # the rest
        await reports.wait_for(status("7-2", OrderStatus.FILLED))
        await until(lambda: len(fills_of(reports, "7-2")) == 2)

        streamed = [r for r in reports if isinstance(r, OrderStatusReport)]
        assert [r.status for r in streamed] == [OrderStatus.ACCEPTED,
                                                OrderStatus.PARTIALLY_FILLED, OrderStatus.FILLED]
        assert {r.broker_order_id for r in streamed} == {venue_id}
        trades = venue.exchange.my_trades(ACCOUNT, MARKET)
        assert [(t.qty, t.commission, t.commission_asset) for t in trades] == \
            [(D("0.3"), D("0.0003"), "BTC"), (D("0.2"), D("0.0002"), "BTC")]
        assert fills_of(reports, "7-2") == [
            Fill(7, "7-2", "binance", f"{SYMBOL}:{t.trade_id}", SYMBOL, Side.BUY, t.qty,
                 D(29000), D(0), t.time * 1_000_000, t.commission) for t in trades]
        # the same trades from a query: the same ids and values (the runner applies each once)
        assert await broker.fills(0) == fills_of(reports, "7-2")
        assert broker.fills_in == 2


async def test_a_report_the_venue_sends_twice_is_the_same_fill(venue: Venue) -> None:
    async with running(venue, streaming=True) as (broker, reports):
        venue.faults.duplicate_reports = 2  # the NEW and the TRADE each come twice
        await broker.submit(order("1-3", "0.1", limit="29000"))
        venue.bar("28950", low="28900", volume="10")
        await reports.wait_for(status("1-3", OrderStatus.FILLED))
        assert venue.faults.duplicate_reports == 0
        # the stream is in order: once the next order's report is here, so are the repeats
        await broker.submit(order("1-4", "0.1", limit="28000"))
        await reports.wait_for(status("1-4", OrderStatus.ACCEPTED))
        fills = fills_of(reports, "1-3")
        (trade,) = venue.exchange.my_trades(ACCOUNT, MARKET)
        assert 1 <= len(fills) <= 2
        assert {f.trade_id for f in fills} == {f"{SYMBOL}:{trade.trade_id}"}
        assert all(f == fills[0] for f in fills)  # identical: deduplicated by trade id


async def test_a_dropped_stream_is_reported_once_then_reconnected_and_fills_are_resynced(
        venue: Venue) -> None:
    async with running(venue, streaming=True) as (broker, reports):
        await broker.submit(order("1-5", "0.5", limit="29000"))
        await reports.wait_for(status("1-5", OrderStatus.ACCEPTED))
        since = wall_ms() * 1_000_000
        venue.faults.drop_websockets()
        venue.bar("28950", low="28900", volume="10")  # fills while the stream is down
        (trade,) = venue.exchange.my_trades(ACCOUNT, MARKET)
        down = await reports.wait_for(lambda r: isinstance(r, VenueDisconnected))
        assert isinstance(down, VenueDisconnected)
        assert down.broker == "binance"
        assert "stream" in down.reason
        await reports.wait_for(lambda r: isinstance(r, VenueReconnected))
        assert fills_of(reports, "1-5") == []  # the stream never said
        # the runner's resync: the fills since its last find the one made meanwhile
        (fill,) = await broker.fills(since)
        assert (fill.trade_id, fill.client_order_id, fill.quantity) == \
            (f"{SYMBOL}:{trade.trade_id}", "1-5", D("0.5"))
        report = await broker.query_order(order("1-5"))
        assert report is not None
        assert report.status is OrderStatus.FILLED
        # streaming again
        await broker.submit(order("1-6", "0.1", limit="28000"))
        await reports.wait_for(status("1-6", OrderStatus.ACCEPTED))
        assert (count(reports, VenueDisconnected), count(reports, VenueReconnected)) == (1, 1)
        assert broker.reconnects == 1


# -- faults -------------------------------------------------------------------------------------

async def test_an_order_whose_answer_is_lost_is_found_by_its_client_id(venue: Venue) -> None:
    async with running(venue, streaming=True) as (broker, reports):
        venue.faults.drop_order_answers = 1
        with pytest.raises(VenueAnswerLost, match="binance: no answer") as lost:
            await broker.submit(order("1-12"))
        assert lost.value.__cause__ is None
        placed = [o for o in venue.exchange.orders.values() if o.client_order_id == "1-12"]
        assert len(placed) == 1  # carried out once, never sent again
        report = await broker.query_order(order("1-12"))
        assert report is not None
        assert (report.client_order_id, report.status, report.broker_order_id) == \
            ("1-12", OrderStatus.ACCEPTED, str(placed[0].order_id))
        # the stream told it anyway
        await reports.wait_for(status("1-12", OrderStatus.ACCEPTED))


async def test_a_5xx_on_submit_is_an_answer_lost(venue: Venue) -> None:
    """A 503 says nothing of whether the order was placed (Binance: "execution status
    unknown"): the order is settled by a query, never sent again."""
    async with running(venue) as (broker, _):
        venue.faults.http_5xx = 1
        with pytest.raises(VenueAnswerLost, match="503"):
            await broker.submit(order("1-13"))
        assert await broker.query_order(order("1-13")) is None  # this venue did nothing


async def test_a_429_backs_off_without_calling_the_venue_again(venue: Venue) -> None:
    async with running(venue) as (broker, reports):
        venue.faults.set("weight_limit", 1)  # a fresh count: the next weighty call is over
        before = venue.api_requests()
        with pytest.raises(VenueUnavailable, match="rate limited, backing off"):
            await broker.balances()  # weight 20
        assert venue.api_requests() == before + 1
        for call in (broker.submit(order("1-14")), broker.query_order(order("1-14")),
                     broker.open_orders(), broker.fills(0), broker.balances()):
            with pytest.raises(VenueUnavailable, match="rate limited, backing off"):
                await call
        assert venue.api_requests() == before + 1  # none of them reached the venue
        assert not any(isinstance(r, VenueBanned) for r in reports)


async def test_a_418_reports_the_ban_and_nothing_is_sent_until_it_ends(venue: Venue) -> None:
    import aiohttp

    async with running(venue, streaming=True) as (broker, reports):
        venue.faults.set("weight_limit", 1)
        async with aiohttp.ClientSession() as other:  # a client on the same address that
            for _ in range(5):  # ignores the 429s: the address is banned
                async with other.get(f"http://127.0.0.1:{venue.port}/api/v3/ping") as answer:
                    last = answer.status
        assert last == 418
        before = venue.api_requests()
        with pytest.raises(VenueUnavailable, match="banned by the venue"):
            await broker.submit(order("1-15"))
        banned = await reports.wait_for(lambda r: isinstance(r, VenueBanned))
        assert isinstance(banned, VenueBanned)
        assert "banned until" in banned.reason
        assert venue.api_requests() == before + 1
        for call in (broker.submit(order("1-16")), broker.query_order(order("1-15")),
                     broker.open_orders(), broker.balances()):
            with pytest.raises(VenueUnavailable, match="banned by the venue for"):
                await call
        assert venue.api_requests() == before + 1
        assert count(reports, VenueBanned) == 1
        assert not [o for o in venue.exchange.orders.values()]


async def test_a_user_stream_refusing_the_key_stops_with_one_clear_reason(
        caplog: pytest.LogCaptureFixture) -> None:
    """ccxt 4.5.90 raises a refused user-data subscription as KeyError('spot') (its cleanup
    trips) over the AuthenticationError: still the refused key, with the venue's words."""
    caplog.set_level(logging.DEBUG)
    async with serve_venue(ws_secret="the-stream-knows-another-secret") as venue:
        broker = CcxtBroker(exchange="binance", urls=venue.urls)  # REST takes the key
        broker.use_credentials(BrokerCredentials(KEY, SECRET))
        with pytest.raises(ConfigError) as err:
            with anyio.fail_after(DEADLINE):
                await broker.run(Reports(), SettableClock())
        assert venue.ws.user_subscriptions(ACCOUNT) == 0
    text = str(err.value)
    assert text.startswith("binance: the API key was refused (")
    assert "Signature" in text
    assert err.value.__cause__ is None
    assert err.value.__suppress_context__
    for secret in (SECRET, "the-stream-knows-another-secret"):
        assert secret not in text
        assert secret not in caplog.text


async def test_a_key_refused_on_reconnect_stops_the_broker(venue: Venue) -> None:
    reports = Reports()
    broker = CcxtBroker(exchange="binance", urls=venue.urls)
    broker.use_credentials(BrokerCredentials(KEY, SECRET))
    with pytest.RaisesGroup(pytest.RaisesExc(ConfigError, match="API key was refused"),
                            flatten_subgroups=True):
        async with anyio.create_task_group() as tg:
            with anyio.fail_after(DEADLINE):
                await tg.start(broker.run, reports, SettableClock())
                venue.ws_keys[KEY] = (ACCOUNT, "rotated-secret")  # the key changed meanwhile
                venue.faults.drop_websockets()
                await anyio.sleep_forever()  # until run() stops
    assert count(reports, VenueDisconnected) == 1
    assert count(reports, VenueReconnected) == 0
