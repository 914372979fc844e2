"""The operator commands as an operator runs them (subprocesses): ``db current|upgrade|downgrade``,
the start-up schema rule (PostgreSQL behind head refuses with the command to run; SQLite
migrates itself unless told not to; a schema newer than the code is refused on both),
``backup`` while the engine trades and ``restore`` into an empty database (exit codes, one-line
errors), and ``selftest`` (exit 0 on a good setup, 1 with a FAIL line, 2 on bad input)."""

import re
import zipfile
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import text

from lts.domain.portfolio_spec import PortfolioSpec
from lts.persistence.db import make_engine
from lts.persistence.migrations import alembic_config, head_revision, upgrade_to_head
from lts.plugins.registry import Registry

from ._support import (
    START_TIMEOUT,
    Db,
    EngineRun,
    Launcher,
    assert_clean_exit,
    prepare_portfolios,
    sqlite_url,
    synthetic_asset,
    wait_until,
)

HEAD = head_revision()
PREVIOUS = ScriptDirectory.from_config(alembic_config()).get_revision(HEAD).down_revision
UPGRADE = "run 'python -m lts.engine db upgrade'"


def one_error_line(run: EngineRun) -> str:
    """The whole stderr of a refused command: exactly one ``lts: error:`` line."""
    assert run.returncode == 2, f"exit {run.returncode}; stderr:\n{run.tail()}"
    lines = run.stderr().splitlines()
    assert len(lines) == 1, run.stderr()
    assert lines[0].startswith("lts: error: "), lines[0]
    return lines[0].removeprefix("lts: error: ")


def ok(run: EngineRun) -> list[str]:
    assert_clean_exit(run)
    return run.stdout().splitlines()


# -- db ---------------------------------------------------------------------------------------

def test_db_current_upgrade_downgrade_on_sqlite(launcher: Launcher, workdir: Path) -> None:
    path = workdir / "ops.db"
    url = sqlite_url(path)
    assert ok(launcher.run("db", "current", "--db-url", url)) == [
        f"database: {url}", "current:  base (no LTS tables)", f"head:     {HEAD}",
        f"behind head: {UPGRADE}"]
    assert not path.exists()  # looking does not create the file
    assert ok(launcher.run("db", "upgrade", "--db-url", url)) == [
        f"database upgraded from base to {HEAD}"]
    assert ok(launcher.run("db", "upgrade", "--db-url", url)) == [f"database already at {HEAD}"]
    assert ok(launcher.run("db", "current", "--db-url", url))[1:] == [
        f"current:  {HEAD}", f"head:     {HEAD}", f"schema at {HEAD} (head): up to date"]
    below = PREVIOUS or "base"
    assert ok(launcher.run("db", "downgrade", below, "--db-url", url)) == [
        f"database downgraded from {HEAD} to {below}"]
    assert one_error_line(launcher.run("db", "downgrade", "nonsense", "--db-url", url)) \
        .startswith("db downgrade nonsense: ")
    assert one_error_line(launcher.run("db")) == \
        "the following arguments are required: {upgrade,downgrade,current}"

    # SQLite behind head: refused when auto_migrate is off, migrated at start otherwise
    refused = launcher.run("--db-url", url, "--no-demo", "--run-for", "1",
                           "--set", "database.auto_migrate=false")
    assert one_error_line(refused) == (
        f"database schema is at {PREVIOUS or 'base (no LTS tables)'}, this engine needs "
        f"{HEAD}: {UPGRADE}")
    assert_clean_exit(launcher.run("--db-url", url, "--no-demo", "--run-for", "1"))
    assert ok(launcher.run("db", "current", "--db-url", url))[-1] == \
        f"schema at {HEAD} (head): up to date"


@pytest.mark.postgres
def test_postgresql_behind_head_refuses_to_start(launcher: Launcher,
                                                 pg_databases: Any) -> None:
    url = pg_databases.create()
    try:
        assert one_error_line(launcher.run("--db-url", url, "--run-for", "1")) == (
            f"database schema is at base (no LTS tables), this engine needs {HEAD}: {UPGRADE}")
        if PREVIOUS is not None:
            ok(launcher.run("db", "upgrade", PREVIOUS, "--db-url", url))
            assert one_error_line(launcher.run("--db-url", url, "--run-for", "1")) == (
                f"database schema is at {PREVIOUS}, this engine needs {HEAD}: {UPGRADE}")
        assert ok(launcher.run("db", "upgrade", "--db-url", url))[-1].endswith(f"to {HEAD}")
        assert_clean_exit(launcher.run("--db-url", url, "--no-demo", "--run-for", "1"))
    finally:
        pg_databases.drop(url)


def test_a_schema_newer_than_the_code_is_refused(
        launcher: Launcher, db_url: str,
        run_in_thread: Callable[[Callable[[], Any]], Any]) -> None:
    async def stamp_a_future_revision() -> None:
        await upgrade_to_head(db_url)
        engine = make_engine(db_url)
        try:
            async with engine.begin() as conn:
                await conn.execute(text("UPDATE alembic_version SET version_num = '9999'"))
        finally:
            await engine.dispose()

    run_in_thread(stamp_a_future_revision)
    newer = (f"database schema is at 9999, which this LTS does not know (its head is {HEAD}): "
             "run the LTS version that migrated it")
    assert one_error_line(launcher.run("--db-url", db_url, "--run-for", "1")) == newer
    assert one_error_line(launcher.run("db", "upgrade", "--db-url", db_url)) == newer
    assert ok(launcher.run("db", "current", "--db-url", db_url))[1:] == [
        "current:  9999", f"head:     {HEAD}", newer]


