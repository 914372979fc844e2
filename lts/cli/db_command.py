"""``python -m lts.engine db upgrade|downgrade|current``: the operator's side of migrations
(:mod:`lts.persistence.migrations` runs Alembic and holds the schema rule the engine applies at
start-up, :func:`~lts.persistence.migrations.ensure_schema`). Wired into :mod:`lts.cli.main`,
which maps errors to one ``lts: error:`` line and exit status 2.
"""

import argparse
import contextlib
import logging
import sqlite3
from collections.abc import Callable, Iterator
from typing import Any

import anyio
import anyio.to_thread
import asyncpg  # type: ignore[import-untyped]
from alembic.util.exc import CommandError
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

from alembic import command
from lts.errors import ConfigError, SchemaError
from lts.persistence.db import check_url, default_sqlite_url, make_engine
from lts.persistence.migrations import (
    UPGRADE_COMMAND,
    SchemaState,
    alembic_config,
    head_revision,
    schema_state,
)
from lts.settings import Settings

SettingsOf = Callable[[argparse.Namespace], Settings]

log = logging.getLogger("lts.ops")


# -- the command ------------------------------------------------------------------------------

@contextlib.contextmanager
def database_errors(command_name: str) -> Iterator[None]:
    """An operator command's database that cannot be reached, or that refuses, as one line (the
    CLI prints it, exit 2); the traceback is logged at DEBUG (``--log-level DEBUG``)."""
    try:
        yield
    except (OSError, DBAPIError, sqlite3.Error, asyncpg.PostgresError,
            asyncpg.InterfaceError) as exc:
        log.debug("%s failed", command_name, exc_info=True)
        # SQLAlchemy wraps the driver's error: its message is the driver's
        reason = str(exc.orig if isinstance(exc, DBAPIError) else exc).strip().splitlines()
        kind = "" if isinstance(exc, DBAPIError) else f"{type(exc).__name__}: "
        raise ConfigError(f"{command_name}: {kind}{reason[0] if reason else 'no detail'}"
                          ) from None


def add_parser(subparsers: "argparse._SubParsersAction[Any]",
               common: Callable[[argparse.ArgumentParser], None]) -> None:
    db = subparsers.add_parser("db", help="database schema: upgrade, downgrade, current")
    sub = db.add_subparsers(dest="db_command", required=True,
                            metavar="{upgrade,downgrade,current}")
    up = sub.add_parser("upgrade", help="migrate the schema up to REV (default: head)")
    common(up)
    up.add_argument("revision", nargs="?", default="head", metavar="REV")
    down = sub.add_parser("downgrade", help="migrate the schema down to REV ('base': drop all)")
    common(down)
    down.add_argument("revision", metavar="REV")
    current = sub.add_parser("current", help="print the current and head revisions")
    common(current)


def run(args: argparse.Namespace, settings_of: SettingsOf) -> int:
    settings = settings_of(args)
    url = settings.database.url or default_sqlite_url(settings.database.data_dir)
    check_url(url)
    with database_errors(f"db {args.db_command}"):
        return anyio.run(_main, args.db_command, getattr(args, "revision", None), url)


async def _main(action: str, revision: str | None, url: str) -> int:
    parsed = make_url(url)
    if action == "current" and parsed.get_backend_name() == "sqlite" and \
            not await anyio.Path(parsed.database or "").is_file():
        _print_current(parsed.render_as_string(), SchemaState(None, head_revision(), known=True))
        return 0
    engine = make_engine(url)
    try:
        before = await schema_state(engine)
        if action == "current":
            _print_current(engine.url.render_as_string(hide_password=True), before)
            return 0
        assert revision is not None
        if not before.known:
            raise SchemaError(before.summary())
        await _migrate(action, url, revision)
        after = await schema_state(engine)
    finally:
        await engine.dispose()
    verb = "upgraded" if action == "upgrade" else "downgraded"
    if after.current == before.current:
        print(f"database already at {after.current or 'base'}")
    else:
        print(f"database {verb} from {before.current or 'base'} to {after.current or 'base'}")
    return 0


def _print_current(shown: str, state: SchemaState) -> None:
    print(f"database: {shown}")
    print(f"current:  {state.current or 'base (no LTS tables)'}")
    print(f"head:     {state.head}")
    print(state.summary() if state.at_head or not state.known
          else f"behind head: run '{UPGRADE_COMMAND}'")


async def _migrate(action: str, url: str, revision: str) -> None:
    step = command.upgrade if action == "upgrade" else command.downgrade
    try:
        await anyio.to_thread.run_sync(step, alembic_config(url), revision)
    except CommandError as exc:
        raise SchemaError(f"db {action} {revision}: {exc}") from None
