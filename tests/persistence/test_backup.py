"""Backup and restore on both stores: a round trip keeps every row of the snapshot, across
SQLite and PostgreSQL too; a damaged file or a non-empty target is refused with nothing
written; a backup taken while the real engine trades restores consistent (every fill's order,
every order event's order, every position equal to its fills)."""

import datetime as dt
import itertools
import zipfile
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import anyio
import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import func, insert, inspect, select, text
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from lts.domain.portfolio_spec import AssetSpec, PortfolioSpec
from lts.engine.engine import Engine
from lts.errors import BackupError
from lts.persistence import repositories as repo
from lts.persistence.backup import backup
from lts.persistence.db import make_engine
from lts.persistence.journal import Journal
from lts.persistence.migrations import head_revision, upgrade_to_head
from lts.persistence.restore import restore
from lts.persistence.tables import (
    broker_credentials,
    configuration,
    fills,
    metadata,
    order_events,
    orders,
    positions,
    sessions,
    statistics,
)
from lts.settings import load_settings

pytestmark = pytest.mark.anyio

NewDatabase = Callable[[str], str]
Rows = dict[str, list[dict[str, Any]]]


@pytest.fixture
def new_database(tmp_path: Path, request: pytest.FixtureRequest) -> NewDatabase:
    """A fresh, empty database of the given backend ("sqlite" or "postgresql")."""
    numbers = itertools.count()

    def make(backend: str) -> str:
        if backend == "sqlite":
            return f"sqlite+aiosqlite:///{tmp_path / f'restored{next(numbers)}.db'}"
        dbs = request.getfixturevalue("pg_databases")
        url: str = dbs.create()
        request.addfinalizer(lambda: dbs.drop(url))
        return url

    return make


def _backend(url: str) -> str:
    return make_url(url).get_backend_name()


# -- writing rows the way LTS does --------------------------------------------------------------

async def seed(engine: AsyncEngine) -> tuple[int, int]:
    """A user, a portfolio with an asset, and a row in each table the journal does not write:
    every kind of column (bool, datetime, JSON, Money, binary, a text key) has values."""
    uid = await repo.create_user(engine, "alice", "$2b$04$hash", "trader", "a@example.org")
    pid = await repo.create_portfolio(engine, PortfolioSpec(
        name="p1", initial_cash=Decimal("100000.25"), owner_id=uid,
        portfolio_params={"fraction": "0.1"}, risk_params={"max_open_orders": 5},
        assets=(AssetSpec(symbol="AAA", strategy_plugin="sma_crossover",
                               strategy_params={"fast": 2, "slow": 5}, broker_plugin="paper",
                               broker_params={"fees_bps": "1"}, pipeline_plugin="synthetic",
                               pipeline_params={"seed": 1, "interval": 0.5},
                               tick_size=Decimal("0.0001")),)))
    async with engine.begin() as conn:
        await conn.execute(insert(configuration), [
            {"key": "risk.max_order_notional", "value": "1234.5", "updated_by": "alice"}])
        await conn.execute(insert(statistics), [
            {"portfolio_id": pid, "name": "equity", "value": Decimal("100000.123456789012")}])
        await conn.execute(insert(sessions), [{
            "id": "s-1", "user_id": uid, "family_id": "f-1", "refresh_hash": None,
            "expires_at": dt.datetime(2030, 1, 2, 3, 4, 5, 678901, tzinfo=dt.UTC),
            "client_address": "127.0.0.1"}])
        await conn.execute(insert(broker_credentials), [{
            "user_id": uid, "broker": "paper", "key_version": "v1",
            "nonce": bytes(range(12)), "ciphertext": b"\x00\xff\n\"\\" + bytes(range(256))}])
    return uid, pid


def order_row(pid: int, n: int) -> dict[str, Any]:
    return {"client_order_id": f"{pid}-{n}", "portfolio_id": pid, "symbol": "AAA",
            "side": "buy" if n % 2 else "sell", "order_type": "limit", "time_in_force": "gtc",
            "quantity": Decimal("1.5"), "limit_price": Decimal("100.25"), "stop_price": None,
            "status": "submitted", "filled_quantity": Decimal(0), "avg_fill_price": None,
            "broker": "paper", "broker_order_id": None, "reason": "", "tag": "t",
            "ts_init": n, "ts_last": n}


