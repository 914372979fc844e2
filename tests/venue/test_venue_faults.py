"""The venue's faults (lts.venue.faults), set through its admin endpoint (lts.venue.admin) and
seen as a client sees them: ccxt's own async Binance client, over real HTTP."""

import json
import socket
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from decimal import Decimal as D
from typing import Any

import anyio
import ccxt.async_support as ccxt
import pytest

from lts.venue.binance_rest import BinanceRest
from lts.venue.exchange import Exchange, ExecutionReport, Market, Report, Side
from lts.venue.faults import ExternalFill, FaultError, Faults, parse, parse_assignment
from lts.venue.server import VenueOptions, serve

from .test_binance_rest import KEY, SECRET, Client, ccxt_client, serving

pytestmark = pytest.mark.anyio
DEADLINE = 20


@dataclass
class Venue:
    exchange: Exchange
    faults: Faults
    port: int
    reports: list[Report]

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"


async def admin(base: str, body: Any = None, *, key: str = KEY) -> tuple[int, Any]:
    """``GET /admin/faults``, or ``POST`` it ``body`` as JSON."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(f"{base}/admin/faults", data=data,
                                     method="GET" if data is None else "POST",
                                     headers={"X-MBX-APIKEY": key,
                                              "Content-Type": "application/json"})

    def send() -> tuple[int, Any]:
        try:
            with urllib.request.urlopen(request, timeout=10) as reply:
                return reply.status, json.loads(reply.read())
        except urllib.error.HTTPError as err:
            return err.code, json.loads(err.read())

    return await anyio.to_thread.run_sync(send)


def _venue_with(clock: Callable[[], int] | None = None) -> tuple[Exchange, Faults, BinanceRest]:
    exchange = Exchange([Market("BTCUSDT", "BTC", "USDT")])
    exchange.add_account("acct", {"USDT": D(100_000), "BTC": D(1)})
    exchange.on_bar("BTCUSDT", high=D(30_100), low=D(29_900), close=D(30_000), volume=D(10))
    faults = Faults()
    return exchange, faults, BinanceRest(exchange, {KEY: ("acct", SECRET)}, faults=faults,
                                         clock=clock)


@pytest.fixture
async def venue() -> AsyncIterator[Venue]:
    exchange, faults, rest = _venue_with()
    reports: list[Report] = []
    exchange.listeners.append(reports.append)
    async with serving(rest) as port:
        yield Venue(exchange, faults, port, reports)


@pytest.fixture
async def ex(venue: Venue) -> AsyncIterator[Any]:
    client = ccxt_client(venue.port)
    try:
        await client.load_markets()
        yield client
    finally:
        await client.close()


# -- names and values -------------------------------------------------------------------------
def test_values_are_taken_from_the_command_line_or_json() -> None:
    assert parse_assignment("order_delay=1.5") == ("order_delay", 1.5)
    assert parse_assignment("http_5xx=3") == ("http_5xx", 3)
    assert parse("weight_limit", 1200) == 1200
    assert parse("ws_drop", True) is True
    assert parse("external_fill", "BTC/USDT:sell:0.25") == \
        ExternalFill("BTCUSDT", Side.SELL, D("0.25"))


@pytest.mark.parametrize(("text", "message"), [
    ("nope=1", "unknown fault 'nope' (known: order_delay, weight_limit, ban_seconds, "
               "drop_order_answers, duplicate_reports, http_5xx, ws_drop, down, external_fill)"),
    ("order_delay", "'order_delay' is not NAME=VALUE (e.g. order_delay=2)"),
    ("order_delay=-1", "fault order_delay: '-1' is not a number of seconds, 0 or more"),
    ("down=0", "fault down: '0' is not a number of seconds, more than 0"),
    ("weight_limit=0", "fault weight_limit: '0' is not a whole number of at least 1"),
    ("http_5xx=1.5", "fault http_5xx: '1.5' is not a whole number of at least 0"),
    ("external_fill=BTCUSDT:HOLD:1", "fault external_fill: 'BTCUSDT:HOLD:1' is not "
                                     "SYMBOL:SIDE:QTY (e.g. BTCUSDT:BUY:0.01)"),
])
def test_a_bad_name_or_value_is_one_clear_line(text: str, message: str) -> None:
    with pytest.raises(FaultError) as raised:
        parse_assignment(text)
    assert str(raised.value) == message


# -- the admin endpoint -----------------------------------------------------------------------
async def test_admin_reads_and_sets_faults_with_the_venues_key_only(venue: Venue) -> None:
    status, body = await admin(venue.base, key="nobody")
    assert (status, body) == (401, {"msg": "admin: X-MBX-APIKEY is not a key of this venue"})
    status, body = await admin(venue.base)
    assert status == 200
    assert body["settings"]["weight_limit"] == 6000
    assert body["actions"] == ["ws_drop", "down", "external_fill"]
    status, body = await admin(venue.base, {"order_delay": 0.5, "http_5xx": 2})
    assert (status, body["settings"]["order_delay"], body["settings"]["http_5xx"]) == \
        (200, 0.5, 2)
    status, body = await admin(venue.base, {"order_delay": 1, "nope": 1})
    assert status == 400
    assert body["msg"].startswith("unknown fault 'nope'")
    status, body = await admin(venue.base, {"drop_order_answers": "x"})
    assert (status, body) == (400, {"msg": "fault drop_order_answers: 'x' is not a whole "
                                           "number of at least 0"})
    status, body = await admin(venue.base, ["order_delay"])
    assert status == 400
    _, body = await admin(venue.base)  # nothing of a refused request was applied
    assert (body["settings"]["order_delay"], body["settings"]["drop_order_answers"]) == (0.5, 0)


# -- the REST path ----------------------------------------------------------------------------
async def test_5xx_answers_503_does_nothing_and_ccxt_sees_the_exchange_unavailable(
        venue: Venue, ex: Any) -> None:
    await admin(venue.base, {"http_5xx": 1})
    with pytest.raises(ccxt.ExchangeNotAvailable):
        await ex.create_order("BTC/USDT", "market", "buy", 0.01)
    assert venue.exchange.orders == {}
    order = await ex.create_order("BTC/USDT", "market", "buy", 0.01)  # the next one is served
    assert order["status"] == "closed"


async def test_a_dropped_answer_is_a_network_error_and_the_order_exists(
        venue: Venue, ex: Any) -> None:
    await admin(venue.base, {"drop_order_answers": 1})
    with pytest.raises(ccxt.NetworkError):
        await ex.create_order("BTC/USDT", "limit", "buy", 0.01, 29_000,
                              {"newClientOrderId": "lost-1"})
    found = await ex.fetch_order(None, "BTC/USDT", {"origClientOrderId": "lost-1"})
    assert (found["clientOrderId"], found["status"], found["price"]) == \
        ("lost-1", "open", 29_000.0)
    assert len(venue.exchange.orders) == 1  # placed once, not retried
    answered = await ex.create_order("BTC/USDT", "limit", "buy", 0.01, 29_000)
    assert answered["status"] == "open"


async def test_a_delayed_answer_comes_late_for_an_order_placed_at_once(
        venue: Venue, ex: Any) -> None:
    await admin(venue.base, {"order_delay": 1.0})
    answered: list[dict[str, Any]] = []

    async def place() -> None:
        answered.append(await ex.create_order("BTC/USDT", "limit", "buy", 0.01, 29_000))

    async with anyio.create_task_group() as tg:
        started = anyio.current_time()
        tg.start_soon(place)
        with anyio.fail_after(DEADLINE):
            while not venue.exchange.orders:  # noqa: ASYNC110 - polled condition
                await anyio.sleep(0.01)
        assert answered == []  # placed, not answered yet
    assert answered[0]["status"] == "open"
    assert anyio.current_time() - started >= 1.0


async def test_an_external_fill_trades_on_the_account_with_a_web_client_order_id(
        venue: Venue, ex: Any) -> None:
    status, body = await admin(venue.base, {"external_fill": "BTC/USDT:SELL:0.1"})
    assert status == 200, body
    fill = body["done"]["external_fill"]
    assert fill["clientOrderId"].startswith("web_")
    assert fill["status"] == "FILLED"
    trades = await ex.fetch_my_trades("BTC/USDT")
    assert [(t["order"], t["side"], t["amount"]) for t in trades] == \
        [(str(fill["orderId"]), "sell", 0.1)]
    balance = await ex.fetch_balance()
    assert balance["BTC"]["free"] == 0.9
    heard = [r for r in venue.reports if isinstance(r, ExecutionReport)]
    assert [(r.execution_type.value, r.order.client_order_id) for r in heard] == \
        [("NEW", fill["clientOrderId"]), ("TRADE", fill["clientOrderId"])]
    status, body = await admin(venue.base, {"external_fill": "BTCUSDT:BUY:1000"})
    assert (status, body["msg"]) == (400, "fault external_fill: Account has insufficient "
                                          "balance for requested action.")


async def test_past_the_weight_limit_429_then_a_ban_418_that_ends() -> None:
    now = time.time_ns() // 1_000_000
    shift = 1_000 - now % 60_000  # the venue's minute has just begun: no rollover in the test
    _, _, rest = _venue_with(lambda: time.time_ns() // 1_000_000 + shift)
    async with serving(rest) as port:
        base = f"http://127.0.0.1:{port}"
        await admin(base, {"weight_limit": 24, "ban_seconds": 1})
        client = Client(base)
        ex = ccxt_client(port)
        try:
            await ex.load_markets()  # exchangeInfo: 20
            await ex.fetch_ticker("BTC/USDT")  # 22
            status, _, headers = await client.call("GET", "ticker/price")  # 24
            assert (status, headers["x-mbx-used-weight-1m"]) == (200, "24")
            with pytest.raises(ccxt.DDoSProtection, match="429"):
                await ex.fetch_ticker("BTC/USDT")
            for _ in range(2):  # still limited: 429, as long as it is not the 3rd
                status, body, headers = await client.call("GET", "ping")
                assert (status, body["code"]) == (429, -1003)
                assert body["msg"].startswith("Too much request weight used; current limit "
                                              "is 24 request weight per 1 MINUTE.")
                assert 1 <= int(headers["retry-after"]) <= 60
            status, body, headers = await client.call("GET", "ping")  # the 3rd after a 429
            assert (status, body["code"], headers["retry-after"]) == (418, -1003, "1")
            assert body["msg"].startswith("Way too much request weight used; IP banned until")
            with pytest.raises(ccxt.DDoSProtection, match="418"):
                await ex.fetch_ticker("BTC/USDT")
            with anyio.fail_after(DEADLINE):  # the ban ends; the minute's limit still holds
                while (await client.call("GET", "ping"))[0] == 418:  # noqa: ASYNC110 - polled
                    await anyio.sleep(0.1)
            assert (await client.call("GET", "ping"))[0] == 429
            await admin(base, {"weight_limit": 6000})  # setting the limit starts afresh
            assert (await ex.fetch_ticker("BTC/USDT"))["last"] == 30_000.0
        finally:
            await ex.close()


# -- the venue process: down and back ---------------------------------------------------------
def _refused(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except ConnectionRefusedError:
        return True
    return False


async def test_down_refuses_connections_cuts_those_in_flight_and_comes_back() -> None:
    ports: list[int] = []
    options = VenueOptions(port=0, symbols=("BTC/USDT",), interval=0.05, start_price=30_000,
                           faults={"order_delay": 30.0})
    async with anyio.create_task_group() as tg:
        tg.start_soon(lambda: serve(options, ready=ports.append))
        with anyio.fail_after(DEADLINE):
            while not ports:  # noqa: ASYNC110 - polled condition
                await anyio.sleep(0.01)
        port = ports[0]
        base = f"http://127.0.0.1:{port}"
        ex = ccxt_client(port, options.api_key, options.api_secret)
        try:
            await ex.load_markets()
            with anyio.fail_after(DEADLINE):
                while not (await ex.fetch_ticker("BTC/USDT"))["last"]:  # noqa: ASYNC110
                    await anyio.sleep(0.05)
            errors: list[Exception] = []

            async def in_flight() -> None:  # answered after 30 s: the outage cuts it first
                try:
                    await ex.create_order("BTC/USDT", "limit", "buy", 0.1, 100)
                except ccxt.NetworkError as exc:
                    errors.append(exc)

            async with anyio.create_task_group() as flight:
                flight.start_soon(in_flight)
                with anyio.fail_after(DEADLINE):
                    while not await ex.fetch_open_orders("BTC/USDT"):  # noqa: ASYNC110
                        await anyio.sleep(0.01)  # until the order in flight has been placed
                    status, body = await admin(base, {"down": 1.5}, key=options.api_key)
                    assert (status, body["done"]) == (200, {"down": 1.5})
            assert len(errors) == 1
            with anyio.fail_after(DEADLINE):
                while not _refused(port):  # noqa: ASYNC110 - polled condition
                    await anyio.sleep(0.01)
            with pytest.raises(ccxt.NetworkError):
                await ex.fetch_ticker("BTC/USDT")
            with anyio.fail_after(DEADLINE):  # back on the same port
                while _refused(port):  # noqa: ASYNC110 - polled condition
                    await anyio.sleep(0.05)
            await admin(base, {"order_delay": 0}, key=options.api_key)
            orders = await ex.fetch_open_orders("BTC/USDT")
            assert [o["price"] for o in orders] == [100.0]  # the venue kept its state
        finally:
            await ex.close()
            tg.cancel_scope.cancel()
