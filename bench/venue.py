"""LTS trading through ccxt on the local exchange: order round trip, WebSocket drop to resync,
sustained orders/s under the venue's rate limit, and the venue's own capacity.

Where it sits: the ``ccxt`` broker plugin (lts/plugins/broker/ccxt_broker.py) against the local
exchange (``python -m lts.engine venue``, lts/venue), which speaks Binance spot's REST and
WebSocket protocols on 127.0.0.1. Nothing connects anywhere else. Each venue runs as a
subprocess on a free port (``--port 0``), killed at the end, on error too.

The engine runs in this process as ``python -m lts.engine`` runs it: ``Engine(settings).run()``
(uvloop when installed), a temporary SQLite database (WAL, ``synchronous=FULL``: an order's
write-ahead row is on disk before the venue sees it), the API off, the engine's log set-up
(INFO, to a file). The owner's keys (the venue's published defaults) are sealed in the
credential store under a fresh master key. Every portfolio has one asset, a bench strategy that
never signals (orders come from the bench through ``engine.facade.command``) and risk overrides
allowing the bench's orders (``max_open_orders``, no ``max_orders_per_second``).

Portfolios (those the chosen figures need):
  ccxt      BTC/USDT, broker ``ccxt`` (binance) on venue A (its defaults: weight limit 6,000
            per minute, LTS's budget at its default 80%: 4,800), feed ``ccxt`` (the venue's
            1-second klines over its WebSocket)
  ccxt 1ms  the same with the broker param ``rate_limit_ms=1`` (ccxt's throttle, below)
  paper     PAPER-0, broker ``paper``, feed ``synthetic`` (1 bar/s): the same LTS path without
            a venue (the order placed in line once its write-ahead row is durable)
  rate      BTC/USDT, broker ``ccxt`` on venue B (``--fault weight_limit=--weight-limit``),
            LTS's budget ``weight_per_minute`` = ``--weight-share`` of that limit, feed from B

ccxt's own throttle (``enableRateLimit``, on in LTS and by default in ccxt) waits, before each
call, the call's cost times ``rateLimit`` (binance: 50 ms; an order or a cancel costs 0.2, so
10 ms), whether or not the client was idle: ccxt 4.5.90's leaky bucket starts each busy spell
with the tokens the last call left and credits no idle time. At ccxt's defaults that wait is
most of an order's round trip on 127.0.0.1, so figure 1 shows both: ccxt's defaults, and its
throttle at 1 ms (LTS: ``rate_limit_ms=1``; bare: ``rateLimit=1``), where the round trips
themselves are compared.

1. Order round trip (submit -> acknowledged by the venue), per round the five cases in a
   random order (seeded), ``--gap-ms`` idle before each: every case a resting GTC limit buy,
   quantity 1, at ``--below`` of the last price (never fills); then all of them canceled
   together (not timed). ``--warmup`` rounds first, not counted. The venue has one account:
   every ccxt portfolio's user stream also carries the other clients' reports (parsed on the
   engine's loop, then ignored: not its orders), as with one Binance account shared.
     LTS ccxt[ 1ms]  ``facade.command(SubmitOrder)``, timed to two points:
                ``acknowledged``: the runner hands the order's ACCEPTED to the portfolio's
                strategy (``on_order`` of the bench's strategy, which stamps it): the venue's
                answer has been taken by the order manager, and the trading logic can act on
                it. This is the figure the target is judged on.
                ``event out``: the committed ``OrderAccepted`` event reaches a subscriber
                (``facade.subscribe_events``, stamped as the bus delivers it): what the API and
                the WebSocket show, one commit (fsync) after ``acknowledged``, as only durable
                events go out.
                The command's own answer comes earlier: for a non-simulated broker the order
                manager answers once the write-ahead row is durable and the venue call is
                dispatched (lts/engine/order_manager.py ``_send``); its time is shown too.
                Path: inbox, risk, write-ahead commit (fsync), the venue call (ccxt: throttle,
                sign, HTTP POST /api/v3/order, parse), its outcome back through the inbox (or
                the user stream's NEW report, whichever is first), ACCEPTED (acknowledged), its
                event's commit (fsync; event out).
     bare ccxt[ 1ms]  ``ccxt.async_support.binance`` with the venue's URLs, ``create_order``
                with a ``newClientOrderId``: the venue's round trip through ccxt, nothing else.
                Same event loop as the engine.
     LTS paper  the same command and event on the paper portfolio: LTS's part without a venue
                (two commits: the write-ahead row, then the ACCEPTED event).
   Also printed: the journal's commit times during the timed part (``facade.observe``).
2. WebSocket drop -> resync: ``--resting`` orders resting on each ccxt portfolio of venue A
   (``ccxt`` and ``ccxt 1ms``); ``--drops`` times: ``POST /admin/faults {"ws_drop": true}``
   (every WebSocket of the venue closed: both portfolios' streams and feeds), then each one's
   ``facade.state(pid).venues`` polled every 1 ms: the time until it is a text (LTS noticed)
   and until it is None again (streams back, each open order and the fills since re-read:
   fresh). The broker waits 0.25 s before its first reconnect (its back-off's start): the
   figure's floor; the resync's queries go through ccxt's throttle. ``--settle`` s between
   drops, once both are fresh.
3. Sustained orders/s under the venue's rate limit: ``--inflight`` loops on the rate portfolio,
   each placing a resting limit buy, waiting for its ``OrderAccepted``, canceling it and waiting
   for ``OrderCanceled``, for ``--sustain`` seconds (default 65: LTS's budget and the venue's
   count are per calendar minute, so a sustained rate needs one whole minute; a window of 60 s
   or more starts at the next calendar minute, waited for idle). Each order costs 2 weight
   (POST and DELETE /api/v3/order), so the budget's ceiling is weight_per_minute / 2 per minute.
   Printed: orders acknowledged per second over the first whole calendar minute and over the
   window, the peak ``X-MBX-USED-WEIGHT-1M`` the venue sent LTS's broker (sampled every 5 ms)
   against the limit, 429/418 answers (LTS's broker logs each), orders gone UNKNOWN (once the
   minute's budget is spent, LTS holds a submit until the next minute, longer than the order
   manager's acknowledgement timeout, 10 s: the order goes UNKNOWN, then ACCEPTED when sent).
4. The venue's capacity: (a) ``Exchange.place`` of ``--capacity-orders`` market orders in
   process against a bar of ample liquidity; (b) over HTTP: venue C (weight limit lifted:
   ``--fault weight_limit=100000000``), ``--clients`` aiohttp clients in this process, each one
   keep-alive connection, posting signed market orders for ``--http-seconds`` (after 1 s of
   warm-up, 0.5 s with ``--quick``); the CPU each side used during it (2 processes);
   (c) ``GET /api/v3/ping`` over one keep-alive connection to venue C after (b): the venue's
   floor for one request.

    python bench/venue.py [--quick] [--only roundtrip|resync|sustained|capacity ...]
                          [--orders 200] [--drops 20] [--sustain 65] [--weight-limit 1200]
                          [--weight-share 0.8] [--inflight 2] [--capacity-orders 20000]
                          [--clients 16] [--http-seconds 5]

``--quick``: a ~30 s smoke run (30 orders per case, 4 drops, an 8 s window that cannot show a
sustained rate, fewer capacity samples). The default run takes 2.5 to 3 minutes: figure 3 waits
(0 to 60 s) for a calendar minute, then runs 65 s.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import random
import shutil
import sys
import tempfile
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from decimal import ROUND_FLOOR, Decimal
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import aiohttp
import anyio
import anyio.to_thread
from machine import describe
from scale import EngineLog
from venue_capacity import http_capacity, in_process_capacity
from venue_proc import DEFAULT_KEY, DEFAULT_SECRET, VenueProcess, wall_minute_left

from lts.bus import Mailbox
from lts.bus.mailbox import Overflow
from lts.domain.commands import Accepted, CancelOrder, Denied, SubmitOrder
from lts.domain.events import OrderAccepted, OrderEvent
from lts.domain.orders import OrderRequest, OrderType, Side, TimeInForce
from lts.domain.portfolio_spec import AssetSpec, PortfolioSpec
from lts.engine.engine import Engine
from lts.engine.supervisor import PortfolioStatus
from lts.persistence import repositories as repo
from lts.persistence.credentials import BrokerCredentials, CredentialStore
from lts.persistence.db import make_engine
from lts.persistence.keyring import Keyring, new_key_entry
from lts.persistence.migrations import upgrade_to_head
from lts.plugins.aaa.passwords import hash_password
from lts.plugins.registry import Registry
from lts.plugins.strategy.base import TradingStrategy
from lts.settings import load_settings

FIGURES = ("roundtrip", "resync", "sustained", "capacity")
BTC = "BTC/USDT"
PAPER = "PAPER-0"
TICK = Decimal("0.01")
#: the events that settle a submit (acknowledged, or not)
SETTLED = frozenset({"OrderAccepted", "OrderRejected", "OrderUnknown", "OrderCanceled",
                     "OrderFilled", "OrderExpired", "OrderDenied"})
CLOSED = frozenset({"OrderCanceled", "OrderFilled", "OrderExpired", "OrderRejected"})
perf_ns = time.perf_counter_ns


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def summary(values: list[float], unit: str, scale: float = 1.0, fmt: str = "8.1f") -> str:
    v = [x * scale for x in values]
    return (f"p50 {pct(v, 0.5):{fmt}}  p90 {pct(v, 0.9):{fmt}}  p99 {pct(v, 0.99):{fmt}}  "
            f"max {max(v, default=float('nan')):{fmt}} {unit} ({len(v):,} samples)")


#: client order id -> perf_counter ns at which the portfolio's strategy was told ACCEPTED
HANDED: dict[str, int] = {}


class Quiet(TradingStrategy):
    """Strategy ``bench_quiet``: orders nothing (the orders come from the bench); stamps the
    moment the runner hands it an order's ACCEPTED (``on_order``: the venue's acknowledgement
    taken by the order manager, before the event's commit)."""

    plugin_name = "bench_quiet"

    def on_order(self, event: OrderEvent) -> None:
        if type(event) is OrderAccepted:
            HANDED.setdefault(event.client_order_id, perf_ns())