async def trade(journal: Journal, pid: int, numbers: range) -> None:
    """Orders that fill, with their positions, events and an audit row, through the journal."""
    for n in numbers:
        coid = f"{pid}-{n}"
        futures = [journal.insert_order(order_row(pid, n))]
        futures.append(journal.insert_fill(
            {"portfolio_id": pid, "client_order_id": coid, "broker": "paper",
             "trade_id": f"t-{n}", "symbol": "AAA", "side": "buy" if n % 2 else "sell",
             "quantity": Decimal("1.5"), "price": Decimal("100.25"), "fee": Decimal("0.015"),
             "ts_event": n},
            {"portfolio_id": pid, "symbol": "AAA", "quantity": Decimal(n % 2),
             "cost": Decimal("100.25") * (n % 2), "avg_price": Decimal("100.25"),
             "realized_pnl": Decimal("-0.5") * n, "fees": Decimal("0.015") * n, "ts_last": n}))
        futures.append(journal.update_order(
            {**order_row(pid, n), "status": "filled", "filled_quantity": Decimal("1.5"),
             "avg_fill_price": Decimal("100.25"), "broker_order_id": f"b-{n}", "ts_last": n + 1}))
        futures.append(journal.insert_order_event(
            {"portfolio_id": pid, "seq": n, "type": "OrderFilled", "client_order_id": coid,
             "payload": {"n": n, "text": "quote \" backslash \\ newline \n é"}, "ts_event": n}))
        futures.append(journal.insert_audit(
            {"actor": "alice", "action": "order.place", "target": coid,
             "client_address": None, "outcome": "ok", "detail": {"n": n}}))
        for future in futures:
            await future


async def with_journal(engine: AsyncEngine, pid: int, numbers: range) -> None:
    journal = Journal(engine)
    async with anyio.create_task_group() as tg:
        await tg.start(journal.run)
        await trade(journal, pid, numbers)
        tg.cancel_scope.cancel()


def _comparable(value: Any) -> Any:
    """A datetime as naive UTC: SQLite hands back naive values, PostgreSQL aware ones."""
    if isinstance(value, dt.datetime) and value.tzinfo is not None:
        return value.astimezone(dt.UTC).replace(tzinfo=None)
    return value


async def all_rows(url: str) -> Rows:
    """Every row of every table, in key order, as values the two stores can be compared by."""
    engine = make_engine(url)
    try:
        out: Rows = {}
        async with engine.connect() as conn:
            for table in metadata.sorted_tables:
                key = list(table.primary_key.columns)
                result = await conn.execute(select(table).order_by(*key))
                out[table.name] = [{k: _comparable(v) for k, v in row.items()}
                                   for row in result.mappings()]
        return out
    finally:
        await engine.dispose()


async def schema_differences(url: str) -> list[Any]:
    """What autogenerate finds between ``tables.py`` and the database (foreign keys too)."""
    engine = make_engine(url)
    try:
        async with engine.connect() as conn:
            return await conn.run_sync(lambda c: list(compare_metadata(
                MigrationContext.configure(c, opts={"compare_type": True}), metadata)))
    finally:
        await engine.dispose()


async def tables_of(url: str) -> set[str]:
    engine = make_engine(url)
    try:
        async with engine.connect() as conn:
            return set(await conn.run_sync(lambda c: inspect(c).get_table_names()))
    finally:
        await engine.dispose()


async def traded_database(url: str, numbers: range) -> int:
    engine = make_engine(url)
    try:
        _, pid = await seed(engine)
        await with_journal(engine, pid, numbers)
        return pid
    finally:
        await engine.dispose()


# -- round trips ------------------------------------------------------------------------------

