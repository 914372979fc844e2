"""A portfolio's configuration: its assets, each with the plugins that trade it, and its rules.

Where it sits: what the engine's runner is built from (:mod:`lts.engine.runner`). The live
engine reads it from the database (:func:`lts.persistence.repositories.load_portfolio`); a
backtest builds it in memory (:mod:`lts.backtest.replay`) and needs no database at all.
"""

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

__all__ = ["AssetSpec", "PortfolioSpec"]


@dataclass(frozen=True)
class AssetSpec:
    symbol: str
    strategy_plugin: str
    broker_plugin: str
    pipeline_plugin: str
    strategy_params: dict[str, Any] = field(default_factory=dict)
    broker_params: dict[str, Any] = field(default_factory=dict)
    pipeline_params: dict[str, Any] = field(default_factory=dict)
    tick_size: Decimal = Decimal("0.01")
    lot_size: Decimal = Decimal("1")
    min_quantity: Decimal | None = None
    min_notional: Decimal | None = None
    id: int | None = None


@dataclass(frozen=True)
class PortfolioSpec:
    name: str
    initial_cash: Decimal
    assets: tuple[AssetSpec, ...]
    portfolio_plugin: str = "fixed_fraction"
    portfolio_params: dict[str, Any] = field(default_factory=dict)
    risk_params: dict[str, Any] = field(default_factory=dict)
    trading_state: str = "ACTIVE"
    owner_id: int | None = None
    id: int | None = None
