"""Restore: load a backup file (:mod:`lts.persistence.backup`) into an empty database.

The other half of ``python -m lts.engine backup`` (glued in :mod:`lts.cli.backup_command`).
In order, stopping at the first problem with one :class:`~lts.errors.BackupError` line:

1. the manifest is read (format version, a revision this code knows);
2. the target must be empty, which is only read: no row in any table (a new SQLite file or
   PostgreSQL database, or one that was only migrated);
3. every table member is read through and its SHA-256 (and the zip CRC) compared: a damaged or
   truncated file stops here, with nothing written;
4. the target is migrated to the backup's revision;
5. every table is loaded, parents first, in ONE transaction (a failure leaves the target
   empty), foreign keys checked once over the whole load, and PostgreSQL's sequences set past
   the highest id;
6. a backup older than this code is then migrated to head.

The rows are in a logical form (one per kind of column), converted per target column, so a
backup made on SQLite restores into PostgreSQL and back.
"""

import base64
import datetime as dt
import hashlib
import sqlite3
import time
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio.to_thread
import asyncpg  # type: ignore[import-untyped]
import msgspec
from sqlalchemy.engine import make_url

from alembic import command
from lts.errors import BackupError
from lts.persistence.backup import (
    FORMAT,
    FORMAT_VERSION,
    MANIFEST,
    VERSION_TABLE,
    Manifest,
    TableEntry,
    TableShape,
    asyncpg_connect_args,
    describe,
    quote,
    sqlite_path,
)
from lts.persistence.db import BUSY_TIMEOUT_MS, check_url, make_engine
from lts.persistence.migrations import (
    alembic_config,
    current_revision,
    head_revision,
    is_known,
    upgrade_to_head,
)

_READ_CHUNK = 1 << 20
_ARCHIVE_ERRORS = (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError,
                   msgspec.DecodeError, KeyError, ValueError)

Rows = list[list[Any]]


@dataclass(frozen=True)
class RestoreReport:
    manifest: Manifest
    revision: str  # where the target is now (head, when the backup was older)
    seconds: float


class BackupFile:
    """An open backup file: its manifest, checked members and their rows."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self._zip = zipfile.ZipFile(path)
        except FileNotFoundError:
            raise BackupError(f"restore: {path}: no such file") from None
        except _ARCHIVE_ERRORS as exc:
            raise self._damaged(exc) from None
        try:
            self.manifest = msgspec.json.decode(self._zip.read(MANIFEST), type=Manifest)
        except _ARCHIVE_ERRORS as exc:
            self._zip.close()
            raise self._damaged(exc) from None
        m = self.manifest
        if m.format != FORMAT or m.format_version > FORMAT_VERSION:
            self._zip.close()
            raise BackupError(f"restore: {path}: format {m.format!r} version {m.format_version}"
                              f" (this LTS reads {FORMAT!r} up to {FORMAT_VERSION})")

    def _damaged(self, exc: BaseException) -> BackupError:
        reason = "KeyError: missing member " + str(exc) if isinstance(exc, KeyError) else exc
        return BackupError(f"restore: {self.path} is damaged or not an LTS backup ({reason}); "
                           "nothing was written")

    def close(self) -> None:
        self._zip.close()

    def verify(self) -> None:
        """Read every member through: the zip CRC and the manifest's SHA-256 must match."""
        expected = {MANIFEST} | {t.file for t in self.manifest.tables}
        names = set(self._zip.namelist())
        if names != expected:
            raise self._damaged(ValueError(f"members {sorted(names ^ expected)} do not match "
                                           "the manifest"))
        for table in self.manifest.tables:
            digest = hashlib.sha256()
            try:
                with self._zip.open(table.file) as member:
                    while chunk := member.read(_READ_CHUNK):
                        digest.update(chunk)
            except _ARCHIVE_ERRORS as exc:
                raise self._damaged(exc) from None
            if digest.hexdigest() != table.sha256:
                raise self._damaged(ValueError(f"{table.file}: checksum mismatch"))

    def batches(self, table: TableEntry) -> Iterator[Rows]:
        decode = msgspec.json.Decoder().decode  # untyped: a third faster; checked by sha256
        try:
            with self._zip.open(table.file) as member:
                for line in member:
                    yield decode(line)
        except _ARCHIVE_ERRORS as exc:
            raise self._damaged(exc) from None


# -- the target -------------------------------------------------------------------------------

