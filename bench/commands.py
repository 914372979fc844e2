"""Command round trip through a portfolio runner's inbox: a cancel sent, its answer back.

Where it sits: architecture §5 (the runner owns its portfolio; commands reach it through its
inbox and the sender waits for its answer). The whole engine runs in this process as
``python -m lts.engine`` runs it: ``Engine(settings).run()`` with its supervisors, runners, paper
venue, group-commit journal on a temporary SQLite file (WAL, ``synchronous=FULL``) and the real
``api`` core plugin (uvicorn + httptools on the engine's loop, uvloop when installed), the
engine's default log level (INFO) and log set-up (records queued on the loop, written to a file
by a listener thread). The measured portfolio has one asset: the
``synthetic`` feed (``--interval``, 1 bar/s: the runner has market data to work between
commands, and a last price for the risk check's price band), a bench strategy that never
signals (orders come from commands only) and the ``paper`` venue; its risk overrides allow
``--orders`` open orders placed in a burst (``max_open_orders``, ``max_orders_per_second``).
``--background N`` adds N portfolios x 4 assets trading like bench/scale.py (sma_crossover 2/5,
1 bar/s each) so the loop and the journal are busy as in production.

Each round places ``--orders`` resting limit buys (``SubmitOrder``, GTC, quantity 1, limit at
``--below`` of the last price, on the tick grid: well inside the default ±50% price band, never
filled) through the facade, each answered once its write-ahead row committed and the paper venue
took it; then cancels them one at a time, timing each answer. Rounds alternate the two ways in:

facade (``engine.facade.command(pid, cmd)``: the inbox alone), per order, in rotating order:
  floor          a bench task answering a future put on an ``asyncio.Queue`` (awaited with
                 ``asyncio.wait_for`` as the facade does): the platform's cost of handing a
                 command to another task and waiting for its answer, no LTS code
  no-op          ``CancelOrder`` of an order that is not open: posted, taken by the runner's
                 next turn, denied ``ORDER_NOT_OPEN`` at once (the inbox round trip alone)
  SetTradingState  ``SetTradingState(ACTIVE)``: a change that is answered once the journal
                 has committed it (inbox + one commit)
  cancel         ``CancelOrder`` of a resting order: PENDING_CANCEL, withdrawn from the paper
                 book, CANCELED, answered (the events are committed behind the answer)

HTTP (a spawned process, one keep-alive connection per case over 127.0.0.1, one request at a
time; bearer token of the admin; the per-client rate limit off: all requests come from one
address; the rest of admission control at its defaults), per order, in rotating order:
  trivial        ``GET /ok`` of a trivial FastAPI app served by a second uvicorn server on the
                 same loop with the same settings (the baseline of bench/api.py)
  GET order      ``GET /api/v1/orders/{id}``: the same authentication and order read as a cancel,
                 no command
  DELETE order   ``DELETE /api/v1/orders/{id}``: what a user sees: the order read, the command
                 and its answer, the audit row, a journal flush (the answer shows the committed
                 state), the order read again

Printed per case: p50 / p90 / p99 / max over every sample of every round, the median of the
rounds' p50s, ratios to the baseline of the same way in, the outcomes (canceled, denied...), the
loop lag (a 5 ms sleep's overshoot) during each phase, and the placements' round trip.

    python bench/commands.py [--orders 100] [--rounds 5] [--background 0] [--interval 1.0]
                             [--below 0.6] [--log-level INFO] [--only facade|http]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import shutil
import socket
import statistics
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from collections.abc import Awaitable, Callable
from concurrent.futures import ProcessPoolExecutor
from decimal import ROUND_FLOOR, Decimal
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import anyio
import anyio.to_thread
import uvicorn
from fastapi import FastAPI
from machine import describe
from scale import EngineLog

from lts.domain.commands import (
    Accepted,
    CancelOrder,
    Denied,
    Reply,
    SetTradingState,
    SubmitOrder,
    TradingState,
)
from lts.domain.market import Bar
from lts.domain.orders import OrderRequest, OrderType, Side, TimeInForce
from lts.domain.portfolio_spec import AssetSpec, PortfolioSpec
from lts.domain.signals import Signal
from lts.engine.engine import Engine
from lts.engine.supervisor import PortfolioStatus
from lts.persistence import repositories as repo
from lts.persistence.db import make_engine
from lts.persistence.migrations import upgrade_to_head
from lts.plugins.aaa.passwords import hash_password
from lts.plugins.base import PluginBase
from lts.plugins.registry import Registry
from lts.settings import load_settings

ADMIN_PASSWORD = "Adm1n-pass-word"  # a throwaway bench database
SYMBOL = "CMD-0"
TICK = Decimal("0.01")
FACADE_CASES = ("floor", "no-op", "SetTradingState", "cancel")
HTTP_CASES = ("trivial", "GET order", "DELETE order")
perf_ns = time.perf_counter_ns


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


class Quiet(PluginBase):
    """Strategy ``bench_quiet``: never signals (the orders come from commands)."""

    plugin_name = "bench_quiet"

    def on_bar(self, bar: Bar) -> Signal | None:
        return None


# -- the HTTP client (a spawned process) ---------------------------------------------------------

class _Conn:
    """A keep-alive HTTP/1.1 connection reading Content-Length framed answers."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""

    def exchange(self, request: bytes) -> tuple[int, bytes]:
        self.sock.sendall(request)
        while (end := self.buf.find(b"\r\n\r\n")) < 0:
            self._fill()
        head = self.buf[:end].decode("latin-1")
        length = 0
        for line in head.split("\r\n")[1:]:
            name, _, value = line.partition(":")
            if name.strip().lower() == "content-length":
                length = int(value)
        total = end + 4 + length
        while len(self.buf) < total:
            self._fill()
        body, self.buf = self.buf[end + 4:total], self.buf[total:]
        return int(head.split(" ", 2)[1]), body

    def _fill(self) -> None:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError("server closed the connection")
        self.buf += chunk


