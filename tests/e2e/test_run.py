"""``python -m lts.engine``: first start with the demo, graceful stops, ``--no-demo`` and bad
command lines, on the real engine process."""

import signal
from pathlib import Path

import pytest

from ._support import (
    ADMIN_PASSWORD,
    START_TIMEOUT,
    Db,
    Launcher,
    assert_clean_exit,
    problem_lines,
    wait_until,
)


def test_default_start_runs_the_demo_and_stops_after_run_for(launcher: Launcher,
                                                             workdir: Path) -> None:
    """SYS-001 (pipeline: feed -> strategy -> order -> fill), SYS-006, STC-001.

    A first start with no flags but ``--run-for`` creates ``./data/lts.db``, the admin user
    (from LTS_ADMIN_PASSWORD, hashed and never printed) and the demo portfolio with two assets,
    trades it on the paper broker, logs signals, submissions and fills, exits 0, and leaves
    every portfolio ``stopped``.
    """
    run = launcher.run("--run-for", "6")
    assert_clean_exit(run)
    db = Db(workdir / "data" / "lts.db")
    assert db.exists(), "the default database ./data/lts.db was not created"

    users = db.rows("SELECT username, role, password_hash FROM users")
    assert [(u["username"], u["role"]) for u in users] == [("admin", "admin")]
    assert users[0]["password_hash"] != ADMIN_PASSWORD
    assert ADMIN_PASSWORD not in run.stdout() + run.stderr()
    assert "password" not in run.stderr().lower()

    demo = db.rows("SELECT id FROM portfolios WHERE name='demo'")
    assert len(demo) == 1
    pid = demo[0]["id"]
    symbols = [r[0] for r in db.rows(
        "SELECT symbol FROM assets WHERE portfolio_id=? ORDER BY symbol", (pid,))]
    assert symbols == ["DEMO-A", "DEMO-B"]
    assert db.count("orders", "portfolio_id=?", (pid,)) > 0
    assert db.count("fills", "portfolio_id=?", (pid,)) > 0

    log = run.stderr()
    for word in ("signal", "submitted", "fill"):
        assert word in log, f"no log line with {word!r}"
    assert problem_lines(run) == []

    statuses = [r[0] for r in db.rows("SELECT status FROM portfolios")]
    assert statuses
    assert all(s == "stopped" for s in statuses), statuses


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_stops_the_engine_gracefully(launcher: Launcher, workdir: Path,
                                            signum: signal.Signals) -> None:
    """SYS-011 (graceful shutdown), STC-008.

    SIGTERM or SIGINT while trading: exit 0, no traceback, the journal committed (orders and
    fills are there) and every portfolio is ``stopped``.
    """
    run = launcher.start("--set", "demo.interval=0.05")
    db = Db(workdir / "data" / "lts.db")
    wait_until(lambda: db.count("fills") > 0, timeout=START_TIMEOUT,
               what="the first fill of the demo portfolio", run=run)
    run.send(signum)
    run.wait(what=f"the engine to exit after {signum.name}")
    assert_clean_exit(run)
    assert f"received {signum.name}" in run.stderr()
    statuses = [r[0] for r in db.rows("SELECT status FROM portfolios")]
    assert statuses
    assert all(s == "stopped" for s in statuses), statuses
    assert db.count("orders") >= db.count("orders", "status='filled'") > 0


def test_no_demo_creates_no_demo_portfolio(launcher: Launcher, workdir: Path) -> None:
    """STC-001: ``--no-demo`` starts an empty engine: the admin user, no portfolio."""
    run = launcher.run("--no-demo", "--run-for", "1")
    assert_clean_exit(run)
    db = Db(workdir / "data" / "lts.db")
    assert db.count("users", "role='admin'") == 1
    assert db.count("portfolios") == 0
    assert "engine running: 0 portfolio(s)" in run.stderr()


@pytest.mark.parametrize("argv", [
    ["--set", "engine.bogus=1"],
    ["--config", "missing.toml"],
    ["--run-for", "abc"],
    ["--run-for", "-1"],
    ["--bogus-flag"],
    ["run", "--set", "nokeyvalue"],
], ids=["unknown-setting", "missing-config", "run-for-abc", "run-for-negative", "unknown-flag",
        "set-without-equals"])
def test_bad_command_line_exits_2_with_one_line(launcher: Launcher, workdir: Path,
                                                argv: list[str]) -> None:
    """SYS-011 (error handling), STC-001: a bad flag or setting is one line on stderr,
    ``lts: error: ...``, exit status 2, no traceback, and no database is created."""
    run = launcher.run(*argv)
    lines = run.stderr_lines()
    assert run.returncode == 2, f"exit {run.returncode}; stderr:\n{run.stderr()}"
    assert len(lines) == 1, f"expected one stderr line, got:\n{run.stderr()}"
    assert lines[0].startswith("lts: error:"), lines[0]
    assert "Traceback" not in run.stdout() + run.stderr()
    assert not (workdir / "data" / "lts.db").exists()


@pytest.mark.parametrize("url", ["mysql+aiomysql://u@h/db", "not a url"],
                         ids=["unsupported-backend", "malformed"])
def test_bad_db_url_exits_2_with_one_line(launcher: Launcher, url: str) -> None:
    """SYS-011, STC-001: ``--db-url`` is a flag like the others; a URL of an unsupported
    database or no URL at all is bad input: one ``lts: error:`` line, exit 2, no traceback."""
    run = launcher.run("--no-demo", "--run-for", "1", "--db-url", url)
    lines = run.stderr_lines()
    assert run.returncode == 2, f"exit {run.returncode}; stderr:\n{run.stderr()[-2000:]}"
    assert len(lines) == 1, run.stderr()
    assert lines[0].startswith("lts: error:"), lines[0]
