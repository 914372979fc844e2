"""The dashboard in a real browser while the engine trades: time to the first drawn chart, fill
-> visible on the page, and what five open dashboards cost the tick latency (issue 12: at most
+10% on tick p99).

Where it sits: bench/api_load.py's set-up, reused (its ticker process writing bars over
loopback TCP, the ``bench_wire`` feed, the tick recorder on ``PortfolioRunner.on_bar_done``),
with the engine's API serving the dashboard. The database holds 50 portfolios: the one trading
(``--symbols`` assets, ``sma_crossover`` ``--fast``/``--slow`` on paper) and 49 others, stopped,
that the overview lists too. Debian's chromium (``/usr/bin/chromium``) driven by Playwright in a
process of its own; nothing is downloaded.

Cases, alternating, ``--repeat`` times each (the machine is shared: medians, and the p99 ratio
taken within each repeat):

  no dashboards   the engine alone
  5 dashboards    five pages logged in as the admin on the trading portfolio's page, live
                  (WebSocket, charts, fills table), for the whole measuring window
  5 page clients  what those pages ask of the engine (their requests and WebSocket), from a
                  process without a browser: the engine's own share of the pages' cost
  2 idle spinners the control: two pure-Python busy loops at the lowest CPU priority, nothing
                  of LTS; what any busy neighbour of the engine costs on this machine
                  (browsers, clients and spinners run at SCHED_IDLE, on the engine's cores
                  unless ``--neighbour-cpu N`` gives them core N alone)

In the second case the browser process also measures, before the window:
  first chart     log in, then open the portfolio's page: the time until its equity curve and
                  first candle are drawn (``--first`` times; the median)
and during it, on one of the five pages:
  fill -> visible a MutationObserver stamps each fill row as it appears; the engine side stamps
                  the fill's committed event as the bus delivers it (same machine, wall clock)

    python bench/dashboard_load.py [--seconds 6] [--repeat 3] [--first 5] [--symbols 5]
                                   [--rate 100] [--fast 5] [--slow 20] [--neighbour-cpu N]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import anyio
import anyio.to_thread
from api_load import (
    ADMIN_PASSWORD,
    CaseResult,
    TickRecorder,
    free_port,
    make_template,
    pct,
    ticker,
    trading_engine,
)
from machine import describe
from sqlalchemy import update

from lts.bus import Mailbox, Overflow
from lts.domain.events import OrderEvent, OrderFilled
from lts.domain.portfolio_spec import AssetSpec, PortfolioSpec
from lts.persistence import repositories as repo
from lts.persistence.db import make_engine
from lts.persistence.tables import portfolios
from lts.settings import load_settings

CASES = ("no dashboards", "5 dashboards", "5 page clients", "2 idle spinners")
PAGES = 5
TARGET = 1.10  # tick p99 with dashboards / without
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
#: stamps each fill row of the page as it appears (ms since the epoch)
#: (the rows already there when it starts are marked 0: not timed)
OBSERVE = """() => {
  window.__seen = {};
  const stamp = (now) => {
    for (const row of document.querySelectorAll('#fills tr[data-trade-id]')) {
      const id = row.dataset.tradeId;
      if (!(id in window.__seen)) window.__seen[id] = now;
    }
  };
  stamp(0);
  new MutationObserver(() => stamp(Date.now())).observe(document.body,
                                                        {childList: true, subtree: true});
}"""


#: set by --neighbour-cpu for the spawned neighbours (browser, page clients, spinners)
NEIGHBOUR_CPU = "LTS_BENCH_NEIGHBOUR_CPU"


def as_neighbour() -> None:
    """This process stands in for another machine (the operators'): the lowest CPU priority,
    and with ``--neighbour-cpu`` that core alone (the engine and the ticker have the others)."""
    if hasattr(os, "sched_setscheduler"):
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
    cpu = os.environ.get(NEIGHBOUR_CPU)
    if cpu is not None and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {int(cpu)})


def browse(base: str, pid: int, first: int, seconds: float, ready: Any, results: Any) -> None:
    """The browser side: the first-chart times, then five live pages for ``seconds`` from when
    all five are live (``ready`` set then); puts {"first_ms": [...], "seen": {trade id: ms}} on
    ``results``."""

    from playwright.sync_api import sync_playwright

    as_neighbour()  # chromium inherits it

    def logged_in(browser: Any) -> Any:
        page = browser.new_context(viewport={"width": 1400, "height": 900}).new_page()
        page.goto(base + "/")
        page.fill("#username", "admin")
        page.fill("#password", ADMIN_PASSWORD)
        page.click("#login-submit")
        page.wait_for_selector("#who")
        return page

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        first_ms = []
        for _ in range(first):
            page = logged_in(browser)
            started = time.perf_counter()
            page.goto(f"{base}/#/portfolio/{pid}")
            page.wait_for_selector("#equity-chart svg path.equity")
            page.wait_for_selector(".candles svg rect")
            first_ms.append((time.perf_counter() - started) * 1e3)
            page.context.close()
        pages = []
        for _ in range(PAGES):
            page = logged_in(browser)
            page.goto(f"{base}/#/portfolio/{pid}")
            page.wait_for_selector("#live[data-state='live']")
            pages.append(page)
        pages[0].evaluate(OBSERVE)
        until = time.time() + seconds
        ready.set()
        while time.time() < until:
            pages[0].wait_for_timeout(200)  # the pages live on meanwhile (Playwright's own wait)
        seen = pages[0].evaluate("() => window.__seen")
        browser.close()
    results.put({"first_ms": first_ms, "seen": seen})


def page_clients(base: str, pid: int, seconds: float, ready: Any, results: Any) -> None:
    """What five live portfolio pages ask of the engine, without a browser: each logs in,
    follows the WebSocket from the activity's ``last_seq`` and, as the page does, re-reads the
    portfolio, its positions and its activity (``recent=100``, ``bars_after``) at most every 2 s
    after fills and every 10 s without. Puts {"events": n} on ``results``."""
    import asyncio
    import json

    import aiohttp

    as_neighbour()

    async def page(session: aiohttp.ClientSession, token: str, until: float) -> int:
        auth = {"Authorization": f"Bearer {token}"}
        act = f"{base}/api/v1/dashboard/portfolios/{pid}/activity"

        async def get(url: str) -> Any:
            async with session.get(url, headers=auth) as r:
                return await r.json()

        first = await get(act)
        last_bar = max((b[-1]["t"] for b in first["bars"].values() if b), default=0)
        events, dirty, last_read = 0, False, time.time()
        async with session.ws_connect(base.replace("http", "ws") + "/ws/orders",
                                      origin=base) as ws:
            await ws.send_json({"action": "auth", "token": token})
            await ws.send_json({"action": "subscribe", "since": {str(pid): first["last_seq"]}})
            while time.time() < until:
                try:
                    msg = await ws.receive(timeout=0.2)
                    if msg.type == aiohttp.WSMsgType.TEXT:
                        events += 1
                        dirty = dirty or json.loads(msg.data).get("type") == "order.filled"
                except TimeoutError:
                    pass
                now = time.time()
                if (dirty and now - last_read >= 2.0) or now - last_read >= 10.0:
                    _, _, fresh = await asyncio.gather(
                        get(f"{base}/api/v1/portfolios/{pid}"),
                        get(f"{base}/api/v1/portfolios/{pid}/positions"),
                        get(f"{act}?recent=100&bars_after={last_bar}"))
                    last_bar = max([last_bar, *(b[-1]["t"] for b in fresh["bars"].values()
                                                if b)])
                    dirty, last_read = False, now
        return events

    async def run() -> int:
        async with aiohttp.ClientSession() as session:
            async with session.post(f"{base}/api/v1/auth/login", json={
                    "username": "admin", "password": ADMIN_PASSWORD}) as r:
                token = (await r.json())["access_token"]
            until = time.time() + seconds + 60  # stopped by the deadline set once all follow
            tasks = [asyncio.ensure_future(page(session, token, until)) for _ in range(PAGES)]
            await asyncio.sleep(2.0)  # each has read its snapshot and subscribed
            ready.set()
            await asyncio.sleep(seconds)
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            return 0

    asyncio.run(run())
    results.put({"events": 0})


def spin(until: float) -> None:
    """One spinner of the control case (a process of its own at the lowest CPU priority)."""
    as_neighbour()
    while time.time() < until:
        sum(range(10_000))


def spinners(base: str, pid: int, seconds: float, ready: Any, results: Any) -> None:
    """The control: nothing of LTS, two processes at the lowest CPU priority spinning in pure
    Python for ``seconds``, one per core of this machine. What they cost the tick p99 is what
    any busy neighbour costs it here, the floor under the real browsers' figure."""
    until = time.time() + seconds
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=spin, args=(until,)) for _ in range(2)]
    for p in procs:
        p.start()
    ready.set()
    for p in procs:
        p.join()
    results.put({})


