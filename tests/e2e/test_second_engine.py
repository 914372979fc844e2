"""A second engine on the same database, started as a new user would start one (issue 9,
defect 7). SYS-011 (recovery), SYS-013 (integrity), SYS-006 (orders).

Real engine processes (``python -m lts.engine``) on the paper venue and synthetic feeds:

- SQLite: one engine per database file. A second refuses to start with one line naming the
  holder (its pid and API port) and exit status 2; the first engine's orders are untouched.
- PostgreSQL: leases per portfolio. A second engine stands by for each portfolio the first
  trades (it never sends an order of it), and takes them all over when the first is SIGKILLed,
  numbering client orders on above the first engine's.

Before issue 9 a second ``./scripts/run`` on the same database reconciled the first engine's
orders with its own paper venue and canceled them, and both crash-looped on UNIQUE violations.
"""

from __future__ import annotations

import http.client
import json
import re
import signal
import socket
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from lts.domain.portfolio_spec import PortfolioSpec

from ._support import (
    ADMIN_PASSWORD,
    START_TIMEOUT,
    Db,
    EngineRun,
    Launcher,
    assert_clean_exit,
    check_integrity,
    order_number,
    prepare_portfolios,
    sqlite_url,
    synthetic_asset,
    wait_until,
)

_LISTENING = re.compile(r"API listening on http://127\.0\.0\.1:(\d+)")
_SUBMITTED = re.compile(r"order (\d+)-(\d+) submitted")
#: What a crash loop or a write conflict leaves in an engine's log.
_TROUBLE = ("UNIQUE", "duplicate key", "IntegrityError", "Traceback", "stays in error",
            "lease lost")


def _spec(name: str, seed: int) -> PortfolioSpec:
    """A portfolio trading a synthetic asset (``<NAME>-A``) every 50 ms on the paper venue,
    and holding a second one (``<NAME>-B``) whose strategy stays silent for thousands of bars,
    for manual orders; no price band (a resting limit order may sit far below the market)."""
    silent = {"fast": 1000, "slow": 2000, "quantity": "1"}
    return PortfolioSpec(name=name, initial_cash=Decimal(100_000),
                         risk_params={"price_band": None},
                         assets=(synthetic_asset(f"{name.upper()}-A", seed=seed, interval=0.05),
                                 synthetic_asset(f"{name.upper()}-B", seed=seed + 100,
                                                 interval=0.05, strategy_params=silent)))


def _api_port(run: EngineRun) -> int:
    found = wait_until(lambda: _LISTENING.search(run.stderr()), timeout=START_TIMEOUT,
                       what="the API to listen", run=run)
    return int(found.group(1))


def _call(port: int, method: str, path: str, body: Any = None,
          token: str | None = None) -> tuple[int, Any]:
    """One JSON request to the engine's API on 127.0.0.1."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        headers = {"content-type": "application/json"}
        if token is not None:
            headers["authorization"] = f"Bearer {token}"
        conn.request(method, path, None if body is None else json.dumps(body), headers)
        resp = conn.getresponse()
        raw = resp.read()
    finally:
        conn.close()
    return resp.status, json.loads(raw) if raw else None


def _resting_order(port: int, pid: int, symbol: str) -> str:
    """A GTC limit buy far below the market, placed through the API as a trader would."""
    status, tokens = _call(port, "POST", "/api/v1/auth/login",
                           {"username": "admin", "password": ADMIN_PASSWORD})
    assert status == 200, tokens
    status, order = _call(port, "POST", "/api/v1/orders", {
        "portfolio_id": pid, "symbol": symbol, "side": "buy", "quantity": "1",
        "order_type": "limit", "limit_price": "1"}, tokens["access_token"])
    assert status in (200, 201), order
    return str(order["client_order_id"])


def _trouble(run: EngineRun) -> list[str]:
    return [line for line in run.stderr_lines() if any(t in line for t in _TROUBLE)
            or re.search(r"portfolio \d+ failed", line)]


def _owner(run: EngineRun) -> str:
    """The lease owner an engine process records (``host:pid``)."""
    return f"{socket.gethostname()}:{run.pid}"


def _submitted_by(run: EngineRun) -> dict[int, set[int]]:
    """Order numbers this engine's log says it submitted, by portfolio."""
    out: dict[int, set[int]] = {}
    for pid, number in _SUBMITTED.findall(run.stderr()):
        out.setdefault(int(pid), set()).add(int(number))
    return out


