"""The webhook delivery process (issue 12 §2: webhooks never block trading): it delivers what the
engine offers it and reports back, it never outlives the engine, and the engine starts it
again when it dies. Real processes, a real receiver on 127.0.0.1."""

import os
import signal
import subprocess
import sys
from pathlib import Path

import anyio
import pytest
from anyio.abc import Process
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from lts.notify.signature import SIGNATURE_HEADER, TIMESTAMP_HEADER, verify
from lts.notify.webhook_wire import (
    HEADER,
    Item,
    Offer,
    Report,
    Routes,
    Start,
    Stop,
    WebhookRoute,
    decode,
    encode,
    unpack_length,
)
from lts.persistence import repositories
from lts.persistence import webhooks_repo as repo
from lts.persistence.tables import webhook_deliveries
from lts.settings import WebhookSettings

from ._support import (
    make_webhook,
    notifying,
    quick_settings,
    receiver,
    trading_engine,
    until,
)

pytestmark = pytest.mark.anyio

SECRET = "whsec_test-secret"


def _route(wid: int, url: str) -> WebhookRoute:
    return WebhookRoute(wid, 1, "admin", url, SECRET, frozenset({"order.filled"}), None)


def _item(n: int, webhooks: list[int]) -> Item:
    return Item(f"7-{n}", "order.filled", 7, b'{"n": %d}' % n, webhooks)


async def _worker() -> Process:
    return await anyio.open_process([sys.executable, "-m", "lts.notify.webhook_worker"],
                                    stdin=subprocess.PIPE, stdout=subprocess.PIPE)


async def _next_report(process: Process) -> Report:
    assert process.stdout is not None
    buffer = b""

    async def exactly(n: int) -> bytes:
        nonlocal buffer
        while len(buffer) < n:
            assert process.stdout is not None
            buffer += await process.stdout.receive()
        out, buffer = buffer[:n], buffer[n:]
        return out

    message = decode(await exactly(unpack_length(await exactly(HEADER.size))))
    assert isinstance(message, Report)
    return message


async def test_the_process_delivers_what_it_is_offered_and_logs_each_attempt(
        migrated_url: str, migrated_engine: AsyncEngine) -> None:
    """It writes each attempt to the delivery log itself (the engine handles none)."""
    settings = WebhookSettings(allow_private_networks=True, initial_backoff=0.05)
    user_id = await repositories.create_user(migrated_engine, "ann", "x", "admin")
    async with receiver() as rec:
        hooks = [await repo.create_webhook(migrated_engine, {
            "user_id": user_id, "url": rec.url(path), "event_types": ["order.filled"],
            "secret": SECRET}) for path in ("/a", "/b")]
        one, two = (h["id"] for h in hooks)
        rec.script["/a"] = [500]  # the first try of the first POST to /a fails
        process = await _worker()
        assert process.stdin is not None
        async with process:
            await process.stdin.send(encode(Start(settings.model_dump(mode="json"), "INFO",
                                                  migrated_url)))
            await process.stdin.send(encode(Routes([_route(one, rec.url("/a")),
                                                    _route(two, rec.url("/b"))])))
            await process.stdin.send(encode(Offer([_item(1, [one, two]), _item(2, [two])])))
            with anyio.fail_after(20):
                while True:
                    report = await _next_report(process)
                    if report.totals.get("delivered") == 3 and \
                            report.totals.get("log_written") == 4:
                        break
            await process.stdin.send(encode(Stop()))
            with anyio.fail_after(10):
                assert await process.wait() == 0

    async with migrated_engine.connect() as conn:
        rows = (await conn.execute(select(webhook_deliveries))).mappings().all()
    assert sorted((r["webhook_id"], r["event_id"], r["outcome"], r["http_status"])
                  for r in rows) == [(one, "7-1", "delivered", 200),
                                     (one, "7-1", "retrying", 500),
                                     (two, "7-1", "delivered", 200),
                                     (two, "7-2", "delivered", 200)]
    assert sorted(r.path for r in rec.received) == ["/a", "/a", "/b", "/b"]
    assert all(verify(SECRET, r.headers[TIMESTAMP_HEADER], r.headers[SIGNATURE_HEADER], r.body)
               for r in rec.received)


async def test_the_process_ends_when_the_engine_is_gone(sqlite_url: str) -> None:
    """Its standard input closes when the engine exits, even killed: it exits too."""
    process = await _worker()
    assert process.stdin is not None
    async with process:
        await process.stdin.send(encode(Start(WebhookSettings().model_dump(mode="json"),
                                              "INFO", sqlite_url)))
        await process.stdin.send(encode(Routes([_route(1, "http://127.0.0.1:9/x")])))
        await process.stdin.aclose()
        with anyio.fail_after(10):
            assert await process.wait() == 0


def _delivery_processes() -> list[int]:
    """The webhook delivery processes this test process started."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        if parent == os.getpid() and b"lts.notify.webhook_worker" in cmdline \
                and stat.rsplit(")", 1)[1].split()[0] != "Z":
            found.append(int(entry.name))
    return found


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc to find it")
async def test_a_killed_delivery_process_is_started_again_and_deliveries_go_on(
        tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'lts.db'}"
    async with trading_engine(tmp_path, url) as api, receiver() as rec:
        await make_webhook(api.engine, "admin", rec.url("/fills"), ["order.filled"])
        async with notifying(api.engine, quick_settings()) as notifier:
            await until(lambda: rec.at("/fills"), "a fill delivered")
            [first] = _delivery_processes()
            os.kill(first, signal.SIGKILL)
            await until(lambda: notifier.counters()["webhook_restarts"] == 1,
                        "the engine saw it end")
            heard = len(rec.at("/fills"))
            await until(lambda: len(rec.at("/fills")) >= heard + 2,
                        "fills delivered by the new process")
            [second] = _delivery_processes()
            assert second != first
        await until(lambda: not _delivery_processes(), "no delivery process once stopped")
