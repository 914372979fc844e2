"""Broker ``alpaca`` against the local Alpaca trading API (tests/venue/alpaca_local.py).

The plugin is driven as the runner drives a broker: ``run()`` in a task group with a sink
that collects its execution reports, then its calls. The venue's bars come from the test
(``bar``), so fills arrive when the test says.
"""

import threading
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from decimal import Decimal as D
from typing import Any

import anyio
import pytest
from venue.alpaca_local import KEY, SECRET, LocalAlpaca, local_alpaca, until

from lts.domain.commands import ModifyOrder
from lts.domain.orders import Fill, Order, OrderStatus, OrderStatusReport, OrderType, Side
from lts.errors import VenueAnswerLost, VenueRejected, VenueUnavailable
from lts.persistence.credentials import BrokerCredentials
from lts.plugins.broker import ExecutionReport, VenueDisconnected, VenueReconnected
from lts.plugins.broker.alpaca import AlpacaBroker
from lts.plugins.registry import Registry

pytestmark = pytest.mark.anyio


class WallClock:
    def now_ns(self) -> int:
        return time.time_ns()


@dataclass
class Sink:
    """The runner's inbox, as a list (reports from the SDK's thread come threadsafe)."""

    reports: list[ExecutionReport] = field(default_factory=list)
    threads: set[str] = field(default_factory=set)

    def __call__(self, report: ExecutionReport) -> None:
        self.reports.append(report)

    def threadsafe(self, report: ExecutionReport) -> None:
        self.threads.add(threading.current_thread().name)
        self.reports.append(report)

    def of(self, kind: type[Any]) -> list[Any]:
        return [r for r in self.reports if isinstance(r, kind)]

    def status(self, coid: str) -> list[OrderStatus]:
        return [r.status for r in self.of(OrderStatusReport) if r.client_order_id == coid]


def order(coid: str, qty: str = "10", side: Side = Side.BUY, *, limit: str | None = None,
          kind: OrderType = OrderType.LIMIT, symbol: str = "AAPL") -> Order:
    return Order(client_order_id=coid, portfolio_id=7, symbol=symbol, side=side,
                 quantity=D(qty), order_type=kind, limit_price=None if limit is None
                 else D(limit), status=OrderStatus.SUBMITTED)


def broker_for(local: LocalAlpaca, *, secret: str = SECRET, **params: Any) -> AlpacaBroker:
    broker = AlpacaBroker(url_override=local.url, **params)
    broker.use_credentials(BrokerCredentials(KEY, secret))
    return broker


@pytest.fixture
async def local() -> AsyncIterator[LocalAlpaca]:
    async with local_alpaca() as running:
        yield running


@pytest.fixture
async def connected(local: LocalAlpaca) -> AsyncIterator[tuple[LocalAlpaca, AlpacaBroker, Sink]]:
    broker, sink = broker_for(local, timeout=2.0), Sink()
    async with anyio.create_task_group() as tg:
        await tg.start(broker.run, sink, WallClock())
        yield local, broker, sink
        tg.cancel_scope.cancel()


def test_the_plugin_is_registered_under_its_name() -> None:
    broker = Registry.discover().create("broker", "alpaca", {"paper": True})
    assert broker.name == "alpaca"
    assert broker.credentials_for == "alpaca"


async def test_a_limit_order_is_acknowledged_then_filled_in_parts_as_bars_trade(
        connected: tuple[LocalAlpaca, AlpacaBroker, Sink]) -> None:
    local, broker, sink = connected
    venue_id = await broker.submit(order("7-1", "10", limit="99.50"))
    assert venue_id == local.venue.by_client_order_id("7-1").id
    await until(lambda: OrderStatus.ACCEPTED in sink.status("7-1"))
    local.bar("99.60", low="99.40", volume="8")  # half the volume is there: 4
    await until(lambda: len(sink.of(Fill)) == 1)
    local.bar("99.40", volume="100")
    await until(lambda: len(sink.of(Fill)) == 2)
    fills = sink.of(Fill)
    assert [(f.client_order_id, f.quantity, f.price, f.side, f.portfolio_id) for f in fills] \
        == [("7-1", D(4), D("99.5"), Side.BUY, 7), ("7-1", D(6), D("99.5"), Side.BUY, 7)]
    assert sink.threads == {"alpaca-trade-updates"}  # from the SDK's thread, handed over
    queried = await broker.query_order(order("7-1"))
    assert queried is not None
    assert queried.status is OrderStatus.FILLED
    assert {f.trade_id for f in queried.fills} == {f.trade_id for f in fills}
    assert {f.trade_id for f in await broker.fills(0)} == {f.trade_id for f in fills}
    assert await broker.positions() == {"AAPL": D(10)}
    assert await broker.balances() == {"USD": D(100_000) - D(10) * D("99.5")}


