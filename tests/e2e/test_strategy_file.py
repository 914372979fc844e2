"""``replay --strategy path/to/file.py:Class``: a strategy of your own without packaging, as
docs/strategies.md walks through it; and the one line a user sees for a broken file.

SYS-011 (error handling), STC-001 (the command line): every problem with the file is one
``lts: error:`` line and exit status 2, never a traceback."""

import csv
import json
import math
from datetime import date, timedelta
from pathlib import Path

import pytest

from ._support import Launcher

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "strategies" / "donchian_breakout.py"


@pytest.fixture
def data(tmp_path: Path) -> Path:
    """300 daily bars of a rising wave: breakouts, then pull-backs that hit a 2% trail."""
    path = tmp_path / "WAVE.csv"
    with path.open("w", newline="") as f:
        out = csv.writer(f)
        out.writerow(["date", "open", "high", "low", "close", "volume"])
        for i in range(300):
            close = round(100 + i * 0.2 + 8 * math.sin(i / 6), 2)
            day = date(2020, 1, 1) + timedelta(days=i)
            out.writerow([day.isoformat(), close, round(close + 0.5, 2), round(close - 0.5, 2),
                          close, 1000])
    return path


def test_the_example_strategy_runs_from_its_file(launcher: Launcher, data: Path,
                                                 tmp_path: Path) -> None:
    """The walk-through's first step: the file's class trades (entries, then trailing-stop
    exits), the report is written, and the JSON summary names the strategy as given."""
    run = launcher.run("replay", str(data), "--strategy", f"{EXAMPLE}:DonchianBreakout",
                       "--param", "period=10", "--param", "trail_percent=2",
                       "--report", str(tmp_path / "out"), "--json")
    assert run.returncode == 0, run.stderr()
    summary = json.loads(run.stdout().strip().splitlines()[-1])
    assert summary["strategy"] == f"{EXAMPLE}:DonchianBreakout"
    assert summary["statistics"]["trades"] >= 3  # entries closed by their trailing stops
    assert summary["fills"] == 2 * summary["statistics"]["trades"] + \
        summary["statistics"]["open_trades"]
    with (tmp_path / "out" / "trades.csv").open() as f:
        assert len(list(csv.DictReader(f))) == summary["statistics"]["trades"] + \
            summary["statistics"]["open_trades"]


BROKEN = {
    "syntax": ("class A(\n    pass\n", "A", "line 1: syntax error"),
    "import": ("import no_such_module_here\n", "A",
               "line 1: ModuleNotFoundError: No module named 'no_such_module_here'"),
    "no-class": ("x = 1\n", "A", "no class 'A' in it"),
    "not-a-strategy": ("class A:\n    def on_bar(self, bar):\n        return None\n", "A",
                       "A is not a strategy"),
    "no-on-bar": ("from lts.plugins.base import PluginBase\n\n\nclass A(PluginBase):\n"
                  "    pass\n", "A", "A has no on_bar(self, bar) method"),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_a_broken_strategy_file_is_one_line(launcher: Launcher, data: Path, tmp_path: Path,
                                            case: str) -> None:
    source, cls, expect = BROKEN[case]
    path = tmp_path / "mine.py"
    path.write_text(source)
    run = launcher.run("replay", str(data), "--strategy", f"{path}:{cls}")
    lines = run.stderr_lines()
    assert run.returncode == 2, run.stderr()
    assert len(lines) == 1, run.stderr()
    assert lines[0].startswith(f"lts: error: strategy file {path}")
    assert expect in lines[0]
    assert "Traceback" not in run.stderr()


@pytest.mark.parametrize(("param", "expect"), [
    ("period=1", "donchian_breakout: param 'period': Input should be greater than or equal to 2"),
    ("bogus=3", "donchian_breakout: param 'bogus': unknown param"),
])
def test_bad_params_of_a_file_strategy_are_one_line(launcher: Launcher, data: Path, param: str,
                                                    expect: str) -> None:
    run = launcher.run("replay", str(data), "--strategy", f"{EXAMPLE}:DonchianBreakout",
                       "--param", param)
    assert run.returncode == 2
    assert run.stderr_lines() == [f"lts: error: {expect}"]
