"""The engine's own notifier (the ``notify`` core service, started with the engine when
``notify.enabled``): a webhook made through the API receives the demo's fills, signed.
SYS-010 (events out), issue 12 §2."""

from pathlib import Path

import pytest
from api._auth import ADMIN, call, login
from api.conftest import running_api

from lts.notify.signature import verify

from ._support import receiver, until

pytestmark = pytest.mark.anyio


async def test_the_engine_s_notifier_posts_signed_fills_to_a_webhook(tmp_path: Path) -> None:
    async with receiver() as rec, running_api(
            tmp_path, demo={"interval": 0.05},
            notify={"webhooks": {"allow_private_networks": True, "refresh_seconds": 0.1}}
    ) as api:
        admin = (await login(api, *ADMIN))["access_token"]
        made = await call(api, "POST", "/api/v1/webhooks",
                          {"url": rec.url("/fills"), "event_types": ["order.filled"]}, admin)
        assert made.status == 201, made.body
        secret = made.json()["secret"]
        await until(lambda: rec.received, "a fill posted to the webhook")
        first = rec.received[0]
        assert first.headers["X-LTS-Event"] == "order.filled"
        assert verify(secret, first.headers["X-LTS-Timestamp"],
                      first.headers["X-LTS-Signature"], first.body)
        assert first.json()["portfolio"] == {"id": 1, "name": "demo"}
