"""Request and response models of portfolios, assets and positions, and the bounded types of
the API's inputs. Requests refuse unknown fields, numbers that are not finite (``NaN``,
``Infinity``, ``1e400``), control characters in text (PostgreSQL refuses a NUL byte), and whole
numbers beyond the database's 64 bits; responses are models validated from rows, which keep
only the declared fields (extra keys are ignored), never rows returned as they are."""

import math
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Annotated, Any, Literal

from fastapi import Path, Query
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints, computed_field

INT64_MAX = 2**63 - 1
#: The largest row id: the tables' keys are 32-bit integers on PostgreSQL.
ROW_ID_MAX = 2**31 - 1
#: Text without control characters (a NUL byte is refused by PostgreSQL).
PRINTABLE = r"^[^\x00-\x1f\x7f]*$"

Name = Annotated[str, StringConstraints(min_length=1, max_length=100, pattern=PRINTABLE)]
Symbol = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9._:/-]{1,64}$")]
PluginName = Annotated[str, StringConstraints(pattern=r"^[a-z0-9_]{1,64}$")]
TradingStateName = Literal["ACTIVE", "REDUCING", "HALTED"]

#: A row's id in a path.
PathId = Annotated[int, Path(ge=1, le=ROW_ID_MAX)]
#: A row's id as a filter.
QueryId = Annotated[int | None, Query(ge=1, le=ROW_ID_MAX)]
#: Nanoseconds since the epoch, as a filter.
QueryNs = Annotated[int | None, Query(ge=0, le=INT64_MAX, description="nanoseconds since "
                                      "1970-01-01 UTC")]
