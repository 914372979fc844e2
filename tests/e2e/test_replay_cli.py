"""``python -m lts.engine replay``: a backtest over a CSV or Parquet file through the engine's
own code, its JSON summary, and one-line errors for every kind of bad input."""

import json
import math
import os
import random
import socket
import sqlite3
import subprocess
import sys
from contextlib import closing
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ._support import EngineRun, Launcher

BARS = 3000
START = datetime(2024, 1, 2, 9, 30)
HEADER = ",Open,HIGH,low,Close,volume"  # unnamed timestamp column, mixed-case names
SUMMARY_KEYS = {"bars", "orders", "fills", "round_trips", "final_equity", "realized_pnl",
                "max_drawdown", "elapsed_seconds", "bars_per_second"}
TIMINGS = {"load_seconds", "elapsed_seconds", "bars_per_second", "database"}
SMA = ["--strategy", "sma_crossover", "--param", "fast=5", "--param", "slow=20"]


def make_bars(n: int = BARS) -> list[tuple[datetime, float, float, float, float, int]]:
    """A seeded random walk of one-minute bars; the last 60 bars fall steadily, so the final
    moving-average cross is downward and a long-only strategy ends flat."""
    rng = random.Random(20240102)
    price, rows = 100.0, []
    for i in range(n):
        step = -0.002 if i >= n - 60 else rng.gauss(0.0, 0.002)
        open_ = price
        close = round(open_ * math.exp(step), 4)
        high = round(max(open_, close) * 1.0005, 4)
        low = round(min(open_, close) * 0.9995, 4)
        rows.append((START + timedelta(minutes=i), round(open_, 4), high, low, close,
                     rng.randint(100, 1000)))
        price = close
    return rows


def write_csv(path: Path, rows: list[tuple[Any, ...]], header: str = HEADER) -> Path:
    lines = [header]
    for ts, *values in rows:
        stamp = ts.isoformat() if isinstance(ts, datetime) else str(ts)
        lines.append(",".join([stamp, *(str(v) for v in values)]))
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="module")
def bars() -> list[tuple[datetime, float, float, float, float, int]]:
    return make_bars()


@pytest.fixture
def good_csv(tmp_path: Path, bars: list[tuple[Any, ...]]) -> Path:
    return write_csv(tmp_path / "bars.csv", bars)


def summary(run: EngineRun) -> dict[str, Any]:
    assert run.returncode == 0, f"exit {run.returncode}; stderr:\n{run.stderr()}"
    assert "Traceback" not in run.stderr()
    lines = run.stdout().strip().splitlines()
    assert lines, "no output"
    result: dict[str, Any] = json.loads(lines[-1], parse_float=Decimal, parse_int=Decimal)
    return result


def check_summary(s: dict[str, Any], last_close: float) -> None:
    assert set(s) >= SUMMARY_KEYS, f"missing keys: {SUMMARY_KEYS - set(s)}"
    assert s["bars"] == BARS
    assert 0 < s["fills"] <= s["orders"]
    assert s["max_drawdown"] >= 0
    cash = s["initial_cash"]
    assert cash == 100_000
    # exact money: equity = cash + realized P&L - fees (+ the open position at the last close)
    (position,) = s["final_positions"].values()
    marked = position * Decimal(str(last_close))
    assert position == 0, "the data is built to end flat"
    assert s["final_equity"] == cash + s["realized_pnl"] - s["fees"] + marked
    assert s["round_trips"] * 2 == s["fills"]  # long-only, fixed quantity, flat at the end


def test_replay_csv_json_summary(launcher: Launcher, good_csv: Path,
                                 bars: list[tuple[Any, ...]]) -> None:
    """SYS-001 (the pipeline over historical data), SYS-006 (orders, fills, P&L), STC-001.

    3,000 one-minute bars, an unnamed ISO timestamp column and mixed-case OHLCV headers: the
    last stdout line is the JSON summary with every key; fills <= orders; the final equity is
    exactly initial cash + realized P&L - fees for the (flat) final position.
    """
    s = summary(launcher.run("replay", str(good_csv), "--symbol", "X", *SMA,
                             "--quantity", "2", "--json"))
    check_summary(s, bars[-1][4])
    assert s["fees"] == 0
    assert (s["symbols"], s["strategy"]) == (["X"], "sma_crossover")


