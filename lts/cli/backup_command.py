"""``python -m lts.engine backup OUT`` and ``python -m lts.engine restore IN``.

The command-line side of :mod:`lts.persistence.backup` and :mod:`lts.persistence.restore`: both
act on the configured database (``--db-url``, ``--config``, ``--set``, the environment), print
one summary line, and leave errors to :mod:`lts.cli.main` (one ``lts: error:`` line, exit 2).
``backup`` may run while the engine trades; ``restore`` needs an empty database.
"""

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
from sqlalchemy.engine import make_url

from lts.cli.db_command import database_errors
from lts.persistence.backup import backup
from lts.persistence.db import check_url, default_sqlite_url
from lts.persistence.restore import restore
from lts.settings import Settings

SettingsOf = Callable[[argparse.Namespace], Settings]


def add_parsers(subparsers: "argparse._SubParsersAction[Any]",
                common: Callable[[argparse.ArgumentParser], None]) -> None:
    out = subparsers.add_parser("backup", help="write a consistent snapshot of the database")
    common(out)
    out.add_argument("path", type=Path, metavar="OUT", help="the backup file to write")
    into = subparsers.add_parser("restore", help="load a backup into an empty database")
    common(into)
    into.add_argument("path", type=Path, metavar="IN", help="a file written by 'backup'")


def run(args: argparse.Namespace, settings_of: SettingsOf) -> int:
    settings = settings_of(args)
    url = settings.database.url or default_sqlite_url(settings.database.data_dir)
    check_url(url)
    with database_errors(args.command):
        return _run(args.command, url, args.path)


def _run(name: str, url: str, path: Path) -> int:
    shown = make_url(url).render_as_string(hide_password=True)
    if name == "backup":
        made = anyio.run(backup, url, path)
        m = made.manifest
        print(f"backup of {shown} (revision {m.revision}) written to {made.path}: "
              f"{len(m.tables)} tables, {m.rows:,} rows, {made.size / 1e6:,.1f} MB "
              f"in {made.seconds:.1f} s")
    else:
        done = anyio.run(restore, url, path)
        m = done.manifest
        moved = f", migrated to {done.revision}" if done.revision != m.revision else ""
        print(f"restored {path} ({m.dialect}, revision {m.revision}, made "
              f"{m.created_at}) into {shown}: {len(m.tables)} tables, {m.rows:,} rows "
              f"in {done.seconds:.1f} s{moved}")
    return 0
