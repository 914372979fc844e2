"""The one settings tree. Precedence, lowest first: code defaults < TOML file (``--config``) <
secret files < environment (``LTS_`` prefix, ``__`` nesting: ``LTS_API__PORT=8123``) < command
line (``--set api.port=8123`` and the dedicated flags). Runtime overrides through the API come
later, on top. Errors become one :class:`~lts.errors.ConfigError` line naming the key.

Secret files: when ``LTS_SECRETS_DIR`` names a directory (Docker and compose mount secrets at
``/run/secrets``), each file in it named like an environment variable (``LTS_AUTH__JWT_SECRET``,
``LTS_ADMIN_PASSWORD``, ``LTS_DATABASE__URL``) holds that setting's value, so secrets never pass
through the environment or the command line.
"""

import json
import logging
import math
import os
import tomllib
from datetime import time
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    NestedSecretsSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
    TomlConfigSettingsSource,
)

from lts.domain.events import NOTIFICATION_TYPES as EVENT_TYPES
from lts.errors import ConfigError
from lts.persistence.keyring import Keyring, new_key_entry

__all__ = ["RUNTIME_KEYS", "ApiSettings", "AuthSettings", "DatabaseSettings", "DemoSettings",
           "EngineSettings", "NotifySettings", "RiskLimits", "Settings", "TelegramSettings",
           "WebhookSettings", "load_settings", "merge", "parse_set", "with_runtime_overrides"]

_log = logging.getLogger("lts.settings")


def _finite(value: Any, where: str = "") -> Any:
    """``value``, refusing a non-finite number (inf, nan, 1e400) anywhere inside it: settings
    are read from text (``--set``, TOML, the environment) where these parse as numbers."""
    if (isinstance(value, float) and not math.isfinite(value)) or \
            (isinstance(value, Decimal) and not value.is_finite()):
        raise ValueError(f"{where}not a finite number: {value}")
    if isinstance(value, dict):
        for key, item in value.items():
            _finite(item, f"{where}{key}: ")
    elif isinstance(value, list | tuple):
        for item in value:
            _finite(item, where)
    return value


