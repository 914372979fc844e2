"""The local Alpaca trading API (lts.venue.alpaca_server), driven by the real alpaca-py.

alpaca-py's ``TradingClient`` (typed models: every answer must parse as the SDK's model) runs
in worker threads; its ``TradingStream`` runs in a thread of its own with its own event loop,
as it does for any user, and its handler collects the ``trade_updates`` it parses.
"""

import asyncio
import threading
import warnings
from collections.abc import AsyncIterator
from decimal import Decimal as D
from typing import Any

import anyio
import pytest

from venue.alpaca_local import KEY, SECRET, LocalAlpaca, local_alpaca, until

with warnings.catch_warnings():  # alpaca-py's stream imports websockets' legacy client
    warnings.simplefilter("ignore", DeprecationWarning)
    from alpaca.common.exceptions import APIError
    from alpaca.trading.client import TradingClient
    from alpaca.trading.enums import OrderSide, OrderStatus, TimeInForce
    from alpaca.trading.requests import LimitOrderRequest, MarketOrderRequest, ReplaceOrderRequest
    from alpaca.trading.stream import TradingStream

pytestmark = pytest.mark.anyio


class Stream:
    """alpaca-py's TradingStream in its own thread, its trade updates collected."""

    def __init__(self, url: str, key: str = KEY, secret: str = SECRET) -> None:
        self.updates: list[Any] = []
        self.sdk = TradingStream(key, secret, url_override=url)

        async def collect(update: Any) -> None:
            self.updates.append(update)

        self.sdk.subscribe_trade_updates(collect)
        self.thread = threading.Thread(target=self.sdk.run, daemon=True)
        self.thread.start()

    def events(self, coid: str) -> list[str]:
        return [getattr(u.event, "value", u.event) for u in self.updates
                if u.order.client_order_id == coid]

    def stop(self) -> None:  # from a worker thread: the close handshake needs the venue's loop
        while self.sdk._loop is None:
            self.thread.join(0.01)
        asyncio.run_coroutine_threadsafe(self.sdk.stop_ws(), self.sdk._loop).result(10)
        asyncio.run_coroutine_threadsafe(self.sdk.close(), self.sdk._loop).result(10)
        self.thread.join(10)


@pytest.fixture
async def local() -> AsyncIterator[tuple[LocalAlpaca, TradingClient, Stream]]:
    async with local_alpaca() as running:
        client = TradingClient(KEY, SECRET, url_override=running.url)
        stream = Stream(running.stream_url)
        await until(lambda: running.venue.listeners)  # authorized and listening
        try:
            yield running, client, stream
        finally:
            await anyio.to_thread.run_sync(stream.stop)


async def call(fn: Any, *args: Any) -> Any:
    return await anyio.to_thread.run_sync(fn, *args)


async def test_the_account_and_assets_read_as_alpacas(
        local: tuple[LocalAlpaca, TradingClient, Stream]) -> None:
    _, client, _ = local
    account = await call(client.get_account)
    assert (account.status.value, account.cash, account.currency) == ("ACTIVE", "100000", "USD")
    spy = await call(client.get_asset, "SPY")
    assert (spy.fractionable, spy.price_increment) == (True, 0.01)
    assert {a.symbol for a in await call(client.get_all_assets)} == {"AAPL", "SPY"}


async def test_bad_keys_are_forbidden_with_alpacas_code(local: tuple[LocalAlpaca, Any, Any]
                                                        ) -> None:
    running, _, _ = local
    stranger = TradingClient(KEY, "not-the-secret", url_override=running.url)
    with pytest.raises(APIError) as refused:
        await call(stranger.get_account)
    assert (refused.value.status_code, refused.value.code) == (403, 40310000)


