"""LTS as the benches run it: ``python -m lts.engine replay`` in a child process, the whole
process exercised, its fills read back from what it wrote.

One place builds the command line (:func:`replay_command`) and one reads the results
(:func:`replay`). The CLI changes under the benches, so the flags a tree's ``replay`` knows are
read off its ``--help`` (:func:`cli_flags`): with ``--report DIR`` the fills come from the
report's fills.csv, else from the ``fills`` table of the SQLite database kept with ``--db-url``;
short sales are allowed with ``--allow-short``, else with ``--set risk.allow_short=true``.
The orders still open at the end always come from the database.
"""

import csv
import functools
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
from contextlib import closing
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import pandas as pd
from _ref_fills import Fill, RunResult, bar_ns

__all__ = ["ROOT", "ChildRun", "cli_flags", "read_fills", "read_open_orders",
           "read_report_fills", "replay", "replay_command", "run_child"]

#: The checkout whose ``lts`` runs by default; a bench's ``--lts-tree DIR`` names another tree
#: (e.g. ``git archive HEAD | tar -x -C DIR`` while the work tree is being edited).
ROOT = Path(__file__).resolve().parent.parent


@dataclass
class ChildRun:
    wall_seconds: float
    max_rss_kib: int  # peak resident set of the command (ru_maxrss, KiB on Linux)
    stdout: str


# A small process between the bench and the command. The peak RSS the kernel reports for a
# child counts the memory of the process it was forked from (the high-water mark of the image
# that exec replaced): run straight from a bench holding a million bars, every child "peaked"
# at the bench's size. The launcher (python -S -I, ~10 MiB) forks and execs the command, waits
# for it and writes its peak RSS and wall time (fork to reap) to a file.
_LAUNCHER = """
import os, sys, time
out, argv = sys.argv[1], sys.argv[2:]
started = time.perf_counter()
pid = os.fork()
if pid == 0:
    try:
        os.execvp(argv[0], argv)
    finally:
        os._exit(127)
_, status, usage = os.wait4(pid, 0)
wall = time.perf_counter() - started
with open(out, "w") as f:
    print(usage.ru_maxrss, wall, file=f)
code = os.waitstatus_to_exitcode(status)
sys.exit(code if code >= 0 else 128 - code)
"""


def run_child(cmd: list[str], *, tree: Path = ROOT) -> ChildRun:
    """Run ``cmd`` to its end through the launcher, in ``tree`` with its ``lts`` package first
    on the path: its wall time (fork to exit) and its own peak RSS."""
    env = dict(os.environ, PYTHONPATH=str(tree))
    with tempfile.TemporaryDirectory(prefix="lts-bench-child-") as tmp:
        measured = Path(tmp) / "rusage"
        out_path, err_path = Path(tmp) / "stdout", Path(tmp) / "stderr"
        with open(out_path, "w") as out, open(err_path, "w") as err:
            code = subprocess.call([sys.executable, "-S", "-I", "-c", _LAUNCHER, str(measured),
                                    *cmd], cwd=tree, env=env, stdout=out, stderr=err)
        stdout, stderr = out_path.read_text(), err_path.read_text()
        if code != 0 or not measured.exists():
            raise RuntimeError(f"{' '.join(cmd[1:5])} ... exited {code}: "
                               f"{stderr.strip()[-2000:]}")
        rss, wall = measured.read_text().split()
    return ChildRun(float(wall), int(rss), stdout)


@functools.cache
def cli_flags(tree: Path = ROOT) -> frozenset[str]:
    """The long options ``replay`` takes in ``tree`` (from its ``--help``)."""
    text = run_child([sys.executable, "-m", "lts.engine", "replay", "--help"], tree=tree).stdout
    return frozenset(word.strip("[],") for word in text.split() if word.startswith(("--", "[--")))