async def test_round_trip_restores_every_row_of_the_snapshot(
        migrated_url: str, backend: str, new_database: NewDatabase, tmp_path: Path) -> None:
    pid = await traded_database(migrated_url, range(1, 41))
    snapshot = await all_rows(migrated_url)
    made = await backup(migrated_url, tmp_path / "lts.backup")
    assert made.manifest.revision == head_revision()
    assert made.manifest.rows == sum(len(rows) for rows in snapshot.values())

    engine = make_engine(migrated_url)  # trade more after the backup
    try:
        await with_journal(engine, pid, range(41, 61))
    finally:
        await engine.dispose()
    later = await all_rows(migrated_url)
    assert len(later["fills"]) == len(snapshot["fills"]) + 20

    target = new_database(backend)
    done = await restore(target, tmp_path / "lts.backup")
    assert done.revision == head_revision()
    restored = await all_rows(target)
    assert restored == snapshot
    assert await schema_differences(target) == []  # the foreign keys dropped for the load too
    assert restored["broker_credentials"][0]["ciphertext"].startswith(b"\x00\xff\n\"\\")

    # the restored database takes new rows: ids continue after the highest restored one
    engine = make_engine(target)
    try:
        await with_journal(engine, pid, range(41, 43))
        async with engine.connect() as conn:
            ids = (await conn.execute(select(fills.c.id).order_by(fills.c.id))).scalars().all()
    finally:
        await engine.dispose()
    assert ids == list(range(1, 43))


@pytest.mark.postgres
@pytest.mark.parametrize(("source", "target"), [("sqlite", "postgresql"),
                                                ("postgresql", "sqlite")])
async def test_a_backup_restores_into_the_other_store(
        source: str, target: str, new_database: NewDatabase, tmp_path: Path) -> None:
    url = new_database(source)
    await upgrade_to_head(url)
    await traded_database(url, range(1, 26))
    snapshot = await all_rows(url)
    made = await backup(url, tmp_path / "lts.backup")
    assert made.manifest.dialect == source

    into = new_database(target)
    await restore(into, tmp_path / "lts.backup")
    assert await all_rows(into) == snapshot

    # and back again: the second hop keeps every row too
    again = new_database(source)
    await backup(into, tmp_path / "second.backup")
    await restore(again, tmp_path / "second.backup")
    assert await all_rows(again) == snapshot


# -- refusals ---------------------------------------------------------------------------------

def _flip_a_byte(src: Path, dst: Path, inside: bytes) -> None:
    data = bytearray(src.read_bytes())
    data[data.index(inside) + 1] ^= 0x01
    dst.write_bytes(bytes(data))


def _rewrite(src: Path, dst: Path, member: str, change: Callable[[bytes], bytes]) -> None:
    """A consistent zip whose one member was changed (its CRC matches, the manifest's
    SHA-256 does not)."""
    with zipfile.ZipFile(src) as old, zipfile.ZipFile(dst, "w") as new:
        for info in old.infolist():
            data = old.read(info.filename)
            new.writestr(info.filename, change(data) if info.filename == member else data)


@pytest.mark.parametrize("damage", ["flipped byte", "changed row", "truncated", "not a zip",
                                    "missing member"])
