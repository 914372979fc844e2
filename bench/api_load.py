"""Tick latency while the control API is under load (architecture §4: the API shares the loop).

Where it sits: the whole engine as ``python -m lts.engine`` runs it — ``Engine(settings).run()``
in this process, on the engine's loop (uvloop when installed), with the real ``api`` core plugin
(uvicorn + httptools on the same loop, edge middleware, admission control, the real auth) — on
a temporary SQLite file (WAL; ``--synchronous`` NORMAL by default: a FULL commit's fsync, which
API load does not change, would put the disk into every bar queued behind an order; its cost is
bench/latency.py's subject).
A fresh engine (a copy of one migrated template database) runs each case, so the settings of
admission control can differ between cases and every case starts from the same state.

The decision path at a high tick rate: one portfolio of ``--symbols`` assets, each with
``sma_crossover`` (``--fast``/``--slow``, 100/1000: about two signals per 1,000 bars, so
orders are a steady trickle, not every bar), the ``paper`` broker and ``fixed_fraction``. Market
data comes from outside, as from a venue: a spawned *ticker* process writes one bar per symbol
every 1/``--rate`` s to a TCP connection per symbol (loopback), each bar stamped with
``time.time_ns()`` just before its write; a bench-only pipeline plugin ``bench_wire`` (one feed
task per symbol, as the feed hub runs any feed) reads them. A socket, not a timer: a timer
sleep on the loop has a granularity of about 1 ms (libuv), which would hide what API load does.

Tick latency, per bar: ``time.time_ns()`` when the portfolio runner has finished the bar
(``PortfolioRunner.on_bar_done``: the paper venue's fills of resting orders, strategy,
allocation, risk, order creation with its write-ahead row enqueued; the runner never waits on
the commit: the order goes to the venue when the commit's outcome comes back through its inbox)
minus the bar's ``ts_event`` (its write by the venue). It holds everything the loop makes a bar
wait for: the socket's turn after epoll, the feed task's turn, the bus and the runner's inbox,
the runner's turn, batches, the decision path. API work sits in the same ready queue between
those turns, so it shows here. Only bars written inside each
case's measuring window count; the real tick rate is printed (bars finished / window).

Cases, in the same run, alternating, ``--repeat`` times each; the figure is the median over the
repeats of each run's p50 / p99 / max:

  no API load          the engine alone (admission control at its defaults)
  paced 300 req/s      a spawned process sends ``--paced-rate`` req/s on a schedule over
                       keep-alive connections from ``--paced-addrs`` loopback addresses
                       (127.0.0.10...; each address under the default 50 req/s per client), a
                       mix of authenticated GETs: portfolio, positions, orders list (50), status
  saturation, on       ``--sat-conns`` connections from ``--sat-addrs`` addresses (127.0.1.x)
                       sending as fast as answers come (one request in flight per connection),
                       same mix; admission control at its defaults (one connection read per
                       turn of the loop, 64 in flight, 50 req/s and a burst of 100 per
                       address; ``--per-turn``, ``--max-concurrent`` and ``--rate-limit``
                       change them for every case but the next)
  saturation, off      the same load; admission control off (no read gate, no bound, no rate
                       limit): the baseline

Targets (architecture §4): tick p99 <= 2 ms at 300 req/s, <= 5 ms under saturation (admission
on). Also printed: answered req/s by status (2xx, 429, 503, other), the engine loop thread's CPU
share, the load generator's CPU, and a 5 ms sleep probe's overshoot on the loop. The machine has
few cores: the ticker and the load generator run on the same cores as the engine.

    python bench/api_load.py [--seconds 5] [--repeat 3] [--symbols 10] [--rate 1000]
                             [--paced-rate 300] [--sat-conns 64] [--sat-addrs 16]
                             [--max-concurrent N] [--rate-limit R] [--cases NAME ...]
"""

from __future__ import annotations

import argparse
import gc
import json
import multiprocessing as mp
import random
import selectors
import shutil
import socket
import statistics
import struct
import sys
import tempfile
import time
import urllib.request
from array import array
from collections.abc import AsyncIterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import anyio
import anyio.to_thread
from machine import describe
from pydantic import Field