class _Section(BaseModel):
    # inf and nan are no number of seconds, bytes or prices: refused with the setting's name
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class RiskLimits(BaseModel):
    """Per-portfolio limits: the engine's defaults under the portfolio's own overrides.
    ``None`` switches a check off."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    buying_power: bool = Field(
        True, description="a buy must be paid from cash not already committed to open buys")
    allow_short: bool = Field(
        False, description="sells beyond the long position (open sells included) are allowed")
    max_leverage: Decimal | None = Field(
        Decimal(1), gt=0,
        description="with allow_short: gross exposure after an order, at most this times equity")
    price_band: Decimal | None = Field(
        Decimal("0.5"), gt=0,
        description="limit and stop prices within this fraction of the last price (0.5: ±50%)")
    max_order_notional: Decimal | None = Field(
        None, gt=0, description="quantity times price of one order")
    max_position: Decimal | None = Field(
        None, gt=0,
        description="absolute quantity per asset, with the open orders' worst case and the order")
    max_gross_exposure: Decimal | None = Field(
        None, gt=0, description="gross exposure after the order (positions and open orders)")
    max_open_orders: int | None = Field(100, gt=0, description="open orders of the portfolio")
    max_orders_per_second: int | None = Field(
        50, gt=0, description="approved orders in any sliding second")
    max_daily_loss: Decimal | None = Field(
        None, gt=0, description="equity lost since the day's first look (UTC)")


class DatabaseSettings(_Section):
    url: str | None = Field(None, description="SQLAlchemy async URL; default: SQLite in ./data")
    data_dir: Path = Path("data")
    sqlite_synchronous: Literal["OFF", "NORMAL", "FULL"] = "FULL"
    auto_migrate: bool | None = Field(
        None, description="migrate the schema to head at start; default: yes on SQLite, no on "
        "PostgreSQL (the engine refuses to start until 'db upgrade' ran)")


class EngineSettings(_Section):
    run_for: float | None = Field(None, gt=0, description="stop gracefully after N seconds")
    restart_initial_delay: float = Field(1.0, gt=0)
    restart_max_delay: float = Field(60.0, gt=0)
    max_restarts: int = Field(20, ge=0, description="then the portfolio stays in error")
    mailbox_capacity: int = Field(10_000, ge=1)
    ack_timeout: float = Field(10.0, gt=0, description="seconds before a sent order is UNKNOWN")
    restart_reset_after: float = Field(
        60.0, gt=0, description="seconds of healthy running after which a portfolio's restart "
        "count and backoff start over")
    stop_timeout: float = Field(
        5.0, gt=0, description="seconds a graceful stop waits for venues to answer orders in "
        "flight (then they are UNKNOWN, settled at the next start)")
    command_timeout: float = Field(
        5.0, gt=0, description="seconds the API waits for a portfolio to answer a command")
    lease_retry: float = Field(
        5.0, gt=0, description="seconds between tries for a portfolio another engine holds")
    feed_stale_seconds: float = Field(
        120.0, ge=0, description="an asset whose feed has sent nothing for this long, and for "
        "three of its usual intervals between bars, is stale: its strategy places no new "
        "orders until data returns (0: never)")


class DemoCredentials(_Section):
    """Keys the demo's broker logs in with, sealed into the credential store for the admin
    user at the first start (only for a local venue's published keys: a real account's keys
    go in through ``PUT /api/v1/credentials``, never into a file)."""

    broker: str = Field(description="the name the broker reads its keys under ('binance')")
    api_key: SecretStr
    api_secret: SecretStr


class DemoSettings(_Section):
    enabled: bool = True
    name: str = "demo"
    symbols: list[str] = ["DEMO-A", "DEMO-B"]
    interval: float = Field(0.2, gt=0, description="seconds between synthetic bars")
    strategy: str = Field("sma_crossover", description="strategy plugin of every demo asset")
    strategy_params: dict[str, Any] | None = Field(
        None, description="its params; default (sma_crossover): fast, slow and quantity below")
    fast: int = 3
    slow: int = 8
    quantity: Decimal = Decimal(10)
    initial_cash: Decimal = Decimal(100_000)
    broker: str = Field("paper", description="broker plugin of every demo asset")
    broker_params: dict[str, Any] | None = Field(
        None, description="its params; default (paper): 1 bp fees, 2 bp slippage")
    pipeline: str = Field("synthetic", description="pipeline plugin of every demo asset")
    pipeline_params: dict[str, Any] | None = Field(
        None, description="its params; default (synthetic): a seed per symbol, `interval`")
    credentials: DemoCredentials | None = None

    _finite_params = field_validator("strategy_params", "broker_params",
                                     "pipeline_params")(_finite)


class ApiSettings(_Section):
    enabled: bool = Field(True, description="serve the control API (core plugin 'api')")
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535, description="0: any free port (logged)")
    docs: bool | None = Field(None, description="serve /docs and /openapi.json; default: yes, "
                              "but not in the prod profile")
    cors_origins: list[str] = Field(default_factory=list, description="origins allowed by CORS")
    trusted_proxies: list[str] = Field(
        default_factory=list, description="addresses of reverse proxies whose X-Forwarded-For "
        "names the client; none by default (the peer's address is the client's)")
    max_body_bytes: int = Field(1_048_576, ge=1024, description="larger request bodies get 413")
    max_concurrent_requests: int = Field(
        64, ge=0, le=100_000, description="HTTP requests served at once; more get 503; 0: no bound")
    requests_per_loop_turn: int = Field(
        1, ge=0, le=100_000, description="HTTP connections read in one turn of the event loop "
        "(about a request each: the API's share of the loop, trading runs between turns); the "
        "others are read in a later turn; 0: no bound")
    read_threads: int = Field(1, ge=1, le=64, description="worker threads (and database "
                              "connections) for the API's reads, which run off the event loop")
    rate_limit_per_second: float = Field(
        50.0, ge=0, le=1_000_000,
        description="requests per second per client address; more get 429; 0: no rate limit")
    rate_limit_burst: int = Field(100, ge=1, le=1_000_000,
                                  description="requests a client address may make at once")
    cache_seconds: float = Field(
        2.0, ge=0, le=60, description="open sessions and portfolio rows are answered from memory "
        "this long before they are read again (changes through this process act at once; 0: "
        "read on every request)")
    reports_dir: Path | None = Field(
        None, description="folder of backtest and sweep reports (each a folder directly in it, "
        "as 'replay --report DIR' and 'sweep --out DIR' write them; relative to the engine's "
        "working directory), listed on the dashboard's Reports page; none: no reports")


DEV_JWT_SECRET = "dev-only-placeholder-jwt-secret-change-me!"  # noqa: S105 - refused in prod


class AuthSettings(_Section):
    plugin: str = Field("local", description="aaa plugin that authenticates users")
    allow_registration: bool = Field(True, description="anyone may register (as a viewer)")
    jwt_secret: SecretStr = Field(SecretStr(DEV_JWT_SECRET),
                                  description="HS256 key; refused in prod if default or short")
    access_token_minutes: int = Field(15, ge=1, le=1440)
    session_idle_minutes: int = Field(60, ge=1, description="idle longer: the session ends")
    session_absolute_hours: float = Field(12.0, gt=0, description="a login lasts at most this")
    bcrypt_rounds: int = Field(12, ge=4, le=16)
    login_max_failures: int = Field(
        5, ge=1, description="failed logins of one user name from one client address in the "
        "window; then that pair waits (a user is never locked out from elsewhere)")
    login_global_max_failures: int = Field(
        100, ge=1, description="failed logins in the window whatever the name and address; "
        "then new pairs wait (pairs that logged in before are spared)")
    login_window_seconds: float = Field(300.0, gt=0, description="failures counted over this")


# -- notifications (lts.notify): webhooks and the Telegram bot ------------------------------------

class WebhookSettings(_Section):
    max_attempts: int = Field(6, ge=1, le=20, description="tries per notification")
    initial_backoff: float = Field(1.0, gt=0, le=3600,
                                   description="seconds before the 2nd try, doubled per try")
    max_backoff: float = Field(300.0, gt=0, le=86_400)
    timeout: float = Field(10.0, gt=0, le=120, description="seconds per try")
    concurrency: int = Field(4, ge=1, le=64, description="deliveries in flight per webhook")
    queue: int = Field(1000, ge=1, le=1_000_000,
                       description="notifications waiting per webhook (the oldest dropped)")
    refresh_seconds: float = Field(2.0, gt=0, le=3600,
                                   description="webhooks and owners re-read at most this often")
    log_keep: int = Field(1000, ge=10, le=1_000_000, description="attempts kept per webhook")
    max_per_user: int = Field(20, ge=1, le=1000)
    allow_private_networks: bool = Field(
        False, description="let webhooks post to loopback, private and link-local addresses")


class TelegramSettings(_Section):
    enabled: bool = False
    bot_token: SecretStr | None = None
    api_base_url: str = Field("https://api.telegram.org", pattern=r"^https?://[^\s/]+(/\S*)?$")
    #: chat id -> the LTS user it acts as (their role decides what the chat may do)
    chats: dict[int, str] = Field(default_factory=dict)
    events: tuple[str, ...] = EVENT_TYPES
    poll_timeout: int = Field(30, ge=0, le=50, description="getUpdates long-poll, seconds")
    queue: int = Field(200, ge=1, le=100_000, description="messages waiting per chat")

    @field_validator("events")
    @classmethod
    def _known(cls, events: tuple[str, ...]) -> tuple[str, ...]:
        unknown = sorted(set(events) - set(EVENT_TYPES))
        if unknown:
            raise ValueError(f"unknown event type(s) {', '.join(unknown)}; known: "
                             f"{', '.join(EVENT_TYPES)}")
        return events

    @model_validator(mode="after")
    def _token_when_enabled(self) -> "TelegramSettings":
        if self.enabled and self.bot_token is None:
            raise ValueError("enabled needs bot_token (LTS_NOTIFY__TELEGRAM__BOT_TOKEN)")
        return self


class NotifySettings(_Section):
    enabled: bool = True
    mailbox_capacity: int = Field(10_000, ge=1, le=10_000_000,
                                  description="committed events waiting (the oldest dropped)")
    daily_summary_at: time = Field(time(0, 0), description="UTC time of day the daily "
                                   "summary is sent (it covers the 24 hours before)")
    webhooks: WebhookSettings = WebhookSettings()
    telegram: TelegramSettings = TelegramSettings()


SECRETS_DIR_VARIABLE = "LTS_SECRETS_DIR"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LTS_", env_nested_delimiter="__",
                                      extra="forbid", allow_inf_nan=False)

    profile: Literal["dev", "test", "prod"] = "dev"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    admin_username: str = "admin"
    admin_password: SecretStr | None = None
    master_key: SecretStr | None = Field(
        None, description="keys that seal broker credentials: 'v2:BASE64,v1:BASE64' (first "
        "encrypts; each opens its version); required in prod")
    master_key_file: Path | None = Field(
        None, description="without master_key: read it from this file, made (mode 0600, a "
        "fresh key) if missing")
    database: DatabaseSettings = DatabaseSettings()
    engine: EngineSettings = EngineSettings()
    demo: DemoSettings = DemoSettings()
    risk: RiskLimits = RiskLimits()
    api: ApiSettings = ApiSettings()
    auth: AuthSettings = AuthSettings()
    notify: NotifySettings = NotifySettings()

    @field_validator("log_level", mode="before")
    @classmethod
    def _level_in_any_case(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    @classmethod
    def settings_customise_sources(
        cls, settings_cls: type[BaseSettings], init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource, dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        secrets_dir = os.environ.get(SECRETS_DIR_VARIABLE)
        if secrets_dir:
            sources.append(NestedSecretsSettingsSource(
                file_secret_settings, secrets_dir=secrets_dir, secrets_dir_missing="error",
                secrets_nested_delimiter="__", secrets_prefix="LTS_"))
        sources.append(TomlConfigSettingsSource(settings_cls))
        return tuple(sources)


def check_jwt_secret(settings: Settings) -> None:
    """The ``prod`` profile refuses the placeholder JWT secret and any shorter than 32 chars."""
    secret = settings.auth.jwt_secret.get_secret_value()
    if settings.profile == "prod" and (secret == DEV_JWT_SECRET or len(secret) < 32):
        raise ConfigError("setting 'auth.jwt_secret': the prod profile needs a secret of at "
                          "least 32 characters, not the placeholder")


def read_key_file(path: Path) -> str:
    """The master key kept in ``path``; a fresh one is written there (0600) if it is missing."""
    try:
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as out:
                out.write(new_key_entry("v1") + "\n")
            _log.warning("made a new master key in %s (it seals broker credentials: keep it, "
                         "and keep it private)", path)
        return path.read_text().strip()
    except OSError as exc:
        raise ConfigError(f"setting 'master_key_file': {path}: {exc.strerror}") from None


def check_master_key(settings: Settings) -> None:
    """A set master key must parse; the ``prod`` profile refuses to run without one (the
    secret store has no plain-text mode)."""
    if settings.master_key is None:
        if settings.profile == "prod":
            raise ConfigError("setting 'master_key': the prod profile needs it (set "
                              "LTS_MASTER_KEY or the LTS_MASTER_KEY secret file; "
                              "`python -m lts.engine keys new` makes a key)")
        return
    Keyring.from_setting(settings.master_key)


def parse_set(items: list[str]) -> dict[str, Any]:
    """``["api.port=8123", ...]`` -> ``{"api": {"port": 8123}}``; values are JSON when they
    parse as JSON, text otherwise."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set {item!r}: expected KEY=VALUE")
        try:
            value: Any = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        node = out
        parts = key.strip().split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"--set {item!r}: {part!r} is not a section")
        node[parts[-1]] = value
    return out


