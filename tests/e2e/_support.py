"""Helpers of the end-to-end tests: start the real engine as a subprocess, read its database.

Nothing here imports the engine's internals beyond what a user or an operator has: the command
line, the database (read with the standard ``sqlite3`` module), and the public repository
functions to prepare portfolios while the control API does not exist yet.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

import anyio
import asyncpg
import pytest
from sqlalchemy.engine import make_url

from lts.domain.portfolio_spec import AssetSpec, PortfolioSpec
from lts.persistence.db import make_engine
from lts.persistence.migrations import upgrade_to_head
from lts.persistence.repositories import create_portfolio

T = TypeVar("T")

ADMIN_PASSWORD = "e2e-Admin-Pw-7f3c"
#: Order statuses with a next state (domain.orders.OPEN_STATUSES, spelled as the DB stores them).
OPEN_STATUSES = frozenset({"pending_submit", "submitted", "accepted", "partially_filled",
                           "pending_cancel", "unknown"})
#: Bounds of the waits (never asserted on; a wait that runs out fails with a message).
START_TIMEOUT = 30.0
EXIT_TIMEOUT = 30.0


def sqlite_url(db_path: Path) -> str:
    return f"sqlite+aiosqlite:///{db_path.resolve()}"


# -- the engine process ------------------------------------------------------------------------

@dataclass
class EngineRun:
    """One engine process; its stdout and stderr go to files (no pipe can fill up)."""

    args: list[str]
    proc: subprocess.Popen[bytes]
    stdout_path: Path
    stderr_path: Path
    returncode: int | None = None

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stdout(self) -> str:
        return self.stdout_path.read_text(errors="replace")

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def stderr_lines(self) -> list[str]:
        return [line for line in self.stderr().splitlines() if line.strip()]

    def tail(self, lines: int = 25) -> str:
        text = self.stderr().splitlines()[-lines:]
        return "\n".join(text) or "(stderr empty)"

    def send(self, signum: signal.Signals) -> None:
        if self.alive():
            self.proc.send_signal(signum)

    def kill9(self) -> None:
        """SIGKILL: the crash the engine gets no chance to see."""
        self.proc.kill()
        self.wait(EXIT_TIMEOUT, what="the SIGKILLed engine to go away")

    def wait(self, timeout: float = EXIT_TIMEOUT, *, what: str = "the engine to exit") -> int:
        try:
            self.returncode = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
            pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}; "
                        f"killed it. stderr tail:\n{self.tail()}")
        return self.returncode


@dataclass
class Launcher:
    """Starts engine subprocesses in a working directory; kills leftovers at teardown."""

    workdir: Path
    extra_pythonpath: list[Path] = field(default_factory=list)
    runs: list[EngineRun] = field(default_factory=list)

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("LTS_")}
        env["LTS_ADMIN_PASSWORD"] = ADMIN_PASSWORD
        env["PYTHONUNBUFFERED"] = "1"
        env.setdefault("LTS_API__PORT", "0")  # the API on any free loopback port
        env.pop("PYTHONWARNINGS", None)
        if self.extra_pythonpath:
            parts = [str(p) for p in self.extra_pythonpath]
            if env.get("PYTHONPATH"):
                parts.append(env["PYTHONPATH"])
            env["PYTHONPATH"] = os.pathsep.join(parts)
        return env

    def start(self, *args: str) -> EngineRun:
        n = len(self.runs) + 1
        out, err = self.workdir / f"engine-{n}.stdout", self.workdir / f"engine-{n}.stderr"
        argv = [sys.executable, "-m", "lts.engine", *args]
        with out.open("wb") as o, err.open("wb") as e:
            proc = subprocess.Popen(argv, cwd=self.workdir, env=self.env(),
                                    stdin=subprocess.DEVNULL, stdout=o, stderr=e)
        run = EngineRun(list(args), proc, out, err)
        self.runs.append(run)
        return run

    def run(self, *args: str, timeout: float = 60.0) -> EngineRun:
        """Start and wait for the exit (a bounded wait)."""
        run = self.start(*args)
        run.wait(timeout, what=f"`python -m lts.engine {' '.join(args)}` to exit")
        return run

    def cleanup(self) -> None:
        for run in self.runs:
            if run.alive():
                run.proc.kill()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    run.proc.wait(10)


def wait_until(predicate: Callable[[], T], *, timeout: float, what: str,
               run: EngineRun | None = None, interval: float = 0.1) -> T:
    """Poll ``predicate`` until it returns a truthy value; fail clearly at the deadline or if
    the engine exits first."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if run is not None and not run.alive():
            pytest.fail(f"the engine exited (status {run.proc.returncode}) while waiting for "
                        f"{what}; stderr tail:\n{run.tail()}")
        if time.monotonic() > deadline:
            tail = f"; stderr tail:\n{run.tail()}" if run is not None else ""
            pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}{tail}")
        time.sleep(interval)


