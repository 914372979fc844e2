"""The local exchange's WebSocket front (lts.venue.binance_ws: its market streams and user data
stream), driven by the real ccxt.pro.

The venue (REST and WebSocket fronts on one Starlette app, over one exchange and one tape) runs
under uvicorn on a free loopback port; ccxt.pro's Binance class is pointed at it (REST, the
market streams' ``/ws``, the WebSocket API's ``/ws-api/v3``) and used as a user would:
``create_order`` over REST, ``watch_*`` over WebSockets. A few protocol details ccxt does not
exercise (the stream requests' answers, combined streams, limits) are checked with a plain
aiohttp WebSocket.

Every wait is on a condition under a deadline: a ``watch_*`` call is started, the test waits
until ccxt is listening for its answer (the client's pending future) and the venue has the
subscription, then makes the venue act.
"""

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from dataclasses import dataclass
from decimal import Decimal as D
from typing import Any

import aiohttp
import anyio
import ccxt.pro as ccxtpro
import pytest
import uvicorn
from ccxt.base.errors import AuthenticationError, NetworkError
from starlette.applications import Starlette
from starlette.routing import Mount

from lts.venue.binance_rest import BinanceRest
from lts.venue.binance_ws import PING_INTERVAL_S, PONG_TIMEOUT_S, BinanceWs, WsLimits
from lts.venue.exchange import Exchange, Market, OrderType, Side, TimeInForce
from lts.venue.faults import Faults
from lts.venue.tape import Tape

pytestmark = pytest.mark.anyio
KEY, SECRET = "test-key", "test-secret"
DEADLINE = 10


class Clock:
    """The WebSocket front's clock: the wall clock until a test fixes it."""

    def __init__(self) -> None:
        self.fixed: int | None = None

    def __call__(self) -> int:
        return self.fixed if self.fixed is not None else time.time_ns() // 1_000_000


@dataclass
class Venue:
    exchange: Exchange
    ws: BinanceWs
    tape: Tape
    faults: Faults
    clock: Clock
    port: int

    def bar(self, close: str, *, volume: str = "10", high: str | None = None,
            low: str | None = None) -> None:
        """A bar, as the venue's feed gives it: the exchange matches it, then the tape takes it
        (at the venue's time, opening at its close), which the market streams print."""
        c = D(close)
        h, lo = D(high) if high else c, D(low) if low else c
        self.exchange.on_bar("BTCUSDT", high=h, low=lo, close=c, volume=D(volume))
        self.tape.add("BTCUSDT", self.clock(), c, h, lo, c, D(volume))


class RecordingBinance(ccxtpro.binance):  # type: ignore[misc]
    """ccxt.pro's Binance, keeping every frame it receives (to see what came twice)."""

    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__(config)
        self.frames: list[Any] = []

    def handle_message(self, client: Any, message: Any) -> Any:
        self.frames.append(message)
        return super().handle_message(client, message)

    def events(self, kind: str) -> list[dict[str, Any]]:
        return [f["event"] for f in self.frames
                if isinstance(f, dict) and f.get("event", {}).get("e") == kind]


def ccxt_client(port: int, secret: str = SECRET) -> RecordingBinance:
    ex = RecordingBinance({"apiKey": KEY, "secret": secret, "options": {
        "fetchMarkets": {"types": ["spot"]}, "fetchCurrencies": False, "fetchMargins": False}})
    api = ex.urls["api"]
    api["public"] = api["private"] = f"http://127.0.0.1:{port}/api/v3"
    api["ws"]["spot"] = f"ws://127.0.0.1:{port}/ws"
    api["ws"]["ws-api"]["spot"] = f"ws://127.0.0.1:{port}/ws-api/v3"
    return ex


