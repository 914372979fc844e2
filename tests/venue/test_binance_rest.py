"""The local exchange's Binance REST front (lts.venue.binance_rest), over real HTTP.

The venue runs under uvicorn on a free loopback port; the client signs its requests as
Binance's API documentation says (and as ccxt does): HMAC-SHA256 in hex, with the secret, of the
query string (GET, DELETE) or the form body (POST), ``signature`` appended last, the key in
``X-MBX-APIKEY``.
"""

import contextlib
import hashlib
import hmac
import json
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator
from decimal import Decimal as D
from typing import Any
from urllib.parse import urlencode

import anyio
import ccxt.async_support as ccxt
import pytest
import uvicorn

from lts.venue.binance_rest import BinanceRest
from lts.venue.exchange import Exchange, Market
from lts.venue.tape import Tape

pytestmark = pytest.mark.anyio
KEY, SECRET = "test-key", "test-secret"


class Client:
    def __init__(self, base: str, key: str = KEY, secret: str = SECRET) -> None:
        self.base, self.key, self.secret = base, key, secret

    async def call(self, method: str, path: str, params: dict[str, Any] | None = None, *,
                   signed: bool = False, stamp: int | None = None,
                   tamper: bool = False) -> tuple[int, Any, dict[str, str]]:
        query = dict(params or {})
        if signed:
            query["timestamp"] = stamp if stamp is not None else time.time_ns() // 1_000_000
        text = urlencode(query)
        if signed:
            signature = hmac.new(self.secret.encode(), text.encode(), hashlib.sha256).hexdigest()
            text += "&signature=" + ("0" * 64 if tamper else signature)
        url, body = f"{self.base}/api/v3/{path}", None
        if method == "POST":
            body = text.encode()
        elif text:
            url += "?" + text
        request = urllib.request.Request(url, data=body, method=method,
                                         headers={"X-MBX-APIKEY": self.key})
        if body is not None:
            request.add_header("Content-Type", "application/x-www-form-urlencoded")

        def send() -> tuple[int, Any, dict[str, str]]:
            try:
                with urllib.request.urlopen(request, timeout=10) as reply:
                    return reply.status, json.loads(reply.read()), dict(reply.headers)
            except urllib.error.HTTPError as err:
                return err.code, json.loads(err.read()), dict(err.headers)

        return await anyio.to_thread.run_sync(send)


@contextlib.asynccontextmanager
async def serving(rest: BinanceRest) -> AsyncIterator[int]:
    """``rest`` served by uvicorn on a free loopback port (yielded), as the venue serves it."""
    server = uvicorn.Server(uvicorn.Config(rest.app, host="127.0.0.1", port=0,
                                           log_level="warning", lifespan="off"))
    rest.server = server
    async with anyio.create_task_group() as tg:
        tg.start_soon(server.serve)
        with anyio.fail_after(10):
            while not server.started:  # noqa: ASYNC110 - uvicorn offers no event
                await anyio.sleep(0.01)
        yield server.servers[0].sockets[0].getsockname()[1]
        server.should_exit = True


def ccxt_client(port: int, key: str = KEY, secret: str = SECRET) -> Any:
    """ccxt's own async Binance client, its URLs pointed at the venue."""
    ex = ccxt.binance({"apiKey": key, "secret": secret, "options": {
        "fetchMarkets": {"types": ["spot"]}, "fetchCurrencies": False, "fetchMargins": False}})
    ex.urls["api"]["public"] = ex.urls["api"]["private"] = f"http://127.0.0.1:{port}/api/v3"
    return ex


def trade_bar(exchange: Exchange, tape: Tape, at: int, close: str, *, low: str | None = None,
              high: str | None = None, open: str | None = None, volume: str = "10") -> None:
    """A bar as the venue's feed gives it: the exchange matches it, the tape keeps it."""
    c = D(close)
    lo, hi, op = D(low or close), D(high or close), D(open or close)
    exchange.on_bar("BTCUSDT", high=hi, low=lo, close=c, volume=D(volume))
    tape.add("BTCUSDT", at, op, hi, lo, c, D(volume))


