"""The Telegram bot against a local stand-in of the Bot API, beside the real engine (demo
portfolio on paper): commands from allowed chats answered by what their LTS user may see and
do, a viewer refused /halt, an unknown chat told nothing, every command audited, and the
notifications sent to the chats whose user may see the portfolio."""

from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from api._auth import audit_rows

from lts.notify.config import NotifySettings
from lts.persistence import portfolio_store, repositories

from ._support import notifying, trading_engine, until
from .bot_api import bot_api

pytestmark = pytest.mark.anyio

TOKEN = "123456:test-token"
ADMIN_CHAT, VIEWER_CHAT, TRADER_CHAT, STRANGER = 100, 200, 300, 999


def _settings(base_url: str, **telegram: Any) -> NotifySettings:
    return NotifySettings.model_validate({
        "webhooks": {"refresh_seconds": 0.1, "allow_private_networks": True},
        "telegram": {"enabled": True, "bot_token": TOKEN, "api_base_url": base_url,
                     "poll_timeout": 1,
                     "chats": {ADMIN_CHAT: "admin", VIEWER_CHAT: "vic", TRADER_CHAT: "tom"},
                     **telegram}})


async def test_commands_by_role_audited_and_notifications_to_who_may_see(
        tmp_path: Path, migrated_url: str) -> None:
    async with trading_engine(tmp_path, migrated_url) as api, bot_api(TOKEN) as tg:
        engine = api.engine
        pid = await repositories.portfolio_id_by_name(engine.db, "demo")
        assert pid is not None
        await repositories.create_user(engine.db, "vic", "x", "viewer")
        await repositories.create_user(engine.db, "tom", "x", "trader")
        tg.throttle = 1  # the first message meets a 429 and is sent after retry_after
        await until(lambda: (s := engine.facade.state(pid)) is not None
                    and s.status == "running", "demo running")
        async with notifying(engine, _settings(tg.base_url)):
            tg.say(ADMIN_CHAT, "/status")
            await until(lambda: any(t.startswith(f"demo (#{pid}): ") for t in tg.to(ADMIN_CHAT)),
                        "/status answered")
            status = next(t for t in tg.to(ADMIN_CHAT) if t.startswith(f"demo (#{pid}): "))
            assert status.startswith(f"demo (#{pid}): running, ACTIVE, equity ")

            tg.say(VIEWER_CHAT, "/halt")
            tg.say(STRANGER, "/halt")
            tg.say(TRADER_CHAT, "/halt demo")
            await until(lambda: tg.to(VIEWER_CHAT) and tg.to(TRADER_CHAT), "the refusals")
            assert tg.to(VIEWER_CHAT) == ["/halt is not allowed for role viewer"]
            assert tg.to(TRADER_CHAT) == ["no portfolio 'demo'"]  # not theirs to see
            state = engine.facade.state(pid)
            assert state is not None
            assert state.trading_state == "ACTIVE"

            tg.say(ADMIN_CHAT, "/halt@lts_bot demo")
            await until(lambda: "demo: HALTED" in tg.to(ADMIN_CHAT), "the halt answered")
            state = engine.facade.state(pid)
            assert state is not None
            assert state.trading_state == "HALTED"
            await until(lambda: "[demo] trading state ACTIVE -> HALTED" in tg.to(ADMIN_CHAT),
                        "the kill switch told")
            # with a second portfolio to see, /resume wants a name (only /halt acts on all)
            await portfolio_store.create_portfolio(engine.db, {
                "name": "spare", "initial_cash": Decimal(1000), "is_active": False})
            tg.say(ADMIN_CHAT, "/resume")
            await until(lambda: any(t.startswith("name the portfolio") for t in
                                    tg.to(ADMIN_CHAT)), "a name asked for")
            state = engine.facade.state(pid)
            assert state is not None
            assert state.trading_state == "HALTED"
            tg.say(ADMIN_CHAT, f"/resume {pid}")
            await until(lambda: "demo: ACTIVE" in tg.to(ADMIN_CHAT), "the resume answered")

            for command in ("/positions", "/orders", "/profit", "/balance", "/nonsense"):
                tg.say(ADMIN_CHAT, command)
            await until(lambda: any(t.startswith("unknown command /nonsense")
                                    for t in tg.to(ADMIN_CHAT)), "every command answered")
            texts = tg.to(ADMIN_CHAT)
            assert any(t.startswith("demo: P&L ") for t in texts)
            assert any(t.startswith("demo: equity ") for t in texts)
            await until(lambda: any(" filled " in t and t.startswith("[demo]")
                                    for t in tg.to(ADMIN_CHAT)), "a fill told")
            # the viewer and the trader own no portfolio: they hear of none of demo's events
            assert tg.to(VIEWER_CHAT) == ["/halt is not allowed for role viewer"]
            assert tg.to(TRADER_CHAT) == ["no portfolio 'demo'"]
            assert tg.to(STRANGER) == []

        halts = await audit_rows(api, "telegram.halt")
        assert [(r["actor"], r["outcome"], r["client_address"], r["target"]) for r in halts] \
            == [("vic", "denied", f"telegram:{VIEWER_CHAT}", ""),
                ("tom", "failure", f"telegram:{TRADER_CHAT}", "demo")]
        switched = await audit_rows(api, "portfolio.trading_state")
        assert [(r["actor"], r["outcome"], r["client_address"], r["target"], r["detail"])
                for r in switched] == [
            ("admin", "success", f"telegram:{ADMIN_CHAT}", f"portfolio:{pid}",
             {"state": "HALTED", "via": "/halt"}),
            ("admin", "success", f"telegram:{ADMIN_CHAT}", f"portfolio:{pid}",
             {"state": "ACTIVE", "via": "/resume"})]
        refused = await audit_rows(api, "telegram.refused")
        assert [(r["actor"], r["outcome"], r["client_address"]) for r in refused] == \
            [("anonymous", "denied", f"telegram:{STRANGER}")]
        resumes = await audit_rows(api, "telegram.resume")
        assert [(r["outcome"], r["target"]) for r in resumes] == [("failure", "")]
        for action in ("telegram.status", "telegram.positions",
                       "telegram.orders", "telegram.profit", "telegram.balance"):
            assert [r["outcome"] for r in await audit_rows(api, action)] == ["success"], action
        assert [r["outcome"] for r in await audit_rows(api, "telegram.unknown")] == ["failure"]
