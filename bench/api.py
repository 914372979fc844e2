"""The control API under load, on the engine's own loop while the engine trades.

Where it sits: the ``api`` core plugin (architecture §10) — uvicorn serving the FastAPI app
inside the engine's event loop (uvloop when installed, httptools when installed, as
``python -m lts.engine`` runs it). The engine runs in this process: ``Engine(settings).run()``
on a temporary SQLite file (WAL, ``synchronous=FULL``), the demo portfolio (id 1, owned by the
admin) trading two synthetic symbols with ``demo.interval`` (default here 0.02 s: ten times
the default pace, so fills are frequent), ``auth.bcrypt_rounds=4`` (logins are not measured),
the per-client rate limit off (all load comes from one address) and the per-turn read gate off
(``api.requests_per_loop_turn`` trades throughput for tick latency on purpose; bench/api_load.py
measures it; the concurrency bound stays at its default).
All traffic goes to 127.0.0.1.

(a) requests/s of an authenticated ``GET /api/v1/portfolios/1`` (admin's bearer token: JWT
    decode, session row read from the database, ownership check, pydantic response, the edge
    middleware with metrics, correlation id and security headers) against the baseline, a
    trivial FastAPI app (one ``GET /ok`` returning ``{"ok": true}``) served by a second uvicorn
    server with the same settings (same http implementation) on the same loop, so both share
    the trading engine's loop alike. The load comes from worker processes (spawned, so they
    never share the engine's loop): each holds ``--conns`` keep-alive connections and sends one
    request on each, then reads the answers (``conns`` requests in flight per process), for a
    fixed time. Cases alternate, ``--repeat`` times each; the figure is the median run; latency
    (send of a round -> its answer read) p50/p99 over the median run. Target: >= 60 % of the
    baseline. Event-loop lag during each case: a 5 ms probe task on the engine's loop
    (overshoot), plus the engine's own ``lts_event_loop_lag_seconds`` histogram (100 ms probe)
    scraped from ``/metrics`` before and after the authenticated runs.

(b) fill -> WebSocket delivery with ``--clients`` (100) connected clients subscribed to the demo
    portfolio (``{"action": "subscribe", "since": {"1": last seq}}``), in ``--ws-procs`` (4)
    spawned processes, each an asyncio loop of minimal hand-written WebSocket clients. A client
    stamps ``time.time_ns()`` as soon as the bytes arrive; the delay of an event carrying a fill
    (``order.filled``, with its ``fill``) is that stamp minus the fill's ``ts_event`` (the time of
    the bar the paper venue filled the order on: the engine's wall clock when the synthetic feed
    made it; same machine clock). An event goes out only once the journal has committed it, so
    the delay holds the bar's path to the runner, the fill, the commit (SQLite ``FULL``: an
    fsync) and the send. Only fills stamped inside the measuring window (after every client
    subscribed) count. Target: p99 < 20 ms.

    python bench/api.py [--seconds 4] [--repeat 3] [--procs 1] [--conns 8]
                        [--clients 100] [--ws-procs 4] [--ws-seconds 20] [--interval 0.02]
                        [--only http|ws]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing as mp
import shutil
import socket
import statistics
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import anyio
import anyio.to_thread
import uvicorn
from fastapi import FastAPI
from machine import describe
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import func, select

from lts.engine.engine import Engine
from lts.persistence.tables import order_events
from lts.settings import load_settings

ADMIN_PASSWORD = "Adm1n-pass-word"  # a throwaway bench database
DEMO_PORTFOLIO = 1
HTTP_TARGET = 0.60
WS_P99_TARGET_MS = 20.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


# -- load generator (runs in a spawned process) -------------------------------------------------

class _Conn:
    """A keep-alive HTTP/1.1 connection reading Content-Length framed answers."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""

    def read_status(self) -> int:
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
        self.buf = self.buf[total:]
        return int(head.split(" ", 2)[1])

    def _fill(self) -> None:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError("server closed the connection")
        self.buf += chunk


def http_load(port: int, path: str, headers: dict[str, str], conns: int, start_at: float,
              seconds: float) -> tuple[int, int, list[float]]:
    """From wall time ``start_at`` for ``seconds``: rounds of one request per connection.
    Returns (answers 200, other answers, latencies in seconds)."""
    request = (f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
               + "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n").encode()
    sockets = [_Conn(port) for _ in range(conns)]
    ok = bad = 0
    latencies: list[float] = []
    clock = time.perf_counter
    time.sleep(max(0.0, start_at - time.time()))
    end = clock() + seconds
    while clock() < end:
        sent = clock()
        for conn in sockets:
            conn.sock.sendall(request)
        for conn in sockets:
            if conn.read_status() == 200:
                ok += 1
            else:
                bad += 1
            latencies.append(clock() - sent)
    for conn in sockets:
        conn.sock.close()
    return ok, bad, latencies


