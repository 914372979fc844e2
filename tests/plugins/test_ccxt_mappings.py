"""The ``ccxt`` plugins' mappings: each exchange's client-order-id field on the wire (the REAL
ccxt classes against a local stub that records requests), ccxt's orders, trades and markets as
LTS values, error kinds, redaction and LTS's weight budget."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from decimal import Decimal as D
from typing import Any

import anyio
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from lts.domain.instruments import Instrument
from lts.domain.orders import Order, OrderStatus, OrderType, Side, TimeInForce
from lts.persistence.credentials import BrokerCredentials
from lts.plugins.broker import ccxt_mapping as mapping
from lts.plugins.ccxt_client import CcxtParams, ErrorKind, classify, open_client, unwrap
from lts.plugins.ccxt_pacing import WeightBudget

pytestmark = pytest.mark.anyio
KEYS = BrokerCredentials("stub-key", "stub-secret", "stub-passphrase")


class Stub:
    """An HTTP server that records every request and answers as bybit, OKX or Binance would
    to an order placed, canceled or fetched (the fields ccxt needs)."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str, dict[str, Any]]] = []
        self.app = Starlette(routes=[Route("/{path:path}", self.answer,
                                           methods=["GET", "POST", "DELETE", "PUT"])])
        self.port = 0

    async def answer(self, request: Request) -> JSONResponse:
        body = (await request.body()).decode()
        fields: dict[str, Any] = dict(request.query_params)
        if body.startswith(("{", "[")):
            parsed = json.loads(body)
            fields.update(parsed[0] if isinstance(parsed, list) else parsed)
        elif body:
            fields.update(dict(p.split("=", 1) for p in body.split("&")))
        path = request.url.path
        self.requests.append((request.method, path, fields))
        if path.startswith("/v5/"):  # bybit
            return JSONResponse({"retCode": 0, "retMsg": "OK", "retExtInfo": {},
                                 "time": 1_700_000_000_000,
                                 "result": {"orderId": "111", "orderLinkId": "1-7", "list": []}})
        if path.startswith("/api/v5/"):  # okx
            return JSONResponse({"code": "0", "msg": "", "data": [
                {"ordId": "111", "clOrdId": "1-7", "sCode": "0", "sMsg": "", "instId": "BTC-USDT",
                 "state": "live", "side": "buy", "ordType": "limit", "px": "29000", "sz": "0.5",
                 "accFillSz": "0", "cTime": "1700000000000", "uTime": "1700000000000"}]})
        return JSONResponse({"symbol": "BTCUSDT", "orderId": 111, "clientOrderId": "1-7",
                             "origClientOrderId": "1-7", "transactTime": 1_700_000_000_000,
                             "price": "29000", "origQty": "0.5", "executedQty": "0",
                             "status": "NEW", "timeInForce": "GTC", "type": "LIMIT",
                             "side": "BUY"})

    def urls(self, exchange: str) -> dict[str, Any]:
        """Every REST URL of ``exchange`` pointed here."""
        import ccxt  # the exchange's URL keys, as ccxt has them

        def here(tree: dict[str, Any]) -> dict[str, Any]:
            return {k: here(v) if isinstance(v, dict) else f"http://127.0.0.1:{self.port}"
                    for k, v in tree.items() if isinstance(v, dict | str)}

        return here(getattr(ccxt, exchange)().urls["api"])


@pytest.fixture
async def stub() -> AsyncIterator[Stub]:
    stub = Stub()
    server = uvicorn.Server(uvicorn.Config(stub.app, host="127.0.0.1", port=0,
                                           log_level="warning", lifespan="off"))
    async with anyio.create_task_group() as tg:
        tg.start_soon(server.serve)
        with anyio.fail_after(10):
            while not server.started:  # noqa: ASYNC110 - uvicorn offers no event
                await anyio.sleep(0.01)
        stub.port = server.servers[0].sockets[0].getsockname()[1]
        yield stub
        server.should_exit = True


