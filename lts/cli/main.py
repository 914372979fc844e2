"""The command line: ``python -m lts.engine [run] ...`` and ``python -m lts.engine replay ...``,
plus the operator's commands, each in its own module: ``keys``, ``db``, ``backup``/``restore``,
``selftest`` and ``users``.

Bad input (a flag, a setting, a data file, a plugin or a param) prints one line and exits with
status 2, never a traceback. An unexpected error is logged with its detail and the user gets a
correlation id to find it.
"""

import argparse
import atexit
import importlib
import logging
import logging.handlers
import os
import sys
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

import anyio

from lts.cli.common import has_uvloop, setup_logging
from lts.errors import LtsError
from lts.settings import Settings, load_settings, merge, parse_set
from lts.settings_jwt import with_generated_jwt_secret

__all__ = ["COMMANDS", "EXIT_USAGE", "build_parser", "main", "run_as_process"]

log = logging.getLogger("lts")
EXIT_USAGE = 2


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        print(f"lts: error: {message}", file=sys.stderr)
        sys.exit(EXIT_USAGE)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", type=Path, help="TOML settings file")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a setting (dotted key), repeatable")
    p.add_argument("--db-url", help="SQLAlchemy async URL (default: SQLite under ./data)")
    p.add_argument("--log-level", type=str.upper, choices=["DEBUG", "INFO", "WARNING", "ERROR"],
                   help="in any letter case (default: INFO; WARNING for the operator commands)")


#: Each subcommand's module, imported only when that command runs (or for ``--help``): a
#: backtest does not load the database tools, the venue or the API.
COMMANDS = {"replay": "replay_command", "sweep": "sweep_command", "keys": "keys_command",
            "db": "db_command", "backup": "backup_command", "restore": "backup_command",
            "selftest": "selftest", "venue": "venue_command", "users": "users_command"}


def _module(name: str) -> Any:
    return importlib.import_module(f"lts.cli.{name}")


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser of ``command`` (and ``run``), or of every command when it is None."""
    parser = _Parser(prog="python -m lts.engine", description="LTS live trading engine")
    sub = parser.add_subparsers(dest="command", parser_class=_Parser)
    run = sub.add_parser("run", help="run the engine (the default command)")
    _common(run)
    run.add_argument("--run-for", type=float, metavar="SECONDS",
                     help="stop gracefully after this long")
    run.add_argument("--no-demo", action="store_true", help="start without the demo portfolio")
    # `--help` alone shows run's options too: run is what starts without a command
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    run_options = run.format_help().partition("\noptions:\n")[2].splitlines(keepends=True)
    parser.epilog = ("without a command the engine runs: python -m lts.engine [run] [options]; "
                     "run's options:\n" + "".join(line for line in run_options
                                                  if not line.lstrip().startswith("-h, --help"))
                     + "\n`python -m lts.engine COMMAND --help` shows a command's options")
    wanted = COMMANDS if command not in COMMANDS else {command: COMMANDS[command]}
    added: set[str] = set()
    for name in dict.fromkeys(wanted.values()):
        if name in added:
            continue
        added.add(name)
        try:
            module = _module(name)
        except ModuleNotFoundError as exc:
            if exc.name != f"lts.cli.{name}":
                raise
            continue  # a command this installation does not have
        if hasattr(module, "add_parsers"):
            module.add_parsers(sub, _common)
        elif name == "venue_command":
            module.add_parser(sub)
        else:
            module.add_parser(sub, _common)
    return parser


def _settings(args: argparse.Namespace) -> Settings:
    overrides = parse_set(args.set)
    flags: dict[str, Any] = {}
    if args.db_url:
        flags["database"] = {"url": args.db_url}
    if args.log_level:
        flags["log_level"] = args.log_level
    if getattr(args, "run_for", None) is not None:
        flags.setdefault("engine", {})["run_for"] = args.run_for
    if getattr(args, "no_demo", False):
        flags["demo"] = {"enabled": False}
    return load_settings(args.config, merge(overrides, flags))


def _run(args: argparse.Namespace) -> int:
    from lts.engine.bootstrap import check_admin_password
    from lts.engine.engine import Engine

    settings = _settings(args)
    check_admin_password(settings)  # before anything is made
    setup_logging(settings.log_level, json_lines=settings.profile == "prod")
    settings = with_generated_jwt_secret(settings)
    anyio.run(Engine(settings).run, backend_options={"use_uvloop": has_uvloop()})
    return 0


def _replay(args: argparse.Namespace) -> int:
    settings = _settings(args)
    setup_logging(settings.log_level)
    return int(_module("replay_command").run(args, settings))


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    if not args_list or (args_list[0].startswith("-") and args_list[0] not in ("-h", "--help")):
        args_list.insert(0, "run")
    args = build_parser(args_list[0]).parse_args(args_list)
    try:
        if args.command == "replay":
            return _replay(args)
        if args.command == "sweep":
            settings = _settings(args)
            setup_logging(settings.log_level)
            return int(_module("sweep_command").run(args, settings))
        if args.command == "venue":
            return int(_module("venue_command").run(args))
        if args.command in COMMANDS:
            setup_logging(args.log_level or "WARNING")
            return int(_module(COMMANDS[args.command]).run(args, _settings))
        return _run(args)
    except LtsError as exc:
        print(f"lts: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except BaseExceptionGroup as group:
        leaf: BaseException = group
        while isinstance(leaf, BaseExceptionGroup) and len(leaf.exceptions) == 1:
            leaf = leaf.exceptions[0]
        if isinstance(leaf, LtsError):
            print(f"lts: error: {leaf}", file=sys.stderr)
            return EXIT_USAGE
        return _internal(group)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        return _internal(exc)


#: Commands that end the process once done: their work is a batch (a backtest, a sweep).
_BATCH = frozenset({"replay", "sweep"})


def run_as_process() -> NoReturn:
    """``python -m lts.engine``: :func:`main`, then exit. A batch command leaves without the
    interpreter's tear-down, which frees every module and object one by one (measured: 0.1 s
    after the imports alone, 0.2 s after a 1M-bar replay): once it has returned, its output is
    written and its files closed; the exit handlers run first (the log listener's last lines,
    a sweep's worker pool), then the standard streams are flushed."""
    argv = sys.argv[1:]
    code = main(argv)
    if argv and argv[0] in _BATCH:
        atexit._run_exitfuncs()  # what a normal exit runs, in the same order
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)


def _internal(exc: BaseException) -> int:
    cid = uuid.uuid4().hex[:12]
    log.error("internal error (correlation id %s)", cid, exc_info=exc)
    print(f"lts: internal error (correlation id {cid}); the log has the detail", file=sys.stderr)
    return 1