def http_round(port: int, trivial_port: int, token: str, coids: list[str],
               rotate: int) -> dict[str, Any]:
    """Per order, the three HTTP cases in rotating order; latencies (µs) and outcomes."""
    auth = f"Authorization: Bearer {token}\r\n"

    def request(method: str, path: str, headers: str = "") -> bytes:
        return (f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{headers}"
                "Content-Length: 0\r\n\r\n").encode()

    conns = {"trivial": _Conn(trivial_port), "GET order": _Conn(port),
             "DELETE order": _Conn(port)}
    for conn in conns.values():  # warm the connections (first request on each)
        conn.exchange(request("GET", "/ok") if conn is conns["trivial"]
                      else request("GET", "/api/v1/health", auth))
    lat: dict[str, list[float]] = {c: [] for c in HTTP_CASES}
    outcomes: dict[str, Counter[str]] = {c: Counter() for c in HTTP_CASES}
    for i, coid in enumerate(coids):
        k = (i + rotate) % len(HTTP_CASES)
        for case in HTTP_CASES[k:] + HTTP_CASES[:k]:
            if case == "trivial":
                req = request("GET", "/ok")
            elif case == "GET order":
                req = request("GET", f"/api/v1/orders/{coid}", auth)
            else:
                req = request("DELETE", f"/api/v1/orders/{coid}", auth)
            t = perf_ns()
            status, body = conns[case].exchange(req)
            lat[case].append((perf_ns() - t) / 1e3)
            what = str(status)
            if case != "trivial" and status == 200:
                what += " " + str(json.loads(body).get("status"))
            outcomes[case][what] += 1
    for conn in conns.values():
        conn.sock.close()
    return {"lat": lat, "outcomes": {c: dict(o) for c, o in outcomes.items()}}


# -- in the engine's process ----------------------------------------------------------------------

class LagProbe:
    """A task on the engine's loop sleeping 5 ms; its overshoot, per phase."""

    def __init__(self, period: float = 0.005) -> None:
        self.period = period
        self.phase = "idle"
        self.samples: dict[str, list[float]] = {}

    async def run(self) -> None:
        clock = time.perf_counter
        while True:
            started = clock()
            await anyio.sleep(self.period)
            self.samples.setdefault(self.phase, []).append(
                max(0.0, clock() - started - self.period) * 1e3)

    def line(self, phase: str) -> str:
        ms = self.samples.get(phase, [])
        return (f"p50 {pct(ms, 0.5):5.2f}  p99 {pct(ms, 0.99):6.2f}  max "
                f"{max(ms, default=0):7.2f} ms ({len(ms):,} samples)")


