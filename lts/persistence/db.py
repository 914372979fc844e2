"""The database factory: one ``AsyncEngine`` per process, configured per dialect.

Sits under everything that touches the database: the journal writer (hot path), the repositories
and Alembic's migrations all get their engine from :func:`make_engine`. For SQLite every new
DBAPI connection gets WAL, the chosen ``synchronous`` level, foreign keys and a busy timeout
(architecture §5); PostgreSQL gets a small pre-pinged pool.
"""

import sqlite3
from pathlib import Path
from typing import Any, Literal

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from lts.errors import ConfigError

SqliteSynchronous = Literal["OFF", "NORMAL", "FULL"]

BUSY_TIMEOUT_MS = 10_000


#: SQLite connections kept open (and as many more opened in a burst beyond them)
SQLITE_POOL = 20


def default_sqlite_url(data_dir: Path = Path("data")) -> str:
    """The URL of the embedded default database ``<data_dir>/lts.db`` (creates the directory)."""
    directory = data_dir.expanduser().resolve()
    directory.mkdir(parents=True, exist_ok=True)
    return f"sqlite+aiosqlite:///{directory / 'lts.db'}"


_DRIVERS = {"sqlite": "aiosqlite", "postgresql": "asyncpg"}


def check_url(url: str) -> None:
    """Refuse, with one clear line, a URL LTS cannot use: unparsable, another database or
    driver, or a SQLite file in a directory that does not exist."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise ConfigError(f"database url {url!r}: not a database URL") from None
    backend, driver = parsed.get_backend_name(), parsed.get_driver_name()
    if _DRIVERS.get(backend) != driver:
        raise ConfigError(f"database url {parsed.render_as_string(hide_password=True)!r}: use "
                          "sqlite+aiosqlite:///PATH or postgresql+asyncpg://HOST/DB")
    if backend == "sqlite" and parsed.database and parsed.database != ":memory:":
        parent = Path(parsed.database).expanduser().resolve().parent
        if not parent.is_dir():
            raise ConfigError(f"database url {url!r}: directory {parent} does not exist")


def unreachable(url: str, exc: BaseException) -> ConfigError | None:
    """One line for a database that cannot be reached (no server, a wrong port: "cannot
    connect"), that refuses (an unknown role or database, a wrong password: "refused") or a
    SQLite file that is not a database ("cannot open"): its URL with the password hidden and
    the driver's own first line; None for any other error."""
    if not isinstance(exc, OSError | DBAPIError | sqlite3.Error):
        return None
    cause = exc.orig if isinstance(exc, DBAPIError) and exc.orig is not None else exc
    first = (str(cause).strip().splitlines() or [type(cause).__name__])[0]
    what = ("cannot connect" if isinstance(exc, OSError) else
            "cannot open" if isinstance(exc, sqlite3.Error) else "refused")
    safe = make_url(url).render_as_string(hide_password=True)
    return ConfigError(f"database {safe}: {what}: {first}")


def make_engine(url: str, *, sqlite_synchronous: SqliteSynchronous = "FULL") -> AsyncEngine:
    """Create the process's ``AsyncEngine`` for ``url`` (SQLite via aiosqlite or PostgreSQL)."""
    backend = make_url(url).get_backend_name()
    if backend == "sqlite":
        return _sqlite_engine(url, sqlite_synchronous)
    if backend == "postgresql":
        return create_async_engine(
            url, pool_size=10, max_overflow=10, pool_pre_ping=True, pool_recycle=1800,
        )
    raise ValueError(f"unsupported database backend {backend!r} (sqlite or postgresql)")


def _sqlite_engine(url: str, synchronous: SqliteSynchronous) -> AsyncEngine:
    if synchronous not in ("OFF", "NORMAL", "FULL"):
        raise ValueError(f"invalid sqlite synchronous level {synchronous!r}")
    # connections kept, never opened per request: each aiosqlite connection is a thread, and
    # opening one starts that thread while the event loop waits (measured: with five live
    # dashboards the default pool of 5 overflowed, and the connections opened and closed per
    # burst stalled the loop for tens of ms); an in-memory database has one connection
    in_memory = make_url(url).database in (None, "", ":memory:")
    engine = create_async_engine(url) if in_memory else \
        create_async_engine(url, pool_size=SQLITE_POOL, max_overflow=SQLITE_POOL)
    pragmas = (
        "PRAGMA journal_mode=WAL",
        f"PRAGMA synchronous={synchronous}",
        "PRAGMA foreign_keys=ON",
        f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}",
    )

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        try:
            for pragma in pragmas:
                cursor.execute(pragma)
        finally:
            cursor.close()

    return engine
