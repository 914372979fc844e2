"""Backup: a consistent snapshot of LTS's tables in one file, from SQLite or PostgreSQL.

An operator's step beside the running engine (``python -m lts.engine backup OUT``, glued in
:mod:`lts.cli.backup_command`): it reads the database while the journal may be writing, and
:mod:`lts.persistence.restore` loads the file into an empty database of either kind.

The snapshot is one read transaction. On SQLite (always in WAL mode under LTS) a read
transaction sees one committed state of the whole file and never blocks the journal's writer —
the same snapshot the ``sqlite3`` online backup API copies, without first writing a second copy
of the database to disk. On PostgreSQL it is one ``REPEATABLE READ READ ONLY`` transaction. The
journal commits an order, its fills, the position and its events in one transaction, so a
snapshot holds each of them whole or not at all.

The file (format version 1) is a zip archive, stored uncompressed, holding one member per table,
``tables/<name>.jsonl``, and ``manifest.json``: format and LTS versions, the source dialect, the
Alembic revision, and per table its columns, their kinds, the row count, the byte count and the
SHA-256 of its member (verified by restore before anything is written). Every line of a table
member is a JSON array of up to :data:`BATCH_ROWS` rows, a row being the array of its values in
the manifest's column order, in one logical form per kind so that either database can load it:

========  ===========================================================================
int       a JSON integer
decimal   the exact decimal as text, without trailing zeros (PostgreSQL's ``NUMERIC``)
text      text (LTS's Money columns are text on SQLite: the same exact decimal text)
bool      ``true`` / ``false``
datetime  UTC as text, ``YYYY-MM-DD HH:MM:SS[.ffffff]``
json      the JSON document as text, exactly as stored
binary    base64 text
========  ===========================================================================

Tables and columns are reflected from the database, not taken from :mod:`lts.persistence.tables`,
so a database at an older revision backs up as it is: LTS's tables are every table of the
database's default schema except ``alembic_version`` (LTS expects a database of its own).
"""

import datetime as dt
import hashlib
import os
import sqlite3
import time
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Final

import anyio.to_thread
import asyncpg  # type: ignore[import-untyped]
import msgspec
from sqlalchemy import MetaData
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.types import (
    JSON,
    Boolean,
    DateTime,
    Float,
    Integer,
    LargeBinary,
    Numeric,
    String,
    TypeEngine,
)

import lts
from lts.errors import BackupError
from lts.persistence.db import BUSY_TIMEOUT_MS, check_url, make_engine
from lts.persistence.migrations import current_revision

FORMAT: Final = "lts-backup"
FORMAT_VERSION: Final = 1
MANIFEST: Final = "manifest.json"
BATCH_ROWS: Final = 10_000
VERSION_TABLE: Final = "alembic_version"


class TableEntry(msgspec.Struct, forbid_unknown_fields=True):
    name: str
    file: str
    columns: list[str]
    kinds: list[str]
    rows: int
    bytes: int
    sha256: str


class Manifest(msgspec.Struct, forbid_unknown_fields=True):
    format: str
    format_version: int
    lts_version: str
    created_at: str
    dialect: str
    revision: str
    tables: list[TableEntry]

    @property
    def rows(self) -> int:
        return sum(t.rows for t in self.tables)


@dataclass(frozen=True)
class TableShape:
    """A table as reflected: its columns, their kinds, and the key that orders its rows."""

    name: str
    columns: tuple[str, ...]
    kinds: tuple[str, ...]
    key: tuple[str, ...]
    timezone: tuple[bool, ...]  # per column: a timezone-aware datetime (PostgreSQL)


@dataclass(frozen=True)
class BackupReport:
    path: Path
    manifest: Manifest
    size: int
    seconds: float


def quote(name: str) -> str:
    """A quoted SQL identifier (the names come from reflection; quoted all the same)."""
    return '"' + name.replace('"', '""') + '"'


def kind_of(column: str, type_: TypeEngine[Any]) -> str:
    """The logical kind (module docstring) a reflected column type is carried as."""
    kinds: tuple[tuple[type[TypeEngine[Any]], str], ...] = (
        (Boolean, "bool"), (Integer, "int"), (DateTime, "datetime"), (JSON, "json"),
        (LargeBinary, "binary"), (String, "text"))
    if isinstance(type_, Numeric) and not isinstance(type_, Float):
        return "decimal"
    for cls, kind in kinds:
        if isinstance(type_, cls):
            return kind
    raise BackupError(f"column {column}: type {type_} is not one a backup carries")