async def test_a_limit_order_fills_in_parts_and_the_stream_says_so(
        local: tuple[LocalAlpaca, TradingClient, Stream]) -> None:
    running, client, stream = local
    placed = await call(client.submit_order, LimitOrderRequest(
        symbol="AAPL", qty=10, side=OrderSide.BUY, time_in_force=TimeInForce.DAY,
        limit_price=99.5, client_order_id="1-1"))
    assert (placed.status, placed.qty, placed.client_order_id) == (OrderStatus.NEW, "10", "1-1")
    running.bar("99.60", low="99.40", volume="8")
    running.bar("99.40", volume="100")
    await until(lambda: stream.events("1-1") == ["new", "partial_fill", "fill"])
    fills = [u for u in stream.updates if u.event in ("partial_fill", "fill")]
    assert [(u.qty, u.price, u.position_qty) for u in fills] == [(4, 99.5, 4), (10 - 4, 99.5, 10)]
    got = await call(client.get_order_by_client_id, "1-1")
    assert (got.id, got.status, got.filled_qty, got.filled_avg_price) == \
        (placed.id, OrderStatus.FILLED, "10", "99.5")
    activities = await call(client.get, "/account/activities/FILL", {"direction": "asc"})
    assert [a["id"].rpartition("::")[2] for a in activities] == \
        [str(u.execution_id) for u in fills]
    (position,) = await call(client.get_all_positions)
    assert (position.symbol, position.qty, position.avg_entry_price) == ("AAPL", "10", "99.5")


async def test_cancel_answers_204_then_422_when_it_is_no_longer_cancelable(
        local: tuple[LocalAlpaca, TradingClient, Stream]) -> None:
    _, client, stream = local
    placed = await call(client.submit_order, LimitOrderRequest(
        symbol="AAPL", qty=1, side=OrderSide.BUY, time_in_force=TimeInForce.GTC,
        limit_price=90, client_order_id="1-2"))
    await call(client.cancel_order_by_id, placed.id)
    await until(lambda: stream.events("1-2") == ["new", "canceled"])
    with pytest.raises(APIError) as refused:
        await call(client.cancel_order_by_id, placed.id)
    assert (refused.value.status_code, refused.value.code) == (422, 42210000)
    assert await call(client.get_orders) == []  # none open


async def test_a_replace_makes_a_new_order_that_replaces_the_old(
        local: tuple[LocalAlpaca, TradingClient, Stream]) -> None:
    _, client, stream = local
    old = await call(client.submit_order, LimitOrderRequest(
        symbol="AAPL", qty=5, side=OrderSide.BUY, time_in_force=TimeInForce.GTC,
        limit_price=90, client_order_id="1-3"))
    new = await call(client.replace_order_by_id, old.id, ReplaceOrderRequest(
        qty=3, limit_price=91, client_order_id="1-3~1"))
    assert (new.replaces, new.qty, new.limit_price) == (old.id, "3", "91")
    was = await call(client.get_order_by_id, old.id)
    assert (was.status, was.replaced_by) == (OrderStatus.REPLACED, new.id)
    await until(lambda: stream.events("1-3") == ["new", "replaced"])
    await until(lambda: stream.events("1-3~1") == ["new"])


async def test_what_the_account_cannot_pay_or_hold_is_refused_with_alpacas_reason(
        local: tuple[LocalAlpaca, TradingClient, Stream]) -> None:
    _, client, _ = local
    with pytest.raises(APIError) as refused:
        await call(client.submit_order, MarketOrderRequest(
            symbol="AAPL", qty=5000, side=OrderSide.BUY, time_in_force=TimeInForce.DAY))
    assert (refused.value.status_code, refused.value.message) == \
        (403, "insufficient buying power")
    again = MarketOrderRequest(symbol="AAPL", qty=1, side=OrderSide.BUY,
                               time_in_force=TimeInForce.DAY, client_order_id="1-4")
    await call(client.submit_order, again)
    with pytest.raises(APIError) as twice:
        await call(client.submit_order, again)
    assert (twice.value.status_code, twice.value.message) == \
        (422, "client_order_id must be unique")


async def test_the_stream_refuses_bad_keys(local: tuple[LocalAlpaca, Any, Any]) -> None:
    running, _, _ = local
    before = len(running.venue.listeners)
    frames: list[Any] = []
    import websockets.asyncio.client as ws

    async with ws.connect(running.stream_url) as socket:
        await socket.send(f'{{"action":"auth","key":"{KEY}","secret":"nope"}}')
        frames.append(await socket.recv())
        with pytest.raises(Exception):  # noqa: B017, PT011 - the venue closes the socket
            await socket.recv()
    assert b'"status":"unauthorized"' in frames[0]
    assert len(running.venue.listeners) == before


def test_money_is_written_as_alpaca_writes_it() -> None:
    from lts.venue.alpaca_server import plain

    assert (plain(D("99.500")), plain(D("1E+1")), plain(None)) == ("99.5", "10", None)
