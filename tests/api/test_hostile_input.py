"""Hostile input over the real API, on SQLite and PostgreSQL (issue 12, section 3): whole
numbers beyond 64 bits, NUL bytes, numbers that are not finite, unknown filter values and
methods a path does not have. Each is one 4xx naming the field, in the shape the OpenAPI schema
documents; never a 5xx, and nothing is stored."""

import json
from typing import Any

import pytest

from .conftest import Api, Reply
from .test_orders import QUIET_ASSET
from .test_portfolios import ADMIN, call, login, make_trader

pytestmark = pytest.mark.anyio

HUGE = "10000000000000000001"  # > 2**63
BEYOND_ROW_IDS = str(2**31)  # PostgreSQL's integer keys end below


def refused(reply: Reply, field: str) -> None:
    """A 422 in the documented shape, naming ``field`` first."""
    assert reply.status == 422, (reply.status, reply.body)
    body = reply.json()
    assert set(body) == {"detail", "code", "correlation_id"}, body
    assert body["code"] in ("invalid_request", "invalid_params"), body
    assert all(set(e) == {"field", "message"} for e in body["detail"]), body
    assert body["detail"][0]["field"] == field, body


async def raw(api: Api, method: str, path: str, auth: dict[str, str], text: str) -> Reply:
    """A request whose body is ``text`` as it is (JSON that json.dumps would not write)."""
    return await api.request(method, path, text.encode(), auth)


async def test_whole_numbers_beyond_64_bits_are_422_naming_the_field(api: Api) -> None:
    admin = await login(api, *ADMIN)
    for path, field in (
            (f"/api/v1/portfolios/{HUGE}/analytics", "path.portfolio_id"),
            (f"/api/v1/portfolios/{HUGE}", "path.portfolio_id"),
            (f"/api/v1/portfolios/{BEYOND_ROW_IDS}/status", "path.portfolio_id"),
            (f"/api/v1/portfolios/1/assets/{BEYOND_ROW_IDS}", "path.asset_id"),
            (f"/api/v1/users/{BEYOND_ROW_IDS}", "path.user_id"),
            (f"/api/v1/portfolios/1/assets/{HUGE}", "path.asset_id"),
            (f"/api/v1/users/{HUGE}", "path.user_id"),
            (f"/api/v1/orders?offset={HUGE}", "query.offset"),
            (f"/api/v1/orders?since_ns={HUGE}", "query.since_ns"),
            (f"/api/v1/orders?until_ns=-{HUGE}", "query.until_ns"),
            (f"/api/v1/orders?portfolio_id={HUGE}", "query.portfolio_id"),
            (f"/api/v1/users?offset={HUGE}", "query.offset"),
            (f"/api/v1/audit?offset={HUGE}", "query.offset")):
        refused(await call(api, "GET", path, admin), field)
    order = {"portfolio_id": int(HUGE), "symbol": "DEMO", "side": "buy", "quantity": "1"}
    refused(await call(api, "POST", "/api/v1/orders", admin, order), "portfolio_id")


async def test_a_nul_byte_in_text_is_422_and_nothing_is_stored(api: Api) -> None:
    admin = await login(api, *ADMIN)
    tom = await make_trader(api, admin, "tom")
    refused(await call(api, "POST", "/api/v1/portfolios", tom,
                       {"name": "a\x00b", "initial_cash": "1000"}), "name")
    pid = (await call(api, "POST", "/api/v1/portfolios", tom,
                      {"name": "fine", "initial_cash": "1000"})).json()["id"]
    refused(await call(api, "PATCH", f"/api/v1/portfolios/{pid}", tom, {"name": "\x00"}),
            "name")
    refused(await call(api, "POST", f"/api/v1/portfolios/{pid}/assets", tom,
                       {**QUIET_ASSET, "strategy_params": {"note": "x\x00"}}), "strategy_params")
    refused(await call(api, "PATCH", f"/api/v1/portfolios/{pid}", tom,
                       {"portfolio_params": {"a\x00": 1}}), "portfolio_params")
    for path, field in (("/api/v1/orders/abc%00def", "path.client_order_id"),
                        ("/api/v1/orders?symbol=%00", "query.symbol"),
                        ("/api/v1/audit?action=a%00", "query.action"),
                        ("/api/v1/audit?actor=%00", "query.actor")):
        refused(await call(api, "GET", path, admin), field)
    refused(await call(api, "POST", "/api/v1/auth/login", {"content-type": "application/json"},
                       {"username": "admin\x00", "password": "x"}), "username")
    refused(await call(api, "POST", "/api/v1/auth/login", {"content-type": "application/json"},
                       {"username": "admin", "password": "Adm1n-pass-word\x00"}), "password")
    refused(await call(api, "POST", "/api/v1/auth/register", {"content-type": "application/json"},
                       {"username": "nul", "email": "a\x00@b.c", "password": "Nul-pass-word-1"}),
            "email")
    names = [p["name"] for p in (await call(api, "GET", "/api/v1/portfolios", tom)).json()]
    assert names == ["fine"]