# -- WebSocket clients (run in a spawned process) -----------------------------------------------

def ws_clients(url: str, token: str, clients: int, since: int, start_ns: int,
               end_ns: int) -> dict[str, Any]:
    try:
        import uvloop
        return uvloop.run(_ws_clients(url, token, clients, since, start_ns, end_ns))
    except ImportError:
        return asyncio.run(_ws_clients(url, token, clients, since, start_ns, end_ns))


class _LightClient(asyncio.Protocol):
    """A WebSocket client as light as it gets (RFC 6455 by hand: handshake, masked client
    frames, unmasked server frames, pong), so the 25 clients sharing a process cost little and
    their stamps say when the bytes arrived. Fills count from the moment this client's
    subscription (and its replay) is done, inside the window."""

    def __init__(self, host: str, path: str, token: str, since: int, start_ns: int,
                 end_ns: int, out: dict[str, Any], done: asyncio.Future[None]) -> None:
        import msgspec
        self.decode = msgspec.json.decode
        self.host, self.path, self.token, self.since = host, path, token, since
        self.start_ns, self.end_ns, self.out, self.done = start_ns, end_ns, out, done
        self.buf = b""
        self.open = False
        self.counting_from: int | None = None
        self.transport: Any = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        import base64
        import os
        self.transport = transport  # uvloop's transport is no asyncio.Transport subclass
        key = base64.b64encode(os.urandom(16)).decode()
        transport.write((f"GET {self.path} HTTP/1.1\r\nHost: {self.host}\r\n"
                         "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                         f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n")
                        .encode())

    def _send(self, opcode: int, payload: bytes) -> None:
        import os
        mask = os.urandom(4)
        n = len(payload)
        head = bytes([0x80 | opcode]) + (bytes([0x80 | n]) if n < 126
                                         else bytes([0x80 | 126]) + n.to_bytes(2, "big"))
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.transport.write(head + mask + masked)

    def data_received(self, data: bytes) -> None:
        now = time.time_ns()
        self.buf += data
        if not self.open:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            if b" 101 " not in self.buf[:end]:
                self.out["errors"] += 1
                self._finish()
                return
            self.open, self.buf = True, self.buf[end + 4:]
            self._send(1, json.dumps({"action": "auth", "token": self.token}).encode())
            self._send(1, json.dumps({"action": "subscribe",
                                      "since": {str(DEMO_PORTFOLIO): self.since}}).encode())
        while len(self.buf) >= 2:
            opcode, n, at = self.buf[0] & 0x0F, self.buf[1] & 0x7F, 2
            if n == 126:
                n, at = int.from_bytes(self.buf[2:4], "big"), 4
            elif n == 127:
                n, at = int.from_bytes(self.buf[2:10], "big"), 10
            if len(self.buf) < at + n:
                return
            payload, self.buf = self.buf[at:at + n], self.buf[at + n:]
            if opcode == 9:
                self._send(10, payload)
            elif opcode == 8:
                self.out["closed_early"] += 1
                if len(payload) >= 2:
                    self.out["close_codes"].append(int.from_bytes(payload[:2], "big"))
                self._finish()
                return
            elif opcode == 1:
                self._message(self.decode(payload), now)

    def _message(self, msg: dict[str, Any], now: int) -> None:
        if msg.get("type") == "subscribed":
            self.out["subscribed"] += 1
            self.counting_from = max(self.start_ns, now)
            return
        if self.counting_from is None:
            return
        fill = msg.get("fill")
        ts = fill["ts_event"] if fill is not None else msg.get("ts_event", 0)
        if ts >= self.counting_from:
            self.out["events"] += 1
            if fill is not None:
                self.out["fills"] += 1
                self.out["delays"].append((now - ts) / 1e6)

    def connection_lost(self, exc: Exception | None) -> None:
        self._finish()

    def _finish(self) -> None:
        if not self.done.done():
            self.done.set_result(None)
        if self.transport is not None:
            self.transport.close()


