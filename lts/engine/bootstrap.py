"""First start: the initial admin user and the demo portfolio.

The admin's password comes from ``LTS_ADMIN_PASSWORD``, which must meet the API's strength rule
(:func:`check_admin_password`, before anything starts); without it one is generated and printed
once, on the start that creates the user. The demo portfolio ``demo`` trades two synthetic
symbols with ``sma_crossover`` on the ``paper`` broker, so a new user sees orders within seconds.
"""

import logging
import secrets
import sys
from typing import Any

import anyio
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from lts.domain.portfolio_spec import AssetSpec, PortfolioSpec
from lts.errors import ConfigError
from lts.persistence import repositories as repo
from lts.persistence.credentials import BrokerCredentials, CredentialStore
from lts.persistence.keyring import Keyring
from lts.plugins.aaa.passwords import WeakPassword, hash_password, strong_password
from lts.settings import DemoSettings, Settings

log = logging.getLogger("lts.bootstrap")


def check_admin_password(settings: Settings) -> None:
    """A configured admin password meets the strength rule every new password meets (the
    API's); ConfigError naming the setting otherwise."""
    if settings.admin_password is None:
        return
    try:
        strong_password(settings.admin_password.get_secret_value())
    except WeakPassword as exc:
        raise ConfigError(f"setting 'admin_password' (LTS_ADMIN_PASSWORD): {exc}") from None


async def ensure_admin(db: AsyncEngine, settings: Settings) -> None:
    """The first user, an admin. Engines started together on one new database race for it:
    the one that inserts first made it, the others take theirs as made."""
    check_admin_password(settings)
    if await repo.user_count(db):
        return
    given = settings.admin_password.get_secret_value() if settings.admin_password else None
    password = given or secrets.token_urlsafe(16)
    hashed = await anyio.to_thread.run_sync(hash_password, password,
                                            settings.auth.bcrypt_rounds)
    try:
        await repo.create_user(db, settings.admin_username, hashed, "admin")
    except IntegrityError:
        log.info("admin user %r made by another engine", settings.admin_username)
        return
    log.info("created admin user %r", settings.admin_username)
    if not given:
        # printed once, on the start that creates the user; never logged
        print(f"Initial admin user {settings.admin_username!r}, password: {password}",
              file=sys.stderr, flush=True)


def demo_spec(demo: DemoSettings, owner_id: int | None = None) -> PortfolioSpec:
    """The demo portfolio: its strategy (``sma_crossover`` by default, or any installed
    strategy plugin: ``--set demo.strategy=NAME``) on each symbol, on the demo's broker and feed
    (by default ``paper`` and ``synthetic``; ``examples/binance-local.toml`` trades the same
    strategy through ``ccxt`` on the local venue)."""
    strategy_params = demo.strategy_params if demo.strategy_params is not None else (
        {"fast": demo.fast, "slow": demo.slow, "quantity": str(demo.quantity)}
        if demo.strategy == "sma_crossover" else {})
    broker_params = demo.broker_params if demo.broker_params is not None else (
        {"fees_bps": "1", "slippage_bps": "2"} if demo.broker == "paper" else {})

    def pipeline_params(i: int) -> dict[str, Any]:
        if demo.pipeline_params is not None:
            return demo.pipeline_params
        if demo.pipeline == "synthetic":
            return {"seed": 42 + i, "interval": demo.interval, "volatility": 0.004}
        return {}

    assets = tuple(
        AssetSpec(
            symbol=sym, strategy_plugin=demo.strategy, strategy_params=strategy_params,
            broker_plugin=demo.broker, broker_params=broker_params,
            pipeline_plugin=demo.pipeline, pipeline_params=pipeline_params(i),
        ) for i, sym in enumerate(demo.symbols))
    return PortfolioSpec(name=demo.name, initial_cash=demo.initial_cash, assets=assets,
                              owner_id=owner_id)


async def ensure_demo_credentials(db: AsyncEngine, demo: DemoSettings, owner: str,
                                  keyring: Keyring | None) -> None:
    """The demo broker's keys (a local venue's), sealed for ``owner`` unless some are stored."""
    creds = demo.credentials
    if creds is None:
        return
    if keyring is None:
        raise ConfigError("setting 'demo.credentials' needs a master key to seal them (set "
                          "master_key or master_key_file)")
    owner_id = await repo.user_id_by_name(db, owner)
    assert owner_id is not None
    store = CredentialStore(db, keyring)
    if await store.get(owner_id, creds.broker) is None:
        await store.put(owner_id, creds.broker, BrokerCredentials(
            creds.api_key.get_secret_value(), creds.api_secret.get_secret_value()))
        log.info("sealed the demo's %r credentials for %r", creds.broker, owner)


async def ensure_demo(db: AsyncEngine, demo: DemoSettings, owner: str) -> int:
    """The demo portfolio, owned by the initial admin user ``owner``."""
    pid = await repo.portfolio_id_by_name(db, demo.name)
    if pid is None:
        owner_id = await repo.user_id_by_name(db, owner)
        try:
            pid = await repo.create_portfolio(db, demo_spec(demo, owner_id))
        except IntegrityError:  # another engine on this database made it first
            made = await repo.portfolio_id_by_name(db, demo.name)
            assert made is not None
            return made
        log.info("created demo portfolio %r (id %s)", demo.name, pid)
    return pid
