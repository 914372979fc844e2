"""Webhooks on the real engine (demo portfolio, paper venue, a bar every 50 ms): committed
fills reach a local receiver signed, retried after 500s with the same event id, and logged;
a receiver that never answers holds up nothing of the engine; a user only hears of portfolios
they may see; kill-switch changes are told."""

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import select

from lts.api.metrics import ApiMetrics
from lts.domain.commands import Accepted, SetTradingState, TradingState
from lts.engine.engine import Engine
from lts.notify.destinations import PublicResolver
from lts.notify.signature import (
    ATTEMPT_HEADER,
    EVENT_ID_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    verify,
)
from lts.persistence import repositories
from lts.persistence import webhooks_repo as repo
from lts.persistence.tables import webhook_deliveries

from ._support import (
    Received,
    dead_receiver,
    make_webhook,
    notifying,
    quick_settings,
    receiver,
    trading_engine,
    until,
    until_read,
)

pytestmark = pytest.mark.anyio


async def _log(engine: Engine, webhook_id: int) -> list[dict[str, Any]]:
    async with engine.db.connect() as conn:
        rows = (await conn.execute(select(webhook_deliveries)
                                   .where(webhook_deliveries.c.webhook_id == webhook_id)
                                   .order_by(webhook_deliveries.c.id))).mappings().all()
    return [dict(r) for r in rows]


def _signed(r: Received, secret: str) -> bool:
    return verify(secret, r.headers[TIMESTAMP_HEADER], r.headers[SIGNATURE_HEADER], r.body)


async def test_a_fill_is_posted_signed_retried_after_500s_and_logged(
        tmp_path: Path, migrated_url: str) -> None:
    async with trading_engine(tmp_path, migrated_url) as api, receiver() as rec:
        engine = api.engine
        hook = await make_webhook(engine, "admin", rec.url("/fills"), ["order.filled"])
        rec.script["/fills"] = [500, 500, 503]  # the first three tries fail
        # one delivery at a time: the first fill's tries meet the scripted answers
        async with notifying(engine, quick_settings(concurrency=1)):
            await until(lambda: any(r.status == 200 for r in rec.at("/fills")),
                        "a fill delivered with 200")
            first = rec.at("/fills")[0]
            tries = [r for r in rec.at("/fills")
                     if r.headers[EVENT_ID_HEADER] == first.headers[EVENT_ID_HEADER]]
            assert [r.status for r in tries] == [500, 500, 503, 200]
            assert [r.headers[ATTEMPT_HEADER] for r in tries] == ["1", "2", "3", "4"]
            assert all(_signed(r, hook["secret"]) for r in rec.received)
            assert not _signed(first, "whsec_another")
            tampered = first.body.replace(b"order.filled", b"order.filleD")
            assert not verify(hook["secret"], first.headers[TIMESTAMP_HEADER],
                              first.headers[SIGNATURE_HEADER], tampered)
            body = first.json()
            assert body["type"] == "order.filled"
            assert body["portfolio"]["name"] == "demo"
            assert body["id"] == first.headers[EVENT_ID_HEADER]
            assert body["data"]["fill"]["quantity"]
            assert body["data"]["status"] in ("filled", "partially_filled")
            event_id = body["id"]

            rows = await until_read(
                lambda: _log(engine, hook["id"]),
                lambda rows: len([r for r in rows if r["event_id"] == event_id]) >= 4,
                "the four attempts in the delivery log")
            mine = [r for r in rows if r["event_id"] == event_id]
            assert [r["outcome"] for r in mine] == ["retrying", "retrying", "retrying",
                                                    "delivered"]
            assert [r["http_status"] for r in mine] == [500, 500, 503, 200]
            assert [r["attempt"] for r in mine] == [1, 2, 3, 4]