async def _ws_clients(url: str, token: str, clients: int, since: int, start_ns: int,
                      end_ns: int) -> dict[str, Any]:
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    out: dict[str, Any] = {"subscribed": 0, "events": 0, "fills": 0, "closed_early": 0,
                           "errors": 0, "delays": [], "close_codes": []}
    loop = asyncio.get_running_loop()
    done: list[asyncio.Future[None]] = []
    for _ in range(clients):
        finished: asyncio.Future[None] = loop.create_future()
        done.append(finished)
        try:
            await loop.create_connection(
                lambda f=finished: _LightClient(f"{host}:{port}", parts.path, token, since,
                                                start_ns, end_ns, out, f), host, port)
        except OSError:
            out["errors"] += 1
            finished.set_result(None)
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(max(0.0, (end_ns - time.time_ns()) / 1e9)):
            await asyncio.gather(*done)
    counts = {k: out[k] for k in ("subscribed", "events", "fills", "closed_early", "errors")}
    return {"delays": out["delays"], "counts": counts, "close_codes": out["close_codes"]}


# -- in the engine's process --------------------------------------------------------------------

class LagProbe:
    """A task on the engine's loop sleeping ``period``; its overshoot, per phase."""

    def __init__(self, period: float = 0.005) -> None:
        self.period = period
        self.phase = "idle"
        self.samples: dict[str, list[float]] = {}

    async def run(self) -> None:
        clock = time.perf_counter
        while True:
            started = clock()
            await anyio.sleep(self.period)
            lag = max(0.0, clock() - started - self.period)
            self.samples.setdefault(self.phase, []).append(lag)

    def line(self, phase: str) -> str:
        got = self.samples.get(phase, [])
        ms = [x * 1000 for x in got]
        return (f"p50 {pct(ms, 0.5):6.2f}  p99 {pct(ms, 0.99):6.2f}  max {max(ms, default=0):7.2f}"
                f" ms ({len(ms):,} samples)")


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


def fetch(url: str, body: dict[str, Any] | None = None,
          headers: dict[str, str] | None = None) -> bytes:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, headers={"content-type": "application/json",
                                                          **(headers or {})})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return bytes(resp.read())


async def scrape(base: str) -> str:
    """``/metrics`` of the engine, fetched from a worker thread (the server is on this loop)."""
    return (await anyio.to_thread.run_sync(fetch, base + "/metrics")).decode()


def lag_histogram(text: str) -> dict[float, float]:
    """Cumulative bucket counts of ``lts_event_loop_lag_seconds``."""
    buckets: dict[float, float] = {}
    for family in text_string_to_metric_families(text):
        if family.name == "lts_event_loop_lag_seconds":
            for sample in family.samples:
                if sample.name.endswith("_bucket"):
                    buckets[float(sample.labels["le"])] = sample.value
    return buckets


def histogram_p99(before: dict[float, float], after: dict[float, float]) -> str:
    delta = {le: after.get(le, 0) - before.get(le, 0) for le in sorted(after)}
    total = delta.get(float("inf"), 0)
    if not total:
        return "no samples"
    for le, count in delta.items():
        if count >= 0.99 * total:
            bound = "> 1 s" if le == float("inf") else f"<= {le * 1000:g} ms"
            return f"p99 {bound} ({int(total)} samples of the 100 ms probe)"
    return "?"


async def run_http_case(pool: ProcessPoolExecutor, args: argparse.Namespace, port: int,
                        path: str, headers: dict[str, str], seconds: float
                        ) -> tuple[float, int, list[float]]:
    start_at = time.time() + 0.3
    futures = [pool.submit(http_load, port, path, headers, args.conns, start_at, seconds)
               for _ in range(args.procs)]
    results = await anyio.to_thread.run_sync(lambda: [f.result() for f in futures])
    ok = sum(r[0] for r in results)
    bad = sum(r[1] for r in results)
    latencies = [x for r in results for x in r[2]]
    return ok / seconds, bad, latencies


