"""The dashboard in a real browser (Debian's chromium, headless, driven by Playwright) against
the real engine: each role sees and may do what the API allows it, the kill switch halts the
portfolio, a fill the engine makes shows on the page, a hostile portfolio name stays text, and
the pages keep to their Content-Security-Policy. Every wait is on a condition with a deadline.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from lts.api import dashboard
from lts.api.dashboard_data import Activity
from tests.e2e._support import Db

from ._stack import XSS_NAME, HttpError
from .conftest import Stack, Watched


def log_in(page: Page, stack: Stack, role: str) -> None:
    name, password = stack.users[role]
    page.goto(stack.engine.base + "/")
    page.fill("#username", name)
    page.fill("#password", password)
    page.click("#login-submit")
    expect(page.locator("#who")).to_have_text(f"{name} · {role}")


def portfolio_names(page: Page) -> list[str]:
    page.wait_for_selector("#portfolio-rows tr[data-portfolio]")
    return page.locator("#portfolio-rows td.name").all_inner_texts()


def test_the_page_and_its_assets_keep_a_strict_policy(stack: Stack) -> None:
    """'self' only, no inline script, no eval; the assets never parse data as HTML."""
    import urllib.error
    import urllib.request

    with urllib.request.urlopen(stack.engine.base + "/", timeout=10) as resp:
        csp = resp.headers["content-security-policy"]
        page = resp.read().decode()
    assert "script-src 'self'" in csp
    assert "unsafe-eval" not in csp
    assert "unsafe-inline" not in csp
    assert "default-src 'none'" in csp
    assert "<script>" not in page
    assert "http" not in page
    for name in ("index.html", "dashboard.py", "..%2fdashboard.py", "%2e%2e"):
        with pytest.raises(urllib.error.HTTPError) as missing:
            urllib.request.urlopen(f"{stack.engine.base}/dashboard/{name}", timeout=10)
        missing.value.close()
        assert missing.value.code == 404, name
    for asset in dashboard.ASSETS.iterdir():
        text = asset.read_text()
        for banned in (".innerHTML", ".outerHTML", "insertAdjacentHTML(", "document.write(",
                       "eval(", "new Function", "setTimeout(\"", "https://", "//cdn"):
            assert banned not in text, f"{asset.name} uses {banned}"


def test_login_refuses_a_wrong_password(stack: Stack, watched: Watched, shots: Path) -> None:
    page = watched.page
    page.goto(stack.engine.base + "/")
    page.fill("#username", "admin")
    page.fill("#password", "not-the-password")
    page.click("#login-submit")
    expect(page.locator("#login-message")).to_have_text("Invalid user name or password.")
    assert page.evaluate("sessionStorage.getItem('lts.access')") is None
    page.screenshot(path=str(shots / "login.png"))


def test_admin_sees_every_portfolio_users_and_audit(stack: Stack, watched: Watched,
                                                    shots: Path) -> None:
    page = watched.page
    log_in(page, stack, "admin")
    names = portfolio_names(page)
    assert set(names) == {"demo", XSS_NAME, "tess-live", "vera-watch"}
    expect(page.locator("#live")).to_have_attribute("data-state", "live")
    page.screenshot(path=str(shots / "overview-admin.png"), full_page=True)
    # the token lives in this tab's sessionStorage and nowhere else
    assert page.evaluate("sessionStorage.getItem('lts.access')")
    assert page.context.cookies() == []

    page.click("a[data-nav=users]")
    rows = page.locator("#users tr[data-user]")
    expect(rows).to_have_count(3)
    assert set(page.locator("#users tr[data-user]").evaluate_all(
        "rs => rs.map(r => r.dataset.user)")) == {"admin", "tess", "vera"}
    page.screenshot(path=str(shots / "users.png"), full_page=True)

    page.click("a[data-nav=audit]")
    expect(page.locator("#audit tr").first).to_be_visible()
    expect(page.locator("#audit")).to_contain_text("auth.login")
    page.screenshot(path=str(shots / "audit.png"), full_page=True)


def test_trader_sees_own_portfolio_with_controls_and_no_admin_pages(
        stack: Stack, watched: Watched, shots: Path) -> None:
    """The XSS name is text: no image, no alert (the watched page fails on any dialog)."""
    page = watched.page
    log_in(page, stack, "trader")
    assert portfolio_names(page) == [XSS_NAME, "tess-live"]
    assert page.locator("main img").count() == 0
    expect(page.locator("a[data-nav=users]")).to_be_hidden()
    expect(page.locator("a[data-nav=audit]")).to_be_hidden()
    page.screenshot(path=str(shots / "overview-trader.png"), full_page=True)

    page.click(f"a[href='#/portfolio/{stack.portfolios['xss']}']")
    expect(page.locator("#portfolio-name")).to_have_text(XSS_NAME)
    assert page.locator("main img").count() == 0
    expect(page.locator("#kill-switch")).to_be_visible()
    expect(page.locator("#activate")).to_be_visible()
    expect(page.locator("#controls")).to_contain_text("no asset to trade")  # none yet
    page.screenshot(path=str(shots / "portfolio-trader-xss-name.png"), full_page=True)

    # another's portfolio: the API says 404, the page says so
    page.goto(f"{stack.engine.base}/#/portfolio/{stack.portfolios['demo']}")
    expect(page.locator("main h1")).to_have_text("Portfolio not available")
    # an admin page by its address: the trader lands on the overview
    page.goto(f"{stack.engine.base}/#/users")
    assert portfolio_names(page) == [XSS_NAME, "tess-live"]


def test_viewer_reads_without_controls(stack: Stack, watched: Watched, shots: Path) -> None:
    page = watched.page
    log_in(page, stack, "viewer")
    assert portfolio_names(page) == ["vera-watch"]
    page.click(f"a[href='#/portfolio/{stack.portfolios['vera']}']")
    expect(page.locator("#portfolio-name")).to_have_text("vera-watch")
    expect(page.locator("#equity-chart svg")).to_be_visible()
    for control in ("#controls", "#kill-switch", "#activate", "#order-form"):
        assert page.locator(control).count() == 0, control
    page.screenshot(path=str(shots / "portfolio-viewer.png"), full_page=True)
    # the API refuses what the page does not offer
    engine = stack.engine
    token = engine.login("vera", stack.users["viewer"][1])
    with pytest.raises(HttpError) as refused:
        engine.call("PUT", f"/api/v1/portfolios/{stack.portfolios['vera']}/trading-state",
                    {"state": "HALTED"}, token)
    assert refused.value.status == 403

    # logging out ends the session on the server and leaves nothing in the tab
    page_token = page.evaluate("sessionStorage.getItem('lts.access')")
    page.click("#logout")
    expect(page.locator("#login-message")).to_have_text("Logged out.")
    assert page.evaluate("sessionStorage.length") == 0
    with pytest.raises(HttpError) as ended:
        engine.call("GET", "/api/v1/auth/me", token=page_token)
    assert ended.value.status == 401


def test_kill_switch_halts_the_portfolio(stack: Stack, watched: Watched, shots: Path) -> None:
    page = watched.page
    engine = stack.engine
    pid = stack.portfolios["demo"]
    admin = engine.tokens["admin"]
    log_in(page, stack, "admin")
    page.goto(f"{engine.base}/#/portfolio/{pid}")
    expect(page.locator("#trading-state")).to_have_text("ACTIVE")
    try:
        page.click("#kill-halted")
        expect(page.locator("#confirm")).to_be_visible()
        expect(page.locator("#confirm-body")).to_contain_text("every new order is denied")
        page.screenshot(path=str(shots / "kill-switch-confirm.png"))
        page.click("#confirm-yes")
        expect(page.locator("#trading-state")).to_have_text("HALTED")
        expect(page.locator("#kill-halted")).to_have_class(re.compile(r"\bon\b"))
        status = engine.call("GET", f"/api/v1/portfolios/{pid}/status", token=admin)
        assert status["trading_state"] == "HALTED"
        page.screenshot(path=str(shots / "portfolio-halted.png"), full_page=True)
        # a manual order while halted: confirmed, then denied with its reason
        page.fill("#order-quantity", "1")
        page.click("#order-submit")
        expect(page.locator("#confirm-body")).to_contain_text("buy 1 DEMO-A")
        page.click("#confirm-yes")
        expect(page.locator("#toast")).to_contain_text("Order denied: TRADING_HALTED")
    finally:
        engine.call("PUT", f"/api/v1/portfolios/{pid}/trading-state", {"state": "ACTIVE"},
                    admin)
    page.click("#kill-active")
    expect(page.locator("#trading-state")).to_have_text("ACTIVE")


def test_a_fill_shows_on_the_page_once_the_engine_makes_it(stack: Stack, watched: Watched,
                                                           shots: Path) -> None:
    """The demo trades every few bars; the first fill committed after the page is live is on
    the page within the deadline (the WebSocket pushes it: nothing polls)."""
    page = watched.page
    engine = stack.engine
    pid = stack.portfolios["demo"]
    log_in(page, stack, "admin")
    page.goto(f"{engine.base}/#/portfolio/{pid}")
    expect(page.locator("#live")).to_have_attribute("data-state", "live")
    db = Db(engine.db_path)
    last = db.scalar("SELECT COALESCE(MAX(id), 0) FROM fills WHERE portfolio_id=?", (pid,))
    deadline = time.monotonic() + 30
    trade = None
    while trade is None:
        rows = db.rows("SELECT trade_id FROM fills WHERE portfolio_id=? AND id>? ORDER BY id "
                       "LIMIT 1", (pid, last))
        if rows:
            trade = rows[0]["trade_id"]
        elif time.monotonic() > deadline:
            pytest.fail("the demo portfolio made no fill in 30 s")
        else:
            time.sleep(0.02)
    committed = time.monotonic()
    row = page.locator(f"#fills tr[data-trade-id='{trade}']")
    expect(row).to_be_visible(timeout=5_000)
    print(f"fill {trade}: on the page {1000 * (time.monotonic() - committed):.0f} ms after the "
          "test saw it in the database")
    expect(page.locator("#equity-chart svg path.equity")).to_be_visible()
    expect(page.locator(".candles svg rect").first).to_be_visible()
    page.screenshot(path=str(shots / "portfolio-admin-demo.png"), full_page=True)


def test_manual_orders_are_confirmed_placed_and_canceled(stack: Stack, watched: Watched,
                                                         shots: Path) -> None:
    """A limit order well below the market rests: it shows among the open orders and its Cancel
    button cancels it; a market order fills and its fill shows among the recent fills."""
    page = watched.page
    engine = stack.engine
    pid = stack.portfolios["demo"]
    orders = f"/api/v1/orders?portfolio_id={pid}&limit=1000"
    earlier = {o["client_order_id"] for o in engine.call("GET", orders,
                                                         token=engine.tokens["admin"])}
    log_in(page, stack, "admin")
    page.goto(f"{engine.base}/#/portfolio/{pid}")
    expect(page.locator("#live")).to_have_attribute("data-state", "live")

    marks = engine.call("GET", f"/api/v1/dashboard/portfolios/{pid}/activity",
                        token=engine.tokens["admin"])["marks"]
    far_below = f"{float(marks['DEMO-A']) * 0.6:.2f}"  # inside the ±50% price band
    page.select_option("#order-type", "limit")
    page.fill("#order-quantity", "1")
    page.fill("#order-price", far_below)
    page.click("#order-submit")
    expect(page.locator("#confirm-body")).to_contain_text("Limit price")
    page.screenshot(path=str(shots / "manual-order-confirm.png"))
    page.click("#confirm-yes")
    expect(page.locator("#toast")).to_contain_text("Order ")
    coid = page.locator("#toast").inner_text().split()[1].rstrip(":")
    resting = page.locator(f"#open-orders tr[data-order='{coid}']")
    expect(resting).to_be_visible()
    page.screenshot(path=str(shots / "portfolio-open-order.png"), full_page=True)
    resting.locator("button", has_text="Cancel").click()
    expect(resting).to_have_count(0)
    order = engine.call("GET", f"/api/v1/orders/{coid}", token=engine.tokens["admin"])
    assert order["status"] == "canceled"

    # a cancelled confirmation places nothing
    page.select_option("#order-type", "market")
    page.click("#order-submit")
    page.click("#confirm-no")
    expect(page.locator("#confirm")).to_be_hidden()

    page.click("#order-submit")
    page.click("#confirm-yes")
    expect(page.locator("#toast")).to_have_text(re.compile(r"^Order (?!" + re.escape(coid)
                                                           + r":)"))
    market = page.locator("#toast").inner_text().split()[1].rstrip(":")
    expect(page.locator("#fills tr", has_text=market)).to_be_visible()
    manual = {o["client_order_id"] for o in engine.call("GET", orders,
                                                        token=engine.tokens["admin"])
              if o["tag"] == "manual:admin" and o["client_order_id"] not in earlier}
    assert manual == {coid, market}  # the confirmation cancelled placed nothing


def test_the_activity_route_has_each_asset_s_latest_bars(stack: Stack) -> None:
    """The candles' data: each asset's latest bars from its live feed, in time order, each a
    real bar (low <= open, close <= high), more of them as the feed goes on."""
    engine = stack.engine
    pid = stack.portfolios["demo"]
    path = f"/api/v1/dashboard/portfolios/{pid}/activity"
    deadline = time.monotonic() + 15
    first: dict[str, list[dict[str, float]]] | None = None
    while True:
        bars = engine.call("GET", path, token=engine.tokens["admin"])["bars"]
        if first is None and set(bars) == {"DEMO-A", "DEMO-B"} and \
                min(len(b) for b in bars.values()) >= 1:
            first = bars
        if first is not None and all(len(bars[s]) > len(first[s]) for s in first):
            break
        if time.monotonic() > deadline:
            pytest.fail(f"the feeds' bars did not come: {bars}")
        time.sleep(0.2)  # a poll of the API (a deadline above)
    for series in bars.values():
        times = [b["t"] for b in series]
        assert times == sorted(times)
        for b in series:
            assert b["low"] <= min(b["open"], b["close"]) <= max(b["open"], b["close"]) <= \
                b["high"]
    # the answer is what the schema documents, and bars_after keeps only the newer bars
    whole = engine.call("GET", path, token=engine.tokens["admin"])
    Activity.model_validate(whole)
    newest = max(b[-1]["t"] for b in whole["bars"].values() if b)
    later = engine.call("GET", f"{path}?bars_after={newest}&recent=1",
                        token=engine.tokens["admin"])
    Activity.model_validate(later)
    assert all(b["t"] > newest for series in later["bars"].values() for b in series)
    assert len(later["fills"]) <= 1


def test_the_summary_routes_keep_the_api_rules(stack: Stack) -> None:
    """No token: 401; another's portfolio: 404, as every portfolio route answers."""
    engine = stack.engine
    trader = engine.login("tess", stack.users["trader"][1])
    for path in ("/api/v1/dashboard/overview",
                 f"/api/v1/dashboard/portfolios/{stack.portfolios['demo']}/activity"):
        with pytest.raises(HttpError) as anonymous:
            engine.call("GET", path)
        assert anonymous.value.status == 401
    with pytest.raises(HttpError) as hidden:
        engine.call("GET", f"/api/v1/dashboard/portfolios/{stack.portfolios['demo']}/activity",
                    token=trader)
    assert hidden.value.status == 404
    rows = engine.call("GET", "/api/v1/dashboard/overview", token=trader)
    assert [r["name"] for r in rows] == [XSS_NAME, "tess-live"]
    assert rows[0]["status"] == "stopped"
    assert rows[0]["equity"] is None


