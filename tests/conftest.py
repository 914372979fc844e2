"""Shared pytest fixtures: the anyio backend and a fresh database per test, on both stores.

Async tests use anyio's pytest plugin: mark them ``@pytest.mark.anyio``.

Nothing leaves the machine: every process of the run (this one, the xdist workers, and through
``tests/netguard/sitecustomize.py`` first on ``PYTHONPATH`` every Python subprocess a test
starts) refuses connections and lookups beyond the loopback interface (``tests/netguard``), and
a test during which any process tried one fails, even if the test swallowed the error.

``db_url`` is parametrized over the two supported databases (issue 4: one test suite, both
stores): ``sqlite`` is a fresh file in the test's temporary directory; ``postgresql`` is a fresh
database created for the test on the local server (``LTS_TEST_PG_URL``, default
``postgresql+asyncpg://postgres@127.0.0.1:5432/test``, the maintenance connection) and dropped
afterwards, so runs never interfere. PostgreSQL cases carry the ``postgres`` marker
(``-m "not postgres"`` leaves them out). ``migrated_url`` is the same but already at the head
revision: on PostgreSQL it is a copy of a template migrated once per run.
"""

import asyncio
import os
import sys
import tempfile
import threading
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from lts.persistence.db import make_engine
from lts.persistence.migrations import upgrade_to_head

pytest_plugins = ("pg_cluster",)  # the pg_cluster fixture: a private server (tests/pg_cluster.py)

_NETGUARD = Path(__file__).resolve().parent / "netguard"
sys.path.insert(0, str(_NETGUARD))
import lts_netguard  # noqa: E402 - from the directory just put on the path

lts_netguard.install()
# one log per process of pytest (controller, each worker); subprocesses inherit theirs
_NETGUARD_DIR = os.environ.setdefault("NETGUARD_DIR", tempfile.mkdtemp(prefix="lts-netguard-"))
os.environ[lts_netguard.LOG_ENV] = os.path.join(
    _NETGUARD_DIR, os.environ.get("PYTEST_XDIST_WORKER", "main") + ".log")
if str(_NETGUARD) not in os.environ.get("PYTHONPATH", "").split(os.pathsep):
    os.environ["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(_NETGUARD), os.environ.get("PYTHONPATH", "")) if p)


@pytest.fixture(autouse=True)
def _nothing_leaves_the_machine() -> Iterator[None]:
    """Fail the test if any process tried to reach beyond 127.0.0.1 while it ran."""
    log = Path(os.environ[lts_netguard.LOG_ENV])
    start = log.stat().st_size if log.exists() else 0
    yield
    if log.exists() and log.stat().st_size > start:
        with log.open(encoding="utf-8") as f:
            f.seek(start)
            tried = f.read()
        pytest.fail(f"network guard: this test reached beyond 127.0.0.1:\n{tried}",
                    pytrace=False)

PG_URL = os.environ.get("LTS_TEST_PG_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test")
BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]

def in_thread(work: Callable[[], Any]) -> Any:
    """Run a coroutine function to completion on a loop of its own (a fixture may be called
    while the test's loop runs)."""
    result: list[Any] = []
    error: list[BaseException] = []

    def target() -> None:
        try:
            result.append(asyncio.run(work()))
        except BaseException as exc:  # handed to the caller
            error.append(exc)

    thread = threading.Thread(target=target)
    thread.start()
    thread.join()
    if error:
        raise error[0]
    return result[0] if result else None


class PgDatabases:
    """Creates and drops databases on the local PostgreSQL server."""

    def __init__(self, url: str = PG_URL) -> None:
        self.url = make_url(url)
        self.prefix = f"lts_t{os.getpid()}_"
        self._template: str | None = None

    def _dsn(self, database: str | None = None) -> str:
        u = self.url.set(drivername="postgresql", database=database or self.url.database)
        return u.render_as_string(hide_password=False)

    def _admin(self, *statements: str) -> None:
        async def run() -> None:
            conn = await asyncpg.connect(self._dsn())
            try:
                for sql in statements:
                    await conn.execute(sql)
            finally:
                await conn.close()

        in_thread(run)

    def url_of(self, name: str) -> str:
        return self.url.set(database=name).render_as_string(hide_password=False)

    def create(self, *, migrated: bool = False) -> str:
        """A new database (empty, or at head when ``migrated``); its SQLAlchemy URL."""
        name = self.prefix + uuid.uuid4().hex[:12]
        template = f" TEMPLATE {self.template()}" if migrated else ""
        self._admin(f'CREATE DATABASE "{name}"{template}')
        return self.url_of(name)

    def template(self) -> str:
        if self._template is None:
            name = self.prefix + "template"
            self._admin(f'DROP DATABASE IF EXISTS "{name}"', f'CREATE DATABASE "{name}"')
            in_thread(lambda: upgrade_to_head(self.url_of(name)))
            self._template = name
        return self._template

    def drop(self, url: str) -> None:
        name = make_url(url).database
        self._admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def close(self) -> None:
        if self._template is not None:
            self._admin(f'DROP DATABASE IF EXISTS "{self._template}" WITH (FORCE)')


@pytest.fixture
def run_in_thread() -> Callable[[Callable[[], Any]], Any]:
    """:func:`in_thread`: a coroutine function run on a loop of its own, blocking the caller."""
    return in_thread


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session")
def pg_databases() -> Iterator[PgDatabases]:
    dbs = PgDatabases()
    yield dbs
    dbs.close()


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """The database this case runs on: ``sqlite`` or ``postgresql``."""
    name: str = request.param
    return name


def _fresh_url(backend: str, tmp_path: Path, request: pytest.FixtureRequest,
               migrated: bool) -> str:
    if backend == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'lts.db'}"
    dbs: PgDatabases = request.getfixturevalue("pg_databases")
    url = dbs.create(migrated=migrated)
    request.addfinalizer(lambda: dbs.drop(url))
    return url


@pytest.fixture
def db_url(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    """The URL of a fresh, empty database of ``backend`` (no schema yet)."""
    return _fresh_url(backend, tmp_path, request, migrated=False)


@pytest.fixture
def migrated_url(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    """The URL of a fresh database of ``backend`` at the head revision."""
    url = _fresh_url(backend, tmp_path, request, migrated=True)
    if backend == "sqlite":
        in_thread(lambda: upgrade_to_head(url))
    return url


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A SQLite file URL, for tests of what only SQLite has (pragmas, the file itself)."""
    return f"sqlite+aiosqlite:///{tmp_path / 'lts.db'}"


@pytest.fixture
async def migrated_engine(migrated_url: str) -> AsyncIterator[AsyncEngine]:
    """An engine on a database migrated to head; disposed at the end of the test."""
    engine = make_engine(migrated_url)
    try:
        yield engine
    finally:
        await engine.dispose()
