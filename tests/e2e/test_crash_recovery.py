"""Crash recovery: SIGKILL the engine while it trades fast, restart it, and check the database.

Two crashes in a row (kill, restart and trade, kill again, restart and stop gracefully): after
each kill and after the final graceful stop every integrity invariant holds, the client order
numbering continues above everything from before the crash, and every order that was open at
a crash has been settled: final, or working on at the venue (the paper venue takes the
journal's open orders back into its book: a resting order survives a restart, issue 9).
"""

import signal
from decimal import Decimal
from pathlib import Path

from lts.domain.portfolio_spec import PortfolioSpec

from ._support import (
    EXIT_TIMEOUT,
    OPEN_STATUSES,
    START_TIMEOUT,
    Db,
    EngineRun,
    Launcher,
    assert_clean_exit,
    check_integrity,
    order_number,
    prepare_portfolios,
    problem_lines,
    synthetic_asset,
    wait_until,
)

FILLS_PER_LEG = 20
#: After a restart an order from before the crash is final or working at the venue: never
#: left pending_submit, submitted, pending_cancel or unknown.
SETTLED = frozenset({"filled", "canceled", "rejected", "expired", "accepted",
                     "partially_filled"})
FAST, SLOW = "CR-A", "CR-B"  # SLOW's venue fills at most 0.005% of a bar's volume per bar


def _snapshot(db: Db, pid: int) -> tuple[set[str], int, set[str]]:
    """(client order ids, highest order number, client order ids still open)."""
    orders = db.rows("SELECT client_order_id, status FROM orders WHERE portfolio_id=?", (pid,))
    top = max((order_number(r["client_order_id"]) for r in orders), default=0)
    return ({r["client_order_id"] for r in orders}, top,
            {r["client_order_id"] for r in orders if r["status"] in OPEN_STATUSES})


def _filled(db: Db, coid: str) -> Decimal:
    [row] = db.rows("SELECT filled_quantity FROM orders WHERE client_order_id=?", (coid,))
    return Decimal(row["filled_quantity"])


def _working_order(db: Db, pid: int) -> str | None:
    """An order of the slow-filling asset that is open with less than half of it filled (it
    needs several more bars, so it is still working when the kill lands)."""
    for r in db.rows("SELECT client_order_id, quantity, filled_quantity FROM orders WHERE "
                     "portfolio_id=? AND symbol=? AND status IN ('accepted', 'partially_filled')",
                     (pid, SLOW)):
        if Decimal(r["filled_quantity"]) * 2 < Decimal(r["quantity"]):
            return str(r["client_order_id"])
    return None


def _trade_then_kill(launcher: Launcher, db: Db, url: str, pid: int) -> tuple[EngineRun, str]:
    """Start, wait for new fills and an order still working at the venue, then SIGKILL."""
    before = db.count("fills", "portfolio_id=?", (pid,))
    run = launcher.start("--no-demo", "--db-url", url)

    def ready() -> str | None:
        if db.count("fills", "portfolio_id=?", (pid,)) < before + FILLS_PER_LEG:
            return None
        return _working_order(db, pid)

    working = wait_until(ready, timeout=START_TIMEOUT, interval=0.02, run=run,
                         what=f"{FILLS_PER_LEG} new fills and a working {SLOW} order")
    run.kill9()
    assert run.returncode is not None
    assert run.returncode < 0  # killed by the signal
    return run, working


def _check_restart(db: Db, pid: int, before: tuple[set[str], int, set[str]]) -> None:
    coids_before, top_before, open_before = before
    coids, _, _ = _snapshot(db, pid)
    assert coids >= coids_before, "orders from before the crash disappeared"
    assert len(coids) > len(coids_before), "no new order after the restart"
    numbers = [order_number(c) for c in coids - coids_before]
    assert min(numbers) > top_before, (
        f"order numbering did not continue above {top_before} after the crash: {sorted(numbers)}")
    if open_before:
        marks = ",".join("?" * len(open_before))
        rows = db.rows(f"SELECT client_order_id, status, reason FROM orders "
                       f"WHERE client_order_id IN ({marks})", sorted(open_before))
        unsettled = [(r[0], r[1]) for r in rows if r[1] not in SETTLED]
        assert not unsettled, f"orders open at the crash were not settled: {unsettled}"


