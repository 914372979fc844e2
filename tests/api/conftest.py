"""A real engine with its real API: uvicorn on a free loopback port, inside the engine's loop,
on a temporary SQLite file, trading the demo portfolio. Requests go over real HTTP (urllib, in a
worker thread so the engine's loop keeps running)."""

import json
import socket
import urllib.error
import urllib.request
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import pytest

from lts.engine.engine import Engine
from lts.settings import load_settings, merge


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Api:
    engine: Engine
    base: str

    async def request(self, method: str, path: str, body: bytes | None = None,
                      headers: dict[str, str] | None = None) -> Reply:
        def call() -> Reply:
            req = urllib.request.Request(self.base + path, data=body, method=method,
                                         headers=headers or {})
            try:
                with urllib.request.urlopen(req, timeout=10) as resp:
                    return Reply(resp.status, {k.lower(): v for k, v in resp.headers.items()},
                                 resp.read())
            except urllib.error.HTTPError as err:
                return Reply(err.code, {k.lower(): v for k, v in err.headers.items()},
                             err.read())

        return await anyio.to_thread.run_sync(call)


@asynccontextmanager
async def running_api(tmp_path: Path, **sections: Any) -> AsyncIterator[Api]:
    """The engine and its API on a free port; ``sections`` override settings (deep merge).
    Every test talks from 127.0.0.1, many requests in a burst: the per-client rate limit is
    raised far above what a test sends (tests/api/test_admission.py sets its own)."""
    port = free_port()
    settings = load_settings(overrides=merge({
        "admin_password": "Adm1n-pass-word",
        "database": {"url": f"sqlite+aiosqlite:///{tmp_path / 'lts.db'}"},
        "api": {"port": port, "rate_limit_per_second": 10_000, "rate_limit_burst": 100_000},
        "auth": {"bcrypt_rounds": 4},
    }, sections))
    engine = Engine(settings)
    async with anyio.create_task_group() as tg:
        tg.start_soon(engine.run)
        with anyio.fail_after(30):
            await engine.started.wait()
        yield Api(engine, f"http://127.0.0.1:{port}")
        engine.stop()


@pytest.fixture
async def api(tmp_path: Path, migrated_url: str) -> AsyncIterator[Api]:
    """The demo portfolio trading fast (a bar every 50 ms), on SQLite and on PostgreSQL."""
    async with running_api(tmp_path, demo={"interval": 0.05},
                           database={"url": migrated_url}) as running:
        yield running