async def test_a_dead_receiver_holds_up_neither_the_engine_nor_other_webhooks(
        tmp_path: Path, migrated_url: str) -> None:
    async with trading_engine(tmp_path, migrated_url) as api, \
            receiver() as rec, dead_receiver() as dead:
        engine = api.engine
        pid = await repositories.portfolio_id_by_name(engine.db, "demo")
        assert pid is not None
        await make_webhook(engine, "admin", dead.url("/hangs"), ["order.filled"])
        await make_webhook(engine, "admin", rec.url("/alive"), ["order.filled"])
        refused = await make_webhook(engine, "admin", rec.url("/gone"), ["order.filled"])
        rec.script["/gone"] = [410] * 1000
        async with notifying(engine, quick_settings(concurrency=2, timeout=60)) as notifier:
            # both delivery slots of the dead receiver's webhook hang on an answer that never
            # comes; the engine goes on filling and the live webhook hears of every fill
            await until(lambda: dead.connections >= 2, "two deliveries hanging")
            state = engine.facade.state(pid)
            assert state is not None
            before = state.fills
            await until(lambda: (s := engine.facade.state(pid)) is not None
                        and s.fills >= before + 3, "three more fills")
            await until(lambda: len(rec.at("/alive")) >= before + 3,
                        "the live webhook told of them")
            # the receiver has a POST before the notifier has counted its answer
            await until(lambda: notifier.counters()["webhook_delivered"] >= before + 3,
                        "the deliveries counted")
            assert dead.connections == 2
            counters = notifier.counters()
            assert counters["events_dropped"] == 0
            assert counters["webhook_dropped"] == 0
            # a receiver that refuses (410) is not asked again: one attempt each, failed
            rows = await until_read(lambda: _log(engine, refused["id"]), bool,
                                    "the refused attempts logged")
            assert {(r["attempt"], r["outcome"], r["http_status"]) for r in rows} == \
                {(1, "failed", 410)}
            ids = [r.headers[EVENT_ID_HEADER] for r in rec.at("/gone")]
            assert len(ids) == len(set(ids))
            # the operator's view of the same: the notifier's counters in the engine's metrics
            # (the registry /metrics serves; this engine runs without its API)
            metrics = ApiMetrics(engine.facade)
            scraped = await until_read(lambda: _notify_metrics(metrics), lambda m: m.get(
                "lts_notify_webhook_failed_total", 0) >= 1, "the failed delivery counted")
            assert scraped["lts_notify_webhook_delivered_total"] >= before + 3
            assert scraped["lts_notify_notifications_total"] >= before + 3
            assert scraped["lts_notify_events_dropped_total"] == 0
            assert scraped["lts_notify_webhook_restarts_total"] == 0
        # a stopped notifier is no longer in the metrics
        assert "lts_notify_notifications_total" not in await _notify_metrics(metrics)


async def _notify_metrics(metrics: ApiMetrics) -> dict[str, float]:
    text = generate_latest(metrics.registry).decode()
    return {s.name: s.value for f in text_string_to_metric_families(text)
            if f.name.startswith("lts_notify_") for s in f.samples}


async def test_a_user_hears_only_of_portfolios_they_may_see_and_of_the_kill_switch(
        tmp_path: Path, migrated_url: str) -> None:
    async with trading_engine(tmp_path, migrated_url) as api, receiver() as rec:
        engine = api.engine
        pid = await repositories.portfolio_id_by_name(engine.db, "demo")
        assert pid is not None
        await repositories.create_user(engine.db, "trader1", "x", "trader")
        everything = ["order.filled", "order.rejected", "order.denied", "portfolio.error",
                      "portfolio.restarted", "trading_state.changed"]
        await make_webhook(engine, "trader1", rec.url("/trader"), everything)
        await make_webhook(engine, "trader1", rec.url("/trader-demo"), everything, portfolio_id=pid)
        await make_webhook(engine, "admin", rec.url("/admin"), everything)
        await make_webhook(engine, "admin", rec.url("/off"), everything, active=False)
        await make_webhook(engine, "admin", rec.url("/switch"), ["trading_state.changed"])
        await until(lambda: (s := engine.facade.state(pid)) is not None
                    and s.status == "running", "demo running")
        async with notifying(engine):
            reply = await engine.facade.command(pid, SetTradingState(TradingState.HALTED))
            assert isinstance(reply, Accepted)
            await until(lambda: rec.at("/switch"), "the halt told")
            reply = await engine.facade.command(pid, SetTradingState(TradingState.ACTIVE))
            assert isinstance(reply, Accepted)
            await until(lambda: len(rec.at("/switch")) == 2, "the resume told")
            changes = [r.json()["data"] for r in rec.at("/switch")]
            assert changes == [{"state": "HALTED", "previous": "ACTIVE"},
                               {"state": "ACTIVE", "previous": "HALTED"}]
            await until(lambda: len([r for r in rec.at("/admin")
                                     if r.json()["type"] == "order.filled"]) >= 2,
                        "two fills told to the admin")
            assert rec.at("/trader") == []
            assert rec.at("/trader-demo") == []
            assert rec.at("/off") == []
            types = {json.loads(r.body)["type"] for r in rec.at("/admin")}
            assert {"trading_state.changed", "order.filled"} <= types