def spot_market(market_id: str) -> dict[str, Any]:
    return {"id": market_id, "symbol": "BTC/USDT", "base": "BTC", "quote": "USDT",
            "baseId": "BTC", "quoteId": "USDT", "type": "spot", "spot": True, "margin": False,
            "swap": False, "future": False, "option": False, "contract": False, "active": True,
            "linear": None, "inverse": None,
            "precision": {"amount": 0.00001, "price": 0.01},
            "limits": {"amount": {"min": 0.00001, "max": None}, "price": {"min": None,
                                                                          "max": None},
                       "cost": {"min": 5, "max": None}},
            "info": {"orderTypes": ["LIMIT", "MARKET"]}}


def lts_order() -> Order:
    return Order(client_order_id="1-7", portfolio_id=1, symbol="BTC/USDT", side=Side.BUY,
                 quantity=D("0.5"), order_type=OrderType.LIMIT,
                 time_in_force=TimeInForce.GTC, limit_price=D(29000))


@pytest.mark.parametrize(("exchange", "market_id", "field"), [
    ("binance", "BTCUSDT", "newClientOrderId"),
    ("bybit", "BTCUSDT", "orderLinkId"),
    ("okx", "BTC-USDT", "clOrdId"),
])
async def test_the_client_order_id_goes_in_the_exchange_s_own_field(
        stub: Stub, exchange: str, market_id: str, field: str) -> None:
    params = CcxtParams(exchange=exchange, urls=stub.urls(exchange))
    client = open_client(params, KEYS)
    try:
        client.ex.set_markets([spot_market(market_id)])
        kind, side, amount, price, extra = mapping.order_args(exchange, lts_order())
        placed = await client.call("create_order", "BTC/USDT", kind, side, amount, price, extra)
        assert str(placed["id"]) == "111"
        method, _path, sent = stub.requests[-1]
        assert method == "POST"
        assert sent[field] == "1-7"
        assert {sent.get("price") or sent.get("px"), sent.get("quantity") or sent.get("qty")
                or sent.get("sz")} == {"29000", "0.5"}

        existing = mapping.fields_for(exchange).existing
        await client.call("cancel_order", None, "BTC/USDT", {existing: "1-7"})
        method, _path, sent = stub.requests[-1]
        assert method in ("POST", "DELETE")
        assert sent[existing if exchange != "binance" else "origClientOrderId"] == "1-7"
        assert "orderId" not in sent
        assert "ordId" not in sent
    finally:
        await client.close()


async def test_okx_and_binance_look_an_order_up_by_client_order_id(stub: Stub) -> None:
    for exchange, market_id, field in (("okx", "BTC-USDT", "clOrdId"),
                                       ("binance", "BTCUSDT", "origClientOrderId")):
        client = open_client(CcxtParams(exchange=exchange, urls=stub.urls(exchange)), KEYS)
        try:
            client.ex.set_markets([spot_market(market_id)])
            found = await client.call("fetch_order", None, "BTC/USDT",
                                      {mapping.fields_for(exchange).existing: "1-7"})
            assert found["clientOrderId"] == "1-7"
            method, _, sent = stub.requests[-1]
            assert (method, sent[field]) == ("GET", "1-7")
        finally:
            await client.close()


# -- ccxt's values as LTS's ---------------------------------------------------------------------

@pytest.mark.parametrize(("status", "filled", "expected"), [
    ("open", 0.0, OrderStatus.ACCEPTED), ("open", 0.1, OrderStatus.PARTIALLY_FILLED),
    ("closed", 0.5, OrderStatus.FILLED), ("canceled", 0.1, OrderStatus.CANCELED),
    ("expired", 0.0, OrderStatus.EXPIRED), ("rejected", 0.0, OrderStatus.REJECTED),
    (None, 0.0, OrderStatus.UNKNOWN)])
def test_order_statuses(status: str | None, filled: float, expected: OrderStatus) -> None:
    report = mapping.report_of({"id": "9", "clientOrderId": "3-4", "status": status,
                                "filled": filled, "timestamp": 1_700_000_000_000})
    assert (report.client_order_id, report.status, report.broker_order_id, report.ts_event) \
        == ("3-4", expected, "9", 1_700_000_000_000 * 1_000_000)


