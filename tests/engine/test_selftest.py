"""The self-test's checks, in process, on both stores: a good setup passes every check; a
portfolio naming a missing plugin or bad params, a broken plugin, a database behind head each
give a FAIL line naming the problem; the API check serves the real app on a loopback port."""

from decimal import Decimal

import pytest

from lts.cli.selftest import Check, run_checks
from lts.domain.portfolio_spec import AssetSpec, PortfolioSpec
from lts.persistence.db import make_engine
from lts.persistence.repositories import create_portfolio
from lts.plugins.registry import PluginInfo, Registry
from lts.settings import Settings, load_settings

pytestmark = pytest.mark.anyio


def settings_for(url: str, *, api: bool = False) -> Settings:
    return load_settings(overrides={"database": {"url": url}, "api": {"enabled": api},
                                    "admin_password": "Adm1n-pass-word"})


async def checks_of(settings: Settings, registry: Registry | None = None) -> list[Check]:
    reported: list[Check] = []
    checks = await run_checks(settings, reported.append, registry)
    assert reported == checks  # each reported as it completed, none left out
    return checks


def by_name(checks: list[Check]) -> dict[str, Check]:
    return {c.name: c for c in checks}


def asset(symbol: str, strategy: str = "sma_crossover",
          params: dict[str, object] | None = None) -> AssetSpec:
    return AssetSpec(symbol=symbol, strategy_plugin=strategy,
                     strategy_params={"fast": 2, "slow": 5} if params is None else params,
                     broker_plugin="paper", pipeline_plugin="synthetic")


async def test_a_good_setup_passes_every_check(migrated_url: str) -> None:
    checks = await checks_of(settings_for(migrated_url))
    assert [c for c in checks if not c.ok] == []
    names = [c.name for c in checks]
    assert names[:2] == ["database", "plugin registry"]
    assert names[-2:] == ["bus", "replay"]  # the API is off: no api line
    assert {"plugin strategy:sma_crossover", "plugin broker:paper", "plugin pipeline:synthetic",
            "plugin portfolio:fixed_fraction", "plugin aaa:local"} <= set(names)
    replay = by_name(checks)["replay"].detail
    assert "orders" in replay
    assert replay.endswith("the same on a second run")
    assert checks[0].line().startswith("ok    database: ")


async def test_the_api_check_answers_over_http(migrated_url: str) -> None:
    checks = by_name(await checks_of(settings_for(migrated_url, api=True)))
    assert checks["api"].ok, checks["api"]
    assert checks["api"].detail.startswith("GET /healthz 200, /readyz 200")
    assert checks["plugin core:api"].ok


async def test_plugins_named_in_the_database_are_checked(migrated_url: str) -> None:
    engine = make_engine(migrated_url)
    try:
        await create_portfolio(engine, PortfolioSpec(
            name="bad", initial_cash=Decimal(1000), assets=(asset("X", strategy="nope"),)))
        await create_portfolio(engine, PortfolioSpec(
            name="odd", initial_cash=Decimal(1000),
            assets=(asset("Y", params={"fast": 9, "slow": 3}), asset("Z"))))
    finally:
        await engine.dispose()
    checks = await checks_of(settings_for(migrated_url))
    failed = [c.line() for c in checks if not c.ok]
    known = ", ".join(i.name for i in Registry.discover().of_kind("strategy"))
    assert failed == [
        "FAIL  plugin strategy:nope: portfolio 'bad' asset 'X': unknown strategy plugin 'nope' "
        f"(known: {known})",
        "FAIL  plugin strategy:sma_crossover: portfolio 'odd' asset 'Y': sma_crossover: params: "
        "fast must be smaller than slow",
    ]
    assert by_name(checks)["replay"].ok  # the other checks still ran


async def test_a_plugin_that_failed_to_load_fails_the_registry_check(migrated_url: str) -> None:
    registry = Registry.discover()
    registry.plugins[("strategy", "broken")] = PluginInfo(
        "strategy", "broken", "somepkg:Broken", error="ImportError: No module named 'somepkg'")
    checks = by_name(await checks_of(settings_for(migrated_url), registry))
    assert checks["plugin registry"].line() == (
        "FAIL  plugin registry: strategy 'broken': ImportError: No module named 'somepkg'")


async def test_a_database_without_the_schema_fails(db_url: str, backend: str) -> None:
    checks = await checks_of(settings_for(db_url))
    failed = by_name([c for c in checks if not c.ok])
    assert set(failed) == {"database", "plugins in the database"}
    if backend == "sqlite":  # nothing is created on the way
        assert failed["database"].detail.endswith(
            "lts.db: no such file (start the engine once, or run 'python -m lts.engine db "
            "upgrade')")
    else:
        assert "database schema is at base (no LTS tables), this engine needs" in \
            failed["database"].detail