def _sqlite_table_with_rows(path: Path) -> str | None:
    if not path.is_file() or path.stat().st_size == 0:
        return None
    connection = sqlite3.connect(path, timeout=BUSY_TIMEOUT_MS / 1000)
    try:
        connection.execute("PRAGMA query_only=ON")
        names = [r[0] for r in connection.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")]
        for name in names:
            if name != VERSION_TABLE and connection.execute(
                    f"SELECT 1 FROM {quote(name)} LIMIT 1").fetchone():  # noqa: S608 # nosec B608
                return str(name)
        return None
    finally:
        connection.close()


async def _postgres_table_with_rows(url: str) -> str | None:
    connection = await asyncpg.connect(**asyncpg_connect_args(url))
    try:
        names = [r[0] for r in await connection.fetch(
            "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()")]
        for name in names:
            if name != VERSION_TABLE and await connection.fetchval(
                    f"SELECT EXISTS (SELECT 1 FROM {quote(name)})"):  # noqa: S608 # nosec B608
                return str(name)
        return None
    finally:
        await connection.close()


async def _migrate_to(url: str, revision: str) -> None:
    """Bring the empty target to ``revision`` (down to base first if it is elsewhere)."""
    engine = make_engine(url)
    try:
        current = await current_revision(engine)
    finally:
        await engine.dispose()
    if current == revision:
        return
    if current is not None:
        if not is_known(current):
            raise BackupError(f"restore: the target database is at revision {current}, which "
                              "this LTS does not know")
        await anyio.to_thread.run_sync(command.downgrade, alembic_config(url), "base")
    await anyio.to_thread.run_sync(command.upgrade, alembic_config(url), revision)


def _plan(manifest: Manifest, shapes: list[TableShape]) -> list[tuple[TableEntry, TableShape]]:
    """Each backed-up table with the target table it loads into, parents first."""
    entries = {t.name: t for t in manifest.tables}
    if set(entries) != {s.name for s in shapes}:
        diff = sorted(set(entries) ^ {s.name for s in shapes})
        raise BackupError(f"restore: the tables of the backup and of revision "
                          f"{manifest.revision} here differ: {diff}")
    plan = []
    for shape in shapes:
        entry = entries[shape.name]
        if set(entry.columns) != set(shape.columns):
            raise BackupError(f"restore: table {shape.name!r}: the backup's columns and those "
                              f"of revision {manifest.revision} here differ")
        plan.append((entry, shape))
    return plan


def _utc(text: str) -> dt.datetime:
    value = dt.datetime.fromisoformat(text)
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value


def _converter(entry: TableEntry, shape: TableShape,
               dialect: str) -> Callable[[Rows], Rows] | None:
    """The per-column conversions the target needs from the logical form (None: none)."""
    by_kind: dict[str, Callable[[Any], Any]] = {"binary": base64.b64decode}
    if dialect == "postgresql":
        by_kind["datetime"] = _utc
    kinds = dict(zip(shape.columns, shape.kinds, strict=True))
    steps = [(i, by_kind[kinds[c]]) for i, c in enumerate(entry.columns) if kinds[c] in by_kind]
    if not steps:
        return None

    def convert(rows: Rows) -> Rows:
        for row in rows:
            for i, step in steps:
                if row[i] is not None:
                    row[i] = step(row[i])
        return rows

    return convert


def _check_count(entry: TableEntry, loaded: int) -> None:
    if loaded != entry.rows:
        raise BackupError(f"restore: table {entry.name!r}: {loaded} rows in the file, the "
                          f"manifest says {entry.rows}")


def _load_sqlite(path: Path, backup: BackupFile,
                 plan: list[tuple[TableEntry, TableShape]]) -> None:
    connection = sqlite3.connect(path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None)
    try:
        # Foreign keys are checked once, over the whole load, before the commit: a check per
        # row made the load 2.6 times slower (measured), the one check costs a few percent.
        connection.execute("PRAGMA foreign_keys=OFF")
        connection.execute("PRAGMA cache_size=-131072")  # 128 MiB: index pages of big tables
        connection.execute("BEGIN IMMEDIATE")
        try:
            for entry, shape in plan:
                sql = (f"INSERT INTO {quote(shape.name)} "  # noqa: S608 # nosec B608
                       f"({', '.join(quote(c) for c in entry.columns)}) "
                       f"VALUES ({', '.join('?' * len(entry.columns))})")
                convert = _converter(entry, shape, "sqlite")
                loaded = 0
                for rows in backup.batches(entry):
                    connection.executemany(sql, convert(rows) if convert else rows)
                    loaded += len(rows)
                _check_count(entry, loaded)
            broken = connection.execute("PRAGMA foreign_key_check").fetchone()
            if broken is not None:
                raise BackupError(f"restore: table {broken[0]!r} row {broken[1]} refers to a "
                                  f"missing {broken[2]!r} row")
            connection.execute("COMMIT")
        except (sqlite3.Error, TypeError, ValueError) as exc:
            connection.execute("ROLLBACK")
            raise BackupError(f"restore: loading the backup failed: {exc}") from None
        except BaseException:
            connection.execute("ROLLBACK")
            raise
    finally:
        connection.close()


def _next_rows(batches: Iterator[Rows], convert: Callable[[Rows], Rows] | None) -> Rows | None:
    rows = next(batches, None)
    return convert(rows) if convert and rows is not None else rows


async def _load_postgres(url: str, backup: BackupFile,
                         plan: list[tuple[TableEntry, TableShape]]) -> None:
    connection = await asyncpg.connect(**asyncpg_connect_args(url))
    try:
        async with connection.transaction():
            # As pg_restore does: foreign keys are added back after the data, which validates
            # each in one pass; a trigger per row made the load about twice as slow (measured).
            foreign_keys = await connection.fetch(_FOREIGN_KEYS)
            for fk in foreign_keys:
                await connection.execute(
                    f"ALTER TABLE {fk['tbl']} DROP CONSTRAINT {quote(fk['name'])}")
            for entry, shape in plan:
                batches = backup.batches(entry)
                convert = _converter(entry, shape, "postgresql")
                loaded = 0
                while (rows := await anyio.to_thread.run_sync(_next_rows, batches, convert)
                       ) is not None:
                    await connection.copy_records_to_table(shape.name, records=rows,
                                                           columns=entry.columns)
                    loaded += len(rows)
                _check_count(entry, loaded)
            for fk in foreign_keys:
                await connection.execute(f"ALTER TABLE {fk['tbl']} ADD CONSTRAINT "
                                         f"{quote(fk['name'])} {fk['definition']}")
            for _, shape in plan:
                await _reset_sequences(connection, shape)
    except (asyncpg.PostgresError, TypeError, ValueError) as exc:
        raise BackupError(f"restore: loading the backup failed: {exc}") from None
    finally:
        await connection.close()


_FOREIGN_KEYS = (
    "SELECT conrelid::regclass::text AS tbl, conname AS name, "
    "pg_get_constraintdef(oid) AS definition FROM pg_constraint "
    "WHERE contype = 'f' AND connamespace = current_schema()::regnamespace ORDER BY oid")


async def _reset_sequences(connection: asyncpg.Connection, shape: TableShape) -> None:
    """Past the highest value of each key column that draws from a sequence."""
    for column in shape.key:
        sequence = await connection.fetchval("SELECT pg_get_serial_sequence($1, $2)",
                                             quote(shape.name), column)
        if sequence is not None:
            key, table = quote(column), quote(shape.name)
            highest = f"SELECT max({key}) FROM {table}"  # noqa: S608 # nosec B608
            await connection.execute(
                f"SELECT setval($1, COALESCE(({highest}), 0) + 1, false)", sequence)


async def restore(url: str, path: Path) -> RestoreReport:
    """Load the backup at ``path`` into the empty database at ``url`` (module docstring)."""
    check_url(url)
    started = time.perf_counter()
    dialect = make_url(url).get_backend_name()
    backup = await anyio.to_thread.run_sync(BackupFile, path)
    try:
        manifest = backup.manifest
        if not is_known(manifest.revision):
            raise BackupError(f"restore: the backup is at revision {manifest.revision}, which "
                              f"this LTS does not know (its head is {head_revision()}): "
                              f"restore it with LTS {manifest.lts_version} or later")
        if dialect == "sqlite":
            busy = await anyio.to_thread.run_sync(_sqlite_table_with_rows, sqlite_path(url))
        else:
            busy = await _postgres_table_with_rows(url)
        if busy is not None:
            raise BackupError(f"restore: the target database is not empty (table {busy!r} has "
                              "rows): restore needs an empty database")
        await anyio.to_thread.run_sync(backup.verify)
        await _migrate_to(url, manifest.revision)
        engine = make_engine(url)
        try:
            plan = _plan(manifest, await describe(engine))
        finally:
            await engine.dispose()
        if dialect == "sqlite":
            await anyio.to_thread.run_sync(_load_sqlite, sqlite_path(url), backup, plan)
        else:
            await _load_postgres(url, backup, plan)
    finally:
        backup.close()
    head = head_revision()
    if manifest.revision != head:
        await upgrade_to_head(url)
    return RestoreReport(manifest, head, time.perf_counter() - started)
