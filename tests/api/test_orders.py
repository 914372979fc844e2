"""Manual orders over the real API go through the same risk checks, journal and broker as a
strategy's (SYS-006, SYS-016)."""

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import anyio
import pytest

from .conftest import Api
from .test_portfolios import ADMIN, call, login, make_trader

pytestmark = pytest.mark.anyio

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
QUIET_ASSET = {"symbol": "QUIET", "strategy_plugin": "sma_crossover",
               "strategy_params": {"fast": 400, "slow": 800, "quantity": "1"},
               "pipeline_plugin": "synthetic",
               "pipeline_params": {"seed": 5, "interval": 0.02, "volatility": 0.001}}


async def until(check: Callable[[], Awaitable[bool]], limit: float = 15) -> None:
    with anyio.fail_after(limit):
        while not await check():  # noqa: ASYNC110 - polls the API
            await anyio.sleep(0.05)


async def running_portfolio(api: Api, trader: dict[str, str]) -> int:
    pid: int = (await call(api, "POST", "/api/v1/portfolios", trader,
                           {"name": "manual", "initial_cash": "100000"})).json()["id"]
    assert (await call(api, "POST", f"/api/v1/portfolios/{pid}/assets", trader,
                       QUIET_ASSET)).status == 201
    assert (await call(api, "POST", f"/api/v1/portfolios/{pid}/activate", trader)).status == 200

    async def ticking() -> bool:
        status = (await call(api, "GET", f"/api/v1/portfolios/{pid}/status", trader)).json()
        return bool(status["bars"] > 0)

    await until(ticking)
    return pid