@pytest.fixture
async def venue() -> AsyncIterator[Venue]:
    exchange = Exchange([Market("BTCUSDT", "BTC", "USDT")])
    exchange.add_account("acct", {"USDT": D(100_000), "BTC": D(1)})
    exchange.on_bar("BTCUSDT", high=D(30_100), low=D(29_900), close=D(30_000), volume=D(10))
    keys = {KEY: ("acct", SECRET)}
    faults, clock, tape = Faults(), Clock(), Tape(exchange.markets)
    ws = BinanceWs(exchange, keys, faults=faults, clock=clock, tape=tape,
                   limits=WsLimits(max_connections=8))
    rest = BinanceRest(exchange, keys, faults=faults, tape=tape)
    app = Starlette(routes=[*ws.routes, Mount("", app=rest.app)])
    server = uvicorn.Server(uvicorn.Config(
        app, host="127.0.0.1", port=0, log_level="warning", lifespan="off",
        ws_ping_interval=PING_INTERVAL_S, ws_ping_timeout=PONG_TIMEOUT_S))
    async with anyio.create_task_group() as tg:
        tg.start_soon(server.serve)
        with anyio.fail_after(DEADLINE):
            while not server.started:  # noqa: ASYNC110 - uvicorn offers no event
                await anyio.sleep(0.01)
        yield Venue(exchange, ws, tape, faults, clock,
                    server.servers[0].sockets[0].getsockname()[1])
        server.should_exit = True


@pytest.fixture
async def ex(venue: Venue) -> AsyncIterator[RecordingBinance]:
    client = ccxt_client(venue.port)
    try:
        await client.load_markets()
        yield client
    finally:
        await client.close()


async def until(condition: Callable[[], bool]) -> None:
    """Wait until ``condition`` holds (polled), at most :data:`DEADLINE` seconds."""
    with anyio.fail_after(DEADLINE):
        while not condition():  # noqa: ASYNC110 - the conditions are ccxt's and the venue's
            await anyio.sleep(0.005)


def listening(ex: RecordingBinance, message_hash: str) -> bool:
    """Whether one of ccxt's connections waits for ``message_hash``."""
    return any(message_hash in client.futures for client in (ex.clients or {}).values())


async def watch(ex: RecordingBinance, call: Coroutine[Any, Any, Any], message_hash: str,
                ready: Callable[[], bool] = lambda: True) -> asyncio.Task[Any]:
    """Start a ``watch_*`` call; return once ccxt waits for its answer and ``ready`` holds."""
    task = asyncio.ensure_future(call)
    try:
        await until(lambda: task.done() or (listening(ex, message_hash) and ready()))
    except BaseException:
        task.cancel()
        raise
    return task


async def settled(task: Awaitable[Any]) -> Any:
    with anyio.fail_after(DEADLINE):
        return await task


def view(order: dict[str, Any]) -> tuple[Any, ...]:
    fee = order["fee"]["cost"] if order.get("fee") else None
    return (order["info"]["X"], order["status"], order["filled"], order["remaining"],
            order["price"], order["average"], fee)


