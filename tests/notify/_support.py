"""What the notification tests share: a webhook receiver (a real HTTP server on 127.0.0.1,
scriptable and recording), a receiver that never answers, the notifier started beside a real
engine, and a wait with a deadline."""

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
from aiohttp import web
from api.conftest import Api, running_api

from lts.engine.engine import Engine
from lts.notify.config import NotifySettings
from lts.notify.service import Notifier
from lts.persistence import repositories
from lts.persistence import webhooks_repo as repo


async def until(condition: Callable[[], Any], what: str, within: float = 20.0) -> None:
    """Wait until ``condition()`` is true; fail naming ``what`` after ``within`` seconds."""
    with anyio.move_on_after(within):
        while not condition():  # noqa: ASYNC110 - polls state other tasks change
            await anyio.sleep(0.02)
        return
    raise AssertionError(f"timed out waiting for {what}")


async def until_read(read: Callable[[], Awaitable[Any]], check: Callable[[Any], bool],
                     what: str, within: float = 20.0) -> Any:
    """Read until ``check(value)`` holds; the value. Fails naming ``what`` after ``within``."""
    value = None
    with anyio.move_on_after(within):
        while not check(value := await read()):  # noqa: ASYNC110 - polls the database
            await anyio.sleep(0.05)
        return value
    raise AssertionError(f"timed out waiting for {what}; last read: {value!r}")


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    status: int

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Receiver:
    """Answers each POST with the next status scripted for its path (200 when none is left)."""

    script: dict[str, list[int]] = field(default_factory=dict)
    received: list[Received] = field(default_factory=list)
    port: int = 0

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def at(self, path: str) -> list[Received]:
        return [r for r in self.received if r.path == path]

    async def _take(self, request: web.Request) -> web.Response:
        body = await request.read()
        statuses = self.script.get(request.path)
        status = statuses.pop(0) if statuses else 200
        self.received.append(Received(request.path, dict(request.headers), body, status))
        return web.Response(status=status, text="ok" if status < 300 else "no")


@asynccontextmanager
async def receiver() -> AsyncIterator[Receiver]:
    rec = Receiver()
    app = web.Application()
    app.router.add_post("/{tail:.*}", rec._take)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    rec.port = runner.addresses[0][1]
    try:
        yield rec
    finally:
        await runner.cleanup()


@dataclass
class DeadReceiver:
    """Accepts connections and never answers (a receiver that hangs)."""

    port: int = 0
    connections: int = 0
    writers: list[asyncio.StreamWriter] = field(default_factory=list)

    def url(self, path: str = "/") -> str:
        return f"http://127.0.0.1:{self.port}{path}"


@asynccontextmanager
async def dead_receiver() -> AsyncIterator[DeadReceiver]:
    dead = DeadReceiver()

    async def hold(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        dead.connections += 1
        dead.writers.append(writer)

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    dead.port = server.sockets[0].getsockname()[1]
    try:
        yield dead
    finally:
        for writer in dead.writers:
            writer.close()
        server.close()
        await server.wait_closed()


def trading_engine(tmp_path: Path, url: str) -> AbstractAsyncContextManager[Api]:
    """The engine trading the demo portfolio fast (a bar every 50 ms), without its API and
    without a notifier of its own: each test runs the notifier it needs (:func:`notifying`).
    Its settings allow webhooks to private networks: the API refuses a URL to 127.0.0.1
    otherwise, and the tests' receivers listen there."""
    return running_api(tmp_path, demo={"interval": 0.05}, api={"enabled": False},
                       database={"url": url},
                       notify={"enabled": False, "webhooks": {"allow_private_networks": True}})


def quick_settings(**webhooks: Any) -> NotifySettings:
    """Retries and refreshes fast enough for a test; the receivers are on 127.0.0.1."""
    return NotifySettings.model_validate({"webhooks": {
        "initial_backoff": 0.05, "max_backoff": 0.2, "refresh_seconds": 0.1,
        "allow_private_networks": True, **webhooks}})


@asynccontextmanager
async def notifying(engine: Engine, settings: NotifySettings | None = None
                    ) -> AsyncIterator[Notifier]:
    """The notifier beside the running engine, fed by the engine's bus (committed events)."""
    notifier = Notifier(engine.facade, engine.bus, settings or quick_settings())
    async with anyio.create_task_group() as tg:
        await tg.start(notifier.run)
        yield notifier
        tg.cancel_scope.cancel()


async def make_webhook(engine: Engine, username: str, url: str, types: list[str],
                   **values: Any) -> dict[str, Any]:
    user_id = await repositories.user_id_by_name(engine.db, username)
    assert user_id is not None
    return await repo.create_webhook(engine.db, {
        "user_id": user_id, "url": url, "event_types": types, "secret": repo.new_secret(),
        **values})
