"""What the dashboard's browser tests stand on: the real engine as a subprocess (the command line
an operator runs, demo portfolio trading on paper, its API on a free loopback port of its own),
JSON calls to its API over real HTTP, and Debian's chromium driven by Playwright.

The engine is started with ``tests.e2e._support.Launcher`` (stdout and stderr to files, no
process left behind), with its defaults: no CORS origin listed (the dashboard's WebSocket is
the server's own origin).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.e2e._support import ADMIN_PASSWORD, EngineRun, Launcher

CHROMIUM = Path("/usr/bin/chromium")
#: Nothing is fetched by the browser on its own: no updates, no sync, no first-run pages.
CHROMIUM_ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
#: Where the screenshots go (one file per page and role, overwritten by each run).
SHOTS = Path(os.environ.get("LTS_DASHBOARD_SHOTS")
             or Path(tempfile.gettempdir()) / "lts-dashboard-screenshots")
TRADER_PASSWORD = "Tr4der-pass-word"
XSS_NAME = "<img src=x onerror=alert(1)>"
START_TIMEOUT = 30.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def chromium_or_skip() -> Path:
    if not CHROMIUM.is_file():
        pytest.skip("Debian's chromium is not installed at /usr/bin/chromium (scripts/test "
                    "installs it when run as root: apt-get install -y chromium)")
    return CHROMIUM


class HttpError(Exception):
    def __init__(self, status: int, body: bytes) -> None:
        super().__init__(f"HTTP {status}: {body[:300]!r}")
        self.status = status


@dataclass
class Engine:
    """One engine process (restartable on the same port and data directory)."""

    launcher: DashLauncher
    port: int
    run: EngineRun | None = None
    tokens: dict[str, str] = field(default_factory=dict)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def db_path(self) -> Path:
        return self.launcher.workdir / "data" / "lts.db"

    def start(self, *args: str) -> None:
        """Start the engine (the demo's bars every 0.1 s) and wait for its API."""
        self.run = self.launcher.start("--set", "demo.interval=0.1", *args)
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            try:
                self.call("GET", "/healthz")
                return
            except (HttpError, OSError):
                if not self.run.alive():
                    pytest.fail(f"the engine exited while starting:\n{self.run.tail()}")
                if time.monotonic() > deadline:
                    pytest.fail(f"the engine's API did not answer in time:\n{self.run.tail()}")
                time.sleep(0.1)

    def stop(self) -> None:
        assert self.run is not None
        self.run.send(signal.SIGTERM)
        self.run.wait(what="the engine to stop")

    def call(self, method: str, path: str, body: Any = None, token: str | None = None) -> Any:
        headers = {"content-type": "application/json"} if body is not None else {}
        if token is not None:
            headers["authorization"] = f"Bearer {token}"
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.base + path, data=data, method=method,
                                     headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                raw = resp.read()
        except urllib.error.HTTPError as err:
            raise HttpError(err.code, err.read()) from None
        return json.loads(raw) if raw else None

    def login(self, username: str, password: str) -> str:
        token: str = self.call("POST", "/api/v1/auth/login",
                               {"username": username, "password": password})["access_token"]
        self.tokens[username] = token
        return token

    def user(self, username: str, role: str) -> int:
        """Register ``username`` (password :data:`TRADER_PASSWORD`) and give it ``role``."""
        user = self.call("POST", "/api/v1/auth/register",
                         {"username": username, "email": f"{username}@example.com",
                          "password": TRADER_PASSWORD})
        if role != "viewer":
            self.call("PATCH", f"/api/v1/users/{user['id']}", {"role": role},
                      self.tokens["admin"])
        return int(user["id"])


class DashLauncher(Launcher):
    """The e2e launcher, with the API on a chosen port and cheap bcrypt."""

    port: int = 0

    def env(self) -> dict[str, str]:
        env = super().env()
        env["LTS_API__PORT"] = str(self.port)
        env["LTS_AUTH__BCRYPT_ROUNDS"] = "4"
        return env


def new_engine(workdir: Path) -> Engine:
    launcher = DashLauncher(workdir)
    launcher.port = free_port()
    return Engine(launcher, launcher.port)


__all__ = ["ADMIN_PASSWORD", "CHROMIUM_ARGS", "SHOTS", "TRADER_PASSWORD", "XSS_NAME", "Engine",
           "HttpError", "chromium_or_skip", "new_engine"]