def merge(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in top.items():
        out[k] = merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def load_settings(config_file: Path | None = None,
                  overrides: dict[str, Any] | None = None) -> Settings:
    """Build the settings from every source; raise ConfigError with one line on a bad value."""
    if config_file is not None:
        if not config_file.is_file():
            raise ConfigError(f"--config {config_file}: no such file")
        try:
            tomllib.loads(config_file.read_text())
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"--config {config_file}: invalid TOML: {exc}") from None

    class _FromFile(Settings):
        model_config = SettingsConfigDict(toml_file=config_file)

    try:
        settings = _FromFile(**(overrides or {}))
    except SettingsError as exc:
        raise ConfigError(f"settings: {exc}") from None
    except ValidationError as exc:
        err = exc.errors()[0]
        key = ".".join(str(p) for p in err.get("loc", ())) or "?"
        msg = "unknown setting" if err.get("type") == "extra_forbidden" else \
            str(err.get("msg")).removeprefix("Value error, ")
        raise ConfigError(f"setting {key!r}: {msg}") from None
    check_jwt_secret(settings)
    if settings.master_key is None and settings.master_key_file is not None:
        settings.master_key = SecretStr(read_key_file(settings.master_key_file))
    check_master_key(settings)
    return settings


#: Keys an admin may change while the engine runs (``PATCH /api/v1/config``); they are stored in
#: the ``configuration`` table and applied again at every start, on top of the other sources.
RUNTIME_KEYS = frozenset({f"risk.{name}" for name in RiskLimits.model_fields}
                         | {"engine.ack_timeout"})


def with_runtime_overrides(settings: Settings, overrides: dict[str, Any]) -> Settings:
    """``settings`` with the stored runtime overrides applied (dotted keys). A key that is not
    runtime-changeable, or a value that no longer validates, is skipped with a warning."""
    sections: dict[str, dict[str, Any]] = {}
    for key, value in overrides.items():
        if key not in RUNTIME_KEYS:
            _log.warning("stored override %r ignored: not a runtime setting", key)
            continue
        section, name = key.split(".", 1)
        sections.setdefault(section, {})[name] = value
    update: dict[str, Any] = {}
    for section, values in sections.items():
        current = getattr(settings, section)
        try:
            update[section] = type(current).model_validate({**current.model_dump(), **values})
        except ValidationError as exc:
            _log.warning("stored overrides of %r ignored: %s", section,
                         exc.errors()[0].get("msg"))
    return settings.model_copy(update=update) if update else settings