@pytest.fixture
async def venue() -> AsyncIterator[tuple[Exchange, Client]]:
    exchange = Exchange([Market("BTCUSDT", "BTC", "USDT")])
    exchange.add_account("acct", {"USDT": D(100_000), "BTC": D(1)})
    exchange.on_bar("BTCUSDT", high=D(30_100), low=D(29_900), close=D(30_000), volume=D(10))
    async with serving(BinanceRest(exchange, {KEY: ("acct", SECRET)})) as port:
        yield exchange, Client(f"http://127.0.0.1:{port}")


async def test_public_endpoints_describe_the_market_with_its_filters(
        venue: tuple[Exchange, Client]) -> None:
    _, client = venue
    status, body, headers = await client.call("GET", "ping")
    assert (status, body) == (200, {})
    status, info, _ = await client.call("GET", "exchangeInfo")
    (symbol,) = info["symbols"]
    filters = {f["filterType"]: f for f in symbol["filters"]}
    assert (symbol["symbol"], symbol["baseAsset"], symbol["quoteAsset"]) == \
        ("BTCUSDT", "BTC", "USDT")
    assert filters["PRICE_FILTER"]["tickSize"] == "0.01000000"
    assert filters["LOT_SIZE"]["stepSize"] == "0.00001000"
    assert filters["NOTIONAL"]["minNotional"] == "5.00000000"
    _, price, headers = await client.call("GET", "ticker/price", {"symbol": "BTCUSDT"})
    assert price == {"symbol": "BTCUSDT", "price": "30000.00000000"}
    assert int(headers["x-mbx-used-weight-1m"]) == 1 + 20 + 2  # ping, exchangeInfo, ticker


async def test_an_order_is_placed_queried_and_canceled_by_client_order_id(
        venue: tuple[Exchange, Client]) -> None:
    exchange, client = venue
    status, placed, _ = await client.call("POST", "order", {
        "symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "GTC",
        "quantity": "0.5", "price": "29000", "newClientOrderId": "1-7"}, signed=True)
    assert status == 200, placed
    assert (placed["clientOrderId"], placed["status"], placed["fills"]) == ("1-7", "NEW", [])
    _, got, _ = await client.call("GET", "order", {"symbol": "BTCUSDT",
                                                   "origClientOrderId": "1-7"}, signed=True)
    assert (got["orderId"], got["origQty"], got["price"]) == \
        (placed["orderId"], "0.50000000", "29000.00000000")
    _, account, _ = await client.call("GET", "account", signed=True)
    usdt = next(b for b in account["balances"] if b["asset"] == "USDT")
    assert (usdt["free"], usdt["locked"]) == ("85500.00000000", "14500.00000000")
    _, opened, _ = await client.call("GET", "openOrders", {"symbol": "BTCUSDT"}, signed=True)
    assert [o["clientOrderId"] for o in opened] == ["1-7"]
    status, canceled, _ = await client.call("DELETE", "order", {
        "symbol": "BTCUSDT", "origClientOrderId": "1-7"}, signed=True)
    assert (status, canceled["status"], canceled["origClientOrderId"]) == \
        (200, "CANCELED", "1-7")
    status, again, _ = await client.call("DELETE", "order", {
        "symbol": "BTCUSDT", "origClientOrderId": "1-7"}, signed=True)
    assert (status, again) == (400, {"code": -2011, "msg": "Unknown order sent."})
    assert exchange.balances("acct")["USDT"].locked == 0


async def test_a_market_order_fills_and_its_trades_are_listed(
        venue: tuple[Exchange, Client]) -> None:
    _, client = venue
    _, placed, _ = await client.call("POST", "order", {
        "symbol": "BTCUSDT", "side": "SELL", "type": "MARKET", "quantity": "0.25",
        "newClientOrderId": "1-8"}, signed=True)
    assert placed["status"] == "FILLED"
    assert placed["fills"] == [{"price": "30000.00000000", "qty": "0.25000000",
                                "commission": "7.50000000", "commissionAsset": "USDT",
                                "tradeId": 1}]
    _, trades, _ = await client.call("GET", "myTrades", {"symbol": "BTCUSDT"}, signed=True)
    assert [(t["orderId"], t["qty"], t["isBuyer"], t["isMaker"]) for t in trades] == \
        [(placed["orderId"], "0.25000000", False, False)]


