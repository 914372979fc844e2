"""Schema migrations: run Alembic from inside the process, before anything else uses the DB.

Start-up calls :func:`upgrade_to_head` before the engine builds its journal and repositories.
Alembic's ``env.py`` drives an async engine with ``asyncio.run``, so the commands run in a
worker thread. The database URL is always handed over programmatically, never read from
``alembic.ini``. ``alembic.ini`` and ``alembic/`` are found next to the ``lts`` package (the
project is installed editable).
"""

from pathlib import Path

import anyio.to_thread
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

import lts
from alembic import command

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