@pytest.mark.parametrize("number", ["Infinity", "-Infinity", "NaN", "1e400"])
async def test_numbers_that_are_not_finite_are_refused(api: Api, number: str) -> None:
    """Python's JSON reader takes ``Infinity``, ``NaN`` and ``1e400`` (as inf): each is refused
    in plugin params, risk params, settings and order prices and quantities."""
    admin = await login(api, *ADMIN)
    tom = await make_trader(api, admin, "tom")
    reply = await raw(api, "POST", "/api/v1/portfolios", tom,
                      f'{{"name": "p", "initial_cash": {number}}}')
    refused(reply, "initial_cash")
    pid = (await call(api, "POST", "/api/v1/portfolios", tom,
                      {"name": "p", "initial_cash": "1000"})).json()["id"]
    asset = json.dumps({**QUIET_ASSET, "strategy_params": {"fast": 2, "slow": 5}})
    reply = await raw(api, "POST", f"/api/v1/portfolios/{pid}/assets", tom,
                      asset.replace('"slow": 5', f'"slow": {number}'))
    refused(reply, "strategy_params")
    reply = await raw(api, "PATCH", f"/api/v1/portfolios/{pid}", tom,
                      f'{{"risk_params": {{"max_order_notional": {number}}}}}')
    refused(reply, "risk_params")
    reply = await raw(api, "PATCH", f"/api/v1/portfolios/{pid}", tom,
                      f'{{"portfolio_params": {{"fraction": [{number}]}}}}')
    refused(reply, "portfolio_params")
    reply = await raw(api, "PATCH", "/api/v1/config", admin,
                      f'{{"values": {{"risk.max_order_notional": {number}}}}}')
    refused(reply, "values")
    order = f'{{"portfolio_id": {pid}, "symbol": "QUIET", "side": "buy", '
    refused(await raw(api, "POST", "/api/v1/orders", tom, order + f'"quantity": {number}}}'),
            "quantity")
    refused(await raw(api, "POST", "/api/v1/orders", tom, order + '"quantity": "1", '
                      f'"order_type": "limit", "limit_price": {number}}}'), "limit_price")
    assert (await call(api, "GET", f"/api/v1/portfolios/{pid}/assets", tom)).json() == []
    assert (await call(api, "GET", f"/api/v1/portfolios/{pid}", tom)).json()["risk_params"] == {}


async def test_an_unknown_filter_value_is_422_not_an_empty_list(api: Api) -> None:
    admin = await login(api, *ADMIN)
    refused(await call(api, "GET", "/api/v1/orders?status=bogus", admin), "query.status")
    refused(await call(api, "GET", "/api/v1/audit?outcome=bogus", admin), "query.outcome")
    assert (await call(api, "GET", "/api/v1/orders?status=filled", admin)).status == 200
    refused(await call(api, "GET", "/api/v1/audit?since=0001-01-01T00:00:00%2B01:00", admin),
            "query.since")
    refused(await call(api, "GET", "/api/v1/audit?until=0.5", admin), "query.until")
    refused(await call(api, "PATCH", "/api/v1/users/1", admin, {"is_active": 0}), "is_active")


async def test_a_method_the_path_lacks_is_405_with_every_allowed_method(api: Api) -> None:
    admin = await login(api, *ADMIN)
    for method, path, allowed in (
            ("OPTIONS", "/api/v1/orders", "GET, POST"),
            ("PUT", "/api/v1/orders", "GET, POST"),
            ("OPTIONS", "/api/v1/portfolios/1", "DELETE, GET, PATCH"),
            ("POST", "/api/v1/portfolios/1", "DELETE, GET, PATCH"),
            ("DELETE", "/healthz", "GET")):
        reply = await call(api, method, path, admin)
        assert reply.status == 405, (method, path, reply.body)
        assert reply.headers["allow"] == allowed, (method, path)
        body: dict[str, Any] = reply.json()
        assert (body["code"], set(body)) == ("not_allowed", {"detail", "code",
                                                             "correlation_id"})


async def test_the_schema_documents_the_error_bodies_the_api_sends(api: Api) -> None:
    schema = (await api.request("GET", "/openapi.json")).json()
    components = schema["components"]["schemas"]
    assert "HTTPValidationError" not in components
    assert set(components["InvalidRequest"]["properties"]) == {"detail", "code",
                                                               "correlation_id"}
    assert set(components["FieldError"]["properties"]) == {"field", "message"}
    responses = schema["paths"]["/api/v1/portfolios/{portfolio_id}"]["patch"]["responses"]
    assert {"401", "403", "404", "409", "422", "429", "503"} <= set(responses)
    assert responses["422"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/InvalidRequest"}
    assert responses["404"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Problem"}
