"""Portfolio and asset lifecycle over the real API on the real engine (SYS-002, SYS-003,
SYS-016; STC-002): create, add assets, activate and see it trade, the kill switch, ownership."""

import json
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import pytest
from sqlalchemy import func, select

from lts.persistence.tables import audit_logs, orders

from .conftest import Api

pytestmark = pytest.mark.anyio

ADMIN = ("admin", "Adm1n-pass-word")


async def login(api: Api, username: str, password: str) -> dict[str, str]:
    reply = await api.request("POST", "/api/v1/auth/login",
                              json.dumps({"username": username, "password": password}).encode(),
                              {"content-type": "application/json"})
    assert reply.status == 200, reply.body
    return {"authorization": f"Bearer {reply.json()['access_token']}",
            "content-type": "application/json"}


async def call(api: Api, method: str, path: str, auth: dict[str, str],
               body: Any = None) -> Any:
    data = None if body is None else json.dumps(body).encode()
    return await api.request(method, path, data, auth)


async def make_trader(api: Api, admin: dict[str, str], name: str) -> dict[str, str]:
    password = f"{name.capitalize()}-pass-9876"
    reply = await api.request("POST", "/api/v1/auth/register", json.dumps(
        {"username": name, "email": f"{name}@example.org", "password": password}).encode(),
        {"content-type": "application/json"})
    assert reply.status == 201, reply.body
    user_id = reply.json()["id"]
    assert (await call(api, "PATCH", f"/api/v1/users/{user_id}", admin,
                       {"role": "trader"})).status == 200
    return await login(api, name, password)


ASSET = {"symbol": "ALPHA", "strategy_plugin": "sma_crossover",
         "strategy_params": {"fast": 2, "slow": 5, "quantity": "1"},
         "pipeline_plugin": "synthetic",
         "pipeline_params": {"seed": 3, "interval": 0.02, "volatility": 0.01}}


async def eventually(check: Callable[[], Awaitable[bool]], limit: float = 20) -> None:
    with anyio.fail_after(limit):
        while not await check():  # noqa: ASYNC110 - polls the database the engine writes
            await anyio.sleep(0.1)


async def count_orders(api: Api, portfolio_id: int, *, denied: bool) -> int:
    async with api.engine.db.connect() as conn:
        status = orders.c.status == "denied" if denied else orders.c.status != "denied"
        return int((await conn.execute(select(func.count()).select_from(orders).where(
            orders.c.portfolio_id == portfolio_id, status))).scalar_one())


async def test_a_trader_runs_a_portfolio_and_halts_it(api: Api) -> None:
    admin = await login(api, *ADMIN)
    alice = await make_trader(api, admin, "alice")

    reply = await call(api, "POST", "/api/v1/portfolios", alice,
                       {"name": "alpha", "initial_cash": "50000"})
    assert reply.status == 201, reply.body
    pid = reply.json()["id"]
    assert reply.json()["is_active"] is False

    bad = await call(api, "POST", f"/api/v1/portfolios/{pid}/assets", alice,
                     {**ASSET, "strategy_params": {"fast": "x"}})
    assert bad.status == 422
    assert bad.json()["detail"][0]["field"] == "strategy_params.fast"
    assert (await call(api, "POST", f"/api/v1/portfolios/{pid}/assets", alice,
                       ASSET)).status == 201

    assert (await call(api, "POST", f"/api/v1/portfolios/{pid}/activate", alice)).status == 200
    async def trading() -> bool:
        return await count_orders(api, pid, denied=False) >= 2

    await eventually(trading)
    status = (await call(api, "GET", f"/api/v1/portfolios/{pid}/status", alice)).json()
    assert status["runner"] == "running"
    assert status["bars"] > 0

    halted = await call(api, "PUT", f"/api/v1/portfolios/{pid}/trading-state", alice,
                        {"state": "HALTED"})
    assert halted.status == 200
    assert halted.json()["trading_state"] == "HALTED"
    placed = await count_orders(api, pid, denied=False)

    async def denied() -> bool:  # the strategy keeps signalling; risk denies every order now
        return await count_orders(api, pid, denied=True) >= 2

    await eventually(denied)
    assert await count_orders(api, pid, denied=False) == placed

    assert (await call(api, "DELETE", f"/api/v1/portfolios/{pid}", alice)).status == 409
    off = await call(api, "POST", f"/api/v1/portfolios/{pid}/deactivate", alice)
    assert off.status == 200
    assert off.json()["is_active"] is False
    status = (await call(api, "GET", f"/api/v1/portfolios/{pid}/status", alice)).json()
    assert status["runner"] == "stopped"
    demo = api.engine.facade.state(1)
    assert demo is not None
    assert demo.status == "running"

    await api.engine.journal.flush()  # audit rows are queued, never awaited by the request
    async with api.engine.db.connect() as conn:
        actions = set((await conn.execute(select(audit_logs.c.action).where(
            audit_logs.c.target == f"portfolio:{pid}"))).scalars())
    assert {"portfolio.activate", "portfolio.trading_state", "portfolio.delete",
            "portfolio.deactivate"} <= actions