from lts.domain.clock import Clock
from lts.domain.market import Bar
from lts.domain.portfolio_spec import AssetSpec, PortfolioSpec
from lts.engine.engine import Engine
from lts.engine.runner import PortfolioRunner
from lts.engine.supervisor import PortfolioStatus
from lts.persistence import repositories as repo
from lts.persistence.db import make_engine
from lts.persistence.migrations import upgrade_to_head
from lts.plugins.aaa.passwords import hash_password
from lts.plugins.base import PluginBase, PluginParams
from lts.plugins.registry import Registry
from lts.settings import load_settings

ADMIN_PASSWORD = "Adm1n-pass-word"  # a throwaway bench database
RECORD = struct.Struct("<qd")  # ts_event (ns, wall clock), price
PACED_TARGET_MS = 2.0
SATURATED_TARGET_MS = 5.0
ADMISSION_OFF = {"max_concurrent_requests": 0, "requests_per_loop_turn": 0,
                 "rate_limit_per_second": 0}
CASES = ("no API load", "paced", "saturation, on", "saturation, off")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pct(values: Sequence[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


# -- the venue: a ticker process writing bars to one connection per symbol -----------------------

def ticker(port_pipe: Any, stop: Any, rate: float) -> None:
    """Accept connections (each sends its symbol and a newline), then every ``1 / rate`` s write
    one bar to each, stamped just before its write. A connection that cannot take a bar within
    a second is dropped (a venue does not wait for a slow client)."""
    server = socket.create_server(("127.0.0.1", 0))
    server.setblocking(False)
    port_pipe.send(server.getsockname()[1])
    sel = selectors.DefaultSelector()
    sel.register(server, selectors.EVENT_READ)
    clients: dict[socket.socket, float] = {}  # connection -> last price
    pending: dict[socket.socket, bytes] = {}  # connections still sending their symbol
    rng = random.Random(7)  # a price path, not security
    period = 1.0 / rate
    next_at = time.perf_counter()
    pack, now_ns = RECORD.pack, time.time_ns
    while not stop.is_set():
        for key, _ in sel.select(timeout=0):
            sock = key.fileobj
            assert isinstance(sock, socket.socket)
            if sock is server:
                conn, _ = server.accept()
                conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                conn.settimeout(1.0)
                pending[conn] = b""
                sel.register(conn, selectors.EVENT_READ)
            elif sock in pending:
                got = sock.recv(64)
                pending[sock] += got
                if not got:  # gone before it named its symbol
                    del pending[sock]
                    sel.unregister(sock)
                    sock.close()
                elif pending[sock].endswith(b"\n"):
                    del pending[sock]
                    sel.unregister(sock)
                    clients[sock] = 100.0
        for conn, price in list(clients.items()):
            price *= 1.0 + rng.gauss(0.0, 0.0005)
            clients[conn] = price
            try:
                conn.sendall(pack(now_ns(), price))
            except OSError:
                del clients[conn]
                conn.close()
        next_at += period
        delay = next_at - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        elif delay < -0.05:  # far behind: no burst to catch up, the pace starts again
            next_at = time.perf_counter()


class WireParams(PluginParams):
    port: int = Field(gt=0, le=65535, description="the ticker's port on 127.0.0.1")


class WireFeed(PluginBase):
    """Pipeline ``bench_wire``: the bars of one symbol, read from the ticker's connection."""

    Params = WireParams
    plugin_name = "bench_wire"
    historical = False

    async def bars(self, symbol: str, clock: Clock) -> AsyncIterator[Sequence[Bar]]:
        size, unpack = RECORD.size, RECORD.unpack_from
        async with await anyio.connect_tcp("127.0.0.1", self.params.port) as stream:
            await stream.send(symbol.encode() + b"\n")
            buf = b""
            while True:
                buf += await stream.receive(65536)
                whole = len(buf) - len(buf) % size
                batch = []
                for offset in range(0, whole, size):
                    ts, price = unpack(buf, offset)
                    batch.append(Bar(symbol, ts, price, price, price, price, 1_000.0))
                buf = buf[whole:]
                if batch:
                    yield batch


# -- load generators (spawned processes) --------------------------------------------------------

class _Conn:
    """A keep-alive HTTP/1.1 connection from a given source address (Content-Length framing)."""

    def __init__(self, port: int, source: str) -> None:
        self.port, self.source = port, source
        self.sock = self._connect()
        self.buf = b""

    def _connect(self) -> socket.socket:
        sock = socket.create_connection(("127.0.0.1", self.port), source_address=(self.source, 0))
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock

    def reconnect(self) -> None:
        self.sock.close()
        self.sock, self.buf = self._connect(), b""

    def read_status(self) -> int:
        """Wait for the answer; its status."""
        while (status := self._parse()) is None:
            self._fill()
        return status

    def poll(self) -> int | None:
        """Read what has arrived (the socket is readable); the status once the answer is in."""
        self._fill()
        return self._parse()

    def _parse(self) -> int | None:
        end = self.buf.find(b"\r\n\r\n")
        if end < 0:
            return None
        head = self.buf[:end].decode("latin-1")
        length = 0
        for line in head.split("\r\n")[1:]:
            name, _, value = line.partition(":")
            if name.strip().lower() == "content-length":
                length = int(value)
        total = end + 4 + length
        if len(self.buf) < total:
            return None
        self.buf = self.buf[total:]
        return int(head.split(" ", 2)[1])

    def _fill(self) -> None:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError("server closed the connection")
        self.buf += chunk


def _requests(port: int, token: str, portfolio_id: int) -> list[bytes]:
    paths = [f"/api/v1/portfolios/{portfolio_id}", f"/api/v1/portfolios/{portfolio_id}/positions",
             f"/api/v1/orders?portfolio_id={portfolio_id}&limit=50",
             f"/api/v1/portfolios/{portfolio_id}/status"]
    return [(f"GET {p} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer {token}\r\n"
             "\r\n").encode() for p in paths]


def _tally(counts: dict[str, int], status: int) -> None:
    kind = ("2xx" if 200 <= status < 300 else str(status) if status in (429, 503)
            else "other")
    counts[kind] = counts.get(kind, 0) + 1


def paced_load(port: int, token: str, portfolio_id: int, rate: float, sources: list[str],
               start_at: float, seconds: float) -> dict[str, Any]:
    """``rate`` requests a second on a schedule (open loop), each on a connection (one per
    source) with no answer pending; answers are read as they come. When every connection
    waits for an answer the schedule waits too, and never bursts more than 50 ms to catch up."""
    mix = _requests(port, token, portfolio_id)
    conns = [_Conn(port, s) for s in sources]
    sel = selectors.DefaultSelector()
    for conn in conns:
        sel.register(conn.sock, selectors.EVENT_READ, conn)
    waiting: set[_Conn] = set()
    counts: dict[str, int] = {}

    def collect(timeout: float) -> None:
        for key, _ in sel.select(timeout):
            conn = key.data
            try:
                status = conn.poll()
            except ConnectionError:
                counts["reconnects"] = counts.get("reconnects", 0) + 1
                sel.unregister(conn.sock)
                conn.reconnect()
                sel.register(conn.sock, selectors.EVENT_READ, conn)
                waiting.discard(conn)
                continue
            if status is not None:
                _tally(counts, status)
                waiting.discard(conn)

    time.sleep(max(0.0, start_at - time.time()))
    cpu0, clock = time.process_time(), time.perf_counter
    begin = clock()
    due, end, i = begin, begin + seconds, 0
    while due < end:
        while (delay := due - clock()) > 0:
            collect(delay)
        while len(waiting) == len(conns):
            collect(1.0)
        conn = next(c for c in conns[i % len(conns):] + conns if c not in waiting)
        conn.sock.sendall(mix[i % len(mix)])
        waiting.add(conn)
        i += 1
        due = max(due + 1.0 / rate, clock() - 0.05)
    took = clock() - begin
    stop = clock() + 10
    while waiting and clock() < stop:
        collect(0.1)
    for conn in conns:
        conn.sock.close()
    return {"counts": counts, "seconds": took, "cpu": time.process_time() - cpu0}


def saturating_load(port: int, token: str, portfolio_id: int, conns: int, sources: list[str],
                    start_at: float, seconds: float) -> dict[str, Any]:
    """``conns`` connections, one request in flight on each, the next sent as soon as the
    answer is read: rounds of one request per connection, then every answer."""
    mix = _requests(port, token, portfolio_id)
    pool = [_Conn(port, sources[j % len(sources)]) for j in range(conns)]
    counts: dict[str, int] = {}
    time.sleep(max(0.0, start_at - time.time()))
    cpu0, clock = time.process_time(), time.perf_counter
    begin = clock()
    end, i = begin + seconds, 0
    while clock() < end:
        for conn in pool:
            conn.sock.sendall(mix[i % len(mix)])
            i += 1
        for conn in pool:
            try:
                _tally(counts, conn.read_status())
            except ConnectionError:
                counts["reconnects"] = counts.get("reconnects", 0) + 1
                conn.reconnect()
    took = clock() - begin
    for conn in pool:
        conn.sock.close()
    return {"counts": counts, "seconds": took, "cpu": time.process_time() - cpu0}


# -- in the engine's process --------------------------------------------------------------------

@dataclass
class TickRecorder:
    """``on_bar_done`` of the runner: the latency of each bar written inside the window."""

    window: tuple[int, int] = (0, 0)  # ts_event bounds, ns
    lat_ns: array[int] = field(default_factory=lambda: array("q"))

    def __call__(self, bar: Bar) -> None:
        ts = bar.ts_event
        if self.window[0] <= ts < self.window[1]:
            self.lat_ns.append(time.time_ns() - ts)


class LagProbe:
    """Sleeps 5 ms on the loop again and again; the overshoot of each sleep."""

    def __init__(self, period: float = 0.005) -> None:
        self.period = period
        self.samples: list[float] = []
        self.on = False

    async def run(self) -> None:
        clock = time.perf_counter
        while True:
            started = clock()
            await anyio.sleep(self.period)
            if self.on:
                self.samples.append(clock() - started - self.period)


@dataclass
class CaseResult:
    lat_ms: list[float]
    ticks_per_s: float
    orders: int
    loop_cpu: float
    lag_p99_ms: float
    load: dict[str, Any] | None = None

    def stat(self, q: float) -> float:
        return max(self.lat_ms, default=float("nan")) if q == 1.0 else pct(self.lat_ms, q)


def admission(case: str, args: argparse.Namespace) -> dict[str, Any]:
    """The ``api`` settings of admission control in ``case`` (defaults unless overridden)."""
    if case == "saturation, off":
        return ADMISSION_OFF
    out: dict[str, Any] = {}
    if args.max_concurrent is not None:
        out["max_concurrent_requests"] = args.max_concurrent
    if args.per_turn is not None:
        out["requests_per_loop_turn"] = args.per_turn
    if args.rate_limit is not None:
        out["rate_limit_per_second"] = args.rate_limit
    return out


def registry() -> Registry:
    reg = Registry.discover()
    reg.register("pipeline", "bench_wire", WireFeed)
    return reg


async def make_template(path: Path, args: argparse.Namespace, ticker_port: int) -> int:
    """The migrated database with the admin user and the bench portfolio; its id."""
    url = f"sqlite+aiosqlite:///{path}"
    await upgrade_to_head(url)
    db = make_engine(url)
    try:
        hashed = await anyio.to_thread.run_sync(hash_password, ADMIN_PASSWORD, 4)
        owner = await repo.create_user(db, "admin", hashed, "admin")
        assets = tuple(AssetSpec(
            symbol=f"TICK-{i}", strategy_plugin="sma_crossover",
            strategy_params={"fast": args.fast, "slow": args.slow, "quantity": "1"},
            broker_plugin="paper", broker_params={"fees_bps": "1", "slippage_bps": "2"},
            pipeline_plugin="bench_wire", pipeline_params={"port": ticker_port})
            for i in range(args.symbols))
        return await repo.create_portfolio(db, PortfolioSpec(
            name="api-load", initial_cash=Decimal(10_000_000), assets=assets, owner_id=owner))
    finally:
        await db.dispose()


def login(base: str) -> str:
    req = urllib.request.Request(base + "/api/v1/auth/login", data=json.dumps(
        {"username": "admin", "password": ADMIN_PASSWORD}).encode(),
        headers={"content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return str(json.loads(resp.read())["access_token"])


@asynccontextmanager
async def trading_engine(settings: Any, portfolio_id: int
                         ) -> AsyncIterator[tuple[Engine, PortfolioRunner]]:
    """The engine of ``settings`` running on this loop (the bench's registry), handed over once
    ``portfolio_id`` trades (running, a bar done); stopped gracefully on leaving."""
    engine = Engine(settings, registry=registry())
    stopped = anyio.Event()

    async def run_engine() -> None:
        try:
            await engine.run()
        finally:
            stopped.set()

    async with anyio.create_task_group() as tg:
        tg.start_soon(run_engine)
        with anyio.fail_after(60):
            await engine.started.wait()
            while (sup := engine.supervisors.get(portfolio_id)) is None \
                    or sup.status is not PortfolioStatus.RUNNING or sup.runner is None \
                    or sup.runner.bars == 0:  # noqa: ASYNC110 - a poll
                await anyio.sleep(0.05)
        yield engine, sup.runner
        engine.stop()
        with anyio.move_on_after(20):
            await stopped.wait()
        tg.cancel_scope.cancel()


async def run_case(case: str, run: int, args: argparse.Namespace, tmp: Path, template: Path,
                   pool: ProcessPoolExecutor, portfolio_id: int) -> CaseResult:
    db_file = tmp / f"run{run}-{CASES.index(case)}.db"
    shutil.copy(template, db_file)
    port = free_port()
    settings = load_settings(overrides={
        "admin_password": ADMIN_PASSWORD, "log_level": "WARNING",
        "database": {"url": f"sqlite+aiosqlite:///{db_file}",
                     "sqlite_synchronous": args.synchronous},
        "demo": {"enabled": False}, "auth": {"bcrypt_rounds": 4},
        "api": {"port": port, **admission(case, args)},
    })
    recorder, probe = TickRecorder(), LagProbe()
    gc.collect()
    async with trading_engine(settings, portfolio_id) as (_engine, runner), \
            anyio.create_task_group() as probing:
        probing.start_soon(probe.run)
        assert runner.orders is not None
        runner.on_bar_done = recorder
        token = await anyio.to_thread.run_sync(login, f"http://127.0.0.1:{port}")
        start_at = time.time() + args.warmup
        future: Future[dict[str, Any]] | None = None
        if case == "paced":
            sources = [f"127.0.0.{10 + i}" for i in range(args.paced_addrs)]
            future = pool.submit(paced_load, port, token, portfolio_id, args.paced_rate,
                                 sources, start_at, args.seconds)
        elif case.startswith("saturation"):
            sources = [f"127.0.1.{1 + i}" for i in range(args.sat_addrs)]
            future = pool.submit(saturating_load, port, token, portfolio_id, args.sat_conns,
                                 sources, start_at, args.seconds)
        # measure from 0.5 s after the load starts (connections made) to 0.2 s before its end
        w0, w1 = start_at + 0.5, start_at + args.seconds - 0.2
        recorder.window = (int(w0 * 1e9), int(w1 * 1e9))
        await anyio.sleep(max(0.0, w0 - time.time()))
        bars0, orders0 = runner.bars, runner.orders.orders_created
        cpu0, probe.on = time.thread_time(), True
        await anyio.sleep(max(0.0, w1 - time.time()))
        probe.on = False
        loop_cpu = (time.thread_time() - cpu0) / (w1 - w0)
        ticks = (runner.bars - bars0) / (w1 - w0)
        orders = runner.orders.orders_created - orders0
        load = None if future is None else await anyio.to_thread.run_sync(future.result)
        probing.cancel_scope.cancel()
    return CaseResult([x / 1e6 for x in recorder.lat_ns], ticks, orders, loop_cpu,
                      pct(probe.samples, 0.99) * 1e3, load)


def load_line(res: CaseResult) -> str:
    if res.load is None:
        return "no load"
    counts, secs = res.load["counts"], res.load["seconds"]
    parts = [f"{k} {v / secs:,.0f}/s" for k, v in sorted(counts.items())]
    return (f"answered {sum(v for k, v in counts.items() if k != 'reconnects') / secs:,.0f} "
            f"req/s ({', '.join(parts)}); load generator CPU {res.load['cpu'] / secs:.0%}")


async def amain(args: argparse.Namespace) -> int:
    tmp = Path(tempfile.mkdtemp(prefix="lts-api-load-"))
    ctx = mp.get_context("spawn")
    port_recv, port_send = ctx.Pipe(duplex=False)
    stop = ctx.Event()
    venue = ctx.Process(target=ticker, args=(port_send, stop, args.rate), daemon=True)
    venue.start()
    results: dict[str, list[CaseResult]] = {c: [] for c in args.cases}
    try:
        ticker_port = await anyio.to_thread.run_sync(port_recv.recv)
        template = tmp / "template.db"
        portfolio_id = await make_template(template, args, ticker_port)
        with ProcessPoolExecutor(max_workers=1, mp_context=ctx) as pool:
            pool.submit(time.sleep, 0).result()  # the worker is spawned before any case
            for run in range(args.repeat):
                for case in args.cases:
                    res = await run_case(case, run, args, tmp, template, pool, portfolio_id)
                    results[case].append(res)
                    print(f"run {run + 1} {case:<16} tick p50 {res.stat(0.5):6.3f}  p99 "
                          f"{res.stat(0.99):7.3f}  max {res.stat(1.0):8.3f} ms "
                          f"({len(res.lat_ms):,} bars, {res.ticks_per_s:,.0f} ticks/s, "
                          f"{res.orders} orders); loop thread CPU {res.loop_cpu:.0%}, "
                          f"5 ms sleep overshoot p99 {res.lag_p99_ms:.2f} ms; "
                          f"{load_line(res)}", flush=True)
    finally:
        stop.set()
        venue.join(5)
        shutil.rmtree(tmp, ignore_errors=True)
    return report(args, results)


def report(args: argparse.Namespace, results: dict[str, list[CaseResult]]) -> int:
    print(f"\nmedian over {args.repeat} run(s) of {args.seconds:g} s (window "
          f"{args.seconds - 0.7:g} s), tick latency = bar written by the venue -> runner done:")
    med: dict[str, dict[str, float]] = {}
    for case, runs in results.items():
        med[case] = {name: statistics.median(r.stat(q) for r in runs)
                     for name, q in (("p50", 0.5), ("p99", 0.99), ("max", 1.0))}
        rate = statistics.median(r.ticks_per_s for r in runs)
        answered = [sum(v for k, v in r.load["counts"].items() if k != "reconnects")
                    / r.load["seconds"] for r in runs if r.load is not None]
        refused = [sum(r.load["counts"].get(k, 0) for k in ("429", "503")) / r.load["seconds"]
                   for r in runs if r.load is not None]
        load = (f"{statistics.median(answered):7,.0f} req/s answered, "
                f"{statistics.median(refused):7,.0f}/s refused") if answered else "no load"
        print(f"  {case:<16} p50 {med[case]['p50']:6.3f}  p99 {med[case]['p99']:7.3f}  max "
              f"{med[case]['max']:8.3f} ms at {rate:7,.0f} ticks/s; {load}")
    for case, target, what in (("paced", PACED_TARGET_MS, f"at {args.paced_rate:g} req/s"),
                               ("saturation, on", SATURATED_TARGET_MS,
                                "under saturation with admission control")):
        if case in med:
            p99 = med[case]["p99"]
            print(f"target tick p99 <= {target:g} ms {what}: "
                  f"{'MET' if p99 <= target else 'NOT MET'} ({p99:.3f} ms)")
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=5.0, help="load per case (window: -0.7 s)")
    ap.add_argument("--warmup", type=float, default=1.5, help="trading before the load starts")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--symbols", type=int, default=10, help="assets, one feed task each")
    ap.add_argument("--rate", type=float, default=1000.0, help="bars per second per symbol")
    ap.add_argument("--fast", type=int, default=100, help="sma_crossover fast window")
    ap.add_argument("--slow", type=int, default=1000, help="sma_crossover slow window")
    ap.add_argument("--synchronous", choices=["OFF", "NORMAL", "FULL"], default="NORMAL")
    ap.add_argument("--paced-rate", type=float, default=300.0)
    ap.add_argument("--paced-addrs", type=int, default=8)
    ap.add_argument("--sat-conns", type=int, default=64)
    ap.add_argument("--sat-addrs", type=int, default=16)
    ap.add_argument("--max-concurrent", type=int, default=None,
                    help="api.max_concurrent_requests where admission is on (default: 64)")
    ap.add_argument("--per-turn", type=int, default=None,
                    help="api.requests_per_loop_turn where admission is on (default: 1)")
    ap.add_argument("--rate-limit", type=float, default=None,
                    help="api.rate_limit_per_second where admission is on (default: 50)")
    ap.add_argument("--cases", nargs="+", choices=CASES, default=list(CASES))
    args = ap.parse_args()
    try:
        import uvloop  # noqa: F401
        use_uvloop = True
    except ImportError:
        use_uvloop = False
    print(describe())
    print(f"event loop: {'uvloop' if use_uvloop else 'asyncio'}; {args.symbols} symbols x "
          f"{args.rate:g} bars/s = {args.symbols * args.rate:,.0f} ticks/s offered; sma_crossover "
          f"{args.fast}/{args.slow}, paper broker, SQLite synchronous={args.synchronous}; "
          f"{args.repeat} repeat(s) of {len(args.cases)} case(s); admission where on: "
          f"{admission('saturation, on', args) or 'defaults'}")
    return anyio.run(amain, args, backend_options={"use_uvloop": use_uvloop})


if __name__ == "__main__":
    sys.exit(main())
