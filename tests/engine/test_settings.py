"""The one settings tree (SYS-005): defaults < TOML file < environment (``LTS_``, ``__``
nesting) < overrides (the command line's ``--set`` and flags); a bad key or value is one line
(SYS-011)."""

import os
from decimal import Decimal
from pathlib import Path

import pytest

from lts.errors import ConfigError
from lts.settings import Settings, load_settings, merge, parse_set


@pytest.fixture(autouse=True)
def _no_lts_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """The environment is an input here: start every test without the runner's LTS_ vars."""
    for name in list(os.environ):
        if name.startswith("LTS_"):
            monkeypatch.delenv(name)


def write_toml(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "lts.toml"
    path.write_text(text)
    return path


FILE = """\
log_level = "DEBUG"

[api]
host = "0.0.0.0"
port = 7000

[engine]
max_restarts = 3
"""


def test_defaults() -> None:
    s = load_settings()
    assert (s.profile, s.log_level, s.api.port, s.api.host, s.api.enabled) == (
        "dev", "INFO", 8000, "127.0.0.1", True)
    assert s.engine.max_restarts == 20
    assert s.risk.max_open_orders == 100
    assert s.database.url is None


def test_the_file_overrides_defaults_key_by_key(tmp_path: Path) -> None:
    s = load_settings(write_toml(tmp_path, FILE))
    assert (s.log_level, s.api.host, s.api.port, s.engine.max_restarts) == (
        "DEBUG", "0.0.0.0", 7000, 3)
    assert s.engine.mailbox_capacity == 10_000  # untouched keys keep their defaults


def test_the_environment_overrides_the_file(tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LTS_API__PORT", "8123")
    monkeypatch.setenv("LTS_LOG_LEVEL", "WARNING")
    s = load_settings(write_toml(tmp_path, FILE))
    assert (s.log_level, s.api.port) == ("WARNING", 8123)
    assert s.api.host == "0.0.0.0"  # the rest of the file's [api] section stays


def test_overrides_beat_the_environment_and_the_file(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LTS_API__PORT", "8123")
    monkeypatch.setenv("LTS_ENGINE__MAX_RESTARTS", "9")
    s = load_settings(write_toml(tmp_path, FILE), {"api": {"port": 9000, "enabled": True}})
    assert (s.api.port, s.api.enabled, s.api.host) == (9000, True, "0.0.0.0")
    assert s.engine.max_restarts == 9


def test_secrets_from_the_environment_stay_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LTS_ADMIN_PASSWORD", "s3cret-Pw")
    s = load_settings()
    assert s.admin_password is not None
    assert s.admin_password.get_secret_value() == "s3cret-Pw"
    assert "s3cret-Pw" not in repr(s)


@pytest.mark.parametrize(("text", "message"), [
    ("bogus = 1\n", "setting 'bogus': unknown setting"),
    ("[api]\nbogus = 1\n", "setting 'api.bogus': unknown setting"),
    ("[api]\nport = 70000\n", "setting 'api.port': Input should be less than or equal to 65535"),
    ("[risk]\nmax_open_orders = 0\n",
     "setting 'risk.max_open_orders': Input should be greater than 0"),
])
def test_a_bad_file_is_one_line_naming_the_key(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_settings(write_toml(tmp_path, text))
    assert str(err.value) == message


def test_an_unknown_nested_environment_key_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LTS_API__BOGUS", "1")
    with pytest.raises(ConfigError) as err:
        load_settings()
    assert str(err.value) == "setting 'api.bogus': unknown setting"


def test_an_unknown_override_is_refused() -> None:
    with pytest.raises(ConfigError) as err:
        load_settings(None, {"engine": {"max_restart": 1}})
    assert str(err.value) == "setting 'engine.max_restart': unknown setting"


def test_invalid_toml_and_missing_file_are_one_line(tmp_path: Path) -> None:
    path = write_toml(tmp_path, "x = [\n")
    with pytest.raises(ConfigError) as err:
        load_settings(path)
    assert str(err.value).startswith(f"--config {path}: invalid TOML: ")
    assert "\n" not in str(err.value)
    with pytest.raises(ConfigError) as err:
        load_settings(tmp_path / "missing.toml")
    assert str(err.value) == f"--config {tmp_path / 'missing.toml'}: no such file"


# -- --set ----------------------------------------------------------------------------------------

def test_parse_set_nests_dotted_keys_and_reads_json_values() -> None:
    assert parse_set([
        "api.port=8123", "api.enabled=true", 'demo.symbols=["A", "B"]', "profile=test",
        "database.url=sqlite+aiosqlite:///x.db", "risk.max_order_notional=null",
        "demo.name=a=b",
    ]) == {
        "api": {"port": 8123, "enabled": True},
        "demo": {"symbols": ["A", "B"], "name": "a=b"},
        "profile": "test",
        "database": {"url": "sqlite+aiosqlite:///x.db"},
        "risk": {"max_order_notional": None},
    }


def test_parse_set_values_reach_the_settings_exactly() -> None:
    s = load_settings(None, parse_set(["demo.quantity=0.1", "risk.max_position=2.5",
                                       "engine.run_for=1.5"]))
    assert (s.demo.quantity, s.risk.max_position, s.engine.run_for) == (
        Decimal("0.1"), Decimal("2.5"), 1.5)


@pytest.mark.parametrize(("items", "message"), [
    (["novalue"], "--set 'novalue': expected KEY=VALUE"),
    (["=1"], "--set '=1': expected KEY=VALUE"),
    (["api=1", "api.port=2"], "--set 'api.port=2': 'api' is not a section"),
])
def test_parse_set_errors_are_one_line(items: list[str], message: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_set(items)
    assert str(err.value) == message


def test_merge_is_deep_and_the_top_wins() -> None:
    assert merge({"api": {"port": 1, "host": "h"}, "x": 1}, {"api": {"port": 2}, "y": 2}) == {
        "api": {"port": 2, "host": "h"}, "x": 1, "y": 2}


def test_settings_is_the_one_tree() -> None:
    assert set(Settings.model_fields) == {"profile", "log_level", "admin_username",
                                          "admin_password", "master_key", "master_key_file",
                                          "database", "engine",
                                          "demo", "risk", "api", "auth", "notify"}


def test_runtime_overrides_apply_on_top_and_bad_ones_are_skipped() -> None:
    """SYS-005: overrides stored through the API come back at every start."""
    from lts.settings import with_runtime_overrides

    base = load_settings()
    s = with_runtime_overrides(base, {"risk.max_order_notional": "2500",
                                      "engine.ack_timeout": 3, "api.port": 1})
    assert s.risk.max_order_notional == Decimal(2500)
    assert s.engine.ack_timeout == 3
    assert s.api.port == base.api.port  # not a runtime key: skipped
    assert s.risk.max_open_orders == base.risk.max_open_orders
    bad = with_runtime_overrides(base, {"risk.max_order_notional": "-1"})
    assert bad.risk.max_order_notional == base.risk.max_order_notional


def test_secret_files_in_lts_secrets_dir_set_values(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """Compose and Docker secrets: a file per setting, named like its environment variable;
    the environment still wins over a file."""
    (tmp_path / "LTS_AUTH__JWT_SECRET").write_text("s" * 40)
    (tmp_path / "LTS_ADMIN_PASSWORD").write_text("from-a-file")
    monkeypatch.setenv("LTS_SECRETS_DIR", str(tmp_path))
    settings = load_settings()
    assert settings.auth.jwt_secret.get_secret_value() == "s" * 40
    assert settings.admin_password is not None
    assert settings.admin_password.get_secret_value() == "from-a-file"
    monkeypatch.setenv("LTS_ADMIN_PASSWORD", "from-the-environment")
    admin = load_settings().admin_password
    assert admin is not None
    assert admin.get_secret_value() == "from-the-environment"


def test_a_missing_secrets_dir_is_one_config_error(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LTS_SECRETS_DIR", str(tmp_path / "absent"))
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings()


def test_a_master_key_file_is_made_once_private_and_then_read(tmp_path: Path) -> None:
    """SYS-004 (credentials at rest): ``master_key_file`` gives a key without putting one in
    the environment: made (0600) on first use, the same key read on every later start."""
    key_file = tmp_path / "keys" / "master.key"
    config = tmp_path / "lts.toml"
    config.write_text(f'master_key_file = "{key_file}"\n')
    first = load_settings(config)
    assert key_file.stat().st_mode & 0o777 == 0o600
    assert first.master_key is not None
    again = load_settings(config)
    assert again.master_key is not None
    assert again.master_key.get_secret_value() == first.master_key.get_secret_value()
    given = load_settings(config, {"master_key": "v9:" + "A" * 43 + "="})
    assert given.master_key is not None
    assert given.master_key.get_secret_value().startswith("v9:")  # a set key wins


def test_an_unreadable_master_key_file_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "master.key").mkdir()
    with pytest.raises(ConfigError, match="master_key_file"):
        load_settings(None, {"master_key_file": str(tmp_path / "master.key")})
