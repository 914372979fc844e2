"""``python -m lts.engine`` as an operator runs it (a subprocess): help, and a bad setting as
one line with exit status 2 (SYS-005, SYS-011)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LTS_")}
    return subprocess.run([sys.executable, "-m", "lts.engine", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=60, check=False)


@pytest.mark.parametrize("args", [("--help",), ("-h",), ("run", "--help"), ("replay", "--help")])
def test_help_exits_zero(tmp_path: Path, args: tuple[str, ...]) -> None:
    done = run_cli(*args, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("usage: python -m lts.engine")
    assert done.stderr == ""


def test_top_level_help_lists_the_commands(tmp_path: Path) -> None:
    out = run_cli("--help", cwd=tmp_path).stdout
    assert out.startswith("usage: python -m lts.engine [-h]")
    commands = out.split("{", 1)[1].split("}", 1)[0].split(",")
    assert commands == ["run", "replay", "sweep", "keys", "db", "backup", "restore", "selftest",
                        "venue", "users"]
    assert "run the engine (the default command)" in out
    assert "replay historical bars through the engine" in out


def test_an_unknown_setting_is_one_line_and_exit_2(tmp_path: Path) -> None:
    done = run_cli("--set", "api.bogus=1", "--run-for", "1", cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr == "lts: error: setting 'api.bogus': unknown setting\n"
    assert list(tmp_path.iterdir()) == []  # refused before anything was created
