"""Benchmark: durable order writes, one commit per row vs the group-commit journal, on SQLite
and on PostgreSQL.

Where it sits: it drives :class:`lts.persistence.journal.Journal` (the durability step of the
order flow, architecture §5) as the order manager's write-ahead uses it: an order goes on (to
its venue) only once the future of its insert has resolved, so each producer waits for that
future before going on. SQLite: a fresh file, WAL, ``synchronous=FULL``. PostgreSQL: a fresh
database on the local server (``--pg-url`` names the maintenance database; the bench creates its
databases there and drops them), at the server's own durability settings, printed with the
figures. Cases, each on a fresh database:

  baseline         one transaction and one commit per order row (no journal);
  orders           the journal, ``--producers`` producers inserting orders;
  orders+fills     each producer inserts an order, then its fill (and so its position: on
                   PostgreSQL the position rows of each batch are locked and recomputed), over
                   ``--symbols`` positions;
  lifecycle        what the order manager writes for a market order that fills, every change an
                   event row: the order's insert (awaited: the write-ahead), then the events
                   ``order.submitted`` and ``order.accepted``, the fill with its position, the
                   event ``order.filled`` and the order's update (the last one awaited);
  2 writers        (PostgreSQL) orders+fills split over two journals on two engines (two
                   connections) filling the same positions: the row locks contend.

    python bench/journal.py [--store both|sqlite|postgresql] [--orders 50000] [--producers 100]
                            [--baseline-orders 2000] [--runs 3] [--pg-url URL]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import anyio
import asyncpg
import msgspec
from machine import describe
from sqlalchemy import insert
from sqlalchemy.engine import make_url

from lts.domain.orders import Side
from lts.domain.position import Position
from lts.persistence.db import make_engine
from lts.persistence.journal import Journal
from lts.persistence.migrations import upgrade_to_head
from lts.persistence.tables import orders, portfolios

PG_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
Result = dict[str, float]


def order_row(coid: str) -> dict[str, Any]:
    return {
        "client_order_id": coid, "portfolio_id": 1, "symbol": "BTC-USD", "side": "buy",
        "order_type": "limit", "time_in_force": "gtc", "quantity": Decimal("0.5"),
        "limit_price": Decimal("100.25"), "stop_price": None, "status": "pending_submit",
        "filled_quantity": Decimal(0), "avg_fill_price": None, "broker": "paper",
        "broker_order_id": None, "reason": "", "tag": "", "ts_init": 1, "ts_last": 1,
        "anomaly": None,
    }


def fill_row(coid: str, symbol: str, i: int) -> dict[str, Any]:
    return {
        "portfolio_id": 1, "client_order_id": coid, "broker": "paper", "trade_id": coid,
        "symbol": symbol, "side": "buy" if i % 3 else "sell", "quantity": Decimal("0.5"),
        "price": Decimal(10_025 + i % 17) / 100, "fee": Decimal("0.0125"), "ts_event": i,
    }


class Stores:
    """Fresh migrated databases: SQLite files in a temporary directory, PostgreSQL databases
    cloned from a template migrated once."""

    def __init__(self, directory: Path, pg_url: str) -> None:
        self.directory = directory
        self.pg = make_url(pg_url)
        self.prefix = f"lts_bench{os.getpid()}_"
        self.template: str | None = None

    def _dsn(self) -> str:
        return self.pg.set(drivername="postgresql").render_as_string(hide_password=False)

    async def _admin(self, sql: str) -> None:
        conn = await asyncpg.connect(self._dsn())
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    async def server(self) -> str:
        conn = await asyncpg.connect(self._dsn())
        try:
            settings = [f"{name}={await conn.fetchval(f'SHOW {name}')}"
                        for name in ("fsync", "synchronous_commit", "wal_sync_method")]
            version = await conn.fetchval("SHOW server_version")
        finally:
            await conn.close()
        return f"PostgreSQL {version}, {', '.join(settings)}, READ COMMITTED"

    async def fresh(self, store: str) -> str:
        name = self.prefix + uuid.uuid4().hex[:8]
        if store == "sqlite":
            url = f"sqlite+aiosqlite:///{self.directory / name}.db"
            await upgrade_to_head(url)
        else:
            if self.template is None:
                self.template = self.prefix + "template"
                await self._admin(f'CREATE DATABASE "{self.template}"')
                await upgrade_to_head(self.pg.set(database=self.template).render_as_string(
                    hide_password=False))
            await self._admin(f'CREATE DATABASE "{name}" TEMPLATE "{self.template}"')
            url = self.pg.set(database=name).render_as_string(hide_password=False)
        engine = make_engine(url, sqlite_synchronous="FULL")
        try:
            async with engine.begin() as connection:
                await connection.execute(insert(portfolios),
                                         {"name": "bench", "initial_cash": Decimal(1)})
        finally:
            await engine.dispose()
        return url

    async def drop(self, url: str) -> None:
        parsed = make_url(url)
        if parsed.get_backend_name() == "postgresql":
            await self._admin(f'DROP DATABASE IF EXISTS "{parsed.database}" WITH (FORCE)')

    async def close(self) -> None:
        if self.template is not None:
            await self._admin(f'DROP DATABASE IF EXISTS "{self.template}" WITH (FORCE)')


async def baseline(url: str, n: int) -> Result:
    """One transaction and one commit per order row."""
    engine = make_engine(url, sqlite_synchronous="FULL")
    stmt = insert(orders)
    latencies: list[float] = []
    try:
        clock = time.perf_counter
        started = clock()
        async with engine.connect() as connection:
            for i in range(n):
                t0 = clock()
                async with connection.begin():
                    await connection.execute(stmt, order_row(f"b{i}"))
                latencies.append(clock() - t0)
        elapsed = clock() - started
    finally:
        await engine.dispose()
    return summary(n, elapsed, n, n, latencies)


def summary(n: int, elapsed: float, commits: int, records: int,
            latencies: list[float]) -> Result:
    latencies.sort()
    return {"orders_per_s": n / elapsed, "commits": commits, "mean_batch": records / commits,
            "p50_ms": latencies[len(latencies) // 2] * 1e3,
            "p99_ms": latencies[int(len(latencies) * 0.99)] * 1e3}


def event_row(coid: str, seq: int, kind: str, status: str) -> dict[str, Any]:
    """An ``order_events`` row: the event's JSON as the order manager stores it."""
    payload = {"type": kind, "portfolio_id": 1, "seq": seq, "client_order_id": coid,
               "symbol": "BTC-USD", "side": "buy", "order_type": "market", "quantity": "0.5",
               "status": status, "filled_quantity": "0", "avg_fill_price": None,
               "limit_price": None, "stop_price": None, "reason": "", "ts_event": seq}
    return {"portfolio_id": 1, "seq": seq, "type": kind, "client_order_id": coid,
            "payload": msgspec.Raw(msgspec.json.encode(payload)), "ts_event": seq}