async def test_a_damaged_file_is_refused_and_nothing_is_written(
        migrated_url: str, backend: str, new_database: NewDatabase, tmp_path: Path,
        damage: str) -> None:
    await traded_database(migrated_url, range(1, 11))
    good = tmp_path / "good.backup"
    await backup(migrated_url, good)
    bad = tmp_path / "bad.backup"
    if damage == "flipped byte":
        _flip_a_byte(good, bad, b'"t-5"')
    elif damage == "changed row":
        _rewrite(good, bad, "tables/fills.jsonl", lambda b: b.replace(b'"t-3"', b'"t-9"'))
    elif damage == "truncated":
        bad.write_bytes(good.read_bytes()[: good.stat().st_size * 2 // 3])
    elif damage == "not a zip":
        bad.write_bytes(b"hello, not a backup\n")
    else:
        with zipfile.ZipFile(good) as old, zipfile.ZipFile(bad, "w") as new:
            for info in old.infolist():
                if info.filename != "tables/orders.jsonl":
                    new.writestr(info.filename, old.read(info.filename))

    target = new_database(backend)
    with pytest.raises(BackupError, match="damaged or not an LTS backup") as refused:
        await restore(target, bad)
    assert "\n" not in str(refused.value)
    if backend == "sqlite":
        assert not await anyio.Path(str(make_url(target).database)).exists()
    else:
        assert await tables_of(target) == set()
    await restore(target, good)  # the same target takes the good file
    assert len((await all_rows(target))["fills"]) == 10


async def test_a_target_with_rows_is_refused(migrated_url: str, tmp_path: Path) -> None:
    await traded_database(migrated_url, range(1, 6))
    await backup(migrated_url, tmp_path / "lts.backup")
    before = await all_rows(migrated_url)
    with pytest.raises(BackupError, match="the target database is not empty"):
        await restore(migrated_url, tmp_path / "lts.backup")
    assert await all_rows(migrated_url) == before


async def test_an_empty_migrated_target_is_accepted(
        migrated_url: str, backend: str, new_database: NewDatabase, tmp_path: Path) -> None:
    """A database that was only migrated (the compose ``migrate`` service ran) is empty."""
    await traded_database(migrated_url, range(1, 4))
    await backup(migrated_url, tmp_path / "lts.backup")
    target = new_database(backend)
    await upgrade_to_head(target)
    await restore(target, tmp_path / "lts.backup")
    assert await all_rows(target) == await all_rows(migrated_url)


async def test_backup_of_a_database_without_schema_is_refused(db_url: str,
                                                              tmp_path: Path) -> None:
    engine = make_engine(db_url)  # connect once: the SQLite file exists, empty
    try:
        async with engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
    finally:
        await engine.dispose()
    with pytest.raises(BackupError, match="no LTS tables"):
        await backup(db_url, tmp_path / "lts.backup")
    assert not (tmp_path / "lts.backup").exists()
    assert not (tmp_path / "lts.backup.partial").exists()


# -- a backup while the engine trades -----------------------------------------------------------

async def _count(engine: AsyncEngine, table: Any) -> int:
    async with engine.connect() as conn:
        return int((await conn.execute(select(func.count()).select_from(table))).scalar_one())


def _integrity(conn: Connection) -> dict[str, int]:
    """Every fill's and every order event's order exists; every position equals the signed sum
    of its fills (the journal writes a fill and its position in one transaction). Not checked:
    an order's ``filled_quantity`` against its fills — the order manager writes the order row at
    the end of the runner's batch, and a write-ahead wait inside the batch can let the journal
    commit the fill first, so a snapshot (like a crash) may see the fill before the update."""
    coids = set(conn.execute(select(orders.c.client_order_id)).scalars())
    fill_rows = conn.execute(select(fills)).mappings().all()
    assert {f["client_order_id"] for f in fill_rows} <= coids, "a fill of a missing order"
    events = set(conn.execute(select(order_events.c.client_order_id)).scalars())
    assert events <= coids, "an order event of a missing order"
    signed: dict[tuple[int, str], Decimal] = {}
    for f in fill_rows:
        key = (f["portfolio_id"], f["symbol"])
        signed[key] = signed.get(key, Decimal(0)) + (
            f["quantity"] if f["side"] == "buy" else -f["quantity"])
    stored = {(p.portfolio_id, p.symbol): p.quantity
              for p in conn.execute(select(positions))}
    for key in set(stored) | set(signed):
        assert stored.get(key, Decimal(0)) == signed.get(key, Decimal(0)), key
    return {"orders": len(coids), "fills": len(fill_rows), "events": len(events)}


async def test_a_backup_while_the_engine_trades_is_consistent(
        migrated_url: str, new_database: NewDatabase, tmp_path: Path) -> None:
    settings = load_settings(overrides={
        "admin_password": "Adm1n-pass-word", "database": {"url": migrated_url},
        "api": {"enabled": False}, "demo": {"interval": 0.01}, "auth": {"bcrypt_rounds": 4}})
    engine = Engine(settings)
    probe = make_engine(migrated_url)
    archives: list[Path] = []
    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(engine.run)
            with anyio.fail_after(30):
                await engine.started.wait()
                while await _count(probe, fills) < 5:  # noqa: ASYNC110 - polls the database
                    await anyio.sleep(0.05)
            for i in range(3):  # each while the portfolio trades on
                archives.append((await backup(migrated_url, tmp_path / f"{i}.backup")).path)
                seen = await _count(probe, fills)
                with anyio.fail_after(30):
                    while await _count(probe, fills) == seen:  # noqa: ASYNC110 - polls the db
                        await anyio.sleep(0.02)
            engine.stop()
    finally:
        await probe.dispose()

    counts = []
    for archive in archives:
        target = new_database("sqlite")
        await restore(target, archive)
        restored = make_engine(target)
        try:
            async with restored.connect() as conn:
                counts.append(await conn.run_sync(_integrity))
        finally:
            await restored.dispose()
    assert [c["fills"] for c in counts] == sorted({c["fills"] for c in counts}), counts
    assert counts[0]["fills"] >= 5
    final = await all_rows(migrated_url)
    assert len(final["fills"]) > counts[-1]["fills"]
