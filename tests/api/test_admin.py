"""The operator routes over real HTTP on the real engine: the plugin catalogue, the debug
export, the audit trail with its filters, statistics, and the configuration (secrets redacted,
sources, runtime overrides applied to a running portfolio, 409 for restart-only keys, 422 for
unknown ones)."""

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

import anyio
import pytest
from sqlalchemy import select

from lts.persistence.tables import configuration
from lts.settings import DEV_JWT_SECRET

from .conftest import Api
from .test_portfolios import ADMIN, call, login, make_trader

pytestmark = pytest.mark.anyio


async def viewer(api: Api) -> dict[str, str]:
    reply = await api.request("POST", "/api/v1/auth/register", json.dumps(
        {"username": "vera", "email": "v@example.org", "password": "Vera-pass-1234"}).encode(),
        {"content-type": "application/json"})
    assert reply.status == 201, reply.body
    return await login(api, "vera", "Vera-pass-1234")


async def audit_page(api: Api, auth: dict[str, str], **query: Any) -> Any:
    await api.engine.journal.flush()
    reply = await call(api, "GET", f"/api/v1/audit?{urlencode(query)}", auth)
    assert reply.status == 200, reply.body
    return reply.json()


async def test_plugins_are_listed_by_kind_for_any_user(api: Api) -> None:
    reply = await call(api, "GET", "/api/v1/plugins", await viewer(api))
    assert reply.status == 200, reply.body
    plugins = reply.json()["plugins"]
    assert {"aaa", "core", "pipeline", "strategy", "portfolio", "broker"} <= set(plugins)
    sma = {p["name"]: p for p in plugins["strategy"]}["sma_crossover"]
    assert sma["loaded"] is True
    assert sma["error"] is None
    assert {"fast", "slow"} <= set(sma["params_schema"]["properties"])
    assert (await api.request("GET", "/api/v1/plugins")).status == 401


async def test_admin_routes_refuse_a_viewer(api: Api) -> None:
    vera = await viewer(api)
    for method, path, body in (("GET", "/api/v1/debug", None), ("GET", "/api/v1/audit", None),
                               ("GET", "/api/v1/config", None),
                               ("PATCH", "/api/v1/config",
                                {"values": {"risk.max_open_orders": 1}})):
        reply = await call(api, method, path, vera, body)
        assert (reply.status, reply.json()["code"]) == (403, "forbidden"), path
    assert api.engine.settings.risk.max_open_orders == 100


async def test_debug_exports_the_live_plugins_as_json(api: Api) -> None:
    admin = await login(api, *ADMIN)
    await demo_running(api)
    reply = await call(api, "GET", "/api/v1/debug", admin)
    assert reply.status == 200, reply.body
    demo = reply.json()["portfolios"]["1"]
    assert demo["status"] == "running"
    plugins = demo["info"]["plugins"]
    assert plugins["strategy:DEMO-A"]["plugin"] == "sma_crossover"
    assert isinstance(plugins["strategy:DEMO-A"]["params"]["quantity"], str)  # a Decimal
    assert {"portfolio", "broker:DEMO-A", "strategy:DEMO-B"} <= set(plugins)


async def test_audit_is_filtered_paged_and_newest_first(api: Api) -> None:
    admin = await login(api, *ADMIN)
    for name in ("alice", "bob", "carl"):
        await make_trader(api, admin, name)
    page = await audit_page(api, admin, action="user.update", limit=2)
    assert page["total"] == 3
    assert len(page["items"]) == 2
    assert [i["target"] for i in page["items"]] == sorted(
        [i["target"] for i in page["items"]], reverse=True)
    assert page["items"][0]["id"] > page["items"][1]["id"]
    assert {i["actor"] for i in page["items"]} == {"admin"}
    rest = await audit_page(api, admin, action="user.update", limit=2, offset=2)
    assert len(rest["items"]) == 1
    assert rest["items"][0]["id"] < page["items"][1]["id"]

    now = datetime.now(UTC)
    recent = await audit_page(api, admin, action="user.update",
                              since=(now - timedelta(minutes=5)).isoformat(),
                              until=(now + timedelta(minutes=5)).isoformat())
    assert recent["total"] == 3
    assert (await audit_page(api, admin, since=(now + timedelta(hours=1)).isoformat()))[
        "total"] == 0
    assert (await audit_page(api, admin, until="2000-01-01T00:00:00"))["total"] == 0
    assert (await audit_page(api, admin, actor="nobody"))["items"] == []
    assert (await audit_page(api, admin, outcome="success", action="user.update"))[
        "total"] == 3
    too_many = await call(api, "GET", "/api/v1/audit?limit=501", admin)
    assert too_many.status == 422