async def test_a_trader_cannot_see_or_touch_another_traders_portfolio(api: Api) -> None:
    admin = await login(api, *ADMIN)
    alice = await make_trader(api, admin, "alice")
    bob = await make_trader(api, admin, "bob")
    pid = (await call(api, "POST", "/api/v1/portfolios", alice,
                      {"name": "mine", "initial_cash": "1000"})).json()["id"]

    assert (await call(api, "GET", f"/api/v1/portfolios/{pid}", bob)).status == 404
    assert (await call(api, "PATCH", f"/api/v1/portfolios/{pid}", bob,
                       {"name": "stolen"})).status == 404
    assert (await call(api, "POST", f"/api/v1/portfolios/{pid}/activate", bob)).status == 404
    assert [p["id"] for p in (await call(api, "GET", "/api/v1/portfolios", bob)).json()] == []
    assert (await call(api, "GET", f"/api/v1/portfolios/{pid}", alice)).json()["name"] == "mine"
    admin_view = (await call(api, "GET", "/api/v1/portfolios", admin)).json()
    assert pid in [p["id"] for p in admin_view]


async def test_requests_refuse_unknown_fields_and_keep_text_verbatim(api: Api) -> None:
    admin = await login(api, *ADMIN)
    alice = await make_trader(api, admin, "alice")
    sneaky = await call(api, "POST", "/api/v1/portfolios", alice,
                        {"name": "x", "initial_cash": "1", "owner_id": 1})
    assert sneaky.status == 422
    assert sneaky.json()["detail"][0]["field"] == "owner_id"
    assert (await call(api, "POST", "/api/v1/no-such-thing", alice, {})).status == 404
    await api.engine.journal.flush()
    async with api.engine.db.connect() as conn:
        rejected = (await conn.execute(select(audit_logs.c.action, audit_logs.c.outcome,
                                              audit_logs.c.detail).where(
            audit_logs.c.action.in_(["request.invalid", "request.unrouted"]))
            .order_by(audit_logs.c.id))).all()
    assert [(a, o) for a, o, _ in rejected] == [("request.invalid", "failure"),
                                                ("request.unrouted", "failure")]
    assert rejected[0].detail["fields"] == ["owner_id"]
    assert rejected[0].detail["user_id"] is not None  # the caller is named, from the token
    name = "'); DROP TABLE portfolios; -- <script>alert(1)</script>"
    made = await call(api, "POST", "/api/v1/portfolios", alice,
                      {"name": name, "initial_cash": "1"})
    assert made.status == 201
    assert made.json()["name"] == name
    bad_symbol = await call(api, "POST", f"/api/v1/portfolios/{made.json()['id']}/assets", alice,
                            {**ASSET, "symbol": "<script>"})
    assert bad_symbol.status == 422


async def test_a_viewer_cannot_create_a_portfolio(api: Api) -> None:
    reply = await api.request("POST", "/api/v1/auth/register", json.dumps(
        {"username": "vera", "email": "v@example.org", "password": "Vera-pass-1234"}).encode(),
        {"content-type": "application/json"})
    assert reply.status == 201
    vera = await login(api, "vera", "Vera-pass-1234")
    denied = await call(api, "POST", "/api/v1/portfolios", vera,
                        {"name": "nope", "initial_cash": "1"})
    assert denied.status == 403
    mine = await call(api, "GET", "/api/v1/portfolios", vera)
    assert (mine.status, mine.json()) == (200, [])