# -- backup and restore -----------------------------------------------------------------------

def test_backup_while_the_engine_trades_then_restore(launcher: Launcher, workdir: Path) -> None:
    source, target = Db(workdir / "source.db"), Db(workdir / "target.db")
    archive = workdir / "lts.backup"
    engine = launcher.start("--db-url", sqlite_url(source.path), "--run-for", "8",
                            "--set", "demo.interval=0.02")
    wait_until(lambda: source.count("fills") >= 3, timeout=START_TIMEOUT, run=engine,
               what="the demo portfolio's first fills")
    made = ok(launcher.run("backup", str(archive), "--db-url", sqlite_url(source.path)))
    assert engine.alive(), "the backup was meant to run while the engine traded"
    engine.wait()
    assert_clean_exit(engine)
    assert re.fullmatch(rf"backup of {re.escape(sqlite_url(source.path))} \(revision {HEAD}\) "
                        rf"written to {re.escape(str(archive))}: \d+ tables, [\d,]+ rows, "
                        r"[\d.,]+ MB in [\d.]+ s", made[0]), made
    with zipfile.ZipFile(archive) as zf:
        assert "manifest.json" in zf.namelist()

    restored = ok(launcher.run("restore", str(archive), "--db-url", sqlite_url(target.path)))
    assert restored[0].startswith(f"restored {archive} (sqlite, revision {HEAD}, made ")
    assert 3 <= target.count("fills") < source.count("fills")
    orphans = target.count("fills", "client_order_id NOT IN (SELECT client_order_id FROM "
                                    "orders)")
    orphan_events = target.count("order_events", "client_order_id NOT IN "
                                                 "(SELECT client_order_id FROM orders)")
    assert (orphans, orphan_events) == (0, 0)

    again = launcher.run("restore", str(archive), "--db-url", sqlite_url(target.path))
    assert re.fullmatch(r"restore: the target database is not empty \(table '\w+' has rows\): "
                        r"restore needs an empty database", one_error_line(again))

    # the restored database runs: recovery reconciles the orders open at the snapshot
    assert_clean_exit(launcher.run("--db-url", sqlite_url(target.path), "--run-for", "2"))


def test_a_damaged_backup_or_a_missing_database_is_one_line(launcher: Launcher,
                                                            workdir: Path) -> None:
    url = sqlite_url(workdir / "source.db")
    prepare_portfolios(url, [])
    archive = workdir / "lts.backup"
    ok(launcher.run("backup", str(archive), "--db-url", url))
    damaged = workdir / "damaged.backup"
    damaged.write_bytes(archive.read_bytes()[:-200])
    target = workdir / "target.db"
    error = one_error_line(launcher.run("restore", str(damaged), "--db-url", sqlite_url(target)))
    assert error.startswith(f"restore: {damaged} is damaged or not an LTS backup (")
    assert error.endswith("); nothing was written")
    assert not target.exists()
    missing = workdir / "missing.db"
    assert one_error_line(launcher.run("backup", str(archive), "--db-url", sqlite_url(missing))) \
        == f"backup: no database at {missing}"
    assert one_error_line(launcher.run("restore", str(workdir / "nope.backup"),
                                       "--db-url", sqlite_url(target))) == \
        f"restore: {workdir / 'nope.backup'}: no such file"
    unreachable = "postgresql+asyncpg://postgres@127.0.0.1:1/lts"  # nothing listens there
    assert one_error_line(launcher.run("db", "current", "--db-url", unreachable)).startswith(
        "db current: ConnectionRefusedError: ")
    assert one_error_line(launcher.run("backup", str(archive), "--db-url", unreachable)) \
        .startswith("backup: ConnectionRefusedError: ")


# -- selftest ---------------------------------------------------------------------------------

def test_selftest_passes_on_a_good_setup(launcher: Launcher, workdir: Path) -> None:
    url = sqlite_url(workdir / "lts.db")
    ok(launcher.run("db", "upgrade", "--db-url", url))
    lines = ok(launcher.run("selftest", "--db-url", url))
    checks, summary = lines[:-1], lines[-1]
    assert [line for line in checks if not line.startswith("ok    ")] == []
    names = [line[6:].split(":", 1)[0] for line in checks]
    assert {"database", "plugin registry", "bus", "replay", "api"} <= set(names)
    assert summary == f"selftest: {len(checks)} ok, 0 failed"


def test_selftest_fails_on_a_plugin_that_does_not_exist(launcher: Launcher,
                                                        workdir: Path) -> None:
    url = sqlite_url(workdir / "lts.db")
    prepare_portfolios(url, [PortfolioSpec(
        name="bad", initial_cash=Decimal(1000),
        assets=(synthetic_asset("X", seed=1, interval=1.0, strategy="nope"),))])
    run = launcher.run("selftest", "--db-url", url, "--set", "api.enabled=false")
    assert run.returncode == 1, run.tail()
    lines = run.stdout().splitlines()
    known = ", ".join(i.name for i in Registry.discover().of_kind("strategy"))
    assert [line for line in lines if line.startswith("FAIL")] == [
        "FAIL  plugin strategy:nope: portfolio 'bad' asset 'X': unknown strategy plugin 'nope' "
        f"(known: {known})"]
    assert lines[-1].endswith(" ok, 1 failed")
    assert "Traceback" not in run.stderr()


def test_selftest_with_a_bad_setting_is_exit_2(launcher: Launcher) -> None:
    assert one_error_line(launcher.run("selftest", "--set", "api.bogus=1")) == \
        "setting 'api.bogus': unknown setting"
