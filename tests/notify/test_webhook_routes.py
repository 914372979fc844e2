"""``/api/v1/webhooks`` over real HTTP (uvicorn on a loopback port, the engine's app with the
webhooks routes): each user's own webhooks, the secret shown once, 4xx naming what is wrong,
and the delivery log of a webhook the notifier delivers to."""

import contextlib
import json
from collections.abc import AsyncIterator, Generator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest
import uvicorn
from api._auth import ADMIN, audit_rows, call, login, user_with_role
from api.conftest import Api, free_port

from lts.api.app import create_app
from lts.persistence import repositories

from ._support import notifying, receiver, trading_engine, until_read

pytestmark = pytest.mark.anyio


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield  # the test's loop keeps its own


@asynccontextmanager
async def webhooks_api(tmp_path: Path, url: str) -> AsyncIterator[Api]:
    """The engine (demo portfolio trading) and its app with the webhooks routes, served."""
    async with trading_engine(tmp_path, url) as api:
        app = create_app(api.engine.facade)
        port = free_port()
        server = _Server(uvicorn.Config(app, host="127.0.0.1", port=port, lifespan="off",
                                        log_config=None, access_log=False))
        async with anyio.create_task_group() as tg:
            tg.start_soon(server.serve)
            with anyio.fail_after(10):
                while not server.started:  # noqa: ASYNC110 - uvicorn offers a flag only
                    await anyio.sleep(0.01)
            yield Api(api.engine, f"http://127.0.0.1:{port}")
            server.should_exit = True
        app.state.ctx.reader.dispose()


async def test_each_user_manages_their_own_webhooks(tmp_path: Path, migrated_url: str) -> None:
    async with webhooks_api(tmp_path, migrated_url) as api:
        _, viewer = await user_with_role(api, "vera", "viewer")
        _, trader = await user_with_role(api, "trent", "trader")
        admin = (await login(api, *ADMIN))["access_token"]
        demo = await repositories.portfolio_id_by_name(api.engine.db, "demo")

        made = await call(api, "POST", "/api/v1/webhooks",
                          {"url": "https://example.com/hook?x=1",
                           "event_types": ["order.filled", "order.filled", "portfolio.error"],
                           "description": "my <img src=x onerror=alert(1)> desk"}, viewer)
        assert made.status == 201, made.body
        hook = made.json()
        assert hook["secret"].startswith("whsec_")
        assert len(hook["secret"]) > 40
        assert hook["event_types"] == ["order.filled", "portfolio.error"]
        assert hook["active"] is True
        assert hook["portfolio_id"] is None
        path = f"/api/v1/webhooks/{hook['id']}"

        listed = await call(api, "GET", "/api/v1/webhooks", token=viewer)
        assert [h["id"] for h in listed.json()] == [hook["id"]]
        got = await call(api, "GET", path, token=viewer)
        assert got.status == 200
        for answer in (listed, got):
            assert hook["secret"].encode() not in answer.body
            assert b"secret" not in answer.body

        changed = await call(api, "PATCH", path, {"event_types": ["trading_state.changed"],
                                                  "active": False}, viewer)
        assert changed.status == 200, changed.body
        assert changed.json()["event_types"] == ["trading_state.changed"]
        assert changed.json()["active"] is False

        # someone else's webhook does not exist for them; a portfolio they may not see neither
        for token in (trader, admin):
            for method, body in (("GET", None), ("PATCH", {"active": True}),
                                 ("DELETE", None), ("POST", None)):
                where = path + "/secret" if method == "POST" else path
                answer = await call(api, method, where, body, token)
                assert answer.status == 404, (method, answer.body)
        assert (await call(api, "GET", path + "/deliveries", token=trader)).status == 404
        refused = await call(api, "PATCH", path, {"portfolio_id": demo}, viewer)
        assert refused.status == 404
        assert json.loads(refused.body)["detail"] == "portfolio not found"
        mine = await call(api, "POST", "/api/v1/webhooks",
                          {"url": "http://127.0.0.1:9/x", "event_types": ["order.filled"],
                           "portfolio_id": demo}, admin)
        assert mine.status == 201

        rotated = await call(api, "POST", path + "/secret", token=viewer)
        assert rotated.status == 200
        assert rotated.json()["secret"] != hook["secret"]

        unauthenticated = await call(api, "POST", "/api/v1/webhooks",
                                     {"url": "https://example.com", "event_types": ["x"]})
        assert unauthenticated.status == 401

        deleted = await call(api, "DELETE", path, token=viewer)
        assert deleted.status == 204
        assert (await call(api, "GET", path, token=viewer)).status == 404
        assert (await call(api, "DELETE", path, token=viewer)).status == 404

        rows = await audit_rows(api, "webhook.create")
        assert [r["outcome"] for r in rows] == ["success", "success"]
        assert all(hook["secret"] not in json.dumps(r["detail"]) for r in rows)
        assert [r["outcome"] for r in await audit_rows(api, "webhook.secret")] == \
            ["failure", "failure", "success"]