async def describe(engine: AsyncEngine) -> list[TableShape]:
    """LTS's tables in the database behind ``engine``, parents before children."""

    def reflect(connection: Connection) -> list[TableShape]:
        meta = MetaData()
        meta.reflect(connection)
        shapes = []
        for table in meta.sorted_tables:
            if table.name == VERSION_TABLE:
                continue
            cols = list(table.columns)
            key = [str(c.name) for c in table.primary_key.columns] or [str(c.name) for c in cols]
            shapes.append(TableShape(
                str(table.name), tuple(str(c.name) for c in cols),
                tuple(kind_of(f"{table.name}.{c.name}", c.type) for c in cols), tuple(key),
                tuple(bool(getattr(c.type, "timezone", False)) for c in cols)))
        return shapes

    async with engine.connect() as connection:
        return await connection.run_sync(reflect)


def asyncpg_connect_args(url: str) -> dict[str, Any]:
    """``asyncpg.connect`` keywords for a ``postgresql+asyncpg://`` URL, as SQLAlchemy reads it."""
    parsed = make_url(url)
    kwargs: dict[str, Any] = parsed.translate_connect_args(username="user")
    kwargs.update((k, v) for k, v in parsed.query.items()
                  if k not in ("prepared_statement_cache_size", "async_fallback"))
    return kwargs


def sqlite_path(url: str) -> Path:
    database = make_url(url).database
    if not database or database == ":memory:":
        raise BackupError("backup and restore need a SQLite file, not an in-memory database")
    return Path(database).expanduser().resolve()


# -- the archive ------------------------------------------------------------------------------

class _TableWriter:
    """One table's member: rows in, JSON lines out, counted and hashed."""

    def __init__(self, archive: zipfile.ZipFile, shape: TableShape) -> None:
        self.shape = shape
        self.file = f"tables/{shape.name}.jsonl"
        member = zipfile.ZipInfo(self.file, time.localtime()[:6])
        self._out: IO[bytes] = archive.open(member, "w", force_zip64=True)
        self._sha = hashlib.sha256()
        self._encode = msgspec.json.Encoder().encode
        self.rows = 0
        self.bytes = 0

    def write(self, rows: Sequence[Sequence[Any]]) -> None:
        if not rows:
            return
        data = self._encode(rows) + b"\n"
        self._out.write(data)
        self._sha.update(data)
        self.rows += len(rows)
        self.bytes += len(data)

    def close(self) -> TableEntry:
        self._out.close()
        s = self.shape
        return TableEntry(name=s.name, file=self.file, columns=list(s.columns),
                          kinds=list(s.kinds), rows=self.rows, bytes=self.bytes,
                          sha256=self._sha.hexdigest())