async def test_a_cancel_is_acknowledged_and_the_stream_reports_it(
        connected: tuple[LocalAlpaca, AlpacaBroker, Sink]) -> None:
    _, broker, sink = connected
    working = order("7-2", "5", limit="90")
    await broker.submit(working)
    await broker.cancel(working)
    await until(lambda: OrderStatus.CANCELED in sink.status("7-2"))
    assert await broker.open_orders() == []
    with pytest.raises(VenueRejected, match="not cancelable"):
        await broker.cancel(working)


async def test_a_change_replaces_the_order_and_is_reported_under_the_same_client_id(
        connected: tuple[LocalAlpaca, AlpacaBroker, Sink]) -> None:
    local, broker, sink = connected
    working = order("7-3", "10", limit="95")
    await broker.submit(working)
    await broker.modify(working, ModifyOrder("7-3", quantity=D(6), limit_price=D("98")))
    replacement = local.venue.by_client_order_id("7-3~1")
    assert (replacement.qty, replacement.limit_price) == (D(6), D(98))
    local.bar("97.90", volume="100")
    await until(lambda: sink.of(Fill))
    (fill,) = sink.of(Fill)
    assert (fill.client_order_id, fill.quantity, fill.price) == ("7-3", D(6), D(98))
    queried = await broker.query_order(working)
    assert queried is not None
    assert queried.status is OrderStatus.FILLED
    assert queried.broker_order_id == replacement.id
    assert len(queried.fills) == 1
    # a second change of a fresh broker finds the working order by the chain
    again = order("7-4", "3", limit="90")
    await broker.submit(again)
    await broker.modify(again, ModifyOrder("7-4", limit_price=D("91")))
    fresh = broker_for(local)
    await fresh.modify(again, ModifyOrder("7-4", limit_price=D("92")))
    assert local.venue.by_client_order_id("7-4~2").limit_price == D(92)


async def test_a_refusal_carries_alpacas_message(
        connected: tuple[LocalAlpaca, AlpacaBroker, Sink]) -> None:
    _, broker, _ = connected
    with pytest.raises(VenueRejected) as refused:
        await broker.submit(order("7-5", "5000", limit="100"))
    assert refused.value.reason == "insufficient buying power"
    with pytest.raises(VenueRejected, match="insufficient qty available"):
        await broker.submit(order("7-6", "1", Side.SELL, kind=OrderType.MARKET))
    assert await broker.query_order(order("7-5")) is None  # Alpaca never took it


async def test_an_answer_that_never_comes_is_lost_and_a_query_settles_it(
        connected: tuple[LocalAlpaca, AlpacaBroker, Sink]) -> None:
    local, broker, _ = connected
    local.venue.faults.hang_orders = 1
    with pytest.raises(VenueAnswerLost):
        await broker.submit(order("7-7", "2", limit="90"))
    local.venue.faults.release()
    queried = await broker.query_order(order("7-7"))
    assert queried is not None
    assert queried.status is OrderStatus.ACCEPTED


async def test_nothing_is_sent_when_the_venue_cannot_be_reached() -> None:
    with anyio.fail_after(10):
        listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
        port = listener.extra(anyio.abc.SocketAttribute.local_port)
        await listener.aclose()  # nobody listens there now
    broker = AlpacaBroker(url_override=f"http://127.0.0.1:{port}")
    broker.use_credentials(BrokerCredentials(KEY, SECRET))
    with pytest.raises(VenueUnavailable):
        await broker.submit(order("7-8"))


async def test_a_dropped_stream_is_reported_then_its_reconnection(
        connected: tuple[LocalAlpaca, AlpacaBroker, Sink]) -> None:
    local, broker, sink = connected
    local.venue.drop_streams()
    await until(lambda: sink.of(VenueDisconnected))
    await until(lambda: sink.of(VenueReconnected))
    kinds = [type(r) for r in sink.reports if isinstance(r, VenueDisconnected | VenueReconnected)]
    assert kinds == [VenueDisconnected, VenueReconnected]
    await broker.submit(order("7-9", "1", limit="90"))  # reports flow again
    await until(lambda: OrderStatus.ACCEPTED in sink.status("7-9"))


async def test_bad_keys_are_refused_with_a_clear_error_that_holds_no_secret(
        local: LocalAlpaca) -> None:
    broker, sink = broker_for(local, secret="wrong-secret-value"), Sink()
    with pytest.raises(VenueRejected) as refused:
        await broker.run(sink, WallClock())  # before it is ready: nothing to start
    message = str(refused.value)
    assert "refused API key PKLO..." in message
    assert "not authorized" in message
    assert "wrong-secret-value" not in message
    assert KEY not in message


async def test_instruments_come_from_alpacas_assets(
        connected: tuple[LocalAlpaca, AlpacaBroker, Sink]) -> None:
    _, broker, _ = connected
    rules = await broker.instruments(["AAPL", "SPY", "NOPE"])
    assert set(rules) == {"AAPL", "SPY"}
    assert (rules["AAPL"].tick_size, rules["AAPL"].lot_size) == (D("0.01"), D(1))
    assert (rules["SPY"].lot_size, rules["SPY"].min_quantity) == (D("1e-9"), D("1e-9"))