async def make_database(path: Path, args: argparse.Namespace, ticker_port: int) -> int:
    """bench/api_load.py's template (the trading portfolio) and 49 stopped portfolios."""
    pid = await make_template(path, args, ticker_port)
    db = make_engine(f"sqlite+aiosqlite:///{path}")
    try:
        for i in range(49):
            other = await repo.create_portfolio(db, PortfolioSpec(
                name=f"book-{i:02d}", initial_cash=Decimal(10_000), assets=(AssetSpec(
                    symbol="TICK-0", strategy_plugin="buy_and_hold", broker_plugin="paper",
                    pipeline_plugin="bench_wire", pipeline_params={"port": ticker_port}),)))
            async with db.begin() as conn:
                await conn.execute(update(portfolios).where(portfolios.c.id == other)
                                   .values(is_active=False))
    finally:
        await db.dispose()
    return pid


async def run_case(case: str, run: int, args: argparse.Namespace, tmp: Path, template: Path,
                   pid: int) -> tuple[CaseResult, dict[str, Any] | None]:
    db_file = tmp / f"run{run}-{CASES.index(case)}.db"
    shutil.copy(template, db_file)
    port = free_port()
    settings = load_settings(overrides={
        "admin_password": ADMIN_PASSWORD, "log_level": "WARNING",
        "database": {"url": f"sqlite+aiosqlite:///{db_file}", "sqlite_synchronous": "NORMAL"},
        "demo": {"enabled": False}, "auth": {"bcrypt_rounds": 4},
        "api": {"port": port, "rate_limit_per_second": 10_000, "rate_limit_burst": 100_000},
    })
    recorder = TickRecorder()
    committed: dict[str, float] = {}  # trade id -> ms, when its committed event went out

    async def stamp_fills(box: Mailbox[Any]) -> None:
        while True:
            for event in await box.get_batch():
                if isinstance(event, OrderFilled) and event.fill is not None:
                    committed.setdefault(event.fill.trade_id, time.time() * 1e3)

    browser: mp.process.BaseProcess | None = None
    results: Any = None
    async with trading_engine(settings, pid) as (engine, runner), \
            anyio.create_task_group() as tg:
        runner.on_bar_done = recorder
        box: Mailbox[Any] = Mailbox(100_000, Overflow.DROP_OLDEST, name="bench fills")
        engine.facade.subscribe(OrderEvent, box, pid)
        tg.start_soon(stamp_fills, box)
        start_at = time.time() + args.warmup
        if case != "no dashboards":  # the window opens once the five pages are live
            ctx = mp.get_context("spawn")
            results, ready = ctx.Queue(), ctx.Event()
            targets: dict[str, Callable[..., None]] = {
                "5 dashboards": browse, "5 page clients": page_clients,
                "2 idle spinners": spinners}
            target = targets[case]
            browser = ctx.Process(target=target, args=(f"http://127.0.0.1:{port}", pid, *(
                                      (args.first,) if case == "5 dashboards" else ()),
                                      args.seconds + 1.0, ready, results))
            browser.start()
            assert await anyio.to_thread.run_sync(ready.wait, 300), "the pages did not open"
            start_at = max(start_at, time.time() + 0.5)
        w0, w1 = start_at + 0.5, start_at + args.seconds - 0.2
        recorder.window = (int(w0 * 1e9), int(w1 * 1e9))
        await anyio.sleep(max(0.0, w0 - time.time()))
        bars0 = runner.bars
        await anyio.sleep(max(0.0, w1 - time.time()))
        ticks = (runner.bars - bars0) / (w1 - w0)
        measured = None
        if browser is not None:
            measured = await anyio.to_thread.run_sync(results.get, True, 120)
            await anyio.to_thread.run_sync(browser.join, 30)
        if case == "5 dashboards" and measured is not None:
            seen = measured["seen"]
            measured["fill_ms"] = [seen[t] - committed[t] for t in seen
                                   if seen[t] and t in committed]
        tg.cancel_scope.cancel()
    return CaseResult([x / 1e6 for x in recorder.lat_ns], ticks, 0, 0.0, 0.0), measured