# -- the user data stream -----------------------------------------------------------------------
async def test_an_order_is_seen_new_partially_filled_then_filled_with_its_trades(
        venue: Venue, ex: RecordingBinance) -> None:
    """A resting limit buy fills over two bars: watch_orders sees each state with its filled,
    remaining, price and accumulated fee; watch_my_trades each trade with the venue's ids;
    watch_balance the funds it locks and spends."""
    orders = await watch(ex, ex.watch_orders("BTC/USDT"), "orders:BTC/USDT",
                         lambda: venue.ws.user_subscriptions("acct") == 1)
    balance = await watch(ex, ex.watch_balance(), "spot:balance")
    placed = await ex.create_order("BTC/USDT", "limit", "buy", 0.5, 29_000,
                                   {"newClientOrderId": "lts-1"})
    (new,) = await settled(orders)
    assert (new["id"], new["clientOrderId"]) == (placed["id"], "lts-1")
    assert view(new) == ("NEW", "open", 0.0, 0.5, 29_000.0, None, None)
    funds = await settled(balance)
    assert (funds["USDT"]["free"], funds["USDT"]["used"]) == (85_500.0, 14_500.0)

    orders = await watch(ex, ex.watch_orders("BTC/USDT"), "orders:BTC/USDT")
    trades = await watch(ex, ex.watch_my_trades("BTC/USDT"), "myTrades:BTC/USDT")
    venue.bar("28950", low="28900", volume="3")  # 0.3 BTC of liquidity
    (partial,) = await settled(orders)
    assert view(partial) == ("PARTIALLY_FILLED", "open", 0.3, 0.2, 29_000.0, 29_000.0, 0.0003)
    first = (await settled(trades))[-1]

    orders = await watch(ex, ex.watch_orders("BTC/USDT"), "orders:BTC/USDT")
    trades = await watch(ex, ex.watch_my_trades("BTC/USDT"), "myTrades:BTC/USDT")
    balance = await watch(ex, ex.watch_balance(), "spot:balance")
    venue.bar("28950", low="28900", volume="10")
    (filled,) = await settled(orders)
    assert view(filled) == ("FILLED", "closed", 0.5, 0.0, 29_000.0, 29_000.0, 0.0005)
    second = (await settled(trades))[-1]
    venue_trades = venue.exchange.my_trades("acct", "BTCUSDT")
    assert [(t["id"], t["order"], t["amount"], t["price"], t["takerOrMaker"], t["fee"])
            for t in (first, second)] == [
        (str(vt.trade_id), placed["id"], float(vt.qty), 29_000.0, "maker",
         {"cost": float(vt.commission), "currency": "BTC"}) for vt in venue_trades]
    funds = await settled(balance)
    assert funds["BTC"]["free"] == pytest.approx(1 + 0.5 - 0.0005)
    assert (funds["USDT"]["free"], funds["USDT"]["used"]) == (85_500.0, 0.0)


async def test_the_execution_report_has_binances_fields(venue: Venue,
                                                        ex: RecordingBinance) -> None:
    """As Binance's user data stream documents them; a cancel names the canceled order in C."""
    orders = await watch(ex, ex.watch_orders("BTC/USDT"), "orders:BTC/USDT",
                         lambda: venue.ws.user_subscriptions("acct") == 1)
    placed = await ex.create_order("BTC/USDT", "limit", "sell", 0.1, 31_000,
                                   {"newClientOrderId": "lts-2"})
    await settled(orders)
    orders = await watch(ex, ex.watch_orders("BTC/USDT"), "orders:BTC/USDT")
    await ex.cancel_order(placed["id"], "BTC/USDT")
    (canceled,) = await settled(orders)
    assert (canceled["status"], canceled["clientOrderId"]) == ("canceled", "lts-2")
    new, cancel = ex.events("executionReport")
    assert set(new) == {"e", "E", "s", "c", "S", "o", "f", "q", "p", "P", "F", "g", "C", "x",
                        "X", "r", "i", "l", "z", "L", "n", "N", "T", "t", "I", "w", "m", "M",
                        "O", "Z", "Y", "Q", "V", "W"}
    assert {k: new[k] for k in ("s", "c", "S", "o", "f", "q", "p", "x", "X", "i", "t", "w",
                                "C", "N")} == {
        "s": "BTCUSDT", "c": "lts-2", "S": "SELL", "o": "LIMIT", "f": "GTC", "q": "0.10000000",
        "p": "31000.00000000", "x": "NEW", "X": "NEW", "i": int(placed["id"]), "t": -1,
        "w": True, "C": "", "N": None}
    assert {k: cancel[k] for k in ("c", "C", "x", "X", "w")} == {
        "c": f"cancel-{placed['id']}", "C": "lts-2", "x": "CANCELED", "X": "CANCELED",
        "w": False}
    (position, *_) = ex.events("outboundAccountPosition")
    assert position["B"] == [{"a": "BTC", "f": "0.90000000", "l": "0.10000000"}]


