"""Schema migrations: run Alembic from inside the process, before anything else uses the DB.

Start-up calls :func:`ensure_schema` before the engine builds its journal and repositories: a
database at head starts; one behind head is migrated when ``database.auto_migrate`` allows it
(default: on SQLite, the embedded store, yes; on PostgreSQL no: the engine refuses with a line
naming the command to run); a database at a revision this code does not know (migrated by a
newer LTS) is always refused.
Alembic's ``env.py`` drives an async engine with ``asyncio.run``, so the commands run in a
worker thread. The database URL is always handed over programmatically, never read from
``alembic.ini``. ``alembic.ini`` and ``alembic/`` are found next to the ``lts`` package (the
project is installed editable).
"""

from dataclasses import dataclass
from pathlib import Path

import anyio.to_thread
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util.exc import CommandError
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

import lts
from alembic import command
from lts.errors import SchemaError

PROJECT_ROOT = Path(lts.__file__).resolve().parent.parent


def alembic_config(url: str | None = None) -> Config:
    """An Alembic ``Config`` for this project; ``url`` goes into ``attributes["url"]``."""
    ini = PROJECT_ROOT / "alembic.ini"
    if not ini.is_file():
        raise FileNotFoundError(f"alembic.ini not found at {ini} (is lts installed editable?)")
    cfg = Config(str(ini))
    cfg.set_main_option("script_location", str(PROJECT_ROOT / "alembic"))
    cfg.attributes["configure_logger"] = False
    if url is not None:
        cfg.attributes["url"] = url
    return cfg


def head_revision() -> str:
    """The head revision of the migration scripts."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if head is None:
        raise RuntimeError("no migration scripts found")
    return head


async def current_revision(engine: AsyncEngine) -> str | None:
    """The revision the database behind ``engine`` is at (``None``: not under Alembic)."""

    def _read(connection: Connection) -> str | None:
        return MigrationContext.configure(connection).get_current_revision()

    async with engine.connect() as connection:
        return await connection.run_sync(_read)


async def upgrade_to_head(url: str) -> None:
    """Migrate the database at ``url`` to the head revision."""
    cfg = alembic_config(url)
    await anyio.to_thread.run_sync(command.upgrade, cfg, "head")


async def downgrade(url: str, revision: str) -> None:
    """Migrate the database at ``url`` down to ``revision`` (``"base"``: drop everything)."""
    cfg = alembic_config(url)
    await anyio.to_thread.run_sync(command.downgrade, cfg, revision)


# -- the schema rule at start-up ------------------------------------------------------------

UPGRADE_COMMAND = "python -m lts.engine db upgrade"


@dataclass(frozen=True)
class SchemaState:
    """Where a database's schema stands against this code's migrations."""

    current: str | None  # None: no LTS schema (an empty database, or downgraded to base)
    head: str
    known: bool  # False: a revision this code has no script for (a newer LTS migrated it)

    @property
    def at_head(self) -> bool:
        return self.current == self.head

    def summary(self) -> str:
        """One line: up to date, behind (and the command to run) or newer than this code."""
        if self.at_head:
            return f"schema at {self.head} (head): up to date"
        if not self.known:
            return (f"database schema is at {self.current}, which this LTS does not know (its "
                    f"head is {self.head}): run the LTS version that migrated it")
        return (f"database schema is at {self.current or 'base (no LTS tables)'}, this engine "
                f"needs {self.head}: run '{UPGRADE_COMMAND}'")


def _scripts() -> ScriptDirectory:
    return ScriptDirectory.from_config(alembic_config())


def is_known(revision: str | None) -> bool:
    """Whether this code has a migration script for ``revision`` (``None``: base, known)."""
    if revision is None:
        return True
    try:
        return _scripts().get_revision(revision) is not None
    except CommandError:
        return False


async def schema_state(engine: AsyncEngine) -> SchemaState:
    current = await current_revision(engine)
    return SchemaState(current, head_revision(), is_known(current))


async def ensure_schema(engine: AsyncEngine, url: str, *, auto_migrate: bool | None) -> None:
    """The start-up rule (module docstring); raises :class:`SchemaError` with one line."""
    state = await schema_state(engine)
    if state.at_head:
        return
    auto = engine.dialect.name == "sqlite" if auto_migrate is None else auto_migrate
    if not state.known or not auto:
        raise SchemaError(state.summary())
    await upgrade_to_head(url)