class Echo:
    """The floor: a task that answers each future put on its queue."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[asyncio.Future[None]] = asyncio.Queue()

    async def run(self) -> None:
        while True:
            reply = await self.queue.get()
            if not reply.done():
                reply.set_result(None)

    async def round_trip(self) -> None:
        reply: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.queue.put_nowait(reply)
        await asyncio.wait_for(reply, 5.0)


class _QuietServer(uvicorn.Server):
    def capture_signals(self) -> Any:  # the engine owns the signals
        import contextlib
        return contextlib.nullcontext()


def http_impl() -> str:
    try:
        import httptools  # noqa: F401
    except ImportError:
        return "h11"
    return "httptools"


def trivial_app() -> FastAPI:
    app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)

    @app.get("/ok")
    async def ok() -> dict[str, bool]:
        return {"ok": True}

    return app


def login(base: str) -> str:
    req = urllib.request.Request(base + "/api/v1/auth/login", data=json.dumps(
        {"username": "admin", "password": ADMIN_PASSWORD}).encode(),
        headers={"content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return str(json.loads(resp.read())["access_token"])


def background_specs(n: int) -> list[PortfolioSpec]:
    """bench/scale.py's portfolios: 4 assets each, a symbol and seed per asset."""
    return [PortfolioSpec(
        name=f"background-{i:04d}", initial_cash=Decimal(100_000),
        portfolio_plugin="fixed_fraction", portfolio_params={"fraction": "0.2"},
        assets=tuple(AssetSpec(
            symbol=f"B{i:04d}-{j}", strategy_plugin="sma_crossover",
            strategy_params={"fast": 2, "slow": 5}, broker_plugin="paper",
            broker_params={"fees_bps": "1", "slippage_bps": "2"}, pipeline_plugin="synthetic",
            pipeline_params={"seed": 1_000 + i * 4 + j, "interval": 1.0, "volatility": 0.01})
            for j in range(4))) for i in range(n)]


async def make_database(url: str, args: argparse.Namespace) -> int:
    """The admin user, the measured portfolio (its id) and the background portfolios."""
    await upgrade_to_head(url)
    db = make_engine(url)
    try:
        hashed = await anyio.to_thread.run_sync(hash_password, ADMIN_PASSWORD, 4)
        owner = await repo.create_user(db, "admin", hashed, "admin")
        pid = await repo.create_portfolio(db, PortfolioSpec(
            name="commands", initial_cash=Decimal(10_000_000), owner_id=owner,
            risk_params={"max_open_orders": max(100, 2 * args.orders),
                         "max_orders_per_second": None},
            assets=(AssetSpec(
                symbol=SYMBOL, strategy_plugin="bench_quiet", broker_plugin="paper",
                pipeline_plugin="synthetic",
                pipeline_params={"seed": 7, "interval": args.interval, "volatility": 0.001}),)))
        for spec in background_specs(args.background):
            await repo.create_portfolio(db, spec)
        return pid
    finally:
        await db.dispose()


def summary(us: list[float]) -> str:
    return (f"p50 {pct(us, 0.5):8.1f}  p90 {pct(us, 0.9):8.1f}  p99 {pct(us, 0.99):8.1f}  "
            f"max {max(us, default=float('nan')):9.1f} µs")