async def test_a_duplicated_report_arrives_twice(venue: Venue, ex: RecordingBinance) -> None:
    orders = await watch(ex, ex.watch_orders("BTC/USDT"), "orders:BTC/USDT",
                         lambda: venue.ws.user_subscriptions("acct") == 1)
    venue.faults.duplicate_reports = 1
    placed = await ex.create_order("BTC/USDT", "limit", "buy", 0.1, 29_000)
    (order,) = await settled(orders)
    assert order["id"] == placed["id"]
    await until(lambda: len(ex.events("outboundAccountPosition")) == 1)  # after the report
    first, second = ex.events("executionReport")
    assert first == second
    assert first["x"] == "NEW"
    assert venue.faults.duplicate_reports == 0
    orders = await watch(ex, ex.watch_orders("BTC/USDT"), "orders:BTC/USDT")
    venue.bar("28900", low="28900")
    await settled(orders)
    assert [e["x"] for e in ex.events("executionReport")] == ["NEW", "NEW", "TRADE"]


async def test_a_dropped_websocket_fails_the_watch_and_the_next_watch_reconnects(
        venue: Venue, ex: RecordingBinance) -> None:
    orders = await watch(ex, ex.watch_orders("BTC/USDT"), "orders:BTC/USDT",
                         lambda: venue.ws.user_subscriptions("acct") == 1)
    trades = await watch(ex, ex.watch_trades("BTC/USDT"), "trade::BTC/USDT",
                         lambda: venue.ws.subscribers("btcusdt@trade") == 1)
    venue.faults.drop_websockets()
    with pytest.raises(NetworkError):
        await settled(orders)
    with pytest.raises(NetworkError):
        await settled(trades)
    await until(lambda: venue.ws.connections == 0)
    orders = await watch(ex, ex.watch_orders("BTC/USDT"), "orders:BTC/USDT",
                         lambda: venue.ws.user_subscriptions("acct") == 1)
    placed = await ex.create_order("BTC/USDT", "limit", "buy", 0.1, 29_000)
    (order,) = await settled(orders)
    assert (order["id"], order["status"]) == (placed["id"], "open")


async def test_a_subscription_with_a_bad_signature_is_refused(venue: Venue) -> None:
    """-1022, as Binance answers it. (ccxt 4.5.90 then trips over its own cleanup: the watch
    raises KeyError('spot') from the AuthenticationError; against Binance too.)"""
    ex = ccxt_client(venue.port, secret="not-the-secret")
    try:
        await ex.load_markets()
        with pytest.raises((AuthenticationError, KeyError)) as refused:
            await settled(ex.watch_orders("BTC/USDT"))
    finally:
        await ex.close()
    cause = refused.value if isinstance(refused.value, AuthenticationError) else \
        refused.value.__context__
    assert isinstance(cause, AuthenticationError)
    assert '"code":-1022' in str(cause)
    assert venue.ws.user_subscriptions("acct") == 0


async def test_a_report_reaches_every_subscription_of_the_account(venue: Venue,
                                                                  ex: RecordingBinance) -> None:
    other = ccxt_client(venue.port)
    try:
        await other.load_markets()
        mine = await watch(ex, ex.watch_orders(), "orders",
                           lambda: venue.ws.user_subscriptions("acct") == 1)
        theirs = await watch(other, other.watch_orders(), "orders",
                             lambda: venue.ws.user_subscriptions("acct") == 2)
        venue.exchange.place("acct", "BTCUSDT", Side.BUY, OrderType.LIMIT, D("0.1"),
                             price=D(29_000), time_in_force=TimeInForce.GTC)
        assert [o["status"] for o in await settled(mine)] == ["open"]
        assert [o["status"] for o in await settled(theirs)] == ["open"]
    finally:
        await other.close()