def _top_numbers(db: Db, pids: list[int]) -> dict[int, int]:
    return {pid: max((order_number(r[0]) for r in db.rows(
        "SELECT client_order_id FROM orders WHERE portfolio_id=?", (pid,))), default=0)
        for pid in pids}


# -- SQLite: one engine per database file -------------------------------------------------------

def test_a_second_engine_on_a_sqlite_file_refuses_to_start(launcher: Launcher,
                                                            db_path: Path) -> None:
    """Defect 7 on SQLite (SYS-011, SYS-013). While an engine trades, a second one started on
    the same database file (another API port) exits with status 2 and one error line naming
    the holder: the first engine's pid and API port. The first engine's resting order is
    untouched (still accepted, nothing filled, no reason set), it trades on, and stops cleanly
    with every integrity invariant holding."""
    url, db = sqlite_url(db_path), Db(db_path)
    [pid] = prepare_portfolios(url, [_spec("first", seed=21)])
    first = launcher.start("--no-demo", "--db-url", url)
    port = _api_port(first)
    wait_until(lambda: db.count("fills", "portfolio_id=?", (pid,)) > 0, timeout=START_TIMEOUT,
               what="the first engine's first fill", run=first)
    resting = _resting_order(port, pid, "FIRST-B")
    wait_until(lambda: db.scalar("SELECT status FROM orders WHERE client_order_id=?",
                                 (resting,)) == "accepted",
               timeout=START_TIMEOUT, what="the resting order to be accepted", run=first)
    before = db.rows("SELECT * FROM orders WHERE client_order_id=?", (resting,))[0]
    fills_before = db.count("fills")

    second = launcher.run("--no-demo", "--db-url", url)
    assert second.returncode == 2, f"exit {second.returncode}; stderr:\n{second.tail()}"
    [line] = second.stderr_lines()
    assert line.startswith("lts: error:"), line
    assert f"pid {first.pid}" in line, line
    assert f"API port {port}" in line, line

    after = db.rows("SELECT * FROM orders WHERE client_order_id=?", (resting,))[0]
    assert {k: after[k] for k in ("status", "filled_quantity", "reason")} == \
        {k: before[k] for k in ("status", "filled_quantity", "reason")}
    assert first.alive(), f"the first engine died:\n{first.tail()}"
    wait_until(lambda: db.count("fills") > fills_before, timeout=START_TIMEOUT,
               what="the first engine to trade on", run=first)

    first.send(signal.SIGTERM)
    first.wait(what="the first engine to stop")
    assert_clean_exit(first)
    assert _trouble(first) == []
    assert db.scalar("SELECT status FROM orders WHERE client_order_id=?", (resting,)) \
        == "accepted"
    check_integrity(db)


# -- PostgreSQL: one engine per portfolio -------------------------------------------------------

@pytest.fixture
def pg_url(pg_databases: Any) -> Iterator[str]:
    """A fresh, empty PostgreSQL database (dropped afterwards)."""
    url: str = pg_databases.create()
    try:
        yield url
    finally:
        pg_databases.drop(url)


