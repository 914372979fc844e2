"""Benchmark: durable order writes, one commit per row vs the group-commit journal.

Where it sits: it drives :class:`lts.persistence.journal.Journal` (the durability step of the
order flow, architecture §5) the way the order manager does — producers that await the durable
future of each order before going on — on a fresh SQLite file with WAL and ``synchronous=FULL``.

    python bench/journal.py [--orders 50000] [--producers 100] [--baseline-orders 2000]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import sqlite3
import statistics
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import anyio
from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncEngine

from lts.persistence.db import make_engine
from lts.persistence.journal import Journal
from lts.persistence.migrations import upgrade_to_head
from lts.persistence.tables import orders, portfolios


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def order_row(coid: str) -> dict[str, Any]:
    return {
        "client_order_id": coid, "portfolio_id": 1, "symbol": "BTC-USD", "side": "buy",
        "order_type": "limit", "time_in_force": "gtc", "quantity": Decimal("0.5"),
        "limit_price": Decimal("100.25"), "stop_price": None, "status": "PENDING_SUBMIT",
        "filled_quantity": Decimal(0), "avg_fill_price": None, "broker": "paper",
        "broker_order_id": None, "reason": "", "tag": "", "ts_init": 1, "ts_last": 1,
    }


async def fresh_engine(directory: Path, name: str) -> AsyncEngine:
    url = f"sqlite+aiosqlite:///{directory / name}"
    await upgrade_to_head(url)
    engine = make_engine(url, sqlite_synchronous="FULL")
    async with engine.begin() as connection:
        await connection.execute(insert(portfolios), {"name": "bench", "initial_cash": Decimal(1)})
    return engine


async def baseline(directory: Path, n: int) -> float:
    """One transaction and one commit per order row; returns rows/s."""
    engine = await fresh_engine(directory, "baseline.db")
    stmt = insert(orders)
    try:
        started = time.perf_counter()
        async with engine.connect() as connection:
            for i in range(n):
                async with connection.begin():
                    await connection.execute(stmt, order_row(f"b{i}"))
        return n / (time.perf_counter() - started)
    finally:
        await engine.dispose()


async def journal_run(directory: Path, n: int, producers: int) -> dict[str, float]:
    engine = await fresh_engine(directory, "journal.db")
    latencies: list[float] = []
    per_producer = n // producers
    try:
        journal = Journal(engine)

        async def produce(p: int) -> None:
            clock = time.perf_counter
            for i in range(per_producer):
                started = clock()
                await journal.insert_order(order_row(f"p{p}-{i}"))
                latencies.append(clock() - started)

        async with anyio.create_task_group() as writer:
            await writer.start(journal.run)
            started = time.perf_counter()
            async with anyio.create_task_group() as tg:
                for p in range(producers):
                    tg.start_soon(produce, p)
            elapsed = time.perf_counter() - started
            writer.cancel_scope.cancel()
    finally:
        await engine.dispose()
    total = per_producer * producers
    latencies.sort()
    return {
        "orders": total,
        "orders_per_s": total / elapsed,
        "commits": journal.commits,
        "mean_batch": total / journal.commits,
        "p50_ms": latencies[len(latencies) // 2] * 1e3,
        "p99_ms": latencies[int(len(latencies) * 0.99)] * 1e3,
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=50_000)
    parser.add_argument("--producers", type=int, default=100)
    parser.add_argument("--baseline-orders", type=int, default=2_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()

    print(f"platform: {platform.platform()}")
    print(f"cpu: {cpu_model()}, {os.cpu_count()} cores")
    print(f"python: {sys.version.split()[0]}, sqlite: {sqlite3.sqlite_version}")
    print("mode: SQLite WAL, synchronous=FULL, durable = committed before the future resolves")
    print(f"runs: {args.runs}; producers: {args.producers}; orders: {args.orders}; "
          f"baseline orders: {args.baseline_orders}")

    base_runs: list[float] = []
    journal_runs: list[dict[str, float]] = []
    for run in range(args.runs):
        with tempfile.TemporaryDirectory(prefix="lts-bench-") as tmp:
            base = await baseline(Path(tmp), args.baseline_orders)
            result = await journal_run(Path(tmp), args.orders, args.producers)
        base_runs.append(base)
        journal_runs.append(result)
        print(f"run {run + 1}: baseline {base:,.0f} orders/s | journal "
              f"{result['orders_per_s']:,.0f} orders/s, {result['commits']:,.0f} commits, "
              f"mean batch {result['mean_batch']:.1f}, p50 {result['p50_ms']:.2f} ms, "
              f"p99 {result['p99_ms']:.2f} ms")

    def med(key: str) -> float:
        return statistics.median(r[key] for r in journal_runs)

    base_med = statistics.median(base_runs)
    print("median:")
    print(f"  baseline (one commit per order): {base_med:,.0f} orders/s")
    print(f"  journal ({args.producers} producers): {med('orders_per_s'):,.0f} orders/s, "
          f"{med('commits'):,.0f} commits, mean batch {med('mean_batch'):.1f}, "
          f"durable latency p50 {med('p50_ms'):.2f} ms, p99 {med('p99_ms'):.2f} ms")
    print(f"  ratio journal/baseline: {med('orders_per_s') / base_med:.1f}x")


if __name__ == "__main__":
    asyncio.run(main())