class Bench:
    def __init__(self, engine: Engine, pid: int, args: argparse.Namespace) -> None:
        self.engine = engine
        self.pid = pid
        self.args = args
        self.echo = Echo()
        self.facade: dict[str, list[list[float]]] = {c: [] for c in FACADE_CASES}
        self.http: dict[str, list[list[float]]] = {c: [] for c in HTTP_CASES}
        self.outcomes: dict[str, Counter[str]] = {c: Counter() for c in
                                                  FACADE_CASES + HTTP_CASES}
        self.place_us: list[float] = []
        self.placed = Counter[str]()

    def _outcome(self, reply: Reply) -> str:
        if isinstance(reply, Denied):
            return f"denied {reply.reason.value}"
        assert isinstance(reply, Accepted)
        return f"accepted {reply.order.status.value}" if reply.order is not None else "accepted"

    async def place(self) -> list[str]:
        """``--orders`` resting limit buys; their client order ids."""
        facade = self.engine.facade
        last = facade.last_prices(self.pid)[SYMBOL]
        limit = (last * Decimal(str(self.args.below))).quantize(TICK, ROUND_FLOOR)
        coids = []
        for _ in range(self.args.orders):
            command = SubmitOrder(OrderRequest(SYMBOL, Side.BUY, Decimal(1), OrderType.LIMIT,
                                               TimeInForce.GTC, limit, tag="bench"))
            t = perf_ns()
            reply = await facade.command(self.pid, command)
            self.place_us.append((perf_ns() - t) / 1e3)
            self.placed[self._outcome(reply)] += 1
            if isinstance(reply, Accepted) and reply.order is not None:
                coids.append(reply.order.client_order_id)
        return coids

    async def facade_round(self, coids: list[str], rotate: int) -> None:
        facade, pid = self.engine.facade, self.pid
        unknown = f"{pid}-999999999"
        ops: dict[str, Callable[[str], Awaitable[Reply | None]]] = {
            "floor": lambda _c: self.echo.round_trip(),
            "no-op": lambda _c: facade.command(pid, CancelOrder(unknown)),
            "SetTradingState": lambda _c: facade.command(
                pid, SetTradingState(TradingState.ACTIVE)),
            "cancel": lambda c: facade.command(pid, CancelOrder(c)),
        }
        lat: dict[str, list[float]] = {c: [] for c in FACADE_CASES}
        for i, coid in enumerate(coids):
            k = (i + rotate) % len(FACADE_CASES)
            for case in FACADE_CASES[k:] + FACADE_CASES[:k]:
                t = perf_ns()
                reply = await ops[case](coid)
                lat[case].append((perf_ns() - t) / 1e3)
                self.outcomes[case]["answered" if reply is None else self._outcome(reply)] += 1
        for case, got in lat.items():
            self.facade[case].append(got)

    async def http_round(self, pool: ProcessPoolExecutor, coids: list[str], rotate: int,
                         port: int, trivial_port: int) -> None:
        token = await anyio.to_thread.run_sync(login, f"http://127.0.0.1:{port}")
        future = pool.submit(http_round, port, trivial_port, token, coids, rotate)
        got = await anyio.to_thread.run_sync(future.result)
        for case in HTTP_CASES:
            self.http[case].append(got["lat"][case])
            self.outcomes[case].update(got["outcomes"][case])

    def report(self, probe: LagProbe) -> None:
        args = self.args
        print()
        print(f"placing (SubmitOrder -> answer: risk, write-ahead commit, paper venue): "
              f"{summary(self.place_us)}; {dict(self.placed)}")
        for title, runs, base, cases in (
                ("facade: engine.facade.command() in-process (the inbox)", self.facade,
                 "floor", FACADE_CASES),
                ("HTTP over 127.0.0.1 (what a user sees)", self.http, "trivial", HTTP_CASES)):
            if not any(runs[c] for c in cases):
                continue
            print()
            print(f"{title}: {len(runs[cases[0]])} round(s) of {args.orders} orders")
            p50s: dict[str, float] = {}
            for case in cases:
                flat = [x for r in runs[case] for x in r]
                p50s[case] = statistics.median(pct(r, 0.5) for r in runs[case])
                print(f"  {case:<16} {summary(flat)}  ({len(flat):,} samples; median of the "
                      f"rounds' p50 {p50s[case]:.1f} µs); {dict(self.outcomes[case])}")
            print("  ratio of median p50 to " + base + ": " + ", ".join(
                f"{c} {p50s[c] / p50s[base]:.1f}x" for c in cases if c != base))
            if cases is HTTP_CASES:
                print(f"  the cancel's own share over the same read (DELETE - GET, median p50): "
                      f"{p50s['DELETE order'] - p50s['GET order']:.0f} µs")
            else:
                print(f"  the runner's share over the platform's task hop (cancel - floor, median "
                      f"p50): {p50s['cancel'] - p50s['floor']:.0f} µs; no-op - floor "
                      f"{p50s['no-op'] - p50s['floor']:.0f} µs")
        print()
        print("loop lag (5 ms sleep overshoot) per phase:")
        for phase in ("idle", "trading", "placing", "facade", "http"):
            if phase in probe.samples:
                print(f"  {phase:<8} {probe.line(phase)}")


