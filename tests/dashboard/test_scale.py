"""The overview with 500 portfolios: one request draws them all, and the filter and the column
sort work on the page (no request per row: the overview reads one list route)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from decimal import Decimal
from pathlib import Path

import pytest
from playwright.sync_api import Request, expect

from lts.domain.portfolio_spec import PortfolioSpec
from tests.e2e._support import prepare_portfolios, sqlite_url, synthetic_asset

from ._stack import ADMIN_PASSWORD, Engine, new_engine
from .conftest import Watched

COUNT = 500


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    engine = new_engine(tmp_path)
    (tmp_path / "data").mkdir()
    states = ("ACTIVE", "ACTIVE", "REDUCING", "HALTED")
    specs = [
        PortfolioSpec(name=f"book-{n:03d}", initial_cash=Decimal(10_000 + n),
                      assets=(synthetic_asset("SYN-A", seed=n, interval=1.0),),
                      trading_state=states[n % len(states)])
        for n in range(1, COUNT + 1)]
    # in a thread of its own: Playwright's sync API runs an event loop in this one
    with ThreadPoolExecutor(1) as pool:
        pool.submit(prepare_portfolios, sqlite_url(engine.db_path), specs).result()
    with closing(sqlite3.connect(engine.db_path)) as db, db:  # 20 of them run: a light load
        db.execute("UPDATE portfolios SET is_active = (id <= 20)")
    try:
        engine.start("--no-demo")
        yield engine
    finally:
        engine.launcher.cleanup()


def test_overview_of_500_portfolios(engine: Engine, watched: Watched, shots: Path) -> None:
    page = watched.page
    api_calls: list[str] = []

    def seen(request: Request) -> None:
        if "/api/v1/" in request.url:
            api_calls.append(request.url.split("/api/v1/", 1)[1])

    page.on("request", seen)
    page.goto(engine.base + "/")
    page.fill("#username", "admin")
    page.fill("#password", ADMIN_PASSWORD)
    page.click("#login-submit")
    rows = page.locator("#portfolio-rows tr[data-portfolio]")
    expect(rows).to_have_count(COUNT)
    expect(page.locator("#counts")).to_contain_text(f"{COUNT} portfolios")
    expect(page.locator("#counts")).to_contain_text("125 halted")
    page.screenshot(path=str(shots / "overview-500.png"))
    assert [c for c in api_calls if c.startswith("portfolios")] == [], api_calls
    assert api_calls.count("dashboard/overview") == 1

    page.fill("#filter", "book-42")
    expect(rows).to_have_count(10)  # book-420 .. book-429
    page.fill("#filter", "halted")
    expect(rows).to_have_count(125)
    page.fill("#filter", "")
    page.click("th[data-key=id]")  # sorted by id already: now descending
    expect(rows.first.locator("td.name")).to_have_text(f"book-{COUNT:03d}")