class EventClock(Mailbox[Any]):
    """The bench's portfolios' committed order events, stamped (perf_counter ns) as the bus
    delivers them; a waiter per client order id."""

    def __init__(self) -> None:
        super().__init__(1, Overflow.BLOCK, name="bench-venue")
        self.seen: dict[str, list[tuple[str, int]]] = defaultdict(list)
        self.waiting: dict[str, tuple[frozenset[str], asyncio.Future[tuple[str, int]]]] = {}
        self.counts: Counter[str] = Counter()

    def put_nowait(self, item: Any) -> None:
        now = perf_ns()
        kind = type(item).__name__
        self.counts[kind] += 1
        coid = item.client_order_id
        self.seen[coid].append((kind, now))
        waiter = self.waiting.get(coid)
        if waiter is not None and kind in waiter[0]:
            del self.waiting[coid]
            if not waiter[1].done():
                waiter[1].set_result((kind, now))

    async def put(self, item: Any) -> None:
        self.put_nowait(item)

    async def put_batch(self, items: Any) -> None:
        for item in items:
            self.put_nowait(item)

    async def wait(self, coid: str, kinds: frozenset[str],
                   within: float) -> tuple[str, int] | None:
        """The first event of ``coid`` among ``kinds`` (seen already, or within ``within`` s)."""
        for kind, at in self.seen.get(coid, ()):
            if kind in kinds:
                return kind, at
        future: asyncio.Future[tuple[str, int]] = asyncio.get_running_loop().create_future()
        self.waiting[coid] = (kinds, future)
        try:
            return await asyncio.wait_for(future, within)
        except TimeoutError:
            self.waiting.pop(coid, None)
            return None

    def kinds(self, coid: str) -> list[str]:
        return [k for k, _ in self.seen.get(coid, ())]