async def test_stats_count_orders_fills_and_events(api: Api) -> None:
    admin = await login(api, *ADMIN)
    with anyio.fail_after(20):
        while True:
            await api.engine.journal.flush()
            reply = await call(api, "GET", "/api/v1/stats", admin)
            assert reply.status == 200, reply.body
            stats = reply.json()
            demo = {p["id"]: p for p in stats["portfolios"]}[1]
            if demo["orders"] >= 2 and demo["fills"] >= 1:
                break
            await anyio.sleep(0.2)
    assert demo["orders"] == sum(demo["orders_by_status"].values())
    assert demo["orders_per_second"] > 0
    assert demo["runner"] == "running"
    assert stats["uptime_seconds"] > 0
    engine = stats["engine"]
    assert engine["events_published"]["Bar"] > 0
    assert engine["events_per_second"]["Bar"] > 0
    assert engine["journal_commits"] > 0
    assert engine["journal_records"] > 0

    alice = await make_trader(api, admin, "alice")  # owns nothing: sees no portfolio
    mine = (await call(api, "GET", "/api/v1/stats", alice)).json()
    assert mine["portfolios"] == []
    pid = (await call(api, "POST", "/api/v1/portfolios", alice,
                      {"name": "alpha", "initial_cash": "1000"})).json()["id"]
    mine = (await call(api, "GET", "/api/v1/stats", alice)).json()
    assert [(p["id"], p["orders"], p["runner"]) for p in mine["portfolios"]] == [
        (pid, 0, "stopped")]


async def test_config_redacts_secrets_and_names_sources(api: Api) -> None:
    admin = await login(api, *ADMIN)
    reply = await call(api, "GET", "/api/v1/config", admin)
    assert reply.status == 200, reply.body
    assert DEV_JWT_SECRET.encode() not in reply.body
    assert ADMIN[1].encode() not in reply.body
    config = reply.json()
    assert config["settings"]["auth"]["jwt_secret"] == "**********"
    assert config["settings"]["admin_password"] == "**********"
    sources = config["sources"]
    assert sources["api.port"] == "file_or_cli"  # given to load_settings, like --set
    assert sources["profile"] == "default"
    assert sources["risk.max_order_notional"] == "default"
    assert config["settings"]["api"]["port"] == api.engine.settings.api.port
    assert "risk.max_order_notional" in config["runtime_keys"]


async def demo_running(api: Api) -> None:
    """The demo portfolio runs and has seen bars of both its symbols (a market order needs a
    last price)."""
    with anyio.fail_after(10):
        while (state := api.engine.facade.state(1)) is None or state.status != "running" \
                or len(api.engine.facade.last_prices(1)) < 2:  # noqa: ASYNC110
            await anyio.sleep(0.05)


async def manual_buy(api: Api, auth: dict[str, str], quantity: str) -> dict[str, str]:
    reply = await call(api, "POST", "/api/v1/orders", auth, {
        "portfolio_id": 1, "symbol": "DEMO-A", "side": "buy", "quantity": quantity})
    assert reply.status in (201, 409), reply.body
    result: dict[str, str] = reply.json() if reply.status == 201 else reply.json()["order"]
    return result