async def test_the_daily_summary_tells_each_user_of_their_portfolios_day(
        tmp_path: Path, migrated_url: str) -> None:
    async with trading_engine(tmp_path, migrated_url) as api, receiver() as rec:
        engine = api.engine
        pid = await repositories.portfolio_id_by_name(engine.db, "demo")
        assert pid is not None
        await repositories.create_user(engine.db, "trader2", "x", "trader")
        await make_webhook(engine, "admin", rec.url("/admin"), ["daily.summary"])
        await make_webhook(engine, "trader2", rec.url("/trader"), ["daily.summary"])
        await until(lambda: (s := engine.facade.state(pid)) is not None and s.fills >= 2,
                    "two fills")
        async with notifying(engine) as notifier:
            end = datetime.now(UTC) + timedelta(minutes=1)
            assert await notifier.send_daily_summary(end) == 1
            await until(lambda: rec.at("/admin"), "the summary delivered")
        summary = rec.at("/admin")[0].json()
        assert summary["type"] == "daily.summary"
        assert summary["id"] == f"{pid}-daily.summary-{end.date().isoformat()}"
        data = summary["data"]
        assert data["fills"] >= 2
        assert data["status"] == "running"
        assert data["trading_state"] == "ACTIVE"
        assert Decimal(data["pnl"]) == Decimal(data["equity"]) - Decimal(data["initial_cash"])
        assert data["period_end"] == end.isoformat().replace("+00:00", "Z")
        assert rec.at("/trader") == []


async def test_private_destinations_are_refused_unless_allowed(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'lts.db'}"
    async with trading_engine(tmp_path, url) as api, receiver() as rec:
        engine = api.engine
        literal = await make_webhook(engine, "admin", rec.url("/literal"), ["order.filled"])
        local = await make_webhook(engine, "admin", f"http://localhost:{rec.port}/local",
                                   ["order.filled"])
        guarded = quick_settings(allow_private_networks=False, max_attempts=2)
        async with notifying(engine, guarded):
            literal_rows = await until_read(lambda: _log(engine, literal["id"]), bool,
                                            "the literal address refused")
            local_rows = await until_read(lambda: _log(engine, local["id"]), bool,
                                          "localhost refused")
        for rows in (literal_rows, local_rows):  # refused before any lookup or connection
            assert {(r["attempt"], r["outcome"], r["error"]) for r in rows} == \
                {(1, "failed", "destination not allowed: a private address")}
        assert rec.received == []


async def test_a_name_is_connected_only_to_its_public_addresses() -> None:
    """A name (not refused by its text) that resolves only to private addresses is refused
    when it is resolved, at each connection (the tests may look up only localhost)."""
    resolver = PublicResolver()
    try:
        with pytest.raises(OSError, match="resolves only to private addresses"):
            await resolver.resolve("localhost", 80)
    finally:
        await resolver.close()


async def test_a_changed_webhook_is_followed_and_a_deleted_one_stops(
        tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'lts.db'}"
    async with trading_engine(tmp_path, url) as api, receiver() as rec:
        engine = api.engine
        hook = await make_webhook(engine, "admin", rec.url("/before"), ["order.filled"])
        async with notifying(engine) as notifier:
            await until(lambda: rec.at("/before"), "a fill at the first URL")
            uid = await repositories.user_id_by_name(engine.db, "admin")
            assert uid is not None
            secret = repo.new_secret()
            await repo.update_webhook(engine.db, uid, hook["id"],
                                      {"url": rec.url("/after"), "secret": secret})
            await until(lambda: rec.at("/after"), "a fill at the new URL")
            assert all(_signed(r, secret) for r in rec.at("/after"))
            assert await repo.delete_webhook(engine.db, uid, hook["id"])
            # a webhook made after the delete: once it hears of fills, the deleted one is gone
            # from what the notifier routes, and three fills later it has still heard nothing
            await make_webhook(engine, "admin", rec.url("/probe"), ["order.filled"])
            await until(lambda: len(rec.at("/probe")) >= 1, "fills reach the newer webhook")
            heard = len(rec.at("/after"))
            probed = len(rec.at("/probe"))
            await until(lambda: len(rec.at("/probe")) >= probed + 3, "three more fills")
            assert len(rec.at("/after")) == heard
            assert notifier.counters()["webhook_restarts"] == 0