def assert_clean_exit(run: EngineRun, expected: int = 0) -> None:
    assert run.returncode == expected, (
        f"exit status {run.returncode}, expected {expected}; stderr tail:\n{run.tail()}")
    for name, text in (("stdout", run.stdout()), ("stderr", run.stderr())):
        assert "Traceback" not in text, f"a traceback in the engine's {name}:\n{text[-3000:]}"


def problem_lines(run: EngineRun) -> list[str]:
    """Log lines at WARNING or ERROR (the log format puts the level after the time)."""
    return [line for line in run.stderr_lines()
            if " WARNING " in line or " ERROR " in line or " CRITICAL " in line]


# -- preparing the database --------------------------------------------------------------------

def prepare_portfolios(url: str, specs: Sequence[PortfolioSpec]) -> list[int]:
    """Migrate the database at ``url`` and create ``specs`` (as the control API will)."""

    async def main() -> list[int]:
        await upgrade_to_head(url)
        engine = make_engine(url)
        try:
            return [await create_portfolio(engine, spec) for spec in specs]
        finally:
            await engine.dispose()

    return anyio.run(main)


def synthetic_asset(symbol: str, *, seed: int, interval: float, strategy: str = "sma_crossover",
                    strategy_params: dict[str, Any] | None = None,
                    broker_params: dict[str, Any] | None = None,
                    lot_size: Decimal = Decimal(1)) -> AssetSpec:
    params = ({"fast": 2, "slow": 5, "quantity": "1"} if strategy_params is None
              else strategy_params)
    return AssetSpec(symbol=symbol, strategy_plugin=strategy, strategy_params=params,
                     broker_plugin="paper", broker_params=broker_params or {},
                     pipeline_plugin="synthetic", lot_size=lot_size,
                     pipeline_params={"seed": seed, "interval": interval, "volatility": 0.01})


# -- reading the database ----------------------------------------------------------------------

class Db:
    """Read-only queries on the engine's database, SQLite file or PostgreSQL database, with
    ``?`` placeholders either way (a fresh connection per query, so the test never holds a read
    transaction open while the engine writes). Rows answer by name and by position."""

    def __init__(self, where: Path | str) -> None:
        self.url = sqlite_url(where) if isinstance(where, Path) else where
        parsed = make_url(self.url)
        self.sqlite = parsed.get_backend_name() == "sqlite"
        self.path = Path(parsed.database or "")
        self._dsn = parsed.set(drivername="postgresql").render_as_string(hide_password=False)

    def exists(self) -> bool:
        return self.path.is_file() if self.sqlite else True

    def rows(self, sql: str, params: Iterable[Any] = ()) -> list[Any]:
        if self.sqlite:
            with contextlib.closing(sqlite3.connect(self.path, timeout=10)) as conn:
                conn.row_factory = sqlite3.Row
                return conn.execute(sql, tuple(params)).fetchall()
        pieces = sql.split("?")
        numbered = pieces[0] + "".join(f"${i}{rest}" for i, rest in enumerate(pieces[1:], 1))

        async def query() -> list[Any]:
            conn = await asyncpg.connect(self._dsn)
            try:
                return list(await conn.fetch(numbered, *params))
            finally:
                await conn.close()

        return anyio.run(query)

    def scalar(self, sql: str, params: Iterable[Any] = ()) -> Any:
        rows = self.rows(sql, params)
        return rows[0][0] if rows else None

    def has_table(self, name: str) -> bool:
        if not self.exists():
            return False
        if self.sqlite:
            return bool(self.scalar(
                "SELECT count(*) FROM sqlite_master WHERE type='table' AND name=?", (name,)))
        return bool(self.scalar("SELECT count(*) FROM information_schema.tables "
                                "WHERE table_schema = 'public' AND table_name = ?", (name,)))

    def count(self, table: str, where: str = "1=1", params: Iterable[Any] = ()) -> int:
        if not self.has_table(table):
            return 0
        return int(self.scalar(f"SELECT count(*) FROM {table} WHERE {where}", params))

    def portfolio(self, pid: int) -> Any:
        rows = self.rows("SELECT * FROM portfolios WHERE id=?", (pid,))
        assert rows, f"no portfolio {pid}"
        return rows[0]