async def amain(args: argparse.Namespace) -> int:
    tmp = Path(tempfile.mkdtemp(prefix="lts-dashboard-load-"))
    ctx = mp.get_context("spawn")
    port_recv, port_send = ctx.Pipe(duplex=False)
    stop = ctx.Event()
    venue = ctx.Process(target=ticker, args=(port_send, stop, args.rate), daemon=True)
    venue.start()
    results: dict[str, list[CaseResult]] = {c: [] for c in CASES}
    ratios: list[float] = []
    client_ratios: list[float] = []
    spinner_ratios: list[float] = []
    first_ms: list[float] = []
    fill_ms: list[float] = []
    try:
        ticker_port = await anyio.to_thread.run_sync(port_recv.recv)
        template = tmp / "template.db"
        pid = await make_database(template, args, ticker_port)
        for run in range(args.repeat):
            for case in CASES:
                res, measured = await run_case(case, run, args, tmp, template, pid)
                results[case].append(res)
                extra = ""
                if case == "5 dashboards" and measured is not None:
                    first_ms.append(statistics.median(measured["first_ms"]))
                    fill_ms.extend(measured["fill_ms"])
                    extra = (f"; first chart median {first_ms[-1]:.0f} ms; "
                             f"{len(measured['fill_ms'])} fills seen on the page")
                print(f"run {run + 1} {case:<14} tick p50 {res.stat(0.5):6.3f}  p99 "
                      f"{res.stat(0.99):7.3f} ms ({len(res.lat_ms):,} bars, "
                      f"{res.ticks_per_s:,.0f} ticks/s){extra}", flush=True)
            base = results["no dashboards"][-1].stat(0.99)
            ratios.append(results["5 dashboards"][-1].stat(0.99) / base)
            client_ratios.append(results["5 page clients"][-1].stat(0.99) / base)
            spinner_ratios.append(results["2 idle spinners"][-1].stat(0.99) / base)
    finally:
        stop.set()
        venue.join(5)
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"\nmedian over {args.repeat} run(s); tick latency = bar written -> runner done")
    for case, runs in results.items():
        print(f"  {case:<14} p50 {statistics.median(r.stat(0.5) for r in runs):6.3f}  p99 "
              f"{statistics.median(r.stat(0.99) for r in runs):7.3f} ms")
    ratio = statistics.median(ratios)
    print(f"tick p99 with {PAGES} dashboards / without, per repeat "
          f"{', '.join(f'{r:.2f}' for r in ratios)}: median {ratio:.2f}; target <= "
          f"{TARGET:.2f}: {'met' if ratio <= TARGET else 'NOT met'}")
    ratio = statistics.median(client_ratios)
    print(f"tick p99 with {PAGES} page clients (the pages' requests and WebSocket, no browser) "
          f"/ without, per repeat {', '.join(f'{r:.2f}' for r in client_ratios)}: median "
          f"{ratio:.2f}; target <= {TARGET:.2f}: {'met' if ratio <= TARGET else 'NOT met'}")
    print(f"control, tick p99 with 2 idle spinners (no LTS in them) / without, per repeat "
          f"{', '.join(f'{r:.2f}' for r in spinner_ratios)}: median "
          f"{statistics.median(spinner_ratios):.2f} (what any busy neighbour costs here)")
    print(f"first drawn chart (log in, open the portfolio; 50 portfolios in the database): "
          f"median of the runs' medians {statistics.median(first_ms):.0f} ms")
    if fill_ms:
        print(f"fill -> visible on the page: {len(fill_ms)} fills, p50 {pct(fill_ms, 0.5):.0f} "
              f"ms, p99 {pct(fill_ms, 0.99):.0f} ms")
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=6.0, help="per case (window: -0.7 s)")
    ap.add_argument("--warmup", type=float, default=1.5)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--first", type=int, default=5, help="first-chart measurements per run")
    ap.add_argument("--symbols", type=int, default=5, help="assets, one feed task each")
    ap.add_argument("--rate", type=float, default=100.0, help="bars per second per symbol")
    ap.add_argument("--fast", type=int, default=5, help="sma_crossover fast window")
    ap.add_argument("--slow", type=int, default=20, help="sma_crossover slow window")
    ap.add_argument("--neighbour-cpu", type=int, default=None, metavar="N",
                    help="run the browser, the page clients and the spinners on core N alone "
                         "and the engine and the ticker on the other cores (Linux)")
    args = ap.parse_args()
    cores = os.cpu_count() or 1
    if args.neighbour_cpu is not None:
        if not hasattr(os, "sched_setaffinity") or cores < 2 or \
                not 0 <= args.neighbour_cpu < cores:
            print(f"dashboard_load: --neighbour-cpu needs Linux and a core in 0..{cores - 1} "
                  "of at least two", file=sys.stderr)
            return 2
        os.environ[NEIGHBOUR_CPU] = str(args.neighbour_cpu)
        os.sched_setaffinity(0, set(range(cores)) - {args.neighbour_cpu})  # the ticker inherits
    if not Path(CHROMIUM).exists():
        print(f"dashboard_load: {CHROMIUM} is missing (apt-get install chromium)", file=sys.stderr)
        return 2
    print(describe())
    if args.neighbour_cpu is not None:
        print(f"neighbours (browser, page clients, spinners) on core {args.neighbour_cpu} alone; "
              f"the engine and the ticker on the others")
    print(f"{args.symbols} symbols x {args.rate:g} bars/s, sma_crossover {args.fast}/{args.slow}, "
          f"paper; 50 portfolios (1 trading); Debian chromium, Playwright")
    return anyio.run(amain, args, backend_options={"use_uvloop": True})


if __name__ == "__main__":
    sys.exit(main())