async def journal_run(url: str, n: int, producers: int, *, with_fills: bool = False,
                      lifecycle: bool = False, writers: int = 1, symbols: int = 10) -> Result:
    """``producers`` producers over ``writers`` journals (one engine each); each producer
    awaits every durable write. With fills, an order's fill follows once the order is
    durable, as in the order manager; each writer sends its own ledger's position."""
    engines = [make_engine(url, sqlite_synchronous="FULL") for _ in range(writers)]
    journals = [Journal(engine) for engine in engines]
    ledgers = [{f"S{s}": Position(symbol=f"S{s}") for s in range(symbols)} for _ in journals]
    latencies: list[float] = []
    per_producer = n // producers
    seqs = iter(range(1, 10 * n + 1))

    async def produce(p: int) -> None:
        journal, ledger = journals[p % writers], ledgers[p % writers]
        symbol = f"S{p % symbols}"
        clock = time.perf_counter
        for i in range(per_producer):
            coid = f"p{p}-{i}"
            started = clock()
            await journal.insert_order(order_row(coid))
            if lifecycle:
                fill = fill_row(coid, symbol, i)
                pos = ledger[symbol]
                pos.apply_fill(Side(fill["side"]), fill["quantity"], fill["price"], fill["fee"])
                journal.insert_order_event(event_row(coid, next(seqs), "order.submitted",
                                                     "submitted"))
                journal.insert_order_event(event_row(coid, next(seqs), "order.accepted",
                                                     "accepted"))
                journal.insert_fill(fill, {
                    "portfolio_id": 1, "symbol": symbol, "quantity": pos.quantity,
                    "cost": pos.cost, "avg_price": pos.avg_price,
                    "realized_pnl": pos.realized_pnl, "fees": pos.fees, "ts_last": i})
                journal.insert_order_event(event_row(coid, next(seqs), "order.filled", "filled"))
                await journal.update_order({
                    "client_order_id": coid, "status": "filled", "quantity": Decimal("0.5"),
                    "limit_price": Decimal("100.25"), "stop_price": None,
                    "filled_quantity": Decimal("0.5"), "avg_fill_price": fill["price"],
                    "broker_order_id": f"v-{coid}", "reason": "", "ts_last": i,
                    "anomaly": None})
            elif with_fills:
                fill = fill_row(coid, symbol, i)
                pos = ledger[symbol]
                pos.apply_fill(Side(fill["side"]), fill["quantity"], fill["price"], fill["fee"])
                await journal.insert_fill(fill, {
                    "portfolio_id": 1, "symbol": symbol, "quantity": pos.quantity,
                    "cost": pos.cost, "avg_price": pos.avg_price,
                    "realized_pnl": pos.realized_pnl, "fees": pos.fees, "ts_last": i})
            latencies.append(clock() - started)

    try:
        async with anyio.create_task_group() as writer_tasks:
            for journal in journals:
                await writer_tasks.start(journal.run)
            started = time.perf_counter()
            async with anyio.create_task_group() as tg:
                for p in range(producers):
                    tg.start_soon(produce, p)
            elapsed = time.perf_counter() - started
            writer_tasks.cancel_scope.cancel()
    finally:
        for engine in engines:
            await engine.dispose()
    failed = sum(j.records_failed for j in journals)
    if failed:
        raise RuntimeError(f"{failed} journal records failed")
    result = summary(per_producer * producers, elapsed, sum(j.commits for j in journals),
                     sum(j.records_written for j in journals), latencies)
    result["retries"] = sum(j.retries for j in journals)
    return result


