"""``python -m lts.engine users reset-password NAME``: the way back in for an operator who lost a
password (the admin's, typically), without the API.

The new password is asked twice on a terminal; a script gives it on standard input (the first
line) or names an environment variable that holds it (``--password-env VAR``), never on the
command line, where other users of the machine could read it. It must meet the same strength
rule as the API's (:func:`lts.plugins.aaa.passwords.strong_password`). The aaa plugin stores its
hash; every open session of the user ends (a running engine sees that within
``api.cache_seconds``); the reset is written to the audit trail (``user.reset_password``, the
operating-system account as the actor), and so is a refused one. Wired into
:mod:`lts.cli.main`, which maps errors to one ``lts: error:`` line and exit status 2.
"""

import argparse
import getpass
import os
import sys
from collections.abc import Callable
from typing import Any

import anyio
from sqlalchemy import insert
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from lts.api.security import revoke_user_sessions
from lts.cli.db_command import database_errors
from lts.errors import ConfigError, SchemaError
from lts.persistence.db import check_url, default_sqlite_url, make_engine
from lts.persistence.migrations import UPGRADE_COMMAND, current_revision, head_revision
from lts.persistence.tables import audit_logs
from lts.plugins.aaa.local import LocalAuth
from lts.plugins.aaa.passwords import WeakPassword, strong_password
from lts.plugins.registry import Registry
from lts.settings import Settings

SettingsOf = Callable[[argparse.Namespace], Settings]

COMMAND = "users reset-password"
ACTION = "user.reset_password"


def add_parser(subparsers: "argparse._SubParsersAction[Any]",
               common: Callable[[argparse.ArgumentParser], None]) -> None:
    users = subparsers.add_parser("users", help="the operator's side of user accounts")
    sub = users.add_subparsers(dest="users_command", required=True, metavar="{reset-password}")
    reset = sub.add_parser(
        "reset-password", help="set a user's password without the old one (a lost password)",
        description="Set NAME's password and end their sessions. The new password is asked "
        "twice on a terminal, or read from the first line of standard input, or from the "
        "environment variable named by --password-env.")
    common(reset)
    reset.add_argument("username", metavar="NAME", help="the user whose password is reset")
    reset.add_argument("--password-env", metavar="VAR",
                       help="read the new password from this environment variable")


def run(args: argparse.Namespace, settings_of: SettingsOf) -> int:
    settings = settings_of(args)
    url = settings.database.url or default_sqlite_url(settings.database.data_dir)
    check_url(url)
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:") \
            and not os.path.isfile(parsed.database):
        raise ConfigError(f"{COMMAND}: no database at {parsed.database} (set --db-url or "
                          "database.url to the engine's)")
    with database_errors(COMMAND):
        result: int = anyio.run(_reset, args, settings, url)
    return result


def _actor() -> str:
    try:
        return f"cli:{getpass.getuser()}"[:64]
    except (OSError, KeyError, ImportError):  # no login name (a container without one)
        return "cli"


def _new_password(args: argparse.Namespace) -> str:
    """The new password, from the variable named, a terminal (asked twice) or standard input."""
    if args.password_env:
        value = os.environ.get(args.password_env)
        if not value:
            raise ConfigError(f"{COMMAND}: --password-env {args.password_env}: the variable is "
                              "not set or empty")
        return value
    if sys.stdin.isatty():
        try:
            first = getpass.getpass(f"New password for {args.username!r}: ")
            again = getpass.getpass("Again: ")
        except EOFError:
            raise ConfigError(f"{COMMAND}: no password given; nothing changed") from None
        if again != first:
            raise ConfigError(f"{COMMAND}: the two passwords differ; nothing changed")
        return first
    line = sys.stdin.readline()
    if not line:
        raise ConfigError(f"{COMMAND}: no new password on standard input (type it on a "
                          "terminal, pipe it in, or name a variable with --password-env)")
    return line.removesuffix("\n").removesuffix("\r")


async def _audit(db: AsyncEngine, target: str, outcome: str, detail: dict[str, Any]) -> None:
    async with db.begin() as conn:
        await conn.execute(insert(audit_logs).values(
            actor=_actor(), action=ACTION, target=target[:128], client_address="local",
            outcome=outcome, detail={"via": "cli", **detail}))


async def _reset(args: argparse.Namespace, settings: Settings, url: str) -> int:
    db = make_engine(url, sqlite_synchronous=settings.database.sqlite_synchronous)
    try:
        revision, head = await current_revision(db), head_revision()
        if revision != head:
            raise SchemaError(f"the database schema is at {revision or 'nothing'}, this code "
                              f"needs {head}: run `{UPGRADE_COMMAND}`")
        auth: LocalAuth = Registry.discover(("aaa",)).create("aaa", settings.auth.plugin)
        auth.configure(settings)
        name = args.username
        if await auth.find_user(db, name) is None:
            await _audit(db, f"user:{name}", "failure", {"reason": "unknown user"})
            raise ConfigError(f"{COMMAND}: no user {name!r}")
        password = _new_password(args)
        try:
            strong_password(password)
        except WeakPassword as exc:
            await _audit(db, f"user:{name}", "failure", {"reason": "weak password"})
            raise ConfigError(f"{COMMAND}: the new password is too weak: {exc}") from None
        user = await auth.reset_password(db, name, password)
        if user is None:  # deleted meanwhile
            raise ConfigError(f"{COMMAND}: no user {name!r}")
        ended = await revoke_user_sessions(db, user.id)
        await _audit(db, f"user:{user.id}", "success",
                     {"username": user.username, "sessions_ended": ended})
    finally:
        await db.dispose()
    print(f"{COMMAND}: new password set for {user.username!r} (id {user.id}); "
          f"{ended} open session(s) ended")
    return 0