async def test_config_patch_changes_a_running_portfolio(api: Api) -> None:
    """A runtime risk limit acts on the running portfolio's next order (behaviour, not an
    attribute): a manual order above the new max notional is denied at once."""
    admin = await login(api, *ADMIN)
    await demo_running(api)
    reply = await call(api, "PATCH", "/api/v1/config", admin,
                       {"values": {"risk.max_order_notional": "50",
                                   "engine.ack_timeout": 7}})
    assert reply.status == 200, reply.body
    denied = await manual_buy(api, admin, "10")  # about 1,000 of notional
    assert (denied["status"], denied["reason"]) == ("denied", "MAX_ORDER_NOTIONAL")

    config = (await call(api, "GET", "/api/v1/config", admin)).json()
    assert config["sources"]["risk.max_order_notional"] == "runtime"
    assert config["sources"]["engine.ack_timeout"] == "runtime"
    assert config["settings"]["risk"]["max_order_notional"] == "50"
    async with api.engine.db.connect() as conn:
        stored = dict((await conn.execute(
            select(configuration.c.key, configuration.c.value))).all())
    assert stored == {"risk.max_order_notional": "50", "engine.ack_timeout": 7.0}

    again = await call(api, "PATCH", "/api/v1/config", admin,
                       {"values": {"risk.max_order_notional": 1_000_000}})
    assert again.status == 200  # an upsert
    passed = await manual_buy(api, admin, "10")
    assert passed["status"] != "denied", passed
    rows = (await audit_page(api, admin, action="config.update"))["items"]
    assert [r["outcome"] for r in rows] == ["success", "success"]
    assert rows[0]["actor"] == "admin"


async def test_config_patch_refuses_restart_keys_unknown_keys_and_bad_values(api: Api) -> None:
    admin = await login(api, *ADMIN)
    port = api.engine.settings.api.port
    restart = await call(api, "PATCH", "/api/v1/config", admin, {"values": {"api.port": 9}})
    assert restart.status == 409, restart.body
    assert restart.json()["code"] == "conflict"
    assert "needs a restart" in restart.json()["detail"]

    unknown = await call(api, "PATCH", "/api/v1/config", admin,
                         {"values": {"risk.no_such_limit": 1}})
    assert unknown.status == 422, unknown.body
    assert unknown.json()["detail"][0]["field"] == "values.risk.no_such_limit"

    bad = await call(api, "PATCH", "/api/v1/config", admin,
                     {"values": {"risk.max_order_notional": -1}})
    assert bad.status == 422, bad.body
    assert bad.json()["detail"][0]["field"] == "values.risk.max_order_notional"

    mixed = await call(api, "PATCH", "/api/v1/config", admin,  # all or nothing
                       {"values": {"risk.max_open_orders": 3, "auth.jwt_secret": "x" * 40}})
    assert mixed.status == 409
    assert api.engine.settings.risk.max_open_orders == 100
    assert api.engine.settings.api.port == port
    assert (await call(api, "PATCH", "/api/v1/config", admin, {"values": {}})).status == 422
    assert (await call(api, "PATCH", "/api/v1/config", admin,
                       {"values": {"risk.max_open_orders": 3}, "extra": 1})).status == 422

    async with api.engine.db.connect() as conn:
        assert (await conn.execute(select(configuration))).all() == []
    rows = (await audit_page(api, admin, action="config.update"))["items"]
    assert [r["outcome"] for r in rows] == ["failure"] * 4
    assert {r["detail"]["error"] for r in rows} == {"Conflict", "InvalidParams"}


def test_jsonable_makes_plain_json_and_hides_secrets() -> None:
    from pydantic import SecretStr

    from lts.api.admin_schemas import REDACTED, jsonable

    out = jsonable({"qty": Decimal("1.5"), "api_key": "k", "nested": {"password": "p"},
                    "token": None, "key": SecretStr("s"), "when": datetime(2024, 1, 1, tzinfo=UTC),
                    "items": (1, Decimal(2)), "other": object()})
    assert out["qty"] == "1.5"
    assert out["api_key"] == REDACTED
    assert out["nested"] == {"password": REDACTED}
    assert out["token"] is None
    assert out["key"] == REDACTED
    assert out["when"] == "2024-01-01T00:00:00+00:00"
    assert out["items"] == [1, "2"]
    assert out["other"].startswith("<object")
    json.dumps(out)
