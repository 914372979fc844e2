"""Isolation at the portfolio boundary: a strategy that raises takes down only its portfolio.

Portfolio A trades ``sma_crossover``; portfolio B runs ``exploding``, a third-party strategy
installed on the fly (a module plus a ``*.dist-info`` with entry points on PYTHONPATH, the way a
user installs a plugin), which raises ``RuntimeError("boom")`` after 3 bars. The supervisor
restarts B with backoff until ``engine.max_restarts``, then leaves it in ``error``.
"""

import json
import signal
from decimal import Decimal
from pathlib import Path

from lts.domain.portfolio_spec import PortfolioSpec

from ._support import (
    START_TIMEOUT,
    Db,
    Launcher,
    check_integrity,
    prepare_portfolios,
    sqlite_url,
    synthetic_asset,
    wait_until,
)

MAX_RESTARTS = 2


def test_a_raising_strategy_is_contained(launcher: Launcher, db: Db, db_path: Path,
                                         plugin_dir: Path) -> None:
    """SYS-011 (error handling, supervision), STC-005 (plugins), STC-006 (isolation),
    SYS-007 (audit).

    B fails, is restarted ``max_restarts`` times, then stays halted: status ``error`` with the
    sanitized reason ``RuntimeError: boom`` (one line, no traceback) kept after shutdown; one
    ``portfolio.error`` audit row per failure (actor system, target ``portfolio:<B>``, outcome
    failure). A keeps trading while and after B fails: new fills after B's last failure, no
    order rejected or denied, no audit row, and ``stopped`` with no error at the end. Portfolio
    C names a strategy that is not installed: it fails the same contained way.
    """
    url = sqlite_url(db_path)
    pid_a, pid_b, pid_c = prepare_portfolios(url, [
        PortfolioSpec(name="A", initial_cash=Decimal(100_000), assets=(
            synthetic_asset("ISO-A", seed=1, interval=0.05),)),
        PortfolioSpec(name="B", initial_cash=Decimal(100_000), assets=(
            synthetic_asset("ISO-B", seed=2, interval=0.05, strategy="exploding",
                            strategy_params={"after": 3}),)),
        PortfolioSpec(name="C", initial_cash=Decimal(100_000), assets=(
            synthetic_asset("ISO-C", seed=3, interval=0.05, strategy="not_installed",
                            strategy_params={}),)),
    ])
    launcher.extra_pythonpath.append(plugin_dir)
    run = launcher.start("--no-demo", "--db-url", url, "--run-for", "60",
                         "--set", "engine.restart_initial_delay=0.2",
                         "--set", f"engine.max_restarts={MAX_RESTARTS}")

    target_b = f"portfolio:{pid_b}"

    def b_failures() -> int:
        return db.count("audit_logs", "action='portfolio.error' AND target=?", (target_b,))

    wait_until(lambda: b_failures() >= MAX_RESTARTS + 1, timeout=START_TIMEOUT, run=run,
               what=f"portfolio B to fail {MAX_RESTARTS + 1} times")
    for pid in (pid_b, pid_c):
        wait_until(lambda pid=pid: f"portfolio {pid} stays in error" in run.stderr(),
                   timeout=START_TIMEOUT, run=run,
                   what=f"the supervisor to give up on portfolio {pid}")
    fills_a = db.count("fills", "portfolio_id=?", (pid_a,))
    wait_until(lambda: db.count("fills", "portfolio_id=?", (pid_a,)) > fills_a,
               timeout=START_TIMEOUT, run=run,
               what="portfolio A to fill again after B was left in error")
    run.send(signal.SIGTERM)
    run.wait(what="the engine to exit after SIGTERM")
    # the supervisor logs B's tracebacks (the log has the detail); the exit is still clean
    assert run.returncode == 0, f"exit status {run.returncode}; stderr tail:\n{run.tail()}"

    # B: halted in error with the sanitized reason, kept after shutdown
    b = db.portfolio(pid_b)
    assert b["status"] == "error", b["status"]
    assert b["last_error"] == "RuntimeError: boom"
    audit = db.rows("SELECT * FROM audit_logs WHERE action='portfolio.error' AND target=? "
                    "ORDER BY id", (target_b,))
    assert len(audit) == MAX_RESTARTS + 1
    for i, row in enumerate(audit):
        assert (row["actor"], row["outcome"]) == ("system", "failure")
        detail = json.loads(row["detail"])
        assert detail == {"reason": "RuntimeError: boom", "restarts": i}
    assert db.count("orders", "portfolio_id=?", (pid_b,)) == 0

    # C: a strategy that is not installed is a portfolio error too, never an engine crash
    c = db.portfolio(pid_c)
    assert c["status"] == "error", c["status"]
    assert c["last_error"].startswith("PluginNotFound: unknown strategy plugin 'not_installed'")
    assert "exploding" in c["last_error"]  # the known list names the plugin installed on the fly
    assert db.count("audit_logs", "action='portfolio.error' AND target=?",
                    (f"portfolio:{pid_c}",)) == MAX_RESTARTS + 1

    # A: unaffected
    a = db.portfolio(pid_a)
    assert (a["status"], a["last_error"]) == ("stopped", None)
    assert db.count("fills", "portfolio_id=?", (pid_a,)) > fills_a > 0
    bad = db.rows("SELECT client_order_id, status FROM orders WHERE portfolio_id=? AND "
                  "status IN ('rejected', 'denied')", (pid_a,))
    assert bad == []
    assert db.count("audit_logs", "target=?", (f"portfolio:{pid_a}",)) == 0
    assert f"portfolio {pid_a} failed" not in run.stderr()
    check_integrity(db)
