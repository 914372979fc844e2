"""``python -m lts.engine sweep``: a parameter sweep over a CSV as a user runs it. results.csv
(one row per combination, every statistic), the best table, the offline heatmap, walk-forward,
one-line errors with status 2, and Ctrl-C: status 130, no traceback, the finished rows kept, no
worker left behind (SYS-001, SYS-009, SYS-011, SYS-018)."""

import csv
import json
import os
import signal
from decimal import Decimal
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from lts.backtest.sweep_results import RUN_COLUMNS, STATISTIC_COLUMNS

from ._support import Launcher, assert_clean_exit, wait_until
from .test_replay_cli import make_bars, write_csv

SMA = ["--strategy", "sma_crossover", "--quantity", "10", "--symbol", "X", "--allow-short"]
GRID = ["--grid", "fast=5,10", "--grid", "slow=20:30:10", "--grid", "long_only=true,false"]


@pytest.fixture(scope="module")
def bars() -> list[tuple[Any, ...]]:
    return make_bars(3000)


@pytest.fixture
def data_csv(tmp_path: Path, bars: list[tuple[Any, ...]]) -> Path:
    return write_csv(tmp_path / "bars.csv", bars)


def read_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


class _Scripts(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.scripts: list[tuple[str | None, str]] = []
        self.handlers: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handlers += [name for name, _ in attrs if name.startswith("on")]
        if tag == "script":
            self.scripts.append((dict(attrs).get("src"), ""))

    def handle_data(self, data: str) -> None:
        if self.scripts and self.lasttag == "script":
            src, body = self.scripts[-1]
            self.scripts[-1] = (src, body + data)


def test_sweep_writes_every_combination_the_best_table_and_the_heatmap(
        launcher: Launcher, data_csv: Path, tmp_path: Path) -> None:
    out = tmp_path / "sweep"
    run = launcher.run("sweep", str(data_csv), *SMA, *GRID, "--workers", "2",
                       "--out", str(out), timeout=120)
    assert_clean_exit(run)
    rows = read_rows(out / "results.csv")
    with (out / "results.csv").open() as f:
        header = next(csv.reader(f))
    assert header == ["combination", "fast", "slow", "long_only", *RUN_COLUMNS,
                      *STATISTIC_COLUMNS]
    assert [(r["fast"], r["slow"], r["long_only"]) for r in rows] == [
        (f, s, lo) for f in ("5", "10") for s in ("20", "30") for lo in ("true", "false")]
    assert [r["combination"] for r in rows] == [str(i) for i in range(1, 9)]
    assert all(int(r["bars"]) == 3000 and int(r["fills"]) > 0 for r in rows)
    for i in range(0, 8, 2):  # long only or not: the same crosses, other trades
        assert rows[i]["long_only"] == "true"
        assert rows[i + 1]["long_only"] == "false"
        assert rows[i]["return_pct"] != rows[i + 1]["return_pct"]
    # the console: the best combination first, as results.csv ranks it by sharpe
    best = max(rows, key=lambda r: float(r["sharpe"]))
    table = run.stdout().splitlines()
    assert table[0].split()[:5] == ["#", "fast", "slow", "long_only", "sharpe"]
    assert table[1].split()[:4] == ["1", best["fast"], best["slow"], best["long_only"]]
    assert len(table) == 9
    assert "8 combinations" in run.stderr()
    # the heatmap loads only its own files
    page = _Scripts()
    page.feed((out / "heatmap.html").read_text())
    assert [src for src, _ in page.scripts] == ["plotly.min.js", "heatmap-data.js",
                                                "heatmap.js"]
    assert all(not body.strip() for _, body in page.scripts)
    assert page.handlers == []
    for name in ("plotly.min.js", "heatmap-data.js", "heatmap.js"):
        assert (out / name).stat().st_size > 0
    data = (out / "heatmap-data.js").read_text()
    assert data.startswith("window.LTS_SWEEP = ")
    cells = json.loads(data.removeprefix("window.LTS_SWEEP = ").rstrip().rstrip(";"))
    assert cells["x"]["values"] == ["5", "10"]
    assert cells["y"]["values"] == ["20", "30"]
    # a cell holds the best sharpe over long_only
    for y, slow in enumerate(("20", "30")):
        for x, fast in enumerate(("5", "10")):
            both = [float(r["sharpe"]) for r in rows if r["fast"] == fast and r["slow"] == slow]
            assert cells["z"][y][x] == max(both)
    # and a combination's figures are those replay prints for it
    replay = launcher.run("replay", str(data_csv), *SMA, "--param", f"fast={best['fast']}",
                          "--param", f"slow={best['slow']}", "--param",
                          f"long_only={best['long_only']}", "--json", timeout=120)
    assert_clean_exit(replay)
    summary = json.loads(replay.stdout().strip().splitlines()[-1], parse_float=Decimal)
    assert summary["fills"] == int(best["fills"])
    assert str(summary["final_equity"]) == best["final_equity"]
    assert str(summary["statistics"]["sharpe"]) == best["sharpe"]


def test_walk_forward_reports_each_window_and_the_combined_result(
        launcher: Launcher, data_csv: Path, tmp_path: Path) -> None:
    out = tmp_path / "wf"
    run = launcher.run("sweep", str(data_csv), *SMA, "--grid", "fast=5,10", "--grid",
                       "slow=20,30", "--walk-forward", "2", "--in-sample", "0.6",
                       "--metric", "return_pct", "--workers", "2", "--out", str(out),
                       timeout=120)
    assert_clean_exit(run)
    windows = read_rows(out / "walk_forward.csv")
    assert [w["window"] for w in windows] == ["1", "2", "combined"]
    assert windows[0]["out_of_sample_end"] == windows[1]["in_sample_start"]
    assert windows[0]["in_sample_end"] == windows[0]["out_of_sample_start"]
    assert windows[0]["in_sample_start"] == "2024-01-02T09:30:00Z"
    for w in windows[:2]:
        assert w["combination"]
        assert w["in_sample_return_pct"]
        assert int(w["bars"]) > 0
    assert int(windows[2]["bars"]) == int(windows[0]["bars"]) + int(windows[1]["bars"])
    in_sample = read_rows(out / "results.csv")
    assert sorted((r["window"], r["combination"]) for r in in_sample) == sorted(
        (w, c) for w in ("1", "2") for c in ("1", "2", "3", "4"))
    for w in windows[:2]:  # the chosen one is the in-sample best
        mine = [r for r in in_sample if r["window"] == w["window"]]
        best = max(mine, key=lambda r: float(r["return_pct"]))
        assert w["combination"] == best["combination"]
    lines = run.stdout().splitlines()
    assert lines[0].startswith("window 1/2: in-sample ")
    assert lines[1].startswith("window 2/2: in-sample ")
    assert lines[2].startswith("out-of-sample, combined: return ")


@pytest.mark.parametrize(("extra", "words"), [
    (["--grid", "fast=5:20"], "a range is START:STOP:STEP"),
    (["--grid", "fast=5:x:1"], "'x' is not a number"),
    (["--grid", "fastest=5,10"], "no param 'fastest'"),
    (["--grid", "fast=30,40", "--grid", "slow=10,20"], "no combination of the grid is valid"),
    (["--grid", "fast=5,10", "--metric", "luck"], "--metric luck: not a statistic"),
    (["--grid", "fast=5,10", "--workers", "0"], "--workers must be at least 1"),
    (["--grid", "fast=5,10", "--walk-forward", "2", "--in-sample", "1.5"], "--in-sample"),
    ([], "--grid"),
])
def test_bad_input_is_one_line_exit_2(launcher: Launcher, data_csv: Path, tmp_path: Path,
                                      extra: list[str], words: str) -> None:
    out = tmp_path / "never"
    run = launcher.run("sweep", str(data_csv), *SMA, *extra, "--out", str(out))
    assert run.returncode == 2, run.tail()
    lines = run.stderr_lines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("lts: error: ")
    assert words in lines[0]
    assert not out.exists()  # nothing ran


def _processes_with(marker: str) -> list[int]:
    """Live processes whose environment holds ``marker`` (this test's TMPDIR)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environ = (entry / "environ").read_bytes()
        except OSError:
            continue
        if marker.encode() in environ.split(b"\0"):
            found.append(int(entry.name))
    return found


def test_ctrl_c_stops_cleanly_and_keeps_the_finished_rows(
        launcher: Launcher, data_csv: Path, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setenv("TMPDIR", str(scratch))  # where files would go, and a marker
    out = tmp_path / "sweep"
    run = launcher.start("sweep", str(data_csv), *SMA, "--grid", "fast=2:40:1", "--grid",
                         "slow=10:60:5", "--workers", "2", "--out", str(out))
    results = out / "results.csv"

    def finished() -> int:
        if not results.is_file():
            return 0
        with results.open() as f:
            return sum(1 for _ in f) - 1

    seen = wait_until(lambda: finished() >= 3 and finished(), timeout=90,
                      what="three combinations in results.csv", run=run)
    run.send(signal.SIGINT)
    run.wait(60, what="the interrupted sweep to exit")
    assert_clean_exit(run, 130)
    (line,) = [ln for ln in run.stderr_lines() if "interrupted" in ln]
    done = finished()
    assert done >= seen
    assert f"lts: interrupted: {done} of 317 combinations finished" in line
    rows = read_rows(results)
    assert len(rows) == done
    assert all(None not in r and None not in r.values() for r in rows)  # whole rows
    assert len({r["combination"] for r in rows}) == done
    assert not (out / "heatmap.html").exists()
    marker = f"TMPDIR={scratch}"
    wait_until(lambda: not _processes_with(marker), timeout=30,
               what="the sweep's workers to be gone")
    assert list(scratch.iterdir()) == []  # nothing left behind
