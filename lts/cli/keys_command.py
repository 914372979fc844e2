"""``python -m lts.engine keys new|rotate``: the operator's side of secrets at rest.

``keys new`` prints a fresh master key entry (``v3:BASE64``, the version after the highest one
configured) for the operator to put first in ``LTS_MASTER_KEY`` or its secret file, keeping
the older entries after it. ``keys rotate`` then re-seals every broker credential under the
current (first) key, in batches, and prints the counts; once it reports nothing unreadable the
old entries can be removed. Only the new entry is ever printed, never a configured key. Wired
into :mod:`lts.cli.main`, which maps errors to one ``lts: error:`` line and status 2.
"""

import argparse
import sys
from collections.abc import Callable
from typing import Any

import anyio

from lts.errors import ConfigError, CredentialError, SchemaError
from lts.persistence.credentials import ROTATION_BATCH, CredentialStore
from lts.persistence.keyring import SETTING, Keyring, new_key_entry, next_version
from lts.settings import Settings

SettingsOf = Callable[[argparse.Namespace], Settings]


def add_parser(subparsers: "argparse._SubParsersAction[Any]",
               common: Callable[[argparse.ArgumentParser], None]) -> None:
    keys = subparsers.add_parser("keys", help="master keys of the broker credential store")
    sub = keys.add_subparsers(dest="keys_command", required=True, metavar="{new,rotate}")
    new = sub.add_parser("new", help="print a fresh master key entry VERSION:BASE64KEY")
    common(new)
    new.add_argument("--version", dest="key_version", metavar="NAME",
                     help="version name (default: v<N+1> after the highest configured)")
    rotate = sub.add_parser("rotate",
                            help="re-encrypt every stored credential under the current key")
    common(rotate)
    rotate.add_argument("--batch-size", type=int, default=ROTATION_BATCH, metavar="N",
                        help=f"rows per transaction (default {ROTATION_BATCH})")


def run(args: argparse.Namespace, settings_of: SettingsOf) -> int:
    if args.keys_command == "new":
        return _new(args, settings_of)
    return _rotate(args, settings_of(args))


def _new(args: argparse.Namespace, settings_of: SettingsOf) -> int:
    version = args.key_version
    if version is None:
        # Only master_key is read, so the dev profile is forced: a prod profile that has no
        # key yet refuses to load, and this command is how it gets its first one.
        args.set = [*args.set, "profile=dev"]
        try:
            version = next_version(Keyring.from_setting(settings_of(args).master_key))
        except ConfigError as exc:  # the configured keys are needed to pick the next version
            raise ConfigError(f"{exc}; to make a key anyway, name its version: "
                              "keys new --version NAME") from None
    print(new_key_entry(version))
    print(f"put it first in {SETTING} (LTS_MASTER_KEY or its secret file), keep the older "
          "entries after it, restart the engine, then run `python -m lts.engine keys rotate`",
          file=sys.stderr)
    return 0


def _rotate(args: argparse.Namespace, settings: Settings) -> int:
    if args.batch_size < 1:
        raise ConfigError("--batch-size: at least 1")
    keyring = Keyring.from_setting(settings.master_key)
    if keyring is None:
        raise ConfigError(f"setting {SETTING!r} is not set: nothing to rotate to (set "
                          "LTS_MASTER_KEY or its secret file)")
    db = settings.database

    async def main() -> int:
        from lts.persistence.db import check_url, default_sqlite_url, make_engine
        from lts.persistence.migrations import current_revision, head_revision

        url = db.url or default_sqlite_url(db.data_dir)
        check_url(url)
        engine = make_engine(url, sqlite_synchronous=db.sqlite_synchronous)
        try:
            revision, head = await current_revision(engine), head_revision()
            if revision != head:
                raise SchemaError(f"the database schema is at {revision or 'nothing'}, this "
                                  f"code needs {head}: run `python -m lts.engine db upgrade`")
            report = await CredentialStore(engine, keyring).rotate_all(args.batch_size)
        finally:
            await engine.dispose()
        print(f"keys rotate: {report.rotated} re-encrypted under {report.key_version}, "
              f"{report.current} already under it, {len(report.unreadable)} unreadable")
        if report.unreadable:
            ids = ", ".join(str(i) for i in report.unreadable[:20])
            raise CredentialError(f"{len(report.unreadable)} credential row(s) do not decrypt "
                                  f"with the configured keys (ids {ids}): add their key version "
                                  f"to {SETTING!r}, or delete and store them again")
        return 0

    result: int = anyio.run(main)
    return result