async def test_requests_that_are_not_the_account_holders_are_refused(
        venue: tuple[Exchange, Client]) -> None:
    """A wrong key (401, -2015), a wrong signature (-1022), a stale timestamp (-1021): and
    nothing happens to the account."""
    exchange, client = venue
    order = {"symbol": "BTCUSDT", "side": "SELL", "type": "MARKET", "quantity": "0.1"}
    status, body, _ = await Client(client.base, key="nobody").call("POST", "order", order,
                                                                  signed=True)
    assert (status, body["code"]) == (401, -2015)
    status, body, _ = await client.call("POST", "order", order, signed=True, tamper=True)
    assert (status, body) == (400, {"code": -1022,
                                    "msg": "Signature for this request is not valid."})
    stale = time.time_ns() // 1_000_000 - 6_000
    status, body, _ = await client.call("POST", "order", order, signed=True, stamp=stale)
    assert (status, body["code"]) == (400, -1021)
    status, body, _ = await client.call("POST", "order", {**order, "quantity": "0.000015"},
                                        signed=True)
    assert (status, body) == (400, {"code": -1013, "msg": "Filter failure: LOT_SIZE"})
    status, body, _ = await client.call("GET", "myTrades", {"symbol": "BTCUSDT",
                                                            "fromId": "x"}, signed=True)
    assert (status, body["code"]) == (400, -1100)
    assert exchange.orders == {}


# -- cancel-replace (Binance spot's editOrder) ------------------------------------------------

async def test_ccxt_edit_order_cancels_and_replaces_under_the_same_client_order_id(
        venue: tuple[Exchange, Client]) -> None:
    """ccxt's ``edit_order`` is ``POST order/cancelReplace``: the resting order is canceled (by
    its client order id) and the new one takes that id; queries by it find the new order."""
    exchange, client = venue
    ex = ccxt_client(int(client.base.rsplit(":", 1)[1]))
    try:
        placed = await ex.create_order("BTC/USDT", "limit", "buy", 0.5, 29000,
                                       {"newClientOrderId": "1-7", "timeInForce": "GTC"})
        edited = await ex.edit_order(placed["id"], "BTC/USDT", "limit", "buy", 0.4, 29100,
                                     {"newClientOrderId": "1-7", "cancelOrigClientOrderId": "1-7",
                                      "timeInForce": "GTC"})
        assert edited["id"] != placed["id"]
        assert (edited["clientOrderId"], edited["status"], edited["price"], edited["amount"]) \
            == ("1-7", "open", 29100, 0.4)
        old, new = exchange.orders[int(placed["id"])], exchange.orders[int(edited["id"])]
        assert (old.status.value, new.status.value) == ("CANCELED", "NEW")
        assert exchange.balances("acct")["USDT"].locked == D("0.4") * D(29100)
        found = await ex.fetch_order(None, "BTC/USDT", {"origClientOrderId": "1-7"})
        assert (found["id"], found["price"]) == (edited["id"], 29100)
        # the canceled order is closed: a cancel-replace of it (by its venue id) fails with
        # -2022 and the venue's answer (ccxt: ExchangeError here, BadResponse on Binance's own
        # URLs, whose code table it uses)
        with pytest.raises((ccxt.ExchangeError, ccxt.BadResponse), match="Unknown order sent"):
            await ex.edit_order(placed["id"], "BTC/USDT", "limit", "buy", 0.4, 29200,
                                {"newClientOrderId": "1-7", "timeInForce": "GTC"})
        assert exchange.orders[int(edited["id"])].status.value == "NEW"  # untouched
    finally:
        await ex.close()