# -- market streams -----------------------------------------------------------------------------
async def test_each_bar_is_a_trade_print_at_its_close(venue: Venue,
                                                      ex: RecordingBinance) -> None:
    trades = await watch(ex, ex.watch_trades("BTC/USDT"), "trade::BTC/USDT",
                         lambda: venue.ws.subscribers("btcusdt@trade") == 1)
    venue.bar("30500", volume="2.5", high="30600", low="30400")
    (trade,) = await settled(trades)
    assert (trade["id"], trade["price"], trade["amount"], trade["side"]) == \
        ("1", 30_500.0, 2.5, "buy")  # the price went up: the buyer took
    trades = await watch(ex, ex.watch_trades("BTC/USDT"), "trade::BTC/USDT")
    venue.bar("30400", volume="1")
    (trade,) = await settled(trades)
    assert (trade["id"], trade["price"], trade["side"]) == ("2", 30_400.0, "sell")


async def test_book_ticker_and_tickers_follow_the_tape(venue: Venue,
                                                      ex: RecordingBinance) -> None:
    """bookTicker: a tick each side of the last price, the bar's liquidity on each;
    watch_ticker's miniTicker (ccxt's default) and 24hrTicker: the rolling day."""
    bids_asks = await watch(ex, ex.watch_bids_asks(["BTC/USDT"]), "bidask:bookTicker@BTC/USDT",
                            lambda: venue.ws.subscribers("btcusdt@bookTicker") == 1)
    mini = await watch(ex, ex.watch_ticker("BTC/USDT"), "ticker:miniTicker@BTC/USDT",
                       lambda: venue.ws.subscribers("btcusdt@miniTicker") == 1)
    venue.bar("30500", volume="4", high="30700", low="30300")
    top = (await settled(bids_asks))["BTC/USDT"]
    assert (top["bid"], top["ask"], top["bidVolume"], top["askVolume"]) == \
        (30_499.99, 30_500.01, 0.4, 0.4)
    day = await settled(mini)
    assert (day["last"], day["open"], day["high"], day["low"], day["baseVolume"]) == \
        (30_500.0, 30_500.0, 30_700.0, 30_300.0, 4.0)
    full = await watch(ex, ex.watch_ticker("BTC/USDT", {"name": "ticker"}),
                       "ticker:ticker@BTC/USDT",
                       lambda: venue.ws.subscribers("btcusdt@ticker") == 1)
    venue.bar("30200", volume="6", high="30250", low="30100")
    day = await settled(full)
    assert (day["last"], day["open"], day["high"], day["low"], day["baseVolume"]) == \
        (30_200.0, 30_500.0, 30_700.0, 30_100.0, 10.0)
    assert (day["bid"], day["ask"], day["change"], day["percentage"]) == \
        (30_199.99, 30_200.01, -300.0, -0.984)
    assert day["quoteVolume"] == 4 * 30_500 + 6 * 30_200


