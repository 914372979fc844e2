"""The dashboard across an engine restart: the page shows it lost the engine, reconnects by
itself once the engine is back on the same address, resumes the WebSocket from the last event
it saw (no gap: every fill committed while it followed is on the page), and shows new fills.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.e2e._support import Db

from ._stack import ADMIN_PASSWORD, Engine, new_engine
from .conftest import Watched


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    engine = new_engine(tmp_path)
    try:
        engine.start()
        yield engine
    finally:
        engine.launcher.cleanup()


def _fills_after(db: Db, pid: int, last_id: int) -> list[str]:
    return [r["trade_id"] for r in db.rows(
        "SELECT trade_id FROM fills WHERE portfolio_id=? AND id>? ORDER BY id", (pid, last_id))]


def _wait(what: str, predicate: object, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.05)


def test_the_page_resumes_after_the_engine_restarts(engine: Engine, watched: Watched,
                                                    shots: Path) -> None:
    page = watched.page
    page.goto(engine.base + "/")
    page.fill("#username", "admin")
    page.fill("#password", ADMIN_PASSWORD)
    page.click("#login-submit")
    page.click("a[href='#/portfolio/1']")
    expect(page.locator("#live")).to_have_attribute("data-state", "live")
    db = Db(engine.db_path)
    first = db.scalar("SELECT COALESCE(MAX(id), 0) FROM fills WHERE portfolio_id=1")

    watched.outage = True
    engine.stop()
    expect(page.locator("#live")).to_have_attribute("data-state", "reconnecting…")
    page.screenshot(path=str(shots / "portfolio-reconnecting.png"), full_page=True)
    before_restart = db.scalar("SELECT COALESCE(MAX(id), 0) FROM fills WHERE portfolio_id=1")

    engine.start()
    # back live by itself (its backoff is at most 15 s), then a fill made after the restart
    expect(page.locator("#live")).to_have_attribute("data-state", "live", timeout=30_000)
    _wait("a fill after the restart",
          lambda: _fills_after(db, 1, before_restart))
    newest = _fills_after(db, 1, before_restart)[0]
    expect(page.locator(f"#fills tr[data-trade-id='{newest}']")).to_be_visible()
    # no gap: every fill committed since the page went live is on it (those made while the page
    # was reconnecting came with the resumed subscription's replay)
    committed = set(_fills_after(db, 1, first)[-90:])

    def on_page() -> set[str]:
        return set(page.locator("#fills tr[data-trade-id]").evaluate_all(
            "rows => rows.map(r => r.dataset.tradeId)"))

    _wait("every fill committed since the page went live to be on it",
          lambda: committed <= on_page(), timeout=10.0)
    # and the figures are read again: the equity curve has a point per fill (and two more)
    fills = db.scalar("SELECT COUNT(*) FROM fills WHERE portfolio_id=1")
    curve = page.locator("#equity-chart path.equity")
    _wait("the equity curve to have the fills made after the restart",
          lambda: int(curve.get_attribute("data-points") or 0) >= fills + 1, timeout=10.0)
    page.screenshot(path=str(shots / "portfolio-after-restart.png"), full_page=True)