Case = tuple[str, Callable[[str], Awaitable[Result]]]


def cases(store: str, args: argparse.Namespace) -> list[Case]:
    n, producers = args.orders, args.producers
    found: list[Case] = [
        ("baseline (one commit per order)", lambda url: baseline(url, args.baseline_orders)),
        (f"journal, orders ({producers} producers)", lambda url: journal_run(url, n, producers)),
        (f"journal, orders+fills ({producers} producers, {args.symbols} positions)",
         lambda url: journal_run(url, n, producers, with_fills=True, symbols=args.symbols)),
        (f"journal, lifecycle: order, 3 events, fill, update ({producers} producers)",
         lambda url: journal_run(url, n, producers, lifecycle=True, symbols=args.symbols)),
    ]
    if store == "postgresql":
        found.append((f"journal, orders+fills, 2 writers on the same {args.symbols} positions",
                      lambda url: journal_run(url, n, producers, with_fills=True, writers=2,
                                              symbols=args.symbols)))
    return found


def line(name: str, r: Result) -> str:
    text = (f"{name}: {r['orders_per_s']:,.0f} orders/s, {r['commits']:,.0f} commits, "
            f"mean batch {r['mean_batch']:.1f} records, durable latency p50 {r['p50_ms']:.2f} ms, "
            f"p99 {r['p99_ms']:.2f} ms")
    return text + (f", {r['retries']:.0f} batches retried" if r.get("retries") else "")


async def bench_store(store: str, stores: Stores, args: argparse.Namespace) -> None:
    mode = ("SQLite WAL, synchronous=FULL" if store == "sqlite" else await stores.server())
    print(f"\n== {store}: {mode}; durable = committed before the future resolves")
    results: dict[str, list[Result]] = {}
    for run in range(args.runs):
        for name, case in cases(store, args):
            url = await stores.fresh(store)
            try:
                result = await case(url)
            finally:
                await stores.drop(url)
            results.setdefault(name, []).append(result)
            print(f"run {run + 1}: {line(name, result)}")
    print(f"median of {args.runs} runs ({store}):")
    medians = {name: {key: statistics.median(r[key] for r in runs) for key in runs[0]}
               for name, runs in results.items()}
    for name, r in medians.items():
        print(f"  {line(name, r)}")
    base = next(iter(medians.values()))["orders_per_s"]
    for name, r in list(medians.items())[1:]:
        print(f"  ratio {name} / baseline: {r['orders_per_s'] / base:.1f}x")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", choices=("both", "sqlite", "postgresql"), default="both")
    parser.add_argument("--orders", type=int, default=50_000)
    parser.add_argument("--producers", type=int, default=100)
    parser.add_argument("--symbols", type=int, default=10, help="positions the fills go to")
    parser.add_argument("--baseline-orders", type=int, default=2_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--pg-url", default=PG_URL,
                        help="the PostgreSQL server's maintenance database (default: %(default)s)")
    args = parser.parse_args()

    print(describe())
    print(f"runs: {args.runs}; producers: {args.producers}; orders: {args.orders}; "
          f"baseline orders: {args.baseline_orders}")
    with tempfile.TemporaryDirectory(prefix="lts-bench-") as tmp:
        stores = Stores(Path(tmp), args.pg_url)
        try:
            for store in ("sqlite", "postgresql"):
                if args.store in ("both", store):
                    await bench_store(store, stores, args)
        finally:
            await stores.close()


if __name__ == "__main__":
    asyncio.run(main())
