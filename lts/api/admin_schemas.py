"""Request and response models of the operator routes (plugins, debug export, audit trail,
statistics, configuration), and :func:`jsonable`, which turns anything a plugin reports into
plain JSON with secrets redacted. Requests refuse unknown fields."""

from collections import deque
from dataclasses import asdict, is_dataclass
from datetime import date, datetime
from decimal import Decimal
from enum import Enum
from pathlib import PurePath
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretBytes, SecretStr

from lts.api.portfolio_schemas import Params

REDACTED = "**********"
_SECRET_WORDS = ("secret", "password", "token", "api_key", "apikey", "private_key")

Source = Literal["default", "file_or_cli", "env", "runtime"]


def is_secret_key(key: str) -> bool:
    """A key whose value is never shown (``jwt_secret``, ``admin_password``, ``api_key``...)."""
    low = key.lower()
    return any(word in low for word in _SECRET_WORDS)


def jsonable(value: Any, key: str = "", depth: int = 0) -> Any:
    """Plain JSON (Decimal -> str, datetime -> ISO text, enum -> value, models -> dicts), with
    the value of every secret-looking key or ``SecretStr`` replaced by :data:`REDACTED`."""
    if key and is_secret_key(key) and value is not None:
        return REDACTED
    if depth > 20:
        return repr(value)[:200]
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if value == value and abs(value) != float("inf") else str(value)
    if isinstance(value, SecretStr | SecretBytes):
        return REDACTED
    if isinstance(value, Decimal | PurePath):
        return str(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Enum):
        return jsonable(value.value, "", depth + 1)
    if isinstance(value, BaseModel):
        value = {name: getattr(value, name) for name in type(value).model_fields}
    elif is_dataclass(value) and not isinstance(value, type):
        value = asdict(value)
    if isinstance(value, dict):
        return {str(k): jsonable(v, str(k), depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset | deque):
        return [jsonable(v, "", depth + 1) for v in value]
    return repr(value)[:200]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


# -- plugins and debug ------------------------------------------------------------------------
class PluginPublic(BaseModel):
    name: str
    loaded: bool
    error: str | None
    params_schema: dict[str, Any] | None


class PluginCatalog(BaseModel):
    plugins: dict[str, list[PluginPublic]] = Field(description="discovered plugins by kind")
    problems: list[str] = Field(description="discovery problems (duplicates refused)")


class PortfolioDebug(BaseModel):
    status: str
    info: dict[str, Any] | None
    error: str | None = None


class DebugExport(BaseModel):
    portfolios: dict[str, PortfolioDebug]


# -- audit ------------------------------------------------------------------------------------
class AuditEntry(BaseModel):
    id: int
    ts: datetime
    actor: str
    action: str
    target: str
    client_address: str | None
    outcome: str
    detail: dict[str, Any]


class AuditPage(BaseModel):
    items: list[AuditEntry]
    total: int
    limit: int
    offset: int


# -- statistics -------------------------------------------------------------------------------
class PortfolioStats(BaseModel):
    id: int
    name: str
    runner: str
    orders: int
    orders_by_status: dict[str, int]
    fills: int
    orders_per_second: float
    fills_per_second: float


class EngineStats(BaseModel):
    events_published: dict[str, int]
    events_per_second: dict[str, float]
    journal_commits: int
    journal_records: int
    journal_commits_per_second: float
    journal_records_per_second: float


class Stats(BaseModel):
    uptime_seconds: float
    engine: EngineStats
    portfolios: list[PortfolioStats]


# -- configuration ----------------------------------------------------------------------------
class ConfigPublic(BaseModel):
    settings: dict[str, Any] = Field(description="effective settings, secrets redacted")
    sources: dict[str, Source] = Field(description="dotted key -> where its value came from")
    runtime_keys: list[str] = Field(description="keys PATCH /config may change")


class ConfigPatch(_In):
    values: Params = Field(min_length=1, max_length=50,
                           description='dotted keys: {"risk.max_open_orders": 20}')
