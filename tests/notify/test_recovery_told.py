"""A portfolio whose venue breaks is told as ``portfolio.error``, and as
``portfolio.restarted`` once its supervisor has it running again (the real engine, its
supervisor and journal; the venue is the test's scripted one)."""

from pathlib import Path

import pytest
from engine.desk import running_desk

from lts.persistence import repositories
from lts.persistence import webhooks_repo as repo
from lts.settings import Settings

from ._support import notifying, receiver, until

pytestmark = pytest.mark.anyio


async def test_a_failure_and_the_recovery_are_both_told(tmp_path: Path,
                                                        migrated_url: str) -> None:
    own = {"notify": {"enabled": False}} if "notify" in Settings.model_fields else {}
    async with running_desk(migrated_url, settings=own) as desk, receiver() as rec:
        ops = await repositories.create_user(desk.engine.db, "ops", "x", "admin")
        await repo.create_webhook(desk.engine.db, {
            "user_id": ops, "url": rec.url("/ops"), "secret": repo.new_secret(),
            "event_types": ["portfolio.error", "portfolio.restarted"]})
        async with notifying(desk.engine):
            desk.venue.refuse_connections = 1  # the first restart fails too
            desk.venue.drop()
            await until(lambda: any(r.json()["type"] == "portfolio.restarted"
                                    for r in rec.at("/ops")), "the recovery told", within=10)
        # a webhook's deliveries run side by side (notify.webhooks.concurrency): they may
        # arrive in any order; each says when it happened
        arrived = sorted(rec.at("/ops"), key=lambda r: r.json()["ts_event"])
        told = [(r.json()["type"], r.json()["data"]["restarts"]) for r in arrived]
        assert told == [("portfolio.error", 0), ("portfolio.error", 1),
                        ("portfolio.restarted", 2)]
        assert arrived[0].json()["data"]["reason"].startswith("ConnectionResetError")
        assert arrived[-1].json()["portfolio"]["id"] == desk.portfolio_id