async def test_manual_orders_fill_cancel_and_are_denied_when_halted(api: Api) -> None:
    admin = await login(api, *ADMIN)
    tom = await make_trader(api, admin, "tom")
    pid = await running_portfolio(api, tom)

    placed = await call(api, "POST", "/api/v1/orders", tom, {
        "portfolio_id": pid, "symbol": "QUIET", "side": "buy", "quantity": "3"})
    assert placed.status == 201, placed.body
    coid = placed.json()["client_order_id"]

    async def filled() -> bool:
        order = (await call(api, "GET", f"/api/v1/orders/{coid}", tom)).json()
        return bool(order["status"] == "filled")

    await until(filled)
    positions = (await call(api, "GET", f"/api/v1/portfolios/{pid}/positions", tom)).json()
    assert [(p["symbol"], p["quantity"]) for p in positions] == [("QUIET", "3")]
    assert len(positions[0]["avg_price"].partition(".")[2]) <= 2  # to the tick, 0.01
    order = (await call(api, "GET", f"/api/v1/orders/{coid}", tom)).json()
    for ns, iso in ((order["ts_init"], order["time_init"]), (order["ts_last"], order["time_last"])):
        assert datetime.fromisoformat(iso) == EPOCH + timedelta(microseconds=ns // 1000)
    stats = (await call(api, "GET", f"/api/v1/portfolios/{pid}/analytics", tom)).json()
    assert stats["trades"] == 0  # still long: no round trip yet
    assert [(a["symbol"], a["quantity"]) for a in stats["assets"]] == [("QUIET", "3")]
    assert stats["best_asset"] == stats["worst_asset"] == "QUIET"

    filled_at = Decimal((await call(api, "GET", f"/api/v1/orders/{coid}", tom)
                         ).json()["avg_fill_price"])
    below = (filled_at * Decimal("0.7")).quantize(Decimal("0.01"))  # inside the price band
    resting = await call(api, "POST", "/api/v1/orders", tom, {
        "portfolio_id": pid, "symbol": "QUIET", "side": "buy", "quantity": "1",
        "order_type": "limit", "limit_price": str(below)})
    assert resting.json()["status"] in ("submitted", "accepted")
    cancel = await call(api, "DELETE", f"/api/v1/orders/{resting.json()['client_order_id']}",
                        tom)
    assert cancel.status == 200
    assert cancel.json()["status"] == "canceled"

    missing_price = await call(api, "POST", "/api/v1/orders", tom, {
        "portfolio_id": pid, "symbol": "QUIET", "side": "buy", "quantity": "1",
        "order_type": "limit"})
    assert missing_price.status == 422
    assert missing_price.json()["detail"][0]["field"] == "limit_price"

    await call(api, "PUT", f"/api/v1/portfolios/{pid}/trading-state", tom, {"state": "HALTED"})
    halted = await call(api, "POST", "/api/v1/orders", tom, {
        "portfolio_id": pid, "symbol": "QUIET", "side": "buy", "quantity": "1"})
    assert halted.status == 409, halted.body  # denied: a 4xx with its reason code
    assert (halted.json()["code"], halted.json()["reason"]) == ("order_denied", "TRADING_HALTED")
    denied = halted.json()["order"]
    assert denied["status"] == "denied"
    kept = await call(api, "GET", halted.headers["location"], tom)  # the denied order stays
    assert (kept.status, kept.json()) == (200, denied)

    listed = (await call(api, "GET", f"/api/v1/orders?portfolio_id={pid}&status=filled",
                         tom)).json()
    assert [o["client_order_id"] for o in listed] == [coid]

    eve = await make_trader(api, admin, "eve")
    assert (await call(api, "GET", f"/api/v1/orders/{coid}", eve)).status == 404
    assert (await call(api, "GET", "/api/v1/orders", eve)).json() == []


async def test_orders_beyond_buying_power_lots_and_price_ranges_are_refused(api: Api) -> None:
    """Issue 9, defect 8 (risk holes), over the API: a buy of $94M in a $50k portfolio is denied
    BUYING_POWER (it was filled and cash went negative); a quantity off the lot size is denied
    LOT_SIZE; prices the journal cannot store exactly are a 422 naming the field (1e400 was
    stored on SQLite, 1e-400 as 0, a 500 on PostgreSQL). Cash never goes below zero."""
    admin = await login(api, *ADMIN)
    tom = await make_trader(api, admin, "tom")
    pid: int = (await call(api, "POST", "/api/v1/portfolios", tom,
                           {"name": "small", "initial_cash": "50000"})).json()["id"]
    assert (await call(api, "POST", f"/api/v1/portfolios/{pid}/assets", tom,
                       QUIET_ASSET)).status == 201
    assert (await call(api, "POST", f"/api/v1/portfolios/{pid}/activate", tom)).status == 200

    async def ticking() -> bool:
        status = (await call(api, "GET", f"/api/v1/portfolios/{pid}/status", tom)).json()
        return bool(status["bars"] > 0)

    await until(ticking)
    order = {"portfolio_id": pid, "symbol": "QUIET", "side": "buy"}
    huge = await call(api, "POST", "/api/v1/orders", tom, {**order, "quantity": "940000"})
    assert huge.status == 409, huge.body
    assert (huge.json()["order"]["status"], huge.json()["reason"]) == ("denied", "BUYING_POWER")
    odd = await call(api, "POST", "/api/v1/orders", tom, {**order, "quantity": "1.5"})
    assert odd.status == 409, odd.body
    assert (odd.json()["order"]["status"], odd.json()["reason"]) == ("denied", "LOT_SIZE")
    for price in ("1e400", "1e30", "1e-400", "0", "-1", "NaN", "Infinity"):
        bad = await call(api, "POST", "/api/v1/orders", tom, {
            **order, "quantity": "1", "order_type": "limit", "limit_price": price})
        assert bad.status == 422, (price, bad.body)
        assert bad.json()["detail"][0]["field"] == "limit_price", price
    status = (await call(api, "GET", f"/api/v1/portfolios/{pid}/status", tom)).json()
    assert Decimal(status["equity"]) == Decimal(50000)  # nothing traded