def test_sigkill_twice_then_recover(launcher: Launcher, db_url: str) -> None:
    """SYS-011 (recovery after a crash), SYS-013 (integrity), SYS-006 (orders and positions),
    STC-006.

    kill -9 while two synthetic assets trade at 50 bars/s, restart and trade on, kill -9 again,
    restart with ``--run-for``. After every kill and at the end: client order ids unique and
    numbered on above the pre-crash maximum; fills unique per (broker, trade_id); positions
    equal the signed sum of fills; each order's filled quantity equals its fills; the order
    event sequence has no gap; orders open at a crash are settled after the restart and the
    ones working at the paper venue keep filling there; the restarts log no warning or error
    and exit cleanly.
    """
    url, db = db_url, Db(db_url)  # on SQLite and on PostgreSQL
    [pid] = prepare_portfolios(url, [PortfolioSpec(
        name="crashy", initial_cash=Decimal(100_000), assets=(
            synthetic_asset(FAST, seed=11, interval=0.02, broker_params={"fees_bps": "1"}),
            synthetic_asset(SLOW, seed=12, interval=0.02, lot_size=Decimal("0.00001"),
                            broker_params={"fees_bps": "1", "volume_cap": 0.00005})))])

    # crash 1
    _, working1 = _trade_then_kill(launcher, db, url, pid)
    check_integrity(db)
    crash1 = _snapshot(db, pid)
    assert working1 in crash1[2], f"{working1} was no longer open after the kill"
    crash1_filled = _filled(db, working1)

    # restart, trade on, crash 2
    second, working2 = _trade_then_kill(launcher, db, url, pid)
    check_integrity(db)
    _check_restart(db, pid, crash1)
    assert problem_lines(second) == [], "\n".join(problem_lines(second))
    assert "reconciled" in second.stderr()
    crash2 = _snapshot(db, pid)
    assert working2 in crash2[2], f"{working2} was no longer open after the kill"
    crash2_filled = _filled(db, working2)

    # restart, trade, stop gracefully
    final = launcher.start("--no-demo", "--db-url", url, "--run-for", "4")
    final.wait(EXIT_TIMEOUT + 4, what="the recovered engine to stop after --run-for 4")
    assert_clean_exit(final)
    assert problem_lines(final) == [], "\n".join(problem_lines(final))
    counts = check_integrity(db)
    _check_restart(db, pid, crash2)
    assert counts["fills"] >= 2 * FILLS_PER_LEG
    assert db.portfolio(pid)["status"] == "stopped"
    # nothing is stuck: after a graceful stop no order waits for its write or its answer
    stuck = {r[0] for r in db.rows(
        "SELECT client_order_id FROM orders WHERE status IN ('pending_submit', 'submitted', "
        "'pending_cancel', 'unknown')")}
    assert not stuck
    assert "reconciled" in final.stderr()
    for coid, filled_at_kill in ((working1, crash1_filled), (working2, crash2_filled)):
        [row] = db.rows("SELECT status, filled_quantity, quantity FROM orders "
                        "WHERE client_order_id=?", (coid,))
        # the order was taken back into the paper venue's book and kept filling
        assert row["status"] in ("partially_filled", "filled"), (coid, row["status"])
        assert Decimal(row["filled_quantity"]) > filled_at_kill, coid


RESTARTS = 40


def test_supervised_restart_recovers_from_everything_the_crashed_run_wrote(
        launcher: Launcher, db_url: str, plugin_dir: Path) -> None:
    """SYS-011 (restart after a failure), SYS-013 (integrity), SYS-006 (positions), STC-006.

    A portfolio trades ``churn`` on R1 (an order every bar, filled at once at the close: long 1,
    flat, long 1, ...) while ``exploding`` on R2 raises on its second bar, in the same mailbox
    batch as R1's fill; the supervisor restarts it almost at once, 40 times. Each restart must
    rebuild the ledger from every fill the failed run made: the position (the running signed
    sum of R1's fills) never leaves {0, 1}, the positions table equals the fills, and recovery
    never finds the stored position different from the fills.
    """
    url, db = db_url, Db(db_url)  # on SQLite and on PostgreSQL
    [pid] = prepare_portfolios(url, [PortfolioSpec(
        name="restarty", initial_cash=Decimal(100_000), assets=(
            synthetic_asset("R1", seed=21, interval=0.02, strategy="churn", strategy_params={},
                            broker_params={"fill_at": "close"}),
            synthetic_asset("R2", seed=22, interval=0.02, strategy="exploding",
                            strategy_params={"after": 1})))])
    launcher.extra_pythonpath.append(plugin_dir)
    run = launcher.start("--no-demo", "--db-url", url, "--run-for", "60",
                         "--set", "engine.restart_initial_delay=0.001",
                         "--set", "engine.restart_max_delay=0.001",
                         "--set", f"engine.max_restarts={RESTARTS}")
    wait_until(lambda: "stays in error" in run.stderr(), timeout=START_TIMEOUT, run=run,
               what=f"portfolio {pid} to use up its {RESTARTS} restarts")
    run.send(signal.SIGTERM)
    run.wait(what="the engine to exit after SIGTERM")
    assert run.returncode == 0, run.tail()

    position, path = Decimal(0), []
    for f in db.rows("SELECT side, quantity FROM fills WHERE portfolio_id=? AND symbol='R1' "
                     "ORDER BY id", (pid,)):
        position += Decimal(f["quantity"]) * (1 if f["side"] == "buy" else -1)
        path.append(position)
    assert len(path) >= RESTARTS
    outside = [(i, p) for i, p in enumerate(path) if p not in (0, 1)]
    assert not outside, (f"the long-only position left {{0, 1}} after a restart "
                         f"(fill index, position): {outside[:5]}")
    differs = [line for line in run.stderr_lines() if "differs from fills" in line]
    assert not differs, "recovery read a stale journal:\n" + "\n".join(differs[:5])
    check_integrity(db)
