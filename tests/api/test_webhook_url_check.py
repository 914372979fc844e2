"""A webhook's URL to a private address or a local name is refused when it is created or changed
(422 on ``url``), not only at delivery, unless private networks are allowed; nothing is resolved
in the request (the test network guard fails a test whose process looks a name up). Real engine
and uvicorn; the notifier is off, so nothing is ever delivered."""

from pathlib import Path
from typing import Any

import pytest

from ._auth import ADMIN, call, login, running_api, user_with_role

pytestmark = pytest.mark.anyio

HOOKS = "/api/v1/webhooks"

PRIVATE = [
    "http://127.0.0.1:9/x", "http://localhost:8080/x", "http://LOCALHOST./x",
    "https://api.localhost/x", "http://printer.local/x", "http://metadata.google.internal/x",
    "http://169.254.169.254/latest/meta-data", "http://10.1.2.3/x", "https://192.168.0.1/x",
    "http://172.16.0.5/x", "http://100.64.0.1/x", "http://0.0.0.0/x", "http://[::1]:8080/x",
    "http://[::ffff:127.0.0.1]/x", "http://[fe80::1%25eth0]/x", "http://[fd00::1]/x",
    "http://127.1/x", "http://2130706433/x", "http://0177.0.0.1/x", "http://224.0.0.1/x",
]
PUBLIC = ["https://example.com/hook", "https://93.184.215.14/x", "https://[2606:4700::1]/x",
          "https://localhost.example.com/x", "https://local.example.org/x"]


def hook(url: str) -> dict[str, Any]:
    return {"url": url, "event_types": ["order.filled"]}


def refused_on_url(answer: Any) -> str:
    assert answer.status == 422, answer.body
    errors = answer.json()["detail"]
    assert [e["field"] for e in errors] == ["url"]
    return str(errors[0]["message"])


async def test_a_private_or_local_url_is_refused_at_creation_and_update(
        tmp_path: Path) -> None:
    async with running_api(tmp_path, notify={"enabled": False}) as api:
        _, viewer = await user_with_role(api, "vera", "viewer")
        for url in PRIVATE:
            message = refused_on_url(await call(api, "POST", HOOKS, hook(url), viewer))
            assert "public" in message, url
        assert (await call(api, "GET", HOOKS, token=viewer)).json() == []  # none was made

        made = {}
        for url in PUBLIC:  # names are not looked up here: delivery checks what they resolve to
            answer = await call(api, "POST", HOOKS, hook(url), viewer)
            assert answer.status == 201, (url, answer.body)
            made[url] = answer.json()["id"]

        path = f"{HOOKS}/{made['https://example.com/hook']}"
        for url in ("http://127.0.0.1:8000/steal", "http://db.internal/x"):
            refused_on_url(await call(api, "PATCH", path, {"url": url}, viewer))
        assert (await call(api, "GET", path, token=viewer)).json()["url"] == \
            "https://example.com/hook"  # unchanged
        changed = await call(api, "PATCH", path, {"active": False}, viewer)
        assert changed.status == 200, changed.body  # a change without a URL is not checked

        schema = (await call(api, "GET", "/openapi.json")).json()
        for method in ("post", "patch"):
            where = HOOKS if method == "post" else HOOKS + "/{webhook_id}"
            assert "422" in schema["paths"][where][method]["responses"]


async def test_private_networks_allowed_take_a_local_url(tmp_path: Path) -> None:
    async with running_api(tmp_path, notify={
            "enabled": False, "webhooks": {"allow_private_networks": True}}) as api:
        admin = (await login(api, *ADMIN))["access_token"]
        made = await call(api, "POST", HOOKS, hook("http://127.0.0.1:9/x"), admin)
        assert made.status == 201, made.body
        path = f"{HOOKS}/{made.json()['id']}"
        changed = await call(api, "PATCH", path, {"url": "http://printer.local/x"}, admin)
        assert changed.status == 200, changed.body
        assert changed.json()["url"] == "http://printer.local/x"
