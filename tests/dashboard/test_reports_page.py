"""The dashboard's Reports page in a real browser (Debian's chromium, headless) against the real
engine with ``api.reports_dir`` set: a viewer sees the backtest report the real ``replay
--report`` wrote, opens it, and the report draws its plotly chart in a tab of its own, sandboxed
(an opaque origin that cannot read the dashboard's tokens), with no script error and no
Content-Security-Policy refusal in either tab. Every wait is on a condition with a deadline.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, expect

from tests.e2e.test_replay_cli import make_bars, write_csv

from ._stack import ADMIN_PASSWORD, TRADER_PASSWORD, Engine, chromium_or_skip, new_engine


@pytest.fixture(scope="module")
def reports_engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    """The engine with ``api.reports_dir=reports`` (relative: its working directory), where
    ``replay --report reports/sma-x`` wrote a backtest and ``sweep --out reports/sweep-a`` a
    sweep; a viewer, vera."""
    chromium_or_skip()
    workdir = tmp_path_factory.mktemp("reports-engine")
    engine = new_engine(workdir)
    try:
        write_csv(workdir / "bars.csv", make_bars(600))
        replay = engine.launcher.run(
            "replay", "bars.csv", "--symbol", "X", "--strategy", "sma_crossover",
            "--param", "fast=5", "--param", "slow=20", "--quantity", "2",
            "--report", "reports/sma-x")
        assert replay.returncode == 0, replay.stderr()
        sweep = engine.launcher.run(
            "sweep", "bars.csv", "--strategy", "sma_crossover", "--grid", "fast=3:5:1",
            "--grid", "slow=10:12:1", "--metric", "return_pct", "--quantity", "2",
            "--workers", "1", "--out", "reports/sweep-a")
        assert sweep.returncode == 0, sweep.stderr()
        engine.start("--set", "api.reports_dir=reports")
        engine.login("admin", ADMIN_PASSWORD)
        engine.user("vera", "viewer")
        yield engine
    finally:
        engine.launcher.cleanup()


def test_a_viewer_opens_a_backtest_report_in_a_sandboxed_tab(
        reports_engine: Engine, browser: Browser, shots: Path) -> None:
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    problems: list[str] = []

    def console(message: Any) -> None:
        if message.type == "error":
            problems.append(f"console error: {message.text}")

    context.on("console", console)  # every tab of the context, the report's too
    context.on("weberror", lambda error: problems.append(f"page error: {error.error}"))
    try:
        page = context.new_page()
        page.set_default_timeout(15_000)
        page.goto(reports_engine.base + "/")
        page.fill("#username", "vera")
        page.fill("#password", TRADER_PASSWORD)
        page.click("#login-submit")
        expect(page.locator("#who")).to_have_text("vera · viewer")
        page.click("#nav a[data-nav=reports]")
        row = page.locator("#reports tr[data-report='sma-x']")
        expect(row).to_contain_text("sma_crossover on X")
        expect(row).to_contain_text("backtest")
        expect(page.locator("#report-counts")).to_have_text("2 reports")
        page.screenshot(path=str(shots / "reports-viewer.png"))

        with context.expect_page() as opened:
            row.get_by_role("button", name="open sma-x").click()
        report = opened.value
        report.set_default_timeout(15_000)
        report.wait_for_load_state()
        assert report.url.startswith(reports_engine.base + "/reports/")
        assert report.url.endswith("/sma-x/report.html")
        expect(report.locator("h1")).to_have_text("sma_crossover on X")
        # plotly drew the chart: candles, the trades, the equity and drawdown rows
        expect(report.locator("#chart .main-svg").first).to_be_visible()
        expect(report.locator("#chart .cartesianlayer .trace").first).to_be_attached()
        assert report.locator("#chart .cartesianlayer .trace").count() >= 4
        # sandboxed: an opaque origin, which cannot read the dashboard's tokens
        assert report.evaluate("window.origin") == "null"
        storage = report.evaluate(
            "(() => { try { return String(sessionStorage.getItem('lts.access')); }"
            " catch (e) { return e.name; } })()")
        assert storage == "SecurityError"
        assert page.evaluate("sessionStorage.getItem('lts.access')")  # still logged in there
        report.screenshot(path=str(shots / "report-tab.png"), full_page=True)

        # a sweep's heatmap opens the same way
        sweep = page.locator("#reports tr[data-report='sweep-a']")
        expect(sweep).to_contain_text("sweep")
        with context.expect_page() as opened:
            sweep.get_by_role("button", name="open sweep-a").click()
        heatmap = opened.value
        heatmap.set_default_timeout(15_000)
        assert heatmap.url.endswith("/sweep-a/heatmap.html")
        expect(heatmap.locator("#chart .main-svg").first).to_be_visible()
        expect(heatmap.locator("#chart .hm image").first).to_be_attached()
        heatmap.screenshot(path=str(shots / "report-sweep-tab.png"))
    finally:
        context.close()
    assert problems == [], "\n".join(problems)