async def bench_http(args: argparse.Namespace, base: str, trivial_port: int, api_port: int,
                     token: str, probe: LagProbe) -> bool:
    auth = {"authorization": f"Bearer {token}"}
    cases: dict[str, tuple[int, str, dict[str, str]]] = {
        "trivial GET /ok (baseline)": (trivial_port, "/ok", {}),
        f"GET /api/v1/portfolios/{DEMO_PORTFOLIO} (auth)": (
            api_port, f"/api/v1/portfolios/{DEMO_PORTFOLIO}", auth),
    }
    ctx = mp.get_context("spawn")
    runs: dict[str, list[tuple[float, list[float]]]] = {name: [] for name in cases}
    with ProcessPoolExecutor(max_workers=args.procs, mp_context=ctx) as pool:
        for port, path, headers in cases.values():  # warm-up: processes, caches
            probe.phase = "warm-up"
            await run_http_case(pool, args, port, path, headers, 1.0)
        scrape_before = lag_histogram(await scrape(base))
        for _ in range(args.repeat):
            for name, (port, path, headers) in cases.items():
                probe.phase = name
                rate, bad, latencies = await run_http_case(pool, args, port, path, headers,
                                                           args.seconds)
                probe.phase = "between"
                if bad:
                    print(f"  !! {name}: {bad} answers were not 200")
                runs[name].append((rate, latencies))
                await anyio.sleep(0.3)
        scrape_after = lag_histogram(await scrape(base))
    print(f"\n(a) requests/s: {args.procs} load process(es) x {args.conns} keep-alive "
          f"connection(s), {args.seconds:g} s per run, {args.repeat} runs per case "
          f"(alternating); http={http_impl()}")
    medians: dict[str, float] = {}
    for name, got in runs.items():
        rates = [r for r, _ in got]
        median = statistics.median(rates)
        medians[name] = median
        _, lat = min(got, key=lambda r: abs(r[0] - median))
        ms = [x * 1000 for x in lat]
        print(f"  {name:<38} median {median:8,.0f} req/s  (runs: "
              f"{', '.join(f'{r:,.0f}' for r in rates)});  latency p50 {pct(ms, 0.5):5.2f}"
              f"  p99 {pct(ms, 0.99):5.2f} ms")
    base_rate, api_rate = medians.values()
    ratio = api_rate / base_rate
    print("  engine loop lag (5 ms probe) during each case:")
    for name in runs:
        print(f"    {name:<38} {probe.line(name)}")
    print(f"  engine's lts_event_loop_lag_seconds over the measured runs: "
          f"{histogram_p99(scrape_before, scrape_after)}")
    met = ratio >= HTTP_TARGET
    print(f"  authenticated / trivial = {ratio:.0%}  (target >= {HTTP_TARGET:.0%}): "
          f"{'MET' if met else 'NOT MET'}")
    return met


async def bench_ws(args: argparse.Namespace, engine: Engine, ws_url: str, token: str,
                   probe: LagProbe) -> bool:
    await engine.journal.flush()
    async with engine.db.connect() as conn:
        since = int((await conn.execute(select(func.coalesce(func.max(order_events.c.seq), 0))
                                        .where(order_events.c.portfolio_id == DEMO_PORTFOLIO))
                     ).scalar_one())
    per_proc = [args.clients // args.ws_procs + (i < args.clients % args.ws_procs)
                for i in range(args.ws_procs)]
    start_ns = time.time_ns() + int(args.ws_settle * 1e9)
    end_ns = start_ns + int(args.ws_seconds * 1e9)
    probe.phase = "ws connect"
    ctx = mp.get_context("spawn")
    with ProcessPoolExecutor(max_workers=args.ws_procs, mp_context=ctx) as pool:
        futures = [pool.submit(ws_clients, ws_url, token, n, since, start_ns, end_ns)
                   for n in per_proc]

        async def mark_window() -> None:
            await anyio.sleep(max(0.0, (start_ns - time.time_ns()) / 1e9))
            probe.phase = "ws window"

        async with anyio.create_task_group() as tg:
            tg.start_soon(mark_window)
            results = await anyio.to_thread.run_sync(lambda: [f.result() for f in futures])
    probe.phase = "after"
    delays = [d for r in results for d in r["delays"]]
    counts = {k: sum(r["counts"][k] for r in results) for k in results[0]["counts"]}
    codes = sorted({c for r in results for c in r["close_codes"]})
    print(f"\n(b) fill -> WebSocket delivery: {args.clients} clients in {args.ws_procs} spawned "
          f"processes, all subscribed to portfolio {DEMO_PORTFOLIO} (demo.interval "
          f"{args.interval:g} s), {args.ws_seconds:g} s window after {args.ws_settle:g} s "
          f"to connect")
    print(f"  clients subscribed {counts['subscribed']}/{args.clients}; closed early "
          f"{counts['closed_early']} {codes or ''}; errors {counts['errors']}; events received "
          f"{counts['events']:,} of which fills {counts['fills']:,} "
          f"({counts['fills'] / max(1, args.clients):.1f} per client)")
    p99 = pct(delays, 0.99)
    print(f"  delay fill ts_event -> client recv: p50 {pct(delays, 0.5):.2f}  p90 "
          f"{pct(delays, 0.9):.2f}  p99 {p99:.2f}  max {max(delays, default=0):.2f} ms "
          f"({len(delays):,} deliveries)")
    print(f"  engine loop lag (5 ms probe) during the window: {probe.line('ws window')}")
    met = bool(delays) and counts["subscribed"] == args.clients and p99 < WS_P99_TARGET_MS
    print(f"  p99 < {WS_P99_TARGET_MS:g} ms with every client subscribed: "
          f"{'MET' if met else 'NOT MET'}")
    return met