async def test_cancel_replace_answers_as_binance_does(venue: tuple[Exchange, Client]) -> None:
    exchange, client = venue
    _, placed, _ = await client.call("POST", "order", {
        "symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "GTC",
        "quantity": "0.5", "price": "29000", "newClientOrderId": "1-7"}, signed=True)
    replace = {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "GTC",
               "cancelReplaceMode": "STOP_ON_FAILURE", "cancelOrigClientOrderId": "1-7",
               "newClientOrderId": "1-7", "quantity": "0.3", "price": "29100"}
    status, body, headers = await client.call("POST", "order/cancelReplace", replace,
                                              signed=True)
    assert status == 200, body
    assert (body["cancelResult"], body["newOrderResult"]) == ("SUCCESS", "SUCCESS")
    cancel, new = body["cancelResponse"], body["newOrderResponse"]
    assert (cancel["orderId"], cancel["origClientOrderId"], cancel["status"]) == \
        (placed["orderId"], "1-7", "CANCELED")
    assert (new["clientOrderId"], new["status"], new["price"], new["origQty"], new["fills"]) \
        == ("1-7", "NEW", "29100.00000000", "0.30000000", [])
    assert int(headers["x-mbx-used-weight-1m"]) == 1 + 1  # the order, the cancel-replace

    # a filter failure is found before anything is done: a plain error, the order rests on
    status, body, _ = await client.call("POST", "order/cancelReplace",
                                        {**replace, "quantity": "0.000015"}, signed=True)
    assert (status, body) == (400, {"code": -1013, "msg": "Filter failure: LOT_SIZE"})
    assert exchange.orders[new["orderId"]].is_open

    # the cancel fails (STOP_ON_FAILURE): nothing done, -2022 with what became of each half
    status, body, _ = await client.call("POST", "order/cancelReplace",
                                        {**replace, "cancelOrigClientOrderId": "1-99"},
                                        signed=True)
    assert (status, body) == (400, {"code": -2022, "msg": "Order cancel-replace failed.",
                                    "data": {"cancelResult": "FAILURE",
                                             "newOrderResult": "NOT_ATTEMPTED",
                                             "cancelResponse": {"code": -2011,
                                                                "msg": "Unknown order sent."},
                                             "newOrderResponse": None}})
    # by venue id and client id, which name different orders: refused
    status, body, _ = await client.call("POST", "order/cancelReplace",
                                        {**replace, "cancelOrderId": placed["orderId"]},
                                        signed=True)
    assert (status, body["code"], body["data"]["cancelResponse"]["code"]) == (400, -2022, -2011)

    # the cancel is done, the new order is not (funds): 409, -2021, the order is gone
    status, body, _ = await client.call("POST", "order/cancelReplace",
                                        {**replace, "quantity": "50"}, signed=True)
    assert (status, body["code"], body["msg"]) == \
        (409, -2021, "Order cancel-replace partially failed.")
    data = body["data"]
    assert (data["cancelResult"], data["newOrderResult"]) == ("SUCCESS", "FAILURE")
    assert (data["cancelResponse"]["orderId"], data["cancelResponse"]["status"]) == \
        (new["orderId"], "CANCELED")
    assert data["newOrderResponse"] == {
        "code": -2010, "msg": "Account has insufficient balance for requested action."}
    assert exchange.open_orders("acct") == []
    assert exchange.balances("acct")["USDT"].locked == 0

    # ALLOW_FAILURE: the new order goes in although the cancel failed (409, -2021)
    status, body, _ = await client.call("POST", "order/cancelReplace",
                                        {**replace, "cancelReplaceMode": "ALLOW_FAILURE"},
                                        signed=True)
    assert (status, body["code"]) == (409, -2021)
    data = body["data"]
    assert (data["cancelResult"], data["newOrderResult"]) == ("FAILURE", "SUCCESS")
    assert data["newOrderResponse"]["clientOrderId"] == "1-7"
    assert [o.client_order_id for o in exchange.open_orders("acct")] == ["1-7"]


MINUTE = 60_000
T0 = 1_700_000_100_000  # the open of a minute, and of five


@pytest.fixture
async def taped() -> AsyncIterator[tuple[Exchange, Tape, int]]:
    """A venue whose tape holds five minutes of bars, two a minute: closes 100, 101, ... ."""
    exchange = Exchange([Market("BTCUSDT", "BTC", "USDT"), Market("ETHUSDT", "ETH", "USDT")])
    exchange.add_account("acct", {"USDT": D(100_000)})
    tape = Tape(exchange.markets)
    for minute in range(5):
        at = T0 + minute * MINUTE
        trade_bar(exchange, tape, at + 10_000, str(100 + minute), low=str(99 + minute),
                  open=str(100 + minute))
        trade_bar(exchange, tape, at + 40_000, str(100 + minute), high=str(102 + minute))
    rest = BinanceRest(exchange, {KEY: ("acct", SECRET)}, tape=tape,
                       clock=lambda: T0 + 5 * MINUTE)  # a minute after the tape (public only)
    async with serving(rest) as port:
        yield exchange, tape, port