def order_number(client_order_id: str) -> int:
    return int(client_order_id.rsplit("-", 1)[1])


def check_integrity(db: Db) -> dict[str, int]:
    """SYS-006 / SYS-013 invariants over the whole database; returns a few counts.

    - client order ids are unique and numbered ``<portfolio>-<n>`` (an order adopted from the
      venue, tagged ``external``, is ``ext-<portfolio>-<its venue id>``);
    - no two fills share ``(broker, trade_id)``; every fill belongs to an order of its portfolio
      and symbol, on the order's side;
    - every order's ``filled_quantity`` is the sum of its fills, never above its quantity, and
      ``filled`` exactly when it is complete;
    - for every (portfolio, symbol) the stored position is the signed sum of the fills, and its
      fees the sum of their fees;
    - the order event sequence of each portfolio is unique and gap-free from 1.
    """
    orders = db.rows("SELECT * FROM orders")
    coids = [r["client_order_id"] for r in orders]
    assert len(coids) == len(set(coids)), "duplicate client_order_id"
    by_coid = {r["client_order_id"]: r for r in orders}
    for r in orders:
        if r["tag"] == "external":
            assert r["client_order_id"].startswith(f"ext-{r['portfolio_id']}-"), r
            continue
        pid_text, _, num = r["client_order_id"].rpartition("-")
        assert pid_text == str(r["portfolio_id"]), r["client_order_id"]
        assert num.isdigit(), r["client_order_id"]

    fills = db.rows("SELECT * FROM fills")
    keys = [(f["broker"], f["trade_id"]) for f in fills]
    assert len(keys) == len(set(keys)), "two fills share (broker, trade_id)"

    filled: dict[str, Decimal] = {}
    signed: dict[tuple[int, str], Decimal] = {}
    fees: dict[tuple[int, str], Decimal] = {}
    for f in fills:
        order = by_coid.get(f["client_order_id"])
        assert order is not None, f"fill {f['trade_id']} of an unknown order"
        assert (order["portfolio_id"], order["symbol"], order["side"]) == (
            f["portfolio_id"], f["symbol"], f["side"]), f"fill {f['trade_id']} mismatches order"
        qty = Decimal(f["quantity"])
        assert qty > 0
        filled[f["client_order_id"]] = filled.get(f["client_order_id"], Decimal(0)) + qty
        key = (f["portfolio_id"], f["symbol"])
        signed[key] = signed.get(key, Decimal(0)) + (qty if f["side"] == "buy" else -qty)
        fees[key] = fees.get(key, Decimal(0)) + Decimal(f["fee"])

    for r in orders:
        coid, qty = r["client_order_id"], Decimal(r["quantity"])
        got = Decimal(r["filled_quantity"])
        want = filled.get(coid, Decimal(0))
        assert got == want, (f"order {coid} ({r['status']}): filled_quantity {got} but its "
                             f"fills sum to {want}")
        assert got <= qty, f"order {coid} overfilled: {got} > {qty}"
        assert (r["status"] == "filled") == (got == qty), (
            f"order {coid}: status {r['status']} with {got} of {qty} filled")

    positions = {(p["portfolio_id"], p["symbol"]): (Decimal(p["quantity"]), Decimal(p["fees"]))
                 for p in db.rows("SELECT portfolio_id, symbol, quantity, fees FROM positions")}
    zero = (Decimal(0), Decimal(0))
    for key in set(positions) | set(signed):
        stored = positions.get(key, zero)
        want = (signed.get(key, Decimal(0)), fees.get(key, Decimal(0)))
        assert stored == want, (f"position {key}: table says (quantity, fees) {stored}, "
                                f"the fills sum to {want}")

    for pid_row in db.rows("SELECT DISTINCT portfolio_id FROM order_events"):
        pid = pid_row[0]
        seqs = [r[0] for r in db.rows(
            "SELECT seq FROM order_events WHERE portfolio_id=? ORDER BY seq", (pid,))]
        assert seqs == list(range(1, len(seqs) + 1)), (
            f"portfolio {pid}: order event sequence is not 1..{len(seqs)} without gaps")
    return {"orders": len(orders), "fills": len(fills)}