Offset = Annotated[int, Query(ge=0, le=INT64_MAX)]
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def iso_time(ns: int) -> datetime:
    """Nanoseconds since the epoch as a UTC time (to the microsecond), shown as ISO 8601."""
    return _EPOCH + timedelta(microseconds=ns // 1000)


def _plain(value: Any, where: str) -> None:
    """Refuse what no store keeps as JSON: numbers that are not finite, NUL bytes in text."""
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{where}: not a finite number")
    if isinstance(value, str) and "\x00" in value:
        raise ValueError(f"{where}: a NUL character is not allowed")
    if isinstance(value, dict):
        for key, item in value.items():
            if "\x00" in key:
                raise ValueError(f"{where}: a NUL character is not allowed in a key")
            _plain(item, f"{where}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _plain(item, f"{where}.{index}")


def _plain_params(params: dict[str, Any]) -> dict[str, Any]:
    for key, item in params.items():
        _plain(item, key)
    if any("\x00" in key for key in params):
        raise ValueError("a NUL character is not allowed in a key")
    return params


#: A plugin's (or the risk limits') params: any JSON object whose numbers are finite and whose
#: text has no NUL (each plugin's params model checks the rest).
Params = Annotated[dict[str, Any], AfterValidator(_plain_params)]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class PortfolioCreate(_In):
    name: Name
    initial_cash: Decimal = Field(gt=0, max_digits=20, decimal_places=8)
    portfolio_plugin: PluginName = "fixed_fraction"
    portfolio_params: Params = Field(default_factory=dict)
    risk_params: Params = Field(default_factory=dict)


class PortfolioUpdate(_In):
    name: Name | None = None
    portfolio_plugin: PluginName | None = None
    portfolio_params: Params | None = None
    risk_params: Params | None = None


class PortfolioPublic(BaseModel):
    id: int
    name: str
    owner_id: int | None
    portfolio_plugin: str
    portfolio_params: dict[str, Any]
    initial_cash: Decimal
    risk_params: dict[str, Any]
    is_active: bool
    trading_state: TradingStateName
    status: str
    last_error: str | None


class TradingStateChange(_In):
    state: TradingStateName


class PortfolioStatus(BaseModel):
    id: int
    runner: str = Field(description="stopped, starting, running, error, stopping or standby "
                        "(another engine holds the portfolio's lease: held_by names it)")
    last_error: str | None
    restarts: int
    last_tick_ns: int | None = Field(description="the last bar's time: nanoseconds since 1970 "
                                     "UTC")
    bars: int
    open_orders: int
    equity: Decimal | None
    trading_state: str
    held_by: str | None = None
    venues: str | None = Field(None, description="what is wrong with the portfolio's venue "
                               "connections: a stream lost and resyncing (no new orders there "
                               "meanwhile), or a ban by the venue (trading halted)")

    @computed_field(description="last_tick_ns as an ISO 8601 time (UTC)")  # type: ignore[prop-decorator]
    @property
    def last_tick_time(self) -> datetime | None:
        return None if self.last_tick_ns is None else iso_time(self.last_tick_ns)


class PositionPublic(BaseModel):
    symbol: str
    quantity: Decimal
    avg_price: Decimal
    realized_pnl: Decimal
    fees: Decimal


class AssetCreate(_In):
    symbol: Symbol
    strategy_plugin: PluginName
    strategy_params: Params = Field(default_factory=dict)
    broker_plugin: PluginName = "paper"
    broker_params: Params = Field(default_factory=dict)
    pipeline_plugin: PluginName = "synthetic"
    pipeline_params: Params = Field(default_factory=dict)
    tick_size: Decimal = Field(Decimal("0.01"), gt=0, lt=Decimal(10) ** 20, decimal_places=18)
    lot_size: Decimal = Field(Decimal(1), gt=0, lt=Decimal(10) ** 20, decimal_places=18)


class AssetUpdate(_In):
    strategy_plugin: PluginName | None = None
    strategy_params: Params | None = None
    broker_plugin: PluginName | None = None
    broker_params: Params | None = None
    pipeline_plugin: PluginName | None = None
    pipeline_params: Params | None = None


class AssetPublic(BaseModel):
    id: int
    portfolio_id: int
    symbol: str
    is_active: bool
    strategy_plugin: str
    strategy_params: dict[str, Any]
    broker_plugin: str
    broker_params: dict[str, Any]
    pipeline_plugin: str
    pipeline_params: dict[str, Any]
    tick_size: Decimal
    lot_size: Decimal


def portfolio_public(row: Mapping[str, Any]) -> PortfolioPublic:
    return PortfolioPublic.model_validate(row)  # the declared fields only (extra keys ignored)


def asset_public(row: Mapping[str, Any]) -> AssetPublic:
    return AssetPublic.model_validate(row)


class AssetPnl(BaseModel):
    symbol: str
    quantity: Decimal
    realized_pnl: Decimal
    unrealized_pnl: Decimal
    fees: Decimal
    pnl: Decimal


class PortfolioAnalytics(BaseModel):
    """The portfolio's performance over its fills: the equity curve has a point per fill and a
    last one marked at the current prices. The statistics are a backtest's (backtesting.py's
    definitions; annualised by calendar day, 252 days a year, or 365 for data trading at
    weekends); undefined ones are null."""

    initial_cash: Decimal
    equity: Decimal
    total_return: float = Field(description="equity over initial cash, less 1 (a fraction)")
    max_drawdown: Decimal = Field(description="largest fall from a peak, in currency (>= 0)")
    max_drawdown_pct: float = Field(description="largest fall from a peak, a fraction (>= 0)")
    sharpe: float | None = Field(description="annualised Sharpe ratio (risk-free rate 0)")
    trades: int = Field(description="closed round trips (a reversal closes one, opens one)")
    win_rate: float | None = Field(description="share of closed trades with a positive P&L "
                                   "after fees (a fraction)")
    assets: list[AssetPnl]
    best_asset: str | None
    worst_asset: str | None
    return_pct: float = Field(description="total return in percent")
    return_ann_pct: float | None = Field(description="annualised return in percent")
    volatility_ann_pct: float | None = Field(description="annualised volatility in percent")
    sortino: float | None = Field(description="annualised return over downside deviation")
    calmar: float | None = Field(description="annualised return over maximum drawdown")
    avg_drawdown_pct: float | None = Field(description="mean depth of the drawdown periods, "
                                           "in percent (<= 0)")
    max_drawdown_duration_s: float | None = Field(description="longest drawdown period, "
                                                  "in seconds")
    exposure_time_pct: float = Field(description="share of the curve's points with a trade "
                                     "open, in percent")
    open_trades: int = Field(description="round trips still open")
    best_trade_pct: float | None = Field(description="best closed trade's return in percent")
    worst_trade_pct: float | None = Field(description="worst closed trade's return in percent")
    avg_trade_pct: float | None = Field(description="geometric mean trade return in percent")
    profit_factor: float | None = Field(description="sum of winning trade returns over the "
                                        "sum of losing ones")
    expectancy_pct: float | None = Field(description="arithmetic mean trade return in percent")
    sqn: float | None = Field(description="system quality number: sqrt(trades) x mean P&L "
                              "over its standard deviation")
    fees: Decimal = Field(description="every fee paid, commissions in the asset included")