class LogCount(logging.Handler):
    """Counts the ccxt broker's records that say the venue refused for weight (429) or banned."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.counts: Counter[str] = Counter()

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage()
        if "429" in text or "rate limited" in text:
            self.counts["429 (rate limited)"] += 1
        elif "banned" in text or "418" in text:
            self.counts["418 (banned)"] += 1


@dataclass
class Portfolios:
    ccxt: int | None = None
    fast: int | None = None  # ccxt, its throttle at 1 ms
    paper: int | None = None
    rate: int | None = None

    def all(self) -> list[int]:
        return [p for p in (self.ccxt, self.fast, self.paper, self.rate) if p is not None]


@dataclass
class Commits:
    """Journal commits (seconds, records) by phase (``facade.observe``)."""

    phase: str = "start-up"
    by_phase: dict[str, list[tuple[float, int]]] = field(default_factory=dict)

    def __call__(self, seconds: float, records: int) -> None:
        self.by_phase.setdefault(self.phase, []).append((seconds, records))


# -- set-up ---------------------------------------------------------------------------------------

def ccxt_asset(venue: VenueProcess, weight_per_minute: int | None = None,
               rate_limit_ms: int | None = None) -> AssetSpec:
    broker: dict[str, Any] = {"exchange": "binance", "urls": venue.urls()}
    if weight_per_minute is not None:
        broker["weight_per_minute"] = weight_per_minute
    if rate_limit_ms is not None:
        broker["rate_limit_ms"] = rate_limit_ms
    return AssetSpec(
        symbol=BTC, strategy_plugin="bench_quiet", broker_plugin="ccxt", broker_params=broker,
        pipeline_plugin="ccxt", pipeline_params={
            "exchange": "binance", "timeframe": "1s", "backfill": 5,
            "urls": venue.urls(private=False)})


async def make_database(url: str, master_key: str, venues: dict[str, VenueProcess],
                        args: argparse.Namespace, wanted: set[str]) -> Portfolios:
    await upgrade_to_head(url)
    db = make_engine(url)
    made = Portfolios()
    risk = {"max_open_orders": 10_000, "max_orders_per_second": None}
    try:
        hashed = await anyio.to_thread.run_sync(hash_password, "Bench-pass-word-1", 4)
        owner = await repo.create_user(db, "bench", hashed, "admin")
        await CredentialStore(db, Keyring.parse(master_key)).put(
            owner, "binance", BrokerCredentials(DEFAULT_KEY, DEFAULT_SECRET))
        cash = Decimal(10_000_000)
        if wanted & {"roundtrip", "resync"}:
            made.ccxt = await repo.create_portfolio(db, PortfolioSpec(
                name="ccxt", initial_cash=cash, owner_id=owner, risk_params=risk,
                assets=(ccxt_asset(venues["A"]),)))
            made.fast = await repo.create_portfolio(db, PortfolioSpec(
                name="ccxt-1ms", initial_cash=cash, owner_id=owner, risk_params=risk,
                assets=(ccxt_asset(venues["A"], rate_limit_ms=1),)))
        if "roundtrip" in wanted:
            made.paper = await repo.create_portfolio(db, PortfolioSpec(
                name="paper", initial_cash=cash, owner_id=owner, risk_params=risk,
                assets=(AssetSpec(
                    symbol=PAPER, strategy_plugin="bench_quiet", broker_plugin="paper",
                    pipeline_plugin="synthetic",
                    pipeline_params={"seed": 7, "interval": 1.0, "volatility": 0.001}),)))
        if "sustained" in wanted:
            made.rate = await repo.create_portfolio(db, PortfolioSpec(
                name="rate", initial_cash=cash, owner_id=owner, risk_params=risk,
                assets=(ccxt_asset(venues["B"], budget(args)),)))
        return made
    finally:
        await db.dispose()


def budget(args: argparse.Namespace) -> int:
    return int(args.weight_limit * args.weight_share)


# -- the bench ------------------------------------------------------------------------------------

class Bench:
    def __init__(self, engine: Engine, pids: Portfolios, venues: dict[str, VenueProcess],
                 session: aiohttp.ClientSession, args: argparse.Namespace,
                 commits: Commits) -> None:
        self.engine = engine
        self.facade = engine.facade
        self.pids = pids
        self.venues = venues
        self.session = session
        self.args = args
        self.commits = commits
        self.events = EventClock()
        for pid in pids.all():
            self.facade.subscribe_events(self.events, pid)

    def limit_price(self, pid: int, symbol: str) -> Decimal:
        last = self.facade.last_prices(pid)[symbol]
        return (last * Decimal(str(self.args.below))).quantize(TICK, ROUND_FLOOR)

    def broker_client(self, pid: int) -> Any:
        """The ccxt broker's client (its last answer's headers, its budget)."""
        return self.engine.runner_of(pid).brokers[BTC]._client

    async def submit(self, pid: int, symbol: str, price: Decimal,
                     settled: frozenset[str] = SETTLED,
                     within: float = 30.0) -> tuple[str | None, float, float | None, str]:
        """A resting limit buy: (client order id, µs to the command's answer, µs to the
        settling event or None, what settled it). When it was accepted, ``HANDED`` has when
        the portfolio's strategy was told."""
        t0 = perf_ns()
        reply = await self.facade.command(pid, SubmitOrder(OrderRequest(
            symbol, Side.BUY, Decimal(1), OrderType.LIMIT, TimeInForce.GTC, price,
            tag="bench")))
        answered = (perf_ns() - t0) / 1e3
        if isinstance(reply, Denied) or not isinstance(reply, Accepted) or reply.order is None:
            why = reply.reason.value if isinstance(reply, Denied) else "no order"
            return None, answered, None, f"denied {why}"
        coid = reply.order.client_order_id
        got = await self.events.wait(coid, settled, within)
        if got is None:
            return coid, answered, None, f"no event in {within:.0f} s"
        kind, at = got
        return coid, answered, (at - t0) / 1e3, kind

    async def cancel(self, pid: int, coid: str, within: float = 30.0) -> str:
        reply = await self.facade.command(pid, CancelOrder(coid))
        if isinstance(reply, Denied):
            return f"cancel denied {reply.reason.value}"
        got = await self.events.wait(coid, CLOSED, within)
        return got[0] if got is not None else f"no close in {within:.0f} s"

    # -- 1 ----------------------------------------------------------------------------------------
    async def round_trip(self) -> None:
        import ccxt.async_support as ccxt_async  # type: ignore[import-untyped]

        args, pids = self.args, self.pids
        assert pids.ccxt is not None
        assert pids.fast is not None
        assert pids.paper is not None
        bares: dict[str, Any] = {}
        for case, extra in (("bare ccxt", {}), ("bare ccxt 1ms", {"rateLimit": 1})):
            bare = ccxt_async.binance({
                "apiKey": DEFAULT_KEY, "secret": DEFAULT_SECRET, **extra,
                "options": {"fetchMarkets": {"types": ["spot"]}, "fetchCurrencies": False,
                            "fetchMargins": False}})
            bare.urls["api"]["public"] = bare.urls["api"]["private"] = self.venues["A"].api
            bares[case] = bare
        lts = {"LTS ccxt": (pids.ccxt, BTC), "LTS ccxt 1ms": (pids.fast, BTC),
               "LTS paper": (pids.paper, PAPER)}
        cases = ("LTS ccxt", "bare ccxt", "LTS ccxt 1ms", "bare ccxt 1ms", "LTS paper")
        lat: dict[str, list[float]] = {c: [] for c in cases}
        answer: dict[str, list[float]] = {c: [] for c in lts}
        after: dict[str, list[float]] = {c: [] for c in lts}  # from the answer to the event
        handed: dict[str, list[float]] = {c: [] for c in lts}  # to the strategy's on_order
        outcomes: dict[str, Counter[str]] = {c: Counter() for c in cases}
        closes: Counter[str] = Counter()
        rng = random.Random(7)
        try:
            for bare in bares.values():
                await bare.load_markets()
            for i in range(args.warmup + args.orders):
                timed = i >= args.warmup
                self.commits.phase = "round trip" if timed else "warm-up"
                placed: dict[str, str] = {}
                for case in rng.sample(cases, len(cases)):
                    await asyncio.sleep(args.gap_ms / 1000)  # trailing reports land first
                    if case in bares:
                        price = self.limit_price(pids.ccxt, BTC)
                        t0 = perf_ns()
                        order = await bares[case].create_order(
                            BTC, "limit", "buy", 1, str(price),
                            {"newClientOrderId": f"bare-{len(case)}-{i}"})
                        us = (perf_ns() - t0) / 1e3
                        placed[case] = str(order["id"])
                        what = str(order.get("status"))
                    else:
                        pid, symbol = lts[case]
                        t0 = perf_ns()
                        coid, answered, settled, what = await self.submit(
                            pid, symbol, self.limit_price(pid, symbol))
                        if coid is not None:
                            placed[case] = coid
                            told = HANDED.pop(coid, None)
                            if timed and told is not None and what == "OrderAccepted":
                                handed[case].append((told - t0) / 1e3)
                        if timed:
                            answer[case].append(answered)
                        us = settled if settled is not None and what == "OrderAccepted" \
                            else float("nan")
                    if timed:
                        outcomes[case][what] += 1
                        if us == us:  # not NaN: acknowledged
                            lat[case].append(us)
                            if case in lts:
                                after[case].append(us - answer[case][-1])
                self.commits.phase = "cancels"
                jobs = [bares[c].cancel_order(placed[c], BTC) for c in bares if c in placed]
                jobs += [self.cancel(lts[c][0], placed[c]) for c in lts if c in placed]
                for got in await asyncio.gather(*jobs):
                    closes[got if isinstance(got, str) else str(got.get("status"))] += 1
        finally:
            for bare in bares.values():
                await bare.close()
        self.commits.phase = "idle"
        self.report_round_trip(lat, handed, answer, after, outcomes, closes)

    def report_round_trip(self, lat: dict[str, list[float]], handed: dict[str, list[float]],
                          answer: dict[str, list[float]], after: dict[str, list[float]],
                          outcomes: dict[str, Counter[str]], closes: Counter[str]) -> None:
        args = self.args
        med = {c: pct(v, 0.5) for c, v in lat.items()}
        p99 = {c: pct(v, 0.99) for c, v in lat.items()}
        told50 = {c: pct(v, 0.5) for c, v in handed.items()}
        told99 = {c: pct(v, 0.99) for c, v in handed.items()}

        def rows(case: str) -> None:
            if case in handed:
                print(f"    {case:<14} acknowledged {summary(handed[case], 'µs')}")
                print(f"    {'':<14} event out    {summary(lat[case], 'µs')}; "
                      f"{dict(outcomes[case])}")
            else:
                print(f"    {case:<14} acknowledged {summary(lat[case], 'µs')}; "
                      f"{dict(outcomes[case])}")

        def overhead(lts: str, bare: str) -> None:
            for what, m50, m99, judged in (("acknowledged", told50, told99, True),
                                           ("event out", med, p99, False)):
                over50, over99 = m50[lts] / med[bare] - 1, m99[lts] / p99[bare] - 1
                verdict = ("met" if over50 <= 0.20 else "NOT met") if judged else "no target"
                print(f"    LTS overhead, {what + ':':<13} median {over50:+.0%} "
                      f"({m50[lts] - med[bare]:+.0f} µs; target at most +20%: {verdict}), "
                      f"p99 {over99:+.0%} ({m99[lts] - p99[bare]:+.0f} µs)")

        print()
        print(f"1. order round trip, submit -> acknowledged by the venue ({args.orders} orders "
              f"per case, the 5 cases in a random order each round, {args.gap_ms:g} ms idle before "
              f"each; {args.warmup} warm-up rounds not counted). LTS: ``acknowledged`` when the "
              f"runner hands the order's ACCEPTED to the portfolio's strategy (on_order: the "
              f"venue's answer taken by the order manager; the target's figure); ``event out`` "
              f"when the committed OrderAccepted event reaches a subscriber (API, WebSocket: "
              f"one commit later, only durable events go out)")
        print("  a) ccxt as LTS and a bare script configure it by default: its throttle on "
              "(binance: rateLimit 50 ms x an order's cost 0.2 = 10 ms waited before each "
              "order call, idle or not: ccxt's leaky bucket credits no idle time)")
        rows("LTS ccxt")
        rows("bare ccxt")
        overhead("LTS ccxt", "bare ccxt")
        print("  b) ccxt's throttle at 1 ms (LTS: broker param rate_limit_ms=1; bare: "
              "rateLimit=1): the round trips themselves, on loopback")
        rows("LTS ccxt 1ms")
        rows("bare ccxt 1ms")
        overhead("LTS ccxt 1ms", "bare ccxt 1ms")
        print("  c) the same LTS path without a venue (paper: placed in line once durable)")
        rows("LTS paper")
        print("  LTS's round trip in two parts (per order):")
        for case in answer:
            print(f"    {case:<14} to the command's answer {summary(answer[case], 'µs')}")
            print(f"    {'':<14} answer -> event out     {summary(after[case], 'µs')}")
        commits = self.commits.by_phase.get("round trip", [])
        secs = [s for s, _ in commits]
        print(f"  journal commits during the timed part: {len(commits):,} "
              f"({len(commits) / max(1, 3 * args.orders):.1f} per LTS order), "
              f"{summary(secs, 'µs', 1e6)}")
        fast, bare = "LTS ccxt 1ms", "bare ccxt 1ms"
        first = pct(answer[fast], 0.5)
        print(f"  where LTS's time over bare ccxt goes (b, medians): {first:.0f} µs before the "
              f"venue sees the order (inbox, risk, the write-ahead row's commit: the command's "
              f"answer); acknowledged {told50[fast] - med[bare]:.0f} µs over bare in all; the "
              f"event out {med[fast] - told50[fast]:.0f} µs after that (the ACCEPTED event's "
              f"commit); a commit (fsync) is {pct(secs, 0.5) * 1e6:.0f} µs at the median. Paper, "
              f"the same two commits without a venue: event out {med['LTS paper']:.0f} µs.")
        print(f"  cancels (not timed): {dict(closes)}")

    # -- 2 ----------------------------------------------------------------------------------------
    async def until_fresh(self, pid: int, within: float = 60.0) -> None:
        with anyio.fail_after(within):
            while (s := self.facade.state(pid)) is None or s.venues is not None:  # noqa: ASYNC110
                await anyio.sleep(0.01)

    async def resync(self) -> None:
        args, venue = self.args, self.venues["A"]
        watched = {"ccxt": self.pids.ccxt, "ccxt 1ms": self.pids.fast}
        pids = {name: pid for name, pid in watched.items() if pid is not None}
        self.commits.phase = "resync"
        resting: dict[int, list[str]] = {}
        for pid in pids.values():
            resting[pid] = []
            for _ in range(args.resting):
                coid, _a, _s, what = await self.submit(pid, BTC, self.limit_price(pid, BTC))
                if coid is not None and what == "OrderAccepted":
                    resting[pid].append(coid)
        noticed: dict[str, list[float]] = {n: [] for n in pids}
        fresh: dict[str, list[float]] = {n: [] for n in pids}
        texts: Counter[str] = Counter()
        missed: Counter[str] = Counter()
        for _ in range(args.drops):
            for pid in pids.values():
                await self.until_fresh(pid)
            await anyio.sleep(args.settle)
            t0 = perf_ns()
            await venue.admin(self.session, {"ws_drop": True})
            seen_at: dict[str, int] = {}
            left = set(pids)
            while left:
                now = perf_ns()
                for name in sorted(left):
                    state = self.facade.state(pids[name])
                    text = state.venues if state is not None else "?"
                    if name not in seen_at and text is not None:
                        seen_at[name] = now
                        noticed[name].append((now - t0) / 1e6)
                        texts[_shape(text)] += 1
                    elif name in seen_at and text is None:
                        fresh[name].append((now - t0) / 1e6)
                        left.discard(name)
                    elif name not in seen_at and now - t0 > 5e9:
                        missed[name] += 1  # LTS never noticed the drop
                        left.discard(name)
                if now - t0 > 60e9:
                    raise RuntimeError("a ccxt portfolio did not resync within 60 s")
                await asyncio.sleep(0.001)
        still = {}
        for name, pid in pids.items():
            state = self.facade.state(pid)
            still[name] = state.open_orders if state is not None else -1
        for pid, coids in resting.items():
            for coid in coids:
                await self.cancel(pid, coid)
        self.commits.phase = "idle"
        print()
        print(f"2. WebSocket drop -> resync ({args.drops} drops; {args.resting} orders resting "
              f"on each ccxt portfolio, both on venue A, both resyncing after each drop; state "
              f"polled every 1 ms)")
        for name in pids:
            print(f"  {name:<8} drop -> LTS noticed (venues a text)  "
                  f"{summary(noticed[name], 'ms', fmt='7.1f')}")
            print(f"  {name:<8} drop -> fresh again (venues None)    "
                  f"{summary(fresh[name], 'ms', fmt='7.1f')}")
        if missed:
            print(f"  drops LTS never noticed within 5 s: {dict(missed)}")
        print(f"  what LTS said: {dict(texts)}; open orders after the drops: {still} "
              f"(placed {args.resting} each)")
        print("  the floor: the broker waits 0.25 s before reconnecting; then the resync queries "
              "each open order (fetch_order, ccxt cost 0.8: 40 ms of ccxt's throttle each at "
              "its default) and the fills since (fetch_my_trades, cost 4: 200 ms)")

    # -- 3 ----------------------------------------------------------------------------------------
    async def sustained(self) -> float:
        args, pid = self.args, self.pids.rate
        assert pid is not None
        client = self.broker_client(pid)
        limit, per_minute = args.weight_limit, budget(args)
        aligned = args.sustain >= 60
        if aligned:
            wait = wall_minute_left()
            print(f"\n(waiting {wait:.0f} s, idle, for the next calendar minute)", flush=True)
            await anyio.sleep(wait)
        counter = LogCount()
        logging.getLogger("lts.broker.ccxt").addHandler(counter)
        waits_before = client.budget.waits if client.budget is not None else 0
        self.commits.phase = "sustained"
        wall0, perf0 = time.time(), perf_ns()
        end = perf0 + int(args.sustain * 1e9)
        acks: list[float] = []  # wall time of each venue acknowledgement
        outcomes: Counter[str] = Counter()
        closes: Counter[str] = Counter()
        coids: list[str] = []
        peak = 0
        minute_peaks: dict[int, int] = {}

        async def sample() -> None:
            nonlocal peak
            while True:
                used = client.used_weight()
                if used is not None:
                    peak = max(peak, used)
                    minute = int(time.time() // 60)
                    minute_peaks[minute] = max(minute_peaks.get(minute, 0), used)
                await anyio.sleep(0.005)

        async def loop() -> None:
            while perf_ns() < end:
                coid, _a, settled, what = await self.submit(
                    pid, BTC, self.limit_price(pid, BTC),
                    frozenset(SETTLED - {"OrderUnknown"}), within=90.0)
                outcomes[what] += 1
                if coid is not None:
                    coids.append(coid)
                if what != "OrderAccepted" or settled is None or coid is None:
                    await anyio.sleep(0.01)
                    continue
                acks.append(time.time())
                closes[await self.cancel(pid, coid, within=90.0)] += 1

        sampler = asyncio.create_task(sample())
        loops = [asyncio.create_task(loop()) for _ in range(args.inflight)]
        try:
            await asyncio.sleep(args.sustain)
            _done, pending = await asyncio.wait(loops, timeout=10)  # the last orders
            stuck = len(pending)
        finally:
            for task in (*loops, sampler):
                task.cancel()
            got = await asyncio.gather(*loops, sampler, return_exceptions=True)
        for error in got:
            if isinstance(error, Exception):
                raise error
        logging.getLogger("lts.broker.ccxt").removeHandler(counter)
        self.commits.phase = "idle"
        waits = (client.budget.waits if client.budget is not None else 0) - waits_before
        unknown = sum(1 for c in coids if "OrderUnknown" in self.events.kinds(c))
        first = [t for t in acks if wall0 <= t < wall0 + 60]
        print()
        print(f"3. sustained orders/s through ccxt under the venue's rate limit "
              f"(venue weight_limit {limit:,}/min; LTS weight_per_minute {per_minute:,} = "
              f"{args.weight_share:.0%}; {args.inflight} order loops, each: place, "
              f"acknowledged, cancel, canceled; window {args.sustain:g} s"
              f"{', from a calendar minute' if aligned else ''})")
        ceiling = per_minute / 2 / 60
        if args.sustain >= 60:
            print(f"  sustained (first whole minute): {len(first) / 60:.2f} orders/s "
                  f"acknowledged ({len(first)} in 60 s); budget's ceiling {ceiling:.2f} "
                  f"orders/s ({per_minute:,} weight/min / 2 weight per order and cancel / 60 s)")
        else:
            print(f"  (window under 60 s: no whole minute, no sustained figure; the budget's "
                  f"ceiling is {ceiling:.2f} orders/s over a minute)")
        print(f"  over the whole window: {len(acks) / args.sustain:.2f} orders/s "
              f"({len(acks)} acknowledged in {args.sustain:g} s; a new minute's budget is "
              f"spent in a burst at its start)")
        print(f"  venue's X-MBX-USED-WEIGHT-1M peak {peak:,} of {limit:,} ({peak / limit:.0%} of "
              f"the limit; LTS's budget {per_minute / limit:.0%}); per minute: "
              + ", ".join(f"{time.strftime('%H:%M', time.localtime(m * 60))} {w:,}"
                          for m, w in sorted(minute_peaks.items())))
        refused = dict(counter.counts) or "none"
        print(f"  429/418 answered by the venue (as LTS's broker logged them): {refused}; "
              f"calls that waited for LTS's budget: {waits:,}")
        print(f"  submits: {dict(outcomes)}; cancels: {dict(closes)}; orders that went UNKNOWN "
              f"(no answer within the ack timeout while waiting for the budget): {unknown}"
              + (f"; {stuck} loop(s) cut 10 s after the window (waiting for the budget)"
                 if stuck else ""))
        return len(first) / 60 if args.sustain >= 60 else len(acks) / args.sustain


def _shape(text: str) -> str:
    """A venue text without its variable parts (the reason's details)."""
    head = text.split(" (", 1)[0]
    tail = text.rsplit("; ", 1)[-1] if "; " in text else ""
    return f"{head} ...; {tail}" if tail else head



# -- 4 --------------------------------------------------------------------------------------------

async def capacity(args: argparse.Namespace, session: aiohttp.ClientSession, workdir: Path,
                   asked: dict[str, float]) -> None:
    print()
    print("4. the venue's own capacity (market orders, buys and sells in turn, 0.001 at ~10,000)")
    got = in_process_capacity(args.capacity_orders)
    print(f"  (a) in process, Exchange.place: {got.orders / got.seconds:,.0f} orders/s "
          f"({got.orders:,} in {got.seconds:.2f} s); per order "
          f"{summary([float(x) for x in got.place_ns], 'µs', 1e-3)}; "
          f"{dict(got.statuses)}")
    venue = VenueProcess("C", ["--symbols", BTC, "--start-price", "10000",
                               "--balance", "USDT=1000000000000", "--balance", "BTC=1000000",
                               "--fault", "weight_limit=100000000"], workdir)
    try:
        await venue.start(session)
        cpu0, mine0, wall0 = venue.cpu_seconds(), time.process_time(), time.perf_counter()
        result = await http_capacity(venue.api, DEFAULT_KEY, DEFAULT_SECRET, args.clients,
                                     args.http_seconds, warmup=0.5 if args.quick else 1.0)
        wall = time.perf_counter() - wall0
        venue_cpu, my_cpu = (venue.cpu_seconds() - cpu0) / wall, \
            (time.process_time() - mine0) / wall
        ping = await venue.ping_ms()
    finally:
        venue.stop()
    print(f"  (b) over HTTP, venue process (weight limit lifted), {args.clients} signed aiohttp "
          f"clients in this process: {result.answered / result.seconds:,.0f} orders/s answered "
          f"200 over {result.seconds:g} s; latency {summary(result.latency_us, 'µs')}; "
          f"{dict(result.statuses)}")
    print(f"      CPU used during it: the venue {venue_cpu:.0%} of a core (one process, one "
          f"thread: one core is its ceiling), the clients {my_cpu:.0%} of a core; "
          f"{_cores()} cores in all; {_load()}")
    print(f"  (c) GET /api/v3/ping, one keep-alive connection: p50 {pct(ping, 0.5):.2f} ms, max "
          f"{max(ping):.2f} ms ({len(ping)} requests)")
    if asked:
        print("  what LTS asked of the venue in this run: " + ", ".join(
            f"{name} {rate:.1f} orders/s" for name, rate in asked.items()))


def _cores() -> int:
    return os.cpu_count() or 0


def _load() -> str:
    """The machine's load (it is shared: other processes take CPU from the bench)."""
    one, five, _ = os.getloadavg()
    return f"load average {one:.2f} (1 min), {five:.2f} (5 min)"


# -- the run --------------------------------------------------------------------------------------

async def amain(args: argparse.Namespace) -> int:
    wanted = set(args.only or FIGURES)
    tmp = Path(tempfile.mkdtemp(prefix="lts-bench-venue-"))
    venues: dict[str, VenueProcess] = {}
    engine_log: EngineLog | None = None
    asked: dict[str, float] = {}
    try:
        async with aiohttp.ClientSession() as session:
            if wanted - {"capacity"}:
                await run_engine_figures(args, wanted, session, tmp, venues, asked)
                for venue in venues.values():
                    venue.stop()
            if "capacity" in wanted:
                await capacity(args, session, tmp, asked)
    except BaseException:
        log = tmp / "engine.log"
        if log.exists():
            print("engine log (tail):\n" + log.read_text(errors="replace")[-4000:],
                  file=sys.stderr)
        for venue in venues.values():
            print(f"venue {venue.name} log (tail):\n{venue.log()}", file=sys.stderr)
        raise
    finally:
        for venue in venues.values():
            venue.stop()
        if engine_log is not None:
            engine_log.close()
        if args.keep:
            print(f"kept: {tmp} (engine.log, venue-*.log, lts.db)")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0


async def run_engine_figures(args: argparse.Namespace, wanted: set[str],
                             session: aiohttp.ClientSession, tmp: Path,
                             venues: dict[str, VenueProcess], asked: dict[str, float]) -> None:
    base = ["--symbols", BTC, "--balance", "USDT=10000000"]
    if wanted & {"roundtrip", "resync"}:
        venues["A"] = VenueProcess("A", base, tmp)
    if "sustained" in wanted:
        venues["B"] = VenueProcess("B", [*base, "--fault", f"weight_limit={args.weight_limit}"],
                                   tmp)
    await asyncio.gather(*(venue.start(session) for venue in venues.values()))
    print("venues: " + "; ".join(
        f"{n} on 127.0.0.1:{v.port} ({' '.join(v.args)})" for n, v in venues.items()))
    master = new_key_entry("v1")
    url = f"sqlite+aiosqlite:///{tmp / 'lts.db'}"
    pids = await make_database(url, master, venues, args, wanted)
    engine_log = EngineLog(tmp / "engine.log", args.log_level)
    try:
        settings = load_settings(overrides={
            "master_key": master, "log_level": args.log_level,
            "database": {"url": url, "sqlite_synchronous": "FULL"},
            "demo": {"enabled": False}, "api": {"enabled": False},
            "auth": {"bcrypt_rounds": 4}})
        registry = Registry.discover()
        registry.register("strategy", "bench_quiet", Quiet)
        engine = Engine(settings, registry=registry)
        commits = Commits()
        engine.facade.observe(journal_commit=commits)
        stopped = anyio.Event()

        async def run() -> None:
            try:
                await engine.run()
            finally:
                stopped.set()

        def ready(pid: int) -> bool:
            sup = engine.supervisors.get(pid)
            state = engine.facade.state(pid)
            return sup is not None and sup.status is PortfolioStatus.RUNNING and \
                state is not None and state.venues is None and \
                bool(engine.facade.last_prices(pid))

        async with anyio.create_task_group() as tg:
            t0 = time.perf_counter()
            tg.start_soon(run)
            with anyio.fail_after(args.startup_timeout):
                await engine.started.wait()
                while not all(ready(p) for p in pids.all()):
                    if stopped.is_set():
                        raise RuntimeError("the engine stopped during start-up")
                    await anyio.sleep(0.05)
            print(f"engine: {len(pids.all())} portfolio(s) running and fresh after "
                  f"{time.perf_counter() - t0:.1f} s (ccxt: {pids.ccxt}, ccxt 1ms: {pids.fast}, "
                  f"paper: {pids.paper}, rate: {pids.rate})", flush=True)
            bench = Bench(engine, pids, venues, session, args, commits)
            if "roundtrip" in wanted:
                await bench.round_trip()
            if "resync" in wanted:
                await bench.resync()
            if "sustained" in wanted:
                rate = await bench.sustained()
                asked["LTS under the venue's rate limit" + (
                    "" if args.sustain >= 60 else " (a short window's burst, not sustained)")
                      ] = rate
            engine.stop()
            with anyio.move_on_after(20):
                await stopped.wait()
            tg.cancel_scope.cancel()
        counters = engine.facade.counters()
        print(f"{_load()}; journal: {counters.journal_commits:,} commits, "
              f"{counters.journal_records:,} records in the run; event kinds seen: "
              f"{dict(bench.events.counts)}")
    finally:
        engine_log.close()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="a ~30 s smoke run")
    ap.add_argument("--only", action="append", choices=FIGURES,
                    help="this figure only (repeatable); default: all four")
    ap.add_argument("--orders", type=int, help="1: orders per case (default 200, quick 30)")
    ap.add_argument("--warmup", type=int, default=5, help="1: rounds not counted")
    ap.add_argument("--gap-ms", type=float, default=5.0,
                    help="1: idle before each order placed")
    ap.add_argument("--below", type=float, default=0.6,
                    help="limit price as a fraction of the last price (the band is ±50%%)")
    ap.add_argument("--drops", type=int, help="2: WebSocket drops (default 20, quick 4)")
    ap.add_argument("--resting", type=int, default=5, help="2: orders resting meanwhile")
    ap.add_argument("--settle", type=float, default=0.3, help="2: seconds fresh between drops")
    ap.add_argument("--sustain", type=float,
                    help="3: seconds of the window (default 65: one whole calendar minute and "
                    "5 s; quick 8); 60 or more starts at a calendar minute")
    ap.add_argument("--weight-limit", type=int, default=1200,
                    help="3: the venue's weight limit per minute")
    ap.add_argument("--weight-share", type=float, default=0.8,
                    help="3: LTS's weight_per_minute as a share of the limit (its default: 0.8)")
    ap.add_argument("--inflight", type=int, default=2, help="3: concurrent order loops")
    ap.add_argument("--capacity-orders", type=int,
                    help="4a: orders placed in process (default 20000, quick 5000)")
    ap.add_argument("--clients", type=int, default=16, help="4b: concurrent HTTP clients")
    ap.add_argument("--http-seconds", type=float,
                    help="4b: seconds timed (default 5, quick 1.5)")
    ap.add_argument("--log-level", choices=["DEBUG", "INFO", "WARNING"], default="INFO")
    ap.add_argument("--keep", action="store_true",
                    help="keep the temporary directory (engine and venue logs, database)")
    ap.add_argument("--startup-timeout", type=float, default=60.0)
    args = ap.parse_args()
    for name, full, quick in (("orders", 200, 30), ("drops", 20, 4), ("sustain", 65.0, 8.0),
                              ("capacity_orders", 20_000, 5_000), ("http_seconds", 5.0, 1.5)):
        if getattr(args, name) is None:
            setattr(args, name, quick if args.quick else full)
    if args.quick and args.warmup == 5:
        args.warmup = 3
    try:
        import uvloop  # noqa: F401
        use_uvloop = True
    except ImportError:
        use_uvloop = False
    print(describe())
    print(f"event loop: {'uvloop' if use_uvloop else 'asyncio'}; SQLite WAL synchronous=FULL; "
          f"log level {args.log_level} to a file; "
          f"figures: {', '.join(args.only or FIGURES)}"
          f"{'; --quick' if args.quick else ''}; {_load()}", flush=True)
    return anyio.run(amain, args, backend_options={"use_uvloop": use_uvloop})


if __name__ == "__main__":
    sys.exit(main())
