"""``python -m lts.engine`` as an operator runs it (a subprocess): help, and a bad setting as
one line with exit status 2 (SYS-005, SYS-011)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest


def run_cli(*args: str, cwd: Path,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("LTS_")}, **(env or {})}
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


@pytest.mark.parametrize(("source", "value"), [
    ("--set", "Infinity"), ("--set", "NaN"), ("--set", "1e400"), ("--set", "-Infinity"),
    ("toml", "inf"), ("toml", "nan"), ("env", "inf"), ("env", "NaN"), ("env", "1e400")])
def test_a_non_finite_number_in_a_setting_is_one_line_and_exit_2(
        tmp_path: Path, source: str, value: str) -> None:
    """inf and nan parse as numbers from every source of settings; none is a number of
    seconds: refused, naming the setting, before anything is made."""
    args = ["--run-for", "1"]
    env: dict[str, str] = {}
    if source == "--set":
        args += ["--set", f"engine.ack_timeout={value}"]
    elif source == "toml":
        (tmp_path / "lts.toml").write_text(f"[engine]\nack_timeout = {value}\n")
        args += ["--config", "lts.toml"]
    else:
        env["LTS_ENGINE__ACK_TIMEOUT"] = value
    done = run_cli(*args, cwd=tmp_path, env=env)
    assert done.returncode == 2, done.stderr
    assert done.stderr == "lts: error: setting 'engine.ack_timeout': Input should be a finite " \
                          "number\n"
    assert [p.name for p in tmp_path.iterdir()] == (["lts.toml"] if source == "toml" else [])


def test_non_finite_numbers_in_flags_and_params_are_refused(tmp_path: Path) -> None:
    done = run_cli("--run-for", "inf", cwd=tmp_path)
    assert (done.returncode, done.stderr) == (
        2, "lts: error: setting 'engine.run_for': Input should be a finite number\n")
    done = run_cli("--set", 'demo.strategy_params={"fast": 3, "slow": NaN}', "--run-for", "1",
                   cwd=tmp_path)
    assert (done.returncode, done.stderr) == (
        2, "lts: error: setting 'demo.strategy_params': slow: not a finite number: nan\n")


def test_help_alone_shows_the_run_options(tmp_path: Path) -> None:
    """``--help`` (``./scripts/run --help`` runs the same) shows the options of run, the
    command that starts without a name, next to the commands."""
    out = run_cli("--help", cwd=tmp_path).stdout
    options = out.split("run's options:\n", 1)[1]
    for flag in ("--run-for SECONDS", "--no-demo", "--config CONFIG", "--set KEY=VALUE",
                 "--db-url DB_URL", "--log-level"):
        assert f"\n  {flag}" in "\n" + options, flag


@pytest.mark.parametrize(("how", "level"), [("flag", "debug"), ("flag", "Debug"),
                                            ("env", "debug")])
def test_the_log_level_is_taken_in_any_case(tmp_path: Path, how: str, level: str) -> None:
    args = ["--no-demo", "--run-for", "0.2", "--set", "api.port=0"]
    env = {"LTS_ADMIN_PASSWORD": "Adm1n-pass-word"}
    if how == "flag":
        args += ["--log-level", level]
    else:
        env["LTS_LOG_LEVEL"] = level
    done = run_cli(*args, cwd=tmp_path, env=env)
    assert done.returncode == 0, done.stderr
    assert " DEBUG   lts." in done.stderr
    done = run_cli("--log-level", "loud", cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.startswith("lts: error: argument --log-level: invalid choice: 'LOUD'")