async def test_fetch_ohlcv_backfills_from_the_tape_by_interval_since_and_limit(
        taped: tuple[Exchange, Tape, int]) -> None:
    _, _, port = taped
    ex = ccxt_client(port)
    try:
        candles = await ex.fetch_ohlcv("BTC/USDT", "1m")
        assert candles == [[T0 + m * MINUTE, 100.0 + m, 102.0 + m, 99.0 + m, 100.0 + m, 20.0]
                           for m in range(5)]
        since = await ex.fetch_ohlcv("BTC/USDT", "1m", since=T0 + 2 * MINUTE, limit=2)
        assert [c[0] for c in since] == [T0 + 2 * MINUTE, T0 + 3 * MINUTE]
        latest = await ex.fetch_ohlcv("BTC/USDT", "1m", limit=2)
        assert [c[0] for c in latest] == [T0 + 3 * MINUTE, T0 + 4 * MINUTE]
        until = await ex.fetch_ohlcv("BTC/USDT", "1m", params={"until": T0 + MINUTE})
        assert [c[0] for c in until] == [T0, T0 + MINUTE]
        (five,) = await ex.fetch_ohlcv("BTC/USDT", "5m")  # T0 opens a 5-minute candle too
        assert five == [T0, 100.0, 106.0, 99.0, 104.0, 100.0]
        assert await ex.fetch_ohlcv("ETH/USDT", "1m") == []
    finally:
        await ex.close()


async def test_klines_refuse_an_unknown_interval_or_symbol(
        taped: tuple[Exchange, Tape, int]) -> None:
    _, _, port = taped
    client = Client(f"http://127.0.0.1:{port}")
    status, body, _ = await client.call("GET", "klines", {"symbol": "BTCUSDT",
                                                          "interval": "7m"})
    assert (status, body) == (400, {"code": -1120, "msg": "Invalid interval."})
    status, body, _ = await client.call("GET", "klines", {"symbol": "XYZ", "interval": "1m"})
    assert (status, body["code"]) == (400, -1121)
    status, rows, headers = await client.call("GET", "klines", {
        "symbol": "BTCUSDT", "interval": "1m", "startTime": T0 + 4 * MINUTE})
    assert status == 200
    assert rows == [[T0 + 4 * MINUTE, "104.00000000", "106.00000000", "103.00000000",
                     "104.00000000", "20.00000000", T0 + 5 * MINUTE - 1, "2080.00000000", 2,
                     "0.00000000", "0.00000000", "0"]]
    assert headers["x-mbx-used-weight-1m"] == str(2 * 3)


async def test_fetch_ticker_tickers_and_bids_asks(taped: tuple[Exchange, Tape, int]) -> None:
    _, _, port = taped
    ex = ccxt_client(port)
    try:
        ticker = await ex.fetch_ticker("BTC/USDT")
        assert (ticker["last"], ticker["open"], ticker["high"], ticker["low"]) == \
            (104.0, 100.0, 106.0, 99.0)
        assert (ticker["baseVolume"], ticker["change"], ticker["bid"], ticker["ask"]) == \
            (100.0, 4.0, 104.0, 104.0)
        tickers = await ex.fetch_tickers(["BTC/USDT", "ETH/USDT"])
        assert set(tickers) == {"BTC/USDT", "ETH/USDT"}
        assert tickers["ETH/USDT"]["baseVolume"] == 0.0  # no bar yet
        everything = await ex.fetch_tickers()
        assert set(everything) == {"BTC/USDT", "ETH/USDT"}
        books = await ex.fetch_bids_asks(["BTC/USDT"])
        assert (books["BTC/USDT"]["bid"], books["BTC/USDT"]["ask"],
                books["BTC/USDT"]["bidVolume"]) == (104.0, 104.0, 1.0)  # 10 x participation
    finally:
        await ex.close()
