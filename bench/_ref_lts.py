"""LTS as the benches run it: ``python -m lts.engine replay`` in a child process, the whole
process exercised, its fills read back from the SQLite database it was told to keep.

One place builds the command line (:func:`replay_command`) and one reads the fills
(:func:`read_fills`), so a change of the CLI (``--report DIR`` writing fills.csv, ``--tick-size``,
``--lot-size``) is a change here only.
"""

import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from contextlib import closing
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import pandas as pd
from _ref_fills import Fill, RunResult

__all__ = ["ChildRun", "read_fills", "read_open_orders", "replay", "replay_command",
           "run_child"]

#: The checkout whose ``lts`` runs by default; a bench's ``--lts-tree DIR`` names another tree
#: (e.g. ``git archive HEAD | tar -x -C DIR`` while the work tree is being edited).
ROOT = Path(__file__).resolve().parent.parent


def replay_command(data: Path, *, symbol: str, fast: int, slow: int, quantity: int | Decimal,
                   cash: int | Decimal, fill_at: str, long_only: bool = True,
                   db: Path | None = None, extra: tuple[str, ...] = ()) -> list[str]:
    cmd = [sys.executable, "-m", "lts.engine", "replay", str(data), "--symbol", symbol,
           "--strategy", "sma_crossover", "--param", f"fast={fast}", "--param", f"slow={slow}",
           "--quantity", str(quantity), "--cash", str(cash), "--fill-at", fill_at, "--json"]
    if not long_only:  # LTS's risk refuses short sales unless allowed (SHORT_NOT_ALLOWED)
        cmd += ["--param", "long_only=false", "--set", "risk.allow_short=true"]
    if db is not None:
        cmd += ["--db-url", f"sqlite+aiosqlite:///{db}"]
    return cmd + list(extra)


@dataclass
class ChildRun:
    wall_seconds: float
    max_rss_kib: int  # peak resident set of the child (ru_maxrss, KiB on Linux)
    stdout: str


def run_child(cmd: list[str], *, tree: Path = ROOT) -> ChildRun:
    """Run ``cmd`` to its end, in ``tree`` with its ``lts`` package first on the path: its wall
    time and its peak RSS (from ``wait4``'s rusage of that one child, not the maximum over every
    child this process ever had)."""
    env = dict(os.environ, PYTHONPATH=str(tree))
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        started = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=tree, env=env, stdout=out, stderr=err, text=True)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[1:5])} ... exited {proc.returncode}: "
                           f"{stderr.strip()[-2000:]}")
    return ChildRun(wall, int(usage.ru_maxrss), stdout)


def read_fills(db: Path, symbol: str) -> list[Fill]:
    with closing(sqlite3.connect(db)) as conn:
        rows = conn.execute("SELECT ts_event, side, quantity, price FROM fills "
                            "WHERE symbol = ? ORDER BY id", (symbol,)).fetchall()
    return [Fill(int(ts), str(side), Decimal(str(q)), Decimal(str(p))) for ts, side, q, p in rows]


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


def replay(data: Path, workdir: Path, *, symbol: str, fast: int, slow: int, quantity: int,
           cash: int, fill_at: str, long_only: bool, tree: Path = ROOT) -> RunResult:
    """One replay through the CLI; its fills and final equity (from ``--json``)."""
    db = workdir / f"lts-{symbol}-{fill_at}-{'long' if long_only else 'ls'}.db"
    db.unlink(missing_ok=True)
    child = run_child(replay_command(data, symbol=symbol, fast=fast, slow=slow,
                                     quantity=quantity, cash=cash, fill_at=fill_at,
                                     long_only=long_only, db=db), tree=tree)
    summary = json.loads(child.stdout.strip().splitlines()[-1])
    fills = read_fills(db, symbol)
    held = sum((f.quantity if f.side == "buy" else -f.quantity for f in fills), Decimal(0))
    return RunResult("LTS", fills, Decimal(str(summary["final_equity"])),
                     extra={"orders": summary["orders"], "denied": summary["denied"],
                            "final_position": Decimal(str(summary["final_position"])),
                            "position_of_fills": held, "open_orders": read_open_orders(db)})