def test_the_overview_follows_fills_live(stack: Stack, watched: Watched) -> None:
    """The overview re-reads its one list when an event of a listed portfolio comes in: the
    demo's fill count moves within seconds (its own slow refresh is every 30 s)."""
    page = watched.page
    log_in(page, stack, "admin")
    cell = page.locator(f"#portfolio-rows tr[data-portfolio='{stack.portfolios['demo']}'] td")
    expect(page.locator("#live")).to_have_attribute("data-state", "live")
    fills_column = 9  # id, name, status, trading, equity, today, total, positions, orders, fills
    # twice: the first change may be the one re-read when the subscription starts
    for _ in range(2):
        shown = int(cell.nth(fills_column).inner_text())
        expect(cell.nth(fills_column)).not_to_have_text(str(shown), timeout=10_000)
        assert int(cell.nth(fills_column).inner_text()) > shown


def test_trader_activates_and_deactivates_a_portfolio(stack: Stack, watched: Watched,
                                                      shots: Path) -> None:
    """Activate starts the runner (the page shows it running and trading); deactivate asks
    first, then stops it."""
    page = watched.page
    engine = stack.engine
    pid = stack.portfolios["tess"]
    log_in(page, stack, "trader")
    page.goto(f"{engine.base}/#/portfolio/{pid}")
    expect(page.locator("#status")).to_have_text("stopped")
    expect(page.locator("#deactivate")).to_be_hidden()
    page.click("#activate")
    expect(page.locator("#activate")).to_be_hidden()
    expect(page.locator("#status")).to_have_text(re.compile("starting|running"))
    expect(page.locator("#status")).to_have_text("running", timeout=15_000)
    expect(page.locator("#fills tr[data-trade-id]").first).to_be_visible(timeout=30_000)
    page.screenshot(path=str(shots / "portfolio-trader-running.png"), full_page=True)
    page.click("#deactivate")
    expect(page.locator("#confirm-body")).to_contain_text("its runner stops")
    page.click("#confirm-yes")
    expect(page.locator("#status")).to_have_text("stopped")
    expect(page.locator("#activate")).to_be_visible()
    row = engine.call("GET", f"/api/v1/portfolios/{pid}", token=engine.tokens["tess"])
    assert (row["is_active"], row["status"]) == (False, "stopped")
