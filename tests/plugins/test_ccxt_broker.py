"""Broker ``ccxt`` against the local exchange (lts.venue), over real HTTP, with the real ccxt.

The venue (its matching engine, its Binance REST front) runs under uvicorn on a free loopback
port; the broker is LTS's, configured as a user would (``exchange="binance"`` and ``urls``
pointing at the venue), given its keys as the engine gives them, and run in a task group as the
runner runs it. Reports land in a list; tests wait for them with deadlines.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from decimal import Decimal as D
from typing import Any

import anyio
import pytest
import uvicorn

from lts.domain.commands import ModifyOrder
from lts.domain.instruments import Instrument
from lts.domain.orders import (
    Order,
    OrderStatus,
    OrderStatusReport,
    OrderType,
    Side,
    TimeInForce,
)
from lts.errors import ConfigError, InvalidParams, VenueRejected, VenueUnavailable
from lts.persistence.credentials import BrokerCredentials
from lts.plugins.broker import ExecutionReport
from lts.plugins.broker.ccxt_broker import CcxtBroker
from lts.venue.binance_rest import BinanceRest
from lts.venue.exchange import Exchange, Market

from ._support import SettableClock

pytestmark = pytest.mark.anyio
KEY, SECRET = "local-key-0123", "local-secret-s3cr3t-value"
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
                       seconds: float = 10) -> ExecutionReport:
        with anyio.fail_after(seconds):
            while True:
                for report in self:
                    if match(report):
                        return report
                await self._changed.wait()


class Venue:
    def __init__(self, exchange: Exchange, port: int) -> None:
        self.exchange, self.port = exchange, port

    @property
    def urls(self) -> dict[str, Any]:
        base = f"http://127.0.0.1:{self.port}"
        return {"public": f"{base}/api/v3", "private": f"{base}/api/v3"}

    def bar(self, close: str, *, low: str | None = None, high: str | None = None,
            volume: str = "100") -> None:
        self.exchange.on_bar("BTCUSDT", high=D(high or close), low=D(low or close),
                             close=D(close), volume=D(volume))


@pytest.fixture
async def venue() -> AsyncIterator[Venue]:
    exchange = Exchange([Market("BTCUSDT", "BTC", "USDT")])
    exchange.add_account("acct", {"USDT": D(100_000), "BTC": D(1)})
    exchange.on_bar("BTCUSDT", high=D(30_100), low=D(29_900), close=D(30_000), volume=D(10))
    rest = BinanceRest(exchange, {KEY: ("acct", SECRET)})
    server = uvicorn.Server(uvicorn.Config(rest.app, host="127.0.0.1", port=0,
                                           log_level="warning", lifespan="off"))
    async with anyio.create_task_group() as tg:
        tg.start_soon(server.serve)
        with anyio.fail_after(10):
            while not server.started:  # noqa: ASYNC110 - uvicorn offers no event
                await anyio.sleep(0.01)
        yield Venue(exchange, server.servers[0].sockets[0].getsockname()[1])
        server.should_exit = True


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
          tif: TimeInForce = TimeInForce.GTC) -> Order:
    return Order(client_order_id=coid, portfolio_id=1, symbol=SYMBOL, side=side,
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
        # the venue took its commission in BTC (0.1 %): LTS books it as cash at the price
        assert fill.fee == D("0.0005") * D(29000)
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


async def test_modify_is_refused_where_the_venue_cannot(venue: Venue) -> None:
    """The local venue has no cancel-replace (Binance spot's editOrder): refused, not lost."""
    async with running(venue) as (broker, _):
        venue_id = await broker.submit(order("1-9"))
        placed = order("1-9")
        placed.broker_order_id = venue_id
        with pytest.raises(VenueRejected) as err:
            await broker.modify(placed, ModifyOrder("1-9", limit_price=D("29100")))
        assert SECRET not in str(err.value)


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
