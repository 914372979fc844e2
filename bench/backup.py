"""Benchmark: ``backup`` and ``restore`` of a database of 1,000,000 fills, on SQLite and on
PostgreSQL, against the raw floor of each store in the same run.

Where it sits: it times :func:`lts.persistence.backup.backup` and
:func:`lts.persistence.restore.restore`, what ``python -m lts.engine backup OUT`` and
``restore IN`` run. The database is built fast, not through the engine: a user, a portfolio,
``--fills`` orders and one fill for each (bulk ``executemany`` on SQLite, ``COPY`` on
PostgreSQL), and a few positions. Each restore goes into a fresh empty database (the restore
migrates it, as an operator's would). Baselines, same data:

  SQLite      backup: a plain file copy of the (checkpointed) database file; the ``sqlite3``
              online backup API to a file is printed too. restore: the same file copy.
  PostgreSQL  backup: ``COPY orders TO`` and ``COPY fills TO`` files (text format).
              restore: ``COPY ... FROM`` those files into a fresh migrated database, in one
              transaction, through its indexes and foreign keys as they are (the restore
              drops the foreign keys for the load and adds them back after, as pg_restore
              does; it also migrates, decodes and converts).

    python bench/backup.py [--store both|sqlite|postgresql] [--fills 1000000] [--runs 3]
                           [--pg-url URL] [--dir DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import asyncpg
from machine import describe
from sqlalchemy.engine import make_url

from lts.persistence.backup import asyncpg_connect_args, backup
from lts.persistence.migrations import upgrade_to_head
from lts.persistence.restore import restore

PG_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
SYMBOLS = [f"SYM-{i}" for i in range(10)]
CHUNK = 100_000

ORDER_COLUMNS = ("client_order_id", "portfolio_id", "symbol", "side", "order_type",
                 "time_in_force", "quantity", "limit_price", "stop_price", "status",
                 "filled_quantity", "avg_fill_price", "broker", "broker_order_id", "reason", "tag",
                 "ts_init", "ts_last")
FILL_COLUMNS = ("portfolio_id", "client_order_id", "broker", "trade_id", "symbol", "side",
                "quantity", "price", "fee", "ts_event")
POSITION_COLUMNS = ("portfolio_id", "symbol", "quantity", "cost", "avg_price", "realized_pnl",
                    "fees", "ts_last")


def orders_chunk(start: int, stop: int) -> list[tuple[Any, ...]]:
    return [(f"1-{i}", 1, SYMBOLS[i % 10], "buy" if i % 3 else "sell", "market", "gtc", "0.5",
             None, None, "filled", "0.5", f"{100 + i % 997 / 100}", "paper", f"paper-{i}", "",
             "", 1_700_000_000_000_000_000 + i, 1_700_000_000_000_000_000 + i)
            for i in range(start, stop)]


def fills_chunk(start: int, stop: int) -> list[tuple[Any, ...]]:
    return [(1, f"1-{i}", "paper", f"t-{i}", SYMBOLS[i % 10], "buy" if i % 3 else "sell", "0.5",
             f"{100 + i % 997 / 100}", "0.0125", 1_700_000_000_000_000_000 + i)
            for i in range(start, stop)]


def chunks(n: int) -> Iterator[tuple[int, int]]:
    for start in range(1, n + 1, CHUNK):
        yield start, min(start + CHUNK, n + 1)


def positions() -> list[tuple[Any, ...]]:
    return [(1, s, "10", "1000", "100", "0", "1.25", 1) for s in SYMBOLS]


def _insert(table: str, columns: tuple[str, ...]) -> str:
    return (f"INSERT INTO {table} ({', '.join(columns)}) "
            f"VALUES ({', '.join('?' * len(columns))})")


class Stores:
    """Fresh databases: SQLite files in ``directory``, PostgreSQL databases on the server."""

    def __init__(self, directory: Path, pg_url: str) -> None:
        self.directory = directory
        self.pg = make_url(pg_url)
        self.prefix = f"lts_bbench{os.getpid()}_"
        self.created: list[str] = []

    async def _admin(self, sql: str) -> None:
        conn = await asyncpg.connect(**asyncpg_connect_args(self.pg.render_as_string(False)))
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    async def fresh(self, store: str) -> str:
        """A new empty database (no schema)."""
        name = self.prefix + uuid.uuid4().hex[:8]
        if store == "sqlite":
            return f"sqlite+aiosqlite:///{self.directory / name}.db"
        await self._admin(f'CREATE DATABASE "{name}"')
        self.created.append(name)
        return self.pg.set(database=name).render_as_string(hide_password=False)

    async def drop(self, url: str) -> None:
        parsed = make_url(url)
        if parsed.get_backend_name() == "postgresql":
            await self._admin(f'DROP DATABASE IF EXISTS "{parsed.database}" WITH (FORCE)')
            self.created.remove(str(parsed.database))
        else:
            for suffix in ("", "-wal", "-shm"):
                with contextlib.suppress(FileNotFoundError):
                    os.remove(str(parsed.database) + suffix)

    async def close(self) -> None:
        for name in list(self.created):
            await self._admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    async def server(self) -> str:
        conn = await asyncpg.connect(**asyncpg_connect_args(self.pg.render_as_string(False)))
        try:
            version = await conn.fetchval("SHOW server_version")
            knobs = [f"{k}={await conn.fetchval(f'SHOW {k}')}"
                     for k in ("shared_buffers", "fsync", "synchronous_commit")]
        finally:
            await conn.close()
        return f"PostgreSQL {version}, {', '.join(knobs)}"


# -- building the database --------------------------------------------------------------------

def build_sqlite(path: Path, n: int) -> None:
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA synchronous=OFF")
        conn.execute("BEGIN")
        conn.execute("INSERT INTO users (username, password_hash, role) "
                     "VALUES ('bench', 'x', 'admin')")
        conn.execute("INSERT INTO portfolios (name, owner_id, portfolio_params, initial_cash, "
                     "risk_params) VALUES ('bench', 1, '{}', '100000', '{}')")
        for start, stop in chunks(n):
            conn.executemany(_insert("orders", ORDER_COLUMNS), orders_chunk(start, stop))
        for start, stop in chunks(n):
            conn.executemany(_insert("fills", FILL_COLUMNS), fills_chunk(start, stop))
        conn.executemany(_insert("positions", POSITION_COLUMNS), positions())
        conn.execute("COMMIT")
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()


async def build_postgres(url: str, n: int) -> None:
    conn = await asyncpg.connect(**asyncpg_connect_args(url))
    try:
        async with conn.transaction():
            await conn.execute("INSERT INTO users (username, password_hash, role) "
                               "VALUES ('bench', 'x', 'admin')")
            await conn.execute("INSERT INTO portfolios (name, owner_id, portfolio_params, "
                               "initial_cash, risk_params) VALUES ('bench', 1, '{}', 100000, "
                               "'{}')")
            for start, stop in chunks(n):
                await conn.copy_records_to_table("orders", records=orders_chunk(start, stop),
                                                 columns=ORDER_COLUMNS)
            for start, stop in chunks(n):
                await conn.copy_records_to_table("fills", records=fills_chunk(start, stop),
                                                 columns=FILL_COLUMNS)
            await conn.copy_records_to_table("positions", records=positions(),
                                             columns=POSITION_COLUMNS)
        await conn.execute("VACUUM ANALYZE")
    finally:
        await conn.close()


async def build(store: str, stores: Stores, n: int) -> str:
    url = await stores.fresh(store)
    await upgrade_to_head(url)
    if store == "sqlite":
        await asyncio.to_thread(build_sqlite, Path(str(make_url(url).database)), n)
    else:
        await build_postgres(url, n)
    return url


# -- baselines --------------------------------------------------------------------------------

def sqlite_online_backup(source: Path, target: Path) -> None:
    src, dst = sqlite3.connect(source), sqlite3.connect(target)
    try:
        src.backup(dst)
    finally:
        src.close()
        dst.close()


async def pg_copy_out(url: str, directory: Path) -> None:
    conn = await asyncpg.connect(**asyncpg_connect_args(url))
    try:
        async with conn.transaction(isolation="repeatable_read", readonly=True):
            for table in ("orders", "fills"):
                await conn.copy_from_table(table, output=str(directory / f"{table}.copy"))
    finally:
        await conn.close()


async def pg_copy_in(url: str, directory: Path) -> None:
    conn = await asyncpg.connect(**asyncpg_connect_args(url))
    try:
        async with conn.transaction():
            await conn.execute("INSERT INTO users (username, password_hash, role) "
                               "VALUES ('bench', 'x', 'admin')")
            await conn.execute("INSERT INTO portfolios (name, owner_id, portfolio_params, "
                               "initial_cash, risk_params) VALUES ('bench', 1, '{}', 100000, "
                               "'{}')")
            for table in ("orders", "fills"):
                await conn.copy_to_table(table, source=str(directory / f"{table}.copy"))
    finally:
        await conn.close()


# -- timing -----------------------------------------------------------------------------------

async def timed(runs: int, work: Callable[[int], Awaitable[None]],
                reset: Callable[[int], Awaitable[None]] | None = None) -> float:
    """Median seconds of ``runs`` calls of ``work(i)``; ``reset(i)`` runs after each, untimed."""
    seconds = []
    for i in range(runs):
        started = time.perf_counter()
        await work(i)
        seconds.append(time.perf_counter() - started)
        if reset is not None:
            await reset(i)
    return statistics.median(seconds)


def line(name: str, seconds: float, rows: int, fills: int, extra: str = "") -> str:
    return (f"  {name:<34} {seconds:8.2f} s  {rows / seconds:>11,.0f} rows/s  "
            f"{fills / seconds:>11,.0f} fills/s{extra}")


async def bench_store(store: str, stores: Stores, args: argparse.Namespace) -> None:
    n = args.fills
    started = time.perf_counter()
    source = await build(store, stores, n)
    rows = 2 * n + len(SYMBOLS) + 2
    print(f"{store}: built {n:,} orders + {n:,} fills in {time.perf_counter() - started:.1f} s")
    if store == "postgresql":
        print(f"  {await stores.server()}")
    work = stores.directory / f"{store}-work"
    work.mkdir()
    archive = work / "backup.zip"

    async def do_backup(_: int) -> None:
        await backup(source, archive)

    backup_s = await timed(args.runs, do_backup)
    size = archive.stat().st_size
    targets: list[str] = []

    async def do_restore(_: int) -> None:
        targets.append(await stores.fresh(store))
        await restore(targets[-1], archive)

    async def drop_target(_: int) -> None:
        await stores.drop(targets.pop())

    restore_s = await timed(args.runs, do_restore, drop_target)

    print(f"median of {args.runs} runs ({store}, {rows:,} rows, backup file "
          f"{size / 1e6:,.1f} MB):")
    if store == "sqlite":
        db_file = Path(str(make_url(source).database))
        copy = work / "copy.db"

        async def file_copy(_: int) -> None:
            await asyncio.to_thread(shutil.copyfile, db_file, copy)

        async def online(_: int) -> None:
            copy.unlink(missing_ok=True)
            await asyncio.to_thread(sqlite_online_backup, db_file, copy)

        copy_s = await timed(args.runs, file_copy)
        online_s = await timed(args.runs, online)
        db_size = await asyncio.to_thread(os.path.getsize, db_file)
        print(line("backup (lts backup)", backup_s, rows, n))
        print(line("baseline: file copy", copy_s, rows, n, f"  (db file {db_size / 1e6:,.1f} MB)"))
        print(line("sqlite3 online backup API", online_s, rows, n))
        print(line("restore (lts restore, migrates)", restore_s, rows, n))
        print(line("baseline: file copy", copy_s, rows, n))
        print(f"  ratio backup / file copy: {backup_s / copy_s:.1f}x; "
              f"restore / file copy: {restore_s / copy_s:.1f}x")
    else:
        copies = work / "copy"
        copies.mkdir()

        async def copy_out(_: int) -> None:
            await pg_copy_out(source, copies)

        migrated: list[str] = []

        async def copy_in(_: int) -> None:
            await pg_copy_in(migrated[-1], copies)

        async def next_target(_: int) -> None:
            await stores.drop(migrated.pop())
            migrated.append(await stores.fresh(store))
            await upgrade_to_head(migrated[-1])

        copy_out_s = await timed(args.runs, copy_out)
        migrated.append(await stores.fresh(store))
        await upgrade_to_head(migrated[-1])
        copy_in_s = await timed(args.runs, copy_in, next_target)
        await stores.drop(migrated.pop())
        print(line("backup (lts backup)", backup_s, rows, n))
        print(line("baseline: COPY orders, fills TO", copy_out_s, rows, n))
        print(line("restore (lts restore, migrates)", restore_s, rows, n))
        print(line("baseline: COPY orders, fills FROM", copy_in_s, rows, n))
        print(f"  ratio backup / COPY TO: {backup_s / copy_out_s:.1f}x; "
              f"restore / COPY FROM: {restore_s / copy_in_s:.1f}x")
    await stores.drop(source)
    shutil.rmtree(work)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", choices=("both", "sqlite", "postgresql"), default="both")
    parser.add_argument("--fills", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--pg-url", default=PG_URL,
                        help="the PostgreSQL server's maintenance database (default: %(default)s)")
    parser.add_argument("--dir", type=Path, help="where the SQLite files and backups go "
                                                 "(default: a temporary directory)")
    args = parser.parse_args()

    print(describe())
    print(f"fills: {args.fills:,} (and one order each); runs: {args.runs}")
    with tempfile.TemporaryDirectory(prefix="lts-bench-", dir=args.dir) as tmp:
        stores = Stores(Path(tmp), args.pg_url)
        try:
            for store in ("sqlite", "postgresql"):
                if args.store in ("both", store):
                    await bench_store(store, stores, args)
        finally:
            await stores.close()


if __name__ == "__main__":
    asyncio.run(main())