async def amain(args: argparse.Namespace) -> int:
    tmp = Path(tempfile.mkdtemp(prefix="lts-bench-commands-"))
    log_file = tmp / "engine.log"
    engine_log: EngineLog | None = None
    try:
        url = f"sqlite+aiosqlite:///{tmp / 'lts.db'}"
        pid = await make_database(url, args)
        engine_log = EngineLog(log_file, args.log_level)
        port, trivial_port = free_port(), free_port()
        settings = load_settings(overrides={
            "admin_password": ADMIN_PASSWORD, "log_level": args.log_level,
            "database": {"url": url, "sqlite_synchronous": "FULL"},
            "demo": {"enabled": False}, "auth": {"bcrypt_rounds": 4},
            # one client address sends everything: the per-client rate limit would answer 429
            "api": {"port": port, "rate_limit_per_second": 0},
        })
        registry = Registry.discover()
        registry.register("strategy", "bench_quiet", Quiet)
        engine = Engine(settings, registry=registry)
        bench = Bench(engine, pid, args)
        probe = LagProbe()
        stopped = anyio.Event()

        async def run_engine() -> None:
            try:
                await engine.run()
            finally:
                stopped.set()

        ctx = mp.get_context("spawn")
        async with anyio.create_task_group() as tg:
            tg.start_soon(probe.run)
            tg.start_soon(bench.echo.run)
            await anyio.sleep(1.0)
            probe.phase = "start-up"
            tg.start_soon(run_engine)
            with anyio.fail_after(args.startup_timeout):
                await engine.started.wait()
                while (sup := engine.supervisors.get(pid)) is None \
                        or sup.status is not PortfolioStatus.RUNNING \
                        or not engine.facade.last_prices(pid) \
                        or sum(s.status == "running" for s in engine.facade.states()) \
                        < 1 + args.background:  # noqa: ASYNC110 - a poll
                    await anyio.sleep(0.05)
            config = uvicorn.Config(trivial_app(), host="127.0.0.1", port=trivial_port,
                                    lifespan="off", log_config=None, access_log=False,
                                    http=http_impl(), server_header=False)
            trivial = _QuietServer(config)
            tg.start_soon(trivial.serve)
            while not trivial.started:  # noqa: ASYNC110 - uvicorn offers a flag
                await anyio.sleep(0.01)
            probe.phase = "trading"
            await anyio.sleep(1.0)
            probe.phase = "spawn"
            with ProcessPoolExecutor(max_workers=1, mp_context=ctx) as pool:
                # spawned before anything is timed (blocks the loop while it starts)
                await anyio.to_thread.run_sync(pool.submit(time.sleep, 0).result)
                for run in range(args.rounds):
                    for way in ("facade", "http") if run % 2 == 0 else ("http", "facade"):
                        if args.only not in (None, way):
                            continue
                        probe.phase = "placing"
                        coids = await bench.place()
                        probe.phase = way
                        if way == "facade":
                            await bench.facade_round(coids, run)
                        else:
                            await bench.http_round(pool, coids, run, port, trivial_port)
                        probe.phase = "trading"
                    print(f"round {run + 1}/{args.rounds} done", flush=True)
            counters = engine.facade.counters()
            state = engine.facade.state(pid)
            trivial.should_exit = True
            engine.stop()
            with anyio.move_on_after(20):
                await stopped.wait()
            tg.cancel_scope.cancel()
        bench.report(probe)
        print(f"journal: {counters.journal_commits:,} commits, {counters.journal_records:,} "
              f"records; the measured portfolio at the end: {state.open_orders if state else '?'}"
              f" open order(s), {state.orders_created if state else '?'} orders made")
        log_lines = sum(1 for _ in log_file.open())
        print(f"engine log: {log_lines:,} lines at {args.log_level}")
    finally:
        if engine_log is not None:
            engine_log.close()
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--orders", type=int, default=100, help="orders placed and canceled per "
                    "round and way in")
    ap.add_argument("--rounds", type=int, default=5, help="rounds (each: facade and HTTP, the "
                    "order of the two alternating)")
    ap.add_argument("--background", type=int, default=0,
                    help="portfolios x 4 assets trading beside (bench/scale.py's)")
    ap.add_argument("--interval", type=float, default=1.0,
                    help="seconds between bars of the measured portfolio's feed")
    ap.add_argument("--below", type=float, default=0.6,
                    help="limit price as a fraction of the last price (the band is ±50%%)")
    ap.add_argument("--log-level", choices=["DEBUG", "INFO", "WARNING"], default="INFO")
    ap.add_argument("--startup-timeout", type=float, default=120.0)
    ap.add_argument("--only", choices=["facade", "http"], help="one way in only")
    args = ap.parse_args()
    try:
        import uvloop  # noqa: F401
        use_uvloop = True
    except ImportError:
        use_uvloop = False
    print(describe())
    print(f"event loop: {'uvloop' if use_uvloop else 'asyncio'}; http: {http_impl()}; "
          f"{args.rounds} round(s) x {args.orders} orders per way in; background portfolios "
          f"{args.background} (x 4 assets at 1 bar/s); SQLite WAL synchronous=FULL; log level "
          f"{args.log_level} to a file")
    return anyio.run(amain, args, backend_options={"use_uvloop": use_uvloop})


if __name__ == "__main__":
    sys.exit(main())