def replay_command(data: Path, *, symbol: str, fast: int, slow: int, quantity: int | Decimal,
                   cash: int | Decimal, fill_at: str, long_only: bool = True,
                   db: Path | None = None, report: Path | None = None, tree: Path = ROOT,
                   extra: tuple[str, ...] = ()) -> list[str]:
    cmd = [sys.executable, "-m", "lts.engine", "replay", str(data), "--symbol", symbol,
           "--strategy", "sma_crossover", "--param", f"fast={fast}", "--param", f"slow={slow}",
           "--quantity", str(quantity), "--cash", str(cash), "--fill-at", fill_at, "--json"]
    if not long_only:  # LTS's risk refuses short sales unless allowed (SHORT_NOT_ALLOWED)
        cmd += ["--param", "long_only=false"]
        cmd += ["--allow-short"] if "--allow-short" in cli_flags(tree) else \
            ["--set", "risk.allow_short=true"]
    if db is not None:
        cmd += ["--db-url", f"sqlite+aiosqlite:///{db}"]
    if report is not None:
        cmd += ["--report", str(report)]
    return cmd + list(extra)


def read_fills(db: Path, symbol: str) -> list[Fill]:
    """The fills in the database's ``fills`` table."""
    with closing(sqlite3.connect(db)) as conn:
        rows = conn.execute("SELECT ts_event, side, quantity, price FROM fills "
                            "WHERE symbol = ? ORDER BY id", (symbol,)).fetchall()
    return [Fill(int(ts), str(side), Decimal(str(q)), Decimal(str(p))) for ts, side, q, p in rows]


def read_report_fills(report: Path, symbol: str) -> list[Fill]:
    """The fills in ``--report``'s fills.csv (time ISO 8601, side, quantity, price)."""
    with open(report / "fills.csv", newline="") as f:
        return [Fill(bar_ns(row["time"]), row["side"], Decimal(row["quantity"]),
                     Decimal(row["price"])) for row in csv.DictReader(f)
                if row["symbol"] == symbol]


_TERMINAL = ("filled", "canceled", "rejected", "denied", "expired")


def read_open_orders(db: Path) -> list[str]:
    """Orders the journal holds open at the end: side, quantity left, status, made at."""
    marks = ", ".join("?" * len(_TERMINAL))
    with closing(sqlite3.connect(db)) as conn:
        rows = conn.execute("SELECT ts_init, side, quantity, filled_quantity, status FROM orders "
                            f"WHERE status NOT IN ({marks}) ORDER BY id", _TERMINAL).fetchall()
    return [f"{side} {(Decimal(str(q)) - Decimal(str(done))).normalize():f} ({status}, made "
            f"{pd.Timestamp(int(ts), tz='UTC'):%Y-%m-%d %H:%M})"
            for ts, side, q, done, status in rows]


def _final_position(summary: dict[str, object], symbol: str) -> Decimal:
    positions = summary.get("final_positions")
    if isinstance(positions, dict):
        return Decimal(str(positions.get(symbol, 0)))
    return Decimal(str(summary.get("final_position", 0)))


def replay(data: Path, workdir: Path, *, symbol: str, fast: int, slow: int, quantity: int,
           cash: int, fill_at: str, long_only: bool, tree: Path = ROOT,
           journal: bool = False) -> RunResult:
    """One replay through the CLI; its fills and final equity (from ``--json``).

    As a user runs it (a scratch database) with ``--report``'s fills; with ``journal`` (or a CLI
    without ``--report``) into a database kept with ``--db-url``, LTS's full journal, whose
    fills table and open orders are read."""
    name = f"lts-{symbol}-{fill_at}-{'long' if long_only else 'ls'}"
    report = workdir / f"{name}-report" if "--report" in cli_flags(tree) else None
    db = workdir / f"{name}.db" if journal or report is None else None
    if db is not None:
        db.unlink(missing_ok=True)
    child = run_child(replay_command(data, symbol=symbol, fast=fast, slow=slow,
                                     quantity=quantity, cash=cash, fill_at=fill_at,
                                     long_only=long_only, db=db, report=report, tree=tree),
                      tree=tree)
    summary = json.loads(child.stdout.strip().splitlines()[-1])
    if report is not None:
        fills = read_report_fills(report, symbol)
    else:
        assert db is not None
        fills = read_fills(db, symbol)
    held = sum((f.quantity if f.side == "buy" else -f.quantity for f in fills), Decimal(0))
    extra: dict[str, object] = {
        "orders": summary["orders"], "denied": summary["denied"],
        "final_position": _final_position(summary, symbol), "position_of_fills": held}
    if db is not None:
        extra["open_orders"] = read_open_orders(db)
    return RunResult("LTS", fills, Decimal(str(summary["final_equity"])), extra=extra)
