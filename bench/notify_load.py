"""Webhook notifications while the engine trades: deliveries per second to a local receiver, and
what they cost the tick latency (issue 12: at most +10% on tick p99).

Where it sits: bench/api_load.py's set-up, reused (its ticker process writing bars over
loopback TCP, the ``bench_wire`` feed, the tick recorder on ``PortfolioRunner.on_bar_done``,
the template database of one portfolio of ``--symbols`` assets trading ``sma_crossover`` on
paper), with the engine's own notifier (the ``notify`` core service) running in every case.
A receiver process (aiohttp, on 127.0.0.1) answers every POST with 200 and counts them.

Cases, alternating, ``--repeat`` times each (the machine is shared and noisy: medians, and the
p99 ratio taken within each repeat):

  no webhooks     the notifier runs with nothing to deliver (the baseline)
  webhooks        ``--webhooks`` webhooks of the admin, each for ``order.filled``, all to the
                  receiver: every fill makes that many signed POSTs

The strategy's windows (``--fast``/``--slow``) set the fill rate; deliveries per second is what
the receiver counted in the measuring window. Target: tick p99 with webhooks at most 10% above
the baseline's.

    python bench/notify_load.py [--seconds 5] [--repeat 3] [--webhooks 50] [--fast 5]
                                [--slow 20] [--symbols 10] [--rate 200]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import shutil
import statistics
import sys
import tempfile
import time
import urllib.request
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
    login,
    make_template,
    pct,
    ticker,
    trading_engine,
)
from machine import describe

from lts.settings import load_settings

CASES = ("no webhooks", "webhooks")
TARGET = 1.10  # tick p99 with webhooks / without


def receiver(port_pipe: Any, stop: Any, counts: Any) -> None:
    """A webhook receiver on 127.0.0.1: 200 to every POST; ``counts[0]`` is how many."""
    import asyncio

    from aiohttp import web

    async def take(request: web.Request) -> web.Response:
        await request.read()
        counts[0] += 1
        return web.Response(status=200)

    async def serve() -> None:
        app = web.Application()
        app.router.add_post("/{tail:.*}", take)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port_pipe.send(runner.addresses[0][1])
        while not stop.is_set():  # noqa: ASYNC110 - a multiprocessing event: polled
            await asyncio.sleep(0.1)
        await runner.cleanup()

    asyncio.run(serve())


def make_webhooks(base: str, token: str, url: str, n: int) -> None:
    for i in range(n):
        req = urllib.request.Request(base + "/api/v1/webhooks", data=json.dumps(
            {"url": f"{url}/hook-{i}", "event_types": ["order.filled"]}).encode(),
            headers={"content-type": "application/json", "authorization": f"Bearer {token}"})
        with urllib.request.urlopen(req, timeout=10) as resp:
            assert resp.status == 201


async def run_case(case: str, run: int, args: argparse.Namespace, tmp: Path, template: Path,
                   portfolio_id: int, receiver_url: str, counts: Any) -> tuple[CaseResult, float]:
    db_file = tmp / f"run{run}-{CASES.index(case)}.db"
    shutil.copy(template, db_file)
    port = free_port()
    settings = load_settings(overrides={
        "admin_password": ADMIN_PASSWORD, "log_level": "WARNING",
        "database": {"url": f"sqlite+aiosqlite:///{db_file}", "sqlite_synchronous": "NORMAL"},
        "demo": {"enabled": False}, "auth": {"bcrypt_rounds": 4},
        "api": {"port": port},
        "notify": {"webhooks": {"allow_private_networks": True, "refresh_seconds": 0.2,
                                "queue": 100_000, "max_per_user": max(20, args.webhooks)}},
    })
    recorder = TickRecorder()

    async with trading_engine(settings, portfolio_id) as (_engine, runner):
        assert runner.orders is not None
        runner.on_bar_done = recorder
        base = f"http://127.0.0.1:{port}"
        token = await anyio.to_thread.run_sync(login, base)
        if case == "webhooks":
            await anyio.to_thread.run_sync(make_webhooks, base, token, receiver_url,
                                           args.webhooks)
        start_at = time.time() + args.warmup
        w0, w1 = start_at + 0.5, start_at + args.seconds - 0.2
        recorder.window = (int(w0 * 1e9), int(w1 * 1e9))
        await anyio.sleep(max(0.0, w0 - time.time()))
        bars0, orders0, posts0 = runner.bars, runner.orders.orders_created, counts[0]
        await anyio.sleep(max(0.0, w1 - time.time()))
        posts = (counts[0] - posts0) / (w1 - w0)
        ticks = (runner.bars - bars0) / (w1 - w0)
        orders = runner.orders.orders_created - orders0
    return CaseResult([x / 1e6 for x in recorder.lat_ns], ticks, orders, 0.0, 0.0), posts


async def amain(args: argparse.Namespace) -> int:
    tmp = Path(tempfile.mkdtemp(prefix="lts-notify-load-"))
    ctx = mp.get_context("spawn")
    port_recv, port_send = ctx.Pipe(duplex=False)
    stop = ctx.Event()
    venue = ctx.Process(target=ticker, args=(port_send, stop, args.rate), daemon=True)
    venue.start()
    hook_recv, hook_send = ctx.Pipe(duplex=False)
    counts = ctx.Array("q", 1, lock=False)
    sink = ctx.Process(target=receiver, args=(hook_send, stop, counts), daemon=True)
    sink.start()
    results: dict[str, list[tuple[CaseResult, float]]] = {c: [] for c in CASES}
    ratios: list[float] = []
    try:
        ticker_port = await anyio.to_thread.run_sync(port_recv.recv)
        receiver_url = f"http://127.0.0.1:{await anyio.to_thread.run_sync(hook_recv.recv)}"
        template = tmp / "template.db"
        portfolio_id = await make_template(template, args, ticker_port)
        for run in range(args.repeat):
            for case in CASES:
                res, posts = await run_case(case, run, args, tmp, template, portfolio_id,
                                            receiver_url, counts)
                results[case].append((res, posts))
                print(f"run {run + 1} {case:<12} tick p50 {res.stat(0.5):6.3f}  p99 "
                      f"{res.stat(0.99):7.3f} ms ({len(res.lat_ms):,} bars, "
                      f"{res.ticks_per_s:,.0f} ticks/s, {res.orders} orders); "
                      f"webhook deliveries {posts:,.0f}/s", flush=True)
            base, hooked = results["no webhooks"][-1][0], results["webhooks"][-1][0]
            ratios.append(hooked.stat(0.99) / base.stat(0.99))
    finally:
        stop.set()
        venue.join(5)
        sink.join(5)
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"\nmedian over {args.repeat} run(s); tick latency = bar written -> runner done")
    for case, runs in results.items():
        p50 = statistics.median(r.stat(0.5) for r, _ in runs)
        p99 = statistics.median(r.stat(0.99) for r, _ in runs)
        posts = statistics.median(p for _, p in runs)
        print(f"  {case:<12} p50 {p50:6.3f}  p99 {p99:7.3f} ms; deliveries {posts:,.0f}/s")
    ratio = statistics.median(ratios)
    print(f"tick p99 with {args.webhooks} webhooks / without, per repeat "
          f"{', '.join(f'{r:.2f}' for r in ratios)}: median {ratio:.2f}; target <= "
          f"{TARGET:.2f}: {'met' if ratio <= TARGET else 'NOT met'}")
    print(f"deliveries: p50 of the repeats {pct([p for _, p in results['webhooks']], 0.5):,.0f}/s")
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=5.0, help="per case (window: -0.7 s)")
    ap.add_argument("--warmup", type=float, default=1.5)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--webhooks", type=int, default=50)
    ap.add_argument("--symbols", type=int, default=10, help="assets, one feed task each")
    ap.add_argument("--rate", type=float, default=200.0, help="bars per second per symbol")
    ap.add_argument("--fast", type=int, default=5, help="sma_crossover fast window")
    ap.add_argument("--slow", type=int, default=20, help="sma_crossover slow window")
    args = ap.parse_args()
    print(describe())
    print(f"{args.symbols} symbols x {args.rate:g} bars/s, sma_crossover {args.fast}/{args.slow}, "
          f"paper; the engine's notifier; {args.webhooks} webhooks for order.filled")
    return anyio.run(amain, args, backend_options={"use_uvloop": True})


if __name__ == "__main__":
    sys.exit(main())