def test_a_fill_is_exact_from_the_venue_s_strings() -> None:
    ws_trade = {"id": "77", "order": "9", "symbol": "BTC/USDT", "side": "sell",
                "price": 0.1 + 0.2, "amount": 0.3, "timestamp": 1_700_000_000_123,
                "fee": {"cost": 0.03, "currency": "USDT"},
                "info": {"L": "0.30000000", "l": "0.30000000", "n": "0.00009", "N": "USDT",
                         "c": "5-8", "C": ""}}
    fill = mapping.fill_of("binance", "binance", ws_trade, client_id=lambda c, _v: c,
                           portfolio_id=0, quote_of=lambda s: "USDT")
    assert fill is not None
    assert (fill.portfolio_id, fill.client_order_id, fill.trade_id, fill.side, fill.price,
            fill.quantity, fill.fee) == (5, "5-8", "77", Side.SELL, D("0.3"), D("0.3"),
                                         D("0.00009"))
    # no raw strings: ccxt's floats through their shortest repr; a base-asset fee is the
    # commission (the position holds that much less), valued at the price among the fees
    plain = {"id": "78", "order": "9", "symbol": "BTC/USDT", "side": "buy", "price": 29000.5,
             "amount": 1e-05, "timestamp": 1, "fee": {"cost": 1e-08, "currency": "BTC"}}
    fill = mapping.fill_of("kraken", "kraken", plain, client_id=lambda c, v: "ext-1",
                           portfolio_id=3, quote_of=lambda s: "USDT")
    assert fill is not None
    assert (fill.portfolio_id, fill.quantity, fill.price, fill.fee, fill.commission) == \
        (3, D("0.00001"), D("29000.5"), D(0), D("0.00000001"))
    assert fill.position_quantity == D("0.00000999")
    assert fill.total_fee == D("0.00000001") * D("29000.5")
    assert mapping.fill_of("kraken", "kraken", {**plain, "side": None},
                           client_id=lambda c, v: "x", portfolio_id=3,
                           quote_of=lambda s: "USDT") is None


def test_instruments_from_binance_filters_and_from_decimal_places() -> None:
    market = {"precision": {"price": 0.01, "amount": 1e-05},
              "limits": {"amount": {"min": 1e-05}, "cost": {"min": 5.0}},
              "info": {"filters": [
                  {"filterType": "PRICE_FILTER", "tickSize": "0.01000000"},
                  {"filterType": "LOT_SIZE", "stepSize": "0.00001000", "minQty": "0.00001000"},
                  {"filterType": "NOTIONAL", "minNotional": "5.00000000"}]}}
    assert mapping.instrument_of("BTC/USDT", market, mapping.TICK_SIZE) == \
        Instrument("BTC/USDT", D("0.01"), D("0.00001"), D("0.00001"), D(5))
    places = {"precision": {"price": 2, "amount": 4}, "limits": {"cost": {"min": 10}}}
    assert mapping.instrument_of("X/Y", places, mapping.DECIMAL_PLACES) == \
        Instrument("X/Y", D("0.01"), D("0.0001"), D(0), D(10))
    whole = {"precision": {"price": 100.0, "amount": 1.0}}
    rules = mapping.instrument_of("Z/Y", whole, mapping.TICK_SIZE)
    assert (str(rules.tick_size), str(rules.lot_size)) == ("100", "1")


def test_order_args_are_exact_strings_with_the_exchange_s_fields() -> None:
    stop = Order(client_order_id="2-1", portfolio_id=2, symbol="BTC/USDT", side=Side.SELL,
                 quantity=D("0.50000"), order_type=OrderType.STOP_LIMIT,
                 time_in_force=TimeInForce.IOC, limit_price=D("28000.00"),
                 stop_price=D("28100.0"))
    assert mapping.order_args("okx", stop) == (
        "limit", "sell", "0.5", "28000",
        {"clOrdId": "2-1", "timeInForce": "IOC", "triggerPrice": "28100"})
    assert mapping.order_args("kraken", lts_order())[4] == {"clientOrderId": "1-7",
                                                            "timeInForce": "GTC"}


# -- errors, secrets, pacing --------------------------------------------------------------------

