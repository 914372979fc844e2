"""Fixtures of the dashboard's browser tests: a running engine with its users (admin, trader,
viewer) and portfolios, headless chromium, and a page that fails the test on a script error, a
Content-Security-Policy violation or a JavaScript dialog.

Screenshots go to :data:`tests.dashboard._stack.SHOTS` (``LTS_DASHBOARD_SHOTS`` to choose); the
run prints the folder at its end.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from ._stack import (
    ADMIN_PASSWORD,
    CHROMIUM_ARGS,
    SHOTS,
    TRADER_PASSWORD,
    XSS_NAME,
    Engine,
    chromium_or_skip,
    new_engine,
)


@dataclass
class Stack:
    """The engine and what the tests know of it: users by role, portfolio ids by name."""

    engine: Engine
    users: dict[str, tuple[str, str]] = field(default_factory=dict)  # role -> (name, password)
    portfolios: dict[str, int] = field(default_factory=dict)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """The engine trading the demo portfolio (the admin's) on paper, with a trader who owns a
    portfolio named ``<img src=x onerror=alert(1)>`` (no asset) and one with an asset, not yet
    active, and a viewer who owns one (created while a trader, then demoted: a viewer reads
    its own portfolios only)."""
    chromium_or_skip()
    engine = new_engine(tmp_path_factory.mktemp("dashboard-engine"))
    try:
        engine.start()
        stack = Stack(engine)
        admin = engine.login("admin", ADMIN_PASSWORD)
        demo = [p for p in engine.call("GET", "/api/v1/portfolios", token=admin)
                if p["name"] == "demo"]
        stack.portfolios["demo"] = demo[0]["id"]
        engine.user("tess", "trader")
        trader = engine.login("tess", TRADER_PASSWORD)
        stack.portfolios["xss"] = engine.call(
            "POST", "/api/v1/portfolios", {"name": XSS_NAME, "initial_cash": "5000"},
            trader)["id"]
        stack.portfolios["tess"] = engine.call(
            "POST", "/api/v1/portfolios", {"name": "tess-live", "initial_cash": "20000"},
            trader)["id"]
        engine.call("POST", f"/api/v1/portfolios/{stack.portfolios['tess']}/assets", {
            "symbol": "TESS-A", "strategy_plugin": "sma_crossover",
            "strategy_params": {"fast": 2, "slow": 5, "quantity": "1"},
            "pipeline_plugin": "synthetic",
            "pipeline_params": {"seed": 7, "interval": 0.1, "volatility": 0.01}}, trader)
        vid = engine.user("vera", "trader")
        vera = engine.login("vera", TRADER_PASSWORD)
        stack.portfolios["vera"] = engine.call(
            "POST", "/api/v1/portfolios", {"name": "vera-watch", "initial_cash": "2500"},
            vera)["id"]
        engine.call("PATCH", f"/api/v1/users/{vid}", {"role": "viewer"}, admin)
        stack.users = {"admin": ("admin", ADMIN_PASSWORD), "trader": ("tess", TRADER_PASSWORD),
                       "viewer": ("vera", TRADER_PASSWORD)}
        yield stack
    finally:
        engine.launcher.cleanup()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    path = chromium_or_skip()
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=str(path), args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@dataclass
class Watched:
    """A page and what went wrong on it: script errors, CSP refusals, dialogs."""

    page: Page
    problems: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)
    #: the test stops the engine: refused connections are expected then
    outage: bool = False


@pytest.fixture
def watched(browser: Browser) -> Iterator[Watched]:
    """A fresh browser context (its own sessionStorage) and page, 1400 px wide."""
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    page = context.new_page()
    page.set_default_timeout(10_000)
    seen = Watched(page)

    def console(message: Any) -> None:
        if message.type == "error":
            seen.problems.append(f"console error: {message.text}")

    def dialog(d: Any) -> None:
        seen.dialogs.append(f"{d.type}: {d.message}")
        d.dismiss()

    page.on("console", console)
    page.on("pageerror", lambda exc: seen.problems.append(f"page error: {exc}"))
    page.on("dialog", dialog)
    try:
        yield seen
    finally:
        context.close()
    assert seen.dialogs == [], f"a JavaScript dialog opened: {seen.dialogs}"
    # a 401/403/404 the page expected shows as a failed resource load: not a problem
    expected = ["Failed to load resource: the server responded with a status of 4"]
    if seen.outage:
        expected += ["net::ERR_CONNECTION_REFUSED", "WebSocket connection to"]
    real = [p for p in seen.problems if not any(e in p for e in expected)]
    assert real == [], "\n".join(real)


@pytest.fixture(scope="session")
def shots() -> Path:
    SHOTS.mkdir(parents=True, exist_ok=True)
    return SHOTS


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if SHOTS.is_dir() and any(SHOTS.glob("*.png")):
        terminalreporter.write_line(f"dashboard screenshots: {SHOTS}")