async def test_klines_run_through_the_minute_and_close_with_it(venue: Venue,
                                                               ex: RecordingBinance) -> None:
    minute = (time.time_ns() // 1_000_000) // 60_000 * 60_000
    venue.clock.fixed = minute + 10_000
    ohlcv = await watch(ex, ex.watch_ohlcv("BTC/USDT", "1m"), "ohlcv::BTC/USDT::1m",
                        lambda: venue.ws.subscribers("btcusdt@kline_1m") == 1)
    venue.bar("30100", volume="1", high="30150", low="30050")
    assert (await settled(ohlcv))[-1] == [minute, 30_100.0, 30_150.0, 30_050.0, 30_100.0, 1.0]
    venue.clock.fixed = minute + 50_000
    ohlcv = await watch(ex, ex.watch_ohlcv("BTC/USDT", "1m"), "ohlcv::BTC/USDT::1m")
    venue.bar("30000", volume="2", high="30200", low="29950")
    assert (await settled(ohlcv))[-1] == [minute, 30_100.0, 30_200.0, 29_950.0, 30_000.0, 3.0]
    venue.clock.fixed = minute + 60_000 + 5_000
    ohlcv = await watch(ex, ex.watch_ohlcv("BTC/USDT", "1m"), "ohlcv::BTC/USDT::1m")
    venue.bar("30300", volume="1")  # the minute's candle closes, the next one opens
    assert await settled(ohlcv) == [[minute, 30_100.0, 30_200.0, 29_950.0, 30_000.0, 3.0]]
    await until(lambda: len([f for f in ex.frames if f.get("e") == "kline"]) == 4)
    assert ex.ohlcvs["BTC/USDT"]["1m"][-2:] == [
        [minute, 30_100.0, 30_200.0, 29_950.0, 30_000.0, 3.0],
        [minute + 60_000, 30_300.0, 30_300.0, 30_300.0, 30_300.0, 1.0]]
    klines = [f["k"] for f in ex.frames if f.get("e") == "kline"]
    assert [(k["t"], k["T"], k["x"], k["n"], k["f"], k["L"]) for k in klines] == [
        (minute, minute + 59_999, False, 1, 1, 1), (minute, minute + 59_999, False, 2, 1, 2),
        (minute, minute + 59_999, True, 2, 1, 2),
        (minute + 60_000, minute + 119_999, False, 1, 3, 3)]


async def test_kline_events_and_rest_klines_are_the_same_candles(venue: Venue,
                                                               ex: RecordingBinance) -> None:
    """The stream and the REST front read one tape: for the same bars, the candles watch_ohlcv
    builds are the ones fetch_ohlcv answers, and each kline event (the last of its candle) is
    the REST klines' row, field by field; the 24-hour ticker on the stream is REST's too."""
    minute = (time.time_ns() // 1_000_000) // 60_000 * 60_000 - 2 * 60_000
    ohlcv = await watch(ex, ex.watch_ohlcv("BTC/USDT", "1m"), "ohlcv::BTC/USDT::1m",
                        lambda: venue.ws.subscribers("btcusdt@kline_1m") == 1)
    bars = [(5_000, "30100", "30150", "30050", "1"), (40_000, "29990", "30200", "29950", "2"),
            (65_000, "30300", "30300", "30250", "1.5"), (90_000, "30250", "30400", "30200", "3")]
    for at, close, high, low, volume in bars[:-1]:
        venue.clock.fixed = minute + at
        venue.bar(close, high=high, low=low, volume=volume)
    await settled(ohlcv)
    ticker = await watch(ex, ex.watch_ticker("BTC/USDT", {"name": "ticker"}),
                         "ticker:ticker@BTC/USDT",
                         lambda: venue.ws.subscribers("btcusdt@ticker") == 1)
    at, close, high, low, volume = bars[-1]
    venue.clock.fixed = minute + at
    venue.bar(close, high=high, low=low, volume=volume)
    streamed = await settled(ticker)
    await until(lambda: len([f for f in ex.frames if f.get("e") == "kline"]) == 5)
    fetched = await ex.fetch_ohlcv("BTC/USDT", "1m")
    assert fetched == ex.ohlcvs["BTC/USDT"]["1m"][-2:]
    assert [c[0] for c in fetched] == [minute, minute + 60_000]
    events = {f["k"]["t"]: f["k"] for f in ex.frames if f.get("e") == "kline"}  # the last each
    rows = await ex.public_get_klines({"symbol": "BTCUSDT", "interval": "1m"})
    assert rows == [[k["t"], k["o"], k["h"], k["l"], k["c"], k["v"], k["T"], k["q"], k["n"],
                     k["V"], k["Q"], k["B"]] for k in events.values()]
    rest = await ex.fetch_ticker("BTC/USDT")
    assert [streamed[k] for k in ("open", "high", "low", "last", "baseVolume", "quoteVolume")] \
        == [rest[k] for k in ("open", "high", "low", "last", "baseVolume", "quoteVolume")]


# -- the stream protocol, as a plain client speaks it -------------------------------------------
async def test_stream_requests_are_answered_as_binance_answers_them(venue: Venue) -> None:
    """Binance's answers and error codes; 5 messages a second (the venue's clock), the sixth
    is disconnected."""
    venue.clock.fixed = 1_700_000_000_000
    async with aiohttp.ClientSession() as session, \
            session.ws_connect(f"ws://127.0.0.1:{venue.port}/ws") as ws:
        async def ask(request: Any) -> Any:
            await ws.send_str(request if isinstance(request, str) else json.dumps(request))
            with anyio.fail_after(DEADLINE):
                return json.loads((await ws.receive()).data)

        assert await ask({"method": "SUBSCRIBE", "params": ["btcusdt@trade",
                                                            "btcusdt@kline_5m"], "id": 1}) == \
            {"result": None, "id": 1}
        assert await ask({"method": "LIST_SUBSCRIPTIONS", "id": 2}) == \
            {"result": ["btcusdt@trade", "btcusdt@kline_5m"], "id": 2}
        assert await ask({"method": "UNSUBSCRIBE", "params": ["btcusdt@kline_5m"],
                          "id": 3}) == {"result": None, "id": 3}
        venue.clock.fixed += 1_000  # the next second
        assert await ask({"method": "SUBSCRIBE", "params": ["ethusdt@trade"], "id": 4}) == \
            {"error": {"code": 2, "msg": "Invalid request: invalid stream"}, "id": 4}
        assert (await ask({"method": "FOO", "id": 5}))["error"]["code"] == 2
        assert (await ask("{not json"))["error"]["code"] == 3
        assert await ask({"method": "GET_PROPERTY", "params": ["combined"], "id": 6}) == \
            {"result": False, "id": 6}
        assert venue.ws.subscribers("btcusdt@trade") == 1
        assert venue.ws.subscribers("btcusdt@kline_5m") == 0
        assert (await ask({"method": "LIST_SUBSCRIPTIONS", "id": 7}))["result"] == \
            ["btcusdt@trade"]
        with anyio.fail_after(DEADLINE):  # the sixth message of the second: disconnected
            await ws.send_str(json.dumps({"method": "LIST_SUBSCRIPTIONS", "id": 8}))
            while (await ws.receive()).type not in (aiohttp.WSMsgType.CLOSE,
                                                    aiohttp.WSMsgType.CLOSED):
                pass
    await until(lambda: venue.ws.connections == 0)


async def test_combined_streams_wrap_each_payload_with_its_stream(venue: Venue) -> None:
    url = f"ws://127.0.0.1:{venue.port}/stream?streams=btcusdt@trade/btcusdt@bookTicker"
    async with aiohttp.ClientSession() as session, session.ws_connect(url) as ws:
        await until(lambda: venue.ws.subscribers("btcusdt@bookTicker") == 1)
        venue.bar("30010", volume="1")
        with anyio.fail_after(DEADLINE):
            trade, book = [json.loads((await ws.receive()).data) for _ in range(2)]
    assert (trade["stream"], trade["data"]["e"], trade["data"]["p"]) == \
        ("btcusdt@trade", "trade", "30010.00000000")
    assert (book["stream"], book["data"]["b"], book["data"]["a"]) == \
        ("btcusdt@bookTicker", "30009.99000000", "30010.01000000")


async def test_connections_beyond_the_limit_are_refused(venue: Venue) -> None:
    url = f"ws://127.0.0.1:{venue.port}/ws"
    async with aiohttp.ClientSession() as session:
        sockets = [await session.ws_connect(url) for _ in range(8)]
        try:
            with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                await session.ws_connect(url)
            assert refused.value.status == 429
        finally:
            for ws in sockets:
                await ws.close()