def test_replay_parquet_matches_csv(launcher: Launcher, tmp_path: Path, good_csv: Path,
                                    bars: list[tuple[Any, ...]]) -> None:
    """SYS-001: the same bars from Parquet (written with pyarrow) give the same summary as
    from CSV, apart from timings."""
    cols = list(zip(*bars, strict=True))
    table = pa.table({"time": pa.array(cols[0], pa.timestamp("ns")), "open": cols[1],
                      "high": cols[2], "low": cols[3], "close": cols[4], "volume": cols[5]})
    parquet = tmp_path / "bars.parquet"
    pq.write_table(table, parquet)
    args = ["--symbol", "X", *SMA, "--quantity", "2", "--fees-bps", "1.5", "--json"]
    from_csv = summary(launcher.run("replay", str(good_csv), *args))
    from_parquet = summary(launcher.run("replay", str(parquet), *args))
    check_summary(from_parquet, bars[-1][4])
    assert from_parquet["fees"] > 0
    drop = lambda s: {k: v for k, v in s.items() if k not in TIMINGS}  # noqa: E731
    assert drop(from_parquet) == drop(from_csv)


def test_replay_fill_at_close(launcher: Launcher, good_csv: Path,
                              bars: list[tuple[Any, ...]]) -> None:
    """SYS-001: ``--fill-at close`` (market orders fill at the signal bar's close) runs and
    keeps the exact equity identity; text output without ``--json`` works too."""
    s = summary(launcher.run("replay", str(good_csv), "--symbol", "X", *SMA, "--quantity", "2",
                             "--fill-at", "close", "--fees-bps", "1", "--json"))
    check_summary(s, bars[-1][4])
    text = launcher.run("replay", str(good_csv), "--symbol", "X", *SMA, "--quantity", "2",
                        "--fill-at", "close", "--fees-bps", "1")
    assert text.returncode == 0, text.stderr()
    lines = {line[:26].strip(): line[26:].strip() for line in text.stdout().splitlines()}
    assert lines["Final equity"] == str(s["final_equity"])  # the same run, as text
    assert lines["Return [%]"]  # backtesting.py's statistics block comes first
    assert lines["Fills"] == str(s["fills"])
    assert "Traceback" not in text.stderr()



def test_replay_keeps_its_journal_in_a_database_when_asked(launcher: Launcher, tmp_path: Path,
                                                            good_csv: Path) -> None:
    """SYS-006, SYS-008: ``--db-url`` journals every order, event and fill of the backtest as
    the live engine does (migrated as the engine's database), with the same result as the
    default in-memory backtest; the summary names the database."""
    args = ["--symbol", "X", *SMA, "--quantity", "2", "--fees-bps", "1", "--json"]
    in_memory = summary(launcher.run("replay", str(good_csv), *args))
    db = tmp_path / "kept.db"
    url = f"sqlite+aiosqlite:///{db}"
    kept = summary(launcher.run("replay", str(good_csv), *args, "--db-url", url))
    assert in_memory["database"] == "none (in memory)"
    assert kept["database"] == url
    drop = lambda s: {k: v for k, v in s.items() if k not in TIMINGS}  # noqa: E731
    assert drop(kept) == drop(in_memory)
    with closing(sqlite3.connect(db)) as conn:
        fees = [Decimal(str(f)) for (f,) in conn.execute("SELECT fee FROM fills")]
        orders = conn.execute("SELECT count(*) FROM orders").fetchone()[0]
        events = conn.execute("SELECT count(*) FROM order_events").fetchone()[0]
    assert (len(fees), sum(fees)) == (kept["fills"], kept["fees"])
    assert orders == kept["orders"]
    assert events > orders  # submitted, accepted, filled... per order