@pytest.mark.parametrize(("body", "field"), [
    ({"url": "ftp://example.com/x", "event_types": ["order.filled"]}, "url"),
    ({"url": "https://user:pw@example.com/x", "event_types": ["order.filled"]}, "url"),
    ({"url": "https://exa mple.com/x", "event_types": ["order.filled"]}, "url"),
    ({"url": "https://example.com:99999/x", "event_types": ["order.filled"]}, "url"),
    ({"url": "https://example.com/\u0000", "event_types": ["order.filled"]}, "url"),
    ({"url": "https://example.com/\udcff", "event_types": ["order.filled"]}, "url"),
    ({"url": "https://example.com/x", "event_types": ["order.filled"],
      "description": "\udcff"}, "description"),
    ({"url": "https://example.com/x", "event_types": ["order.filled"], "active": 0}, "active"),
    ({"url": "https://example.com/x", "event_types": ["order.exploded"]}, "event_types.0"),
    ({"url": "https://example.com/x", "event_types": []}, "event_types"),
    ({"url": "https://example.com/x", "event_types": ["order.filled"], "secret": "s"},
     "secret"),
    ({"url": "https://example.com/x", "event_types": ["order.filled"],
      "portfolio_id": 10000000000000000001}, "portfolio_id"),
])
async def test_bad_input_is_a_422_naming_the_field(tmp_path: Path, body: dict[str, Any],
                                                    field: str) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'lts.db'}"
    async with webhooks_api(tmp_path, url) as api:
        admin = (await login(api, *ADMIN))["access_token"]
        answer = await call(api, "POST", "/api/v1/webhooks", body, admin)
        assert answer.status == 422, answer.body
        assert field in [e["field"] for e in answer.json()["detail"]]
        huge = await call(api, "GET", "/api/v1/webhooks/10000000000000000001", token=admin)
        assert huge.status == 422


async def test_the_delivery_log_shows_each_attempt(tmp_path: Path, migrated_url: str) -> None:
    async with webhooks_api(tmp_path, migrated_url) as api, receiver() as rec:
        admin = (await login(api, *ADMIN))["access_token"]
        made = await call(api, "POST", "/api/v1/webhooks",
                          {"url": rec.url("/log"), "event_types": ["order.filled"]}, admin)
        hook = made.json()
        rec.script["/log"] = [502]
        async with notifying(api.engine):
            async def deliveries() -> list[dict[str, Any]]:
                answer = await call(api, "GET", f"/api/v1/webhooks/{hook['id']}/deliveries",
                                    token=admin)
                assert answer.status == 200, answer.body
                rows: list[dict[str, Any]] = answer.json()
                return rows

            def retried(rows: list[dict[str, Any]]) -> bool:
                oldest = rows[-1]["event_id"] if rows else None
                return len([r for r in rows if r["event_id"] == oldest]) >= 2

            rows = await until_read(deliveries, retried, "the first event's two attempts")
        first = [r for r in rows if r["event_id"] == rows[-1]["event_id"]]
        assert [(r["attempt"], r["outcome"], r["http_status"]) for r in reversed(first)] == \
            [(1, "retrying", 502), (2, "delivered", 200)]
        page = await call(api, "GET", f"/api/v1/webhooks/{hook['id']}/deliveries"
                          f"?limit=1&before_id={rows[0]['id']}", token=admin)
        assert [r["id"] for r in page.json()] == [rows[1]["id"]]
        assert (await call(api, "GET", f"/api/v1/webhooks/{hook['id']}/deliveries?limit=0",
                           token=admin)).status == 422