def test_error_kinds() -> None:
    from ccxt.base import errors as e

    assert classify(e.DDoSProtection("binance 418 I'm a teapot {}")) is ErrorKind.BANNED
    assert classify(e.DDoSProtection("binance 429 Too Many Requests {}")) is \
        ErrorKind.RATE_LIMITED
    assert classify(e.InsufficientFunds("binance Account has insufficient balance")) is \
        ErrorKind.REJECTED
    assert classify(e.OrderNotFound("binance Order does not exist.")) is ErrorKind.NOT_FOUND
    assert classify(e.AuthenticationError("binance Invalid API-key")) is ErrorKind.AUTH
    assert classify(e.RequestTimeout("binance GET url request timeout")) is ErrorKind.TIMEOUT
    assert classify(e.ExchangeNotAvailable("binance GET http://x 503 Service Unavailable")) \
        is ErrorKind.AMBIGUOUS
    assert classify(e.NetworkError("connection reset")) is ErrorKind.AMBIGUOUS


def test_an_error_ccxt_tripped_over_is_classified_by_the_one_behind_it() -> None:
    """ccxt 4.5.90's refused Binance user-data subscription: KeyError('spot') raised while
    handling the AuthenticationError (its cleanup deletes a key already gone)."""
    from ccxt.base import errors as e

    refused = e.AuthenticationError('binance {"code":-1022,"msg":"Signature for this request '
                                    'is not valid."}')
    subscriptions: dict[str, bool] = {}
    try:
        try:
            raise refused
        except e.AuthenticationError:
            del subscriptions["spot"]
    except KeyError as slip:
        tripped: BaseException = slip
    assert unwrap(tripped) is refused
    assert classify(tripped) is ErrorKind.AUTH
    client = open_client(CcxtParams(exchange="binance"))
    assert client.reason(tripped).startswith('{"code":-1022,"msg":"Signature')
    explicit = KeyError("spot")
    explicit.__cause__ = refused
    assert classify(explicit) is ErrorKind.AUTH
    assert classify(KeyError("spot")) is ErrorKind.OTHER
    assert unwrap(ValueError("x")).args == ("x",)


def test_messages_are_redacted_of_keys_secrets_and_signatures() -> None:
    client = open_client(CcxtParams(exchange="binance"),
                         BrokerCredentials("the-key-123", "the-secret-456"))
    text = client.redact("GET https://x/api/v3/account?timestamp=1&signature=abcdef0123 "
                         "{'X-MBX-APIKEY': 'the-key-123'} the-secret-456")
    assert "abcdef0123" not in text
    assert "the-key-123" not in text
    assert "the-secret-456" not in text
    assert "signature=***" in text


async def test_the_weight_budget_waits_for_the_next_minute_and_follows_the_venue() -> None:
    now = [120.0]
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    budget = WeightBudget(100, clock=lambda: now[0], sleep=sleep)
    await budget.acquire(50)  # half the minute's budget at once
    assert slept == []
    await budget.acquire(10)  # then it accrues: 60 of 100 by a fifth of the minute (12 s)
    assert now[0] == pytest.approx(132)
    budget.observe(90)  # the venue counted more (another client on the address)
    assert budget.used == 90
    await budget.acquire(20)  # 110 > 100: wait for the minute at 180 s
    assert now[0] >= 180
    assert budget.used == 20
    budget.back_off(30)
    await budget.acquire(1)
    assert slept[-1] == pytest.approx(30)


async def test_a_busy_portfolio_s_calls_are_spread_over_the_minute_never_held_long() -> None:
    """The sustained case (bench/venue.py figure 3 measured calls held up to ~50 s when the
    budget went in a burst at the minute's start): each call now waits a moment at most, and
    the minute's budget is never exceeded."""
    now = [600.0]
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    budget = WeightBudget(960, clock=lambda: now[0], sleep=sleep)
    used_per_minute: dict[int, int] = {}
    while now[0] < 600 + 180:
        await budget.acquire(2)
        minute = int(now[0] // 60)
        used_per_minute[minute] = used_per_minute.get(minute, 0) + 2
    assert max(slept) <= 2 * 120 / 960 + 1e-9  # a quarter of a second at most
    assert max(used_per_minute.values()) <= 960
    # a busy minute uses its budget (but the last call, due at the minute's end: the next one)
    assert used_per_minute[10] >= 960 - 2