def test_a_database_that_cannot_be_reached_is_one_line(launcher: Launcher, good_csv: Path
                                                       ) -> None:
    """SYS-014 (errors): ``--db-url`` naming a PostgreSQL that does not answer (a closed
    loopback port) ends in one ``lts: error:`` line naming the database, its password hidden,
    and the cause; exit status 2, no traceback."""
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"postgresql+asyncpg://trader:s3cret@127.0.0.1:{port}/lts"
    run = launcher.run("replay", str(good_csv), "--symbol", "X", *SMA, "--db-url", url)
    assert run.returncode == 2, run.stderr()
    assert "Traceback" not in run.stderr()
    last = run.stderr_lines()[-1]
    assert last.startswith(f"lts: error: database postgresql+asyncpg://trader:***@127.0.0.1:{port}"
                           "/lts: cannot connect"), last
    assert "s3cret" not in run.stderr()

def test_a_backtest_without_a_database_never_loads_one(tmp_path: Path, good_csv: Path) -> None:
    """A backtest's start-up (issue 11): without ``--db-url`` the replay runs in memory and
    the process never imports SQLAlchemy or a database driver (they cost a quarter of a
    second of start-up), while its result is complete (fills, round trips, statistics)."""
    code = (
        "import json, sys\n"
        "from lts.cli.main import main\n"
        f"rc = main(['replay', {str(good_csv)!r}, '--symbol', 'X', '--strategy', "
        "'sma_crossover', '--param', 'fast=5', '--param', 'slow=20', '--quantity', '2', "
        "'--json'])\n"
        "loaded = sorted(m for m in sys.modules if m.split('.')[0] in "
        "{'sqlalchemy', 'aiosqlite', 'asyncpg', 'alembic', 'lts'} "
        "and (not m.startswith('lts') or m.startswith('lts.persistence.')))\n"
        "print(json.dumps({'rc': rc, 'loaded': loaded}))\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("LTS_")}
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    *summary_lines, last = done.stdout.strip().splitlines()
    result = json.loads(last)
    assert result["rc"] == 0
    assert [m for m in result["loaded"] if m != "lts.persistence.keyring"] == []
    s = json.loads(summary_lines[-1])
    assert s["fills"] > 0
    assert s["round_trips"] * 2 == s["fills"]
    assert s["statistics"]["trades"] == s["round_trips"]

def _bad_rows(kind: str, rows: list[tuple[Any, ...]]) -> tuple[list[tuple[Any, ...]], str]:
    rows = [list(r) for r in rows[:50]]  # type: ignore[misc]
    header = HEADER
    if kind == "no-volume":
        rows = [r[:5] for r in rows]
        header = ",Open,HIGH,low,Close"
    elif kind == "abc-close":
        rows[10][4] = "abc"
    elif kind == "nan-close":
        rows[10][4] = "nan"
    elif kind == "NaN-close":
        rows[10][4] = "NaN"
    elif kind == "unsorted":
        rows[10][0], rows[11][0] = rows[11][0], rows[10][0]
    elif kind == "duplicate":
        rows[11][0] = rows[10][0]
    elif kind == "empty":
        rows = []
    return [tuple(r) for r in rows], header


def bad_replay(launcher: Launcher, tmp_path: Path, bars: list[tuple[Any, ...]],
               case: str) -> EngineRun:
    """Run ``replay`` with one kind of bad input (a file, a strategy or a param)."""
    path = tmp_path / "bad.csv"
    strategy = ["--strategy", "sma_crossover", "--param", "fast=2", "--param", "slow=5"]
    extra: list[str] = []
    if case == "missing-file":
        path = tmp_path / "nope.csv"
    elif case == "parquet-nan":
        path = tmp_path / "bad.parquet"
        cols = list(zip(*bars[:50], strict=True))
        close = [math.nan if i == 10 else v for i, v in enumerate(cols[4])]
        pq.write_table(pa.table({"time": pa.array(cols[0], pa.timestamp("ns")),
                                 "open": cols[1], "high": cols[2], "low": cols[3],
                                 "close": close, "volume": cols[5]}), path)
    else:
        rows, header = _bad_rows(case, bars)
        write_csv(path, rows, header)
    if case == "unknown-strategy":
        strategy = ["--strategy", "no_such_strategy"]
    elif case == "unknown-param":
        strategy += ["--param", "bogus=1"]
    elif case == "negative-fast":
        strategy = ["--strategy", "sma_crossover", "--param", "fast=-1"]
    elif case == "fast-not-below-slow":
        strategy = ["--strategy", "sma_crossover", "--param", "fast=20", "--param", "slow=5"]
    elif case == "quantity-not-a-number":
        extra = ["--quantity", "abc"]
    return launcher.run("replay", str(path), "--symbol", "X", *strategy, *extra, "--json")


def one_error_line(run: EngineRun) -> str:
    lines = run.stderr_lines()
    assert run.returncode == 2, f"exit {run.returncode}; stderr:\n{run.stderr()}"
    assert len(lines) == 1, f"expected one stderr line, got:\n{run.stderr()}"
    assert lines[0].startswith("lts: error:"), lines[0]
    assert "Traceback" not in run.stderr() + run.stdout()
    assert run.stdout() == ""
    return lines[0]


@pytest.mark.parametrize(("case", "expect"), [
    ("missing-file", "no such file"),
    ("no-volume", "missing column(s): volume"),
    ("abc-close", "non-numeric value 'abc' in line 12"),
    ("nan-close", "line 12"),
    ("NaN-close", "line 12"),
    ("parquet-nan", "NaN in row 11"),
    ("unsorted", "unsorted timestamp in line 13"),
    ("duplicate", "duplicate timestamp in line 13"),
    ("empty", "no rows"),
    ("unknown-strategy", "unknown strategy plugin 'no_such_strategy'"),
    ("unknown-param", "'bogus': unknown param"),
    ("negative-fast", "'fast'"),
    ("fast-not-below-slow", "fast must be smaller than slow"),
    ("quantity-not-a-number", "--quantity"),
])
def test_replay_bad_input_is_one_line_exit_2(launcher: Launcher, tmp_path: Path,
                                             bars: list[tuple[Any, ...]], case: str,
                                             expect: str) -> None:
    """SYS-011 (error handling), STC-001: every bad file, strategy or param exits 2 with one
    stderr line ``lts: error: ...`` that names the problem (and the row), no traceback."""
    line = one_error_line(bad_replay(launcher, tmp_path, bars, case))
    assert expect in line, line


def test_replay_nan_price_in_csv_is_called_nan(launcher: Launcher, tmp_path: Path,
                                               bars: list[tuple[Any, ...]]) -> None:
    """SYS-011: a NaN close in a CSV is reported as NaN, as it is from Parquet."""
    line = one_error_line(bad_replay(launcher, tmp_path, bars, "nan-close"))
    assert "NaN" in line, line


def test_replay_cross_field_param_error_is_clean(launcher: Launcher, tmp_path: Path,
                                                 bars: list[tuple[Any, ...]]) -> None:
    """SYS-011, STC-005: fast >= slow is reported without a '?' field or pydantic's prefix."""
    line = one_error_line(bad_replay(launcher, tmp_path, bars, "fast-not-below-slow"))
    assert "'?'" not in line, line
    assert "Value error" not in line, line


def test_a_bad_row_past_the_checked_sample_stops_the_replay_in_one_line(
        launcher: Launcher, tmp_path: Path, bars: list[tuple[Any, ...]]) -> None:
    """A replay checks the first 10,000 rows of a one-symbol file before its first bar and
    the rest as they stream: a bad row at line 12,002 stops it with the same one line."""
    rows = [list(r) for r in make_bars(12_500)]
    rows[12_000][2] = rows[12_000][3] - 1  # high below low, line 12,002 (header is line 1)
    path = write_csv(tmp_path / "late.csv", [tuple(r) for r in rows])
    run = launcher.run("replay", str(path), "--symbol", "X", *SMA, "--quantity", "1")
    line = one_error_line(run)
    assert "in line 12002" in line, line
    assert "below low" in line, line