async def main_async(args: argparse.Namespace) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="lts-bench-api-"))
    api_port, trivial_port = free_port(), free_port()
    settings = load_settings(overrides={
        "admin_password": ADMIN_PASSWORD,
        "log_level": "WARNING",
        "database": {"url": f"sqlite+aiosqlite:///{tmp / 'lts.db'}"},
        # all the load comes from one address: the per-client rate limit would answer 429; and
        # this measures what a request costs, not admission: the per-turn read gate (which
        # gives trading its turns at some cost in throughput: bench/api_load.py) is off too
        "api": {"port": api_port, "rate_limit_per_second": 0, "requests_per_loop_turn": 0},
        "auth": {"bcrypt_rounds": 4},
        "demo": {"interval": args.interval},
    })
    engine = Engine(settings)
    probe = LagProbe()
    results: list[bool] = []
    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(probe.run)
            await anyio.sleep(1.0)  # baseline: the loop before the engine
            probe.phase = "start-up"
            stopped = anyio.Event()

            async def run_engine() -> None:
                try:
                    await engine.run()
                finally:
                    stopped.set()

            tg.start_soon(run_engine)
            with anyio.fail_after(30):
                await engine.started.wait()
            config = uvicorn.Config(trivial_app(), host="127.0.0.1", port=trivial_port,
                                    lifespan="off", log_config=None, access_log=False,
                                    http=http_impl(), server_header=False)
            trivial = _QuietServer(config)
            tg.start_soon(trivial.serve)
            while not trivial.started:  # noqa: ASYNC110 - uvicorn offers a flag
                await anyio.sleep(0.01)
            base = f"http://127.0.0.1:{api_port}"
            login: Callable[[], bytes] = lambda: fetch(  # noqa: E731
                base + "/api/v1/auth/login", {"username": "admin", "password": ADMIN_PASSWORD})
            token = json.loads(await anyio.to_thread.run_sync(login))["access_token"]
            probe.phase = "trading, no load"
            await anyio.sleep(2.0)
            print(f"engine: demo portfolio trading, API on {base}, trivial app on "
                  f"127.0.0.1:{trivial_port}; loop lag (5 ms probe) idle before the engine: "
                  f"{probe.line('idle')}; trading without load: "
                  f"{probe.line('trading, no load')}")
            if args.only in (None, "http"):
                results.append(await bench_http(args, base, trivial_port, api_port, token,
                                                probe))
            if args.only in (None, "ws"):
                results.append(await bench_ws(args, engine,
                                              base.replace("http", "ws") + "/ws/orders",
                                              token, probe))
            trivial.should_exit = True
            engine.stop()
            with anyio.move_on_after(10):
                await stopped.wait()
            tg.cancel_scope.cancel()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print("\ntargets: " + ", ".join(f"{'MET' if met else 'NOT MET'}" for met in results))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=4.0, help="per HTTP run")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--procs", type=int, default=1, help="HTTP load processes")
    parser.add_argument("--conns", type=int, default=8, help="connections per load process")
    parser.add_argument("--clients", type=int, default=100, help="WebSocket clients")
    parser.add_argument("--ws-procs", type=int, default=4)
    parser.add_argument("--ws-seconds", type=float, default=20.0)
    parser.add_argument("--ws-settle", type=float, default=4.0,
                        help="seconds for the clients to connect before the window")
    parser.add_argument("--interval", type=float, default=0.02, help="demo bar interval")
    parser.add_argument("--only", choices=["http", "ws"], help="run one part only")
    args = parser.parse_args()
    print(describe())
    try:
        import uvloop  # noqa: F401
        use_uvloop = True
    except ImportError:
        use_uvloop = False
    print(f"event loop: {'uvloop' if use_uvloop else 'asyncio'}; http: {http_impl()}")
    started = time.perf_counter()
    anyio.run(main_async, args, backend_options={"use_uvloop": use_uvloop})
    print(f"total run time {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