class _ArchiveWriter:
    """The backup file, written beside its final name and renamed into place when complete (a
    failed backup never leaves a partial file under ``path``)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._partial = path.with_name(path.name + ".partial")
        try:
            self._zip = zipfile.ZipFile(self._partial, "w", zipfile.ZIP_STORED, allowZip64=True)
        except OSError as exc:
            raise BackupError(f"backup: cannot write {path}: {exc.strerror or exc}") from None
        self.entries: list[TableEntry] = []

    def table(self, shape: TableShape) -> _TableWriter:
        return _TableWriter(self._zip, shape)

    def finish(self, manifest: Manifest) -> int:
        self._zip.writestr(MANIFEST, msgspec.json.format(msgspec.json.encode(manifest)))
        self._zip.close()
        with self._partial.open("rb") as f:
            os.fsync(f.fileno())
        os.replace(self._partial, self.path)
        directory = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)
        return self.path.stat().st_size

    def abort(self) -> None:
        self._zip.close()
        self._partial.unlink(missing_ok=True)


# -- reading a snapshot -----------------------------------------------------------------------

def _revision(rows: Sequence[Sequence[Any]]) -> str:
    if len(rows) != 1:
        raise BackupError("the database has no single schema revision (alembic_version): "
                          "is it an LTS database?")
    return str(rows[0][0])


def _read_sqlite(path: Path, shapes: list[TableShape], archive: _ArchiveWriter) -> str:
    """Every table from one read transaction; returns the revision seen in it."""
    connection = sqlite3.connect(path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None)
    try:
        connection.execute("PRAGMA query_only=ON")
        connection.execute("BEGIN")  # the snapshot starts at the first read, below
        revision = _revision(connection.execute(
            f"SELECT version_num FROM {VERSION_TABLE}").fetchall())  # noqa: S608 # nosec B608
        for shape in shapes:
            columns = ", ".join(quote(c) for c in shape.columns)
            order = ", ".join(quote(c) for c in shape.key)
            table = quote(shape.name)
            cursor = connection.execute(
                f"SELECT {columns} FROM {table} ORDER BY {order}")  # noqa: S608 # nosec B608
            bools = [i for i, kind in enumerate(shape.kinds) if kind == "bool"]
            writer = archive.table(shape)
            while rows := cursor.fetchmany(BATCH_ROWS):
                if bools:  # SQLite keeps booleans as 0 / 1
                    rows = [_with_bools(row, bools) for row in rows]
                writer.write(rows)
            archive.entries.append(writer.close())
        connection.execute("COMMIT")
        return revision
    finally:
        connection.close()


def _with_bools(row: Sequence[Any], positions: list[int]) -> list[Any]:
    out = list(row)
    for i in positions:
        if out[i] is not None:
            out[i] = bool(out[i])
    return out


def _pg_select(shape: TableShape) -> str:
    exprs = []
    for name, kind, aware in zip(shape.columns, shape.kinds, shape.timezone, strict=True):
        column = quote(name)
        if kind == "decimal":
            exprs.append(f"trim_scale({column})::text")
        elif kind == "datetime":
            utc = f"{column} AT TIME ZONE 'UTC'" if aware else column
            exprs.append(f"to_char({utc}, 'YYYY-MM-DD HH24:MI:SS.US')")
        elif kind == "json":
            exprs.append(f"{column}::text")
        else:
            exprs.append(column)
    order = ", ".join(quote(c) for c in shape.key)
    return (f"SELECT {', '.join(exprs)} FROM {quote(shape.name)} "  # noqa: S608 # nosec B608
            f"ORDER BY {order}")


async def _read_postgres(url: str, shapes: list[TableShape], archive: _ArchiveWriter) -> str:
    connection = await asyncpg.connect(**asyncpg_connect_args(url))
    try:
        async with connection.transaction(isolation="repeatable_read", readonly=True):
            revision = _revision(await connection.fetch(
                f"SELECT version_num FROM {VERSION_TABLE}"))  # noqa: S608 # nosec B608
            for shape in shapes:
                writer = archive.table(shape)
                cursor = await connection.cursor(_pg_select(shape))
                while records := await cursor.fetch(BATCH_ROWS):
                    await anyio.to_thread.run_sync(
                        writer.write, [tuple(record) for record in records])
                archive.entries.append(writer.close())
        return revision
    finally:
        await connection.close()


async def backup(url: str, path: Path) -> BackupReport:
    """Write a consistent snapshot of the database at ``url`` to ``path`` (replaced if there)."""
    check_url(url)
    dialect = make_url(url).get_backend_name()
    if dialect == "sqlite" and not sqlite_path(url).is_file():
        raise BackupError(f"backup: no database at {sqlite_path(url)}")
    started = time.perf_counter()
    engine = make_engine(url)
    try:
        shapes = await describe(engine)
        described_at = await current_revision(engine)
    finally:
        await engine.dispose()
    if not shapes:
        raise BackupError("backup: the database has no LTS tables")
    archive = await anyio.to_thread.run_sync(_ArchiveWriter, path)
    try:
        if dialect == "sqlite":
            revision = await anyio.to_thread.run_sync(
                _read_sqlite, sqlite_path(url), shapes, archive)
        else:
            revision = await _read_postgres(url, shapes, archive)
        if revision != described_at:
            raise BackupError(f"backup: the schema changed from {described_at} to {revision} "
                              "while the backup ran (a migration): run it again")
        manifest = Manifest(
            format=FORMAT, format_version=FORMAT_VERSION, lts_version=lts.__version__,
            created_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            dialect=dialect, revision=revision, tables=archive.entries)
        size = await anyio.to_thread.run_sync(archive.finish, manifest)
    except BaseException:
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(archive.abort)
        raise
    return BackupReport(path, manifest, size, time.perf_counter() - started)