@pytest.mark.postgres
def test_two_engines_on_postgresql_share_portfolios_one_owner_each(launcher: Launcher,
                                                                   pg_url: str) -> None:
    """Defect 7 on PostgreSQL (SYS-011, SYS-013, SYS-006). Two engine processes on one
    database: each portfolio is traded by exactly one of them (the first holds every lease; the
    second logs that it stands by for each and never submits an order of it), neither log
    shows a UNIQUE violation, a failing portfolio or a lost lease. When the first engine is
    SIGKILLed, the second takes every portfolio over within the deadline (its leases, then new
    orders) and numbers client orders on above the first engine's; every integrity invariant
    holds at the end."""
    db = Db(pg_url)
    pids = prepare_portfolios(pg_url, [_spec(f"p{i}", seed=30 + i) for i in range(3)])
    first = launcher.start("--no-demo", "--db-url", pg_url)

    def traded_by(run: EngineRun) -> bool:
        owners = [db.portfolio(pid)["lease_owner"] for pid in pids]
        return owners == [_owner(run)] * len(pids) and all(
            db.count("fills", "portfolio_id=?", (pid,)) > 0 for pid in pids)

    wait_until(lambda: traded_by(first), timeout=START_TIMEOUT,
               what="the first engine to trade every portfolio", run=first)
    second = launcher.start("--no-demo", "--db-url", pg_url, "--set", "engine.lease_retry=0.5")
    wait_until(lambda: all(f"portfolio {pid}: held by another engine" in second.stderr()
                           for pid in pids), timeout=START_TIMEOUT,
               what="the second engine to stand by for every portfolio", run=second)
    fills_before = db.count("fills")
    wait_until(lambda: db.count("fills") > fills_before + 3 * len(pids), timeout=START_TIMEOUT,
               what="the first engine to trade on beside the second", run=first)
    assert first.alive()
    assert second.alive()
    assert [db.portfolio(pid)["lease_owner"] for pid in pids] == [_owner(first)] * len(pids)
    assert _submitted_by(second) == {}, "the standing-by engine sent orders"
    assert set(_submitted_by(first)) == set(pids)

    first.kill9()
    top = _top_numbers(db, pids)

    def taken_over() -> bool:
        if not traded_by(second):
            return False
        mine = _submitted_by(second)
        return all(any(n > top[pid] for n in mine.get(pid, ())) for pid in pids)

    wait_until(taken_over, timeout=START_TIMEOUT, run=second,
               what="the second engine to take every portfolio over and trade it")
    for pid, numbers in _submitted_by(second).items():
        assert min(numbers) > top[pid], (
            f"portfolio {pid}: numbering restarted at {min(numbers)}, not above {top[pid]}")

    second.send(signal.SIGTERM)
    second.wait(what="the second engine to stop")
    assert_clean_exit(second)
    assert _trouble(first) == [], "\n".join(_trouble(first))
    assert _trouble(second) == [], "\n".join(_trouble(second))
    check_integrity(db)


@pytest.mark.postgres
def test_engines_started_together_on_a_new_database_split_the_portfolios(
        launcher: Launcher, pg_url: str) -> None:
    """Defect 7 on PostgreSQL, all at once (SYS-011, SYS-013): three engines started at the same
    moment on a new database (as ``docker compose up --scale engine=3`` does) all come up;
    each portfolio is traded by exactly one of them and the others stand by for it; no log
    shows a UNIQUE violation or an internal error."""
    db = Db(pg_url)
    pids = prepare_portfolios(pg_url, [_spec(f"q{i}", seed=40 + i) for i in range(4)])
    runs = [launcher.start("--no-demo", "--db-url", pg_url, "--set", "engine.lease_retry=0.5")
            for _ in range(3)]
    owners = {_owner(run): run for run in runs}

    def split() -> bool:
        for run in runs:
            if not run.alive():
                pytest.fail(f"engine {run.pid} exited (status {run.proc.returncode}):\n"
                            f"{run.tail()}")
        held = [db.portfolio(pid)["lease_owner"] for pid in pids]
        if not all(owner in owners for owner in held):
            return False
        return all(db.count("fills", "portfolio_id=?", (pid,)) > 0 for pid in pids) and all(
            f"portfolio {pid}: held by another engine" in run.stderr()
            for pid, owner in zip(pids, held, strict=True) for run in runs
            if owners[owner] is not run)

    wait_until(split, timeout=START_TIMEOUT, what="the engines to split the portfolios")
    traded = [set(_submitted_by(run)) for run in runs]
    for pid in pids:
        by = [run.pid for run, mine in zip(runs, traded, strict=True) if pid in mine]
        assert len(by) == 1, f"portfolio {pid} traded by engines {by}"
    for run in runs:
        assert _trouble(run) == [], "\n".join(_trouble(run))
        assert "internal error" not in run.stderr()
