"""Brokers get their keys from the sealed credential store, through the engine (issue 9: "it
exists; nothing reads it yet"): never from params, never logged (SYS-004 credentials)."""

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from lts.persistence import repositories as repo
from lts.persistence.credentials import BrokerCredentials, CredentialStore
from lts.persistence.keyring import Keyring, new_key_entry

from .desk import running_desk
from .venue import VenueWorld

pytestmark = pytest.mark.anyio

KEY = new_key_entry("v1")


def wants_keys(world: VenueWorld) -> None:
    world.credentials_for = "keyed"


async def test_a_broker_that_logs_in_gets_its_owners_keys(
        migrated_url: str, migrated_engine: AsyncEngine, caplog: pytest.LogCaptureFixture
) -> None:
    owner = await repo.create_user(migrated_engine, "olga", "x" * 60, "trader")
    secret = BrokerCredentials("the-api-key", "the-api-secret-value")
    await CredentialStore(migrated_engine, Keyring.parse(KEY)).put(owner, "keyed", secret)
    async with running_desk(migrated_url, owner_id=owner, before_start=wants_keys,
                            settings={"master_key": KEY}) as desk:
        assert desk.venue.credentials == secret
        assert desk.state().status == "running"
    assert "the-api-secret-value" not in caplog.text


async def test_without_stored_keys_the_portfolio_does_not_start_and_says_why(
        migrated_url: str, caplog: pytest.LogCaptureFixture) -> None:
    async with running_desk(migrated_url, before_start=wants_keys, wait_running=False,
                            settings={"master_key": KEY}) as desk:
        state = await desk.until(
            lambda: (s := desk.facade.state(desk.portfolio_id)) is not None
            and s.status == "error" and s, "the portfolio to fail to start")
        assert "no 'keyed' credentials stored" in (state.last_error or "")
        assert desk.venue.credentials is None
        # no restart can mend it: it waits for an operator instead of knocking again
        await desk.until(lambda: "its configuration must change" in caplog.text,
                         "the supervisor to leave it in error")
        assert desk.facade.state(desk.portfolio_id).restarts == 0  # type: ignore[union-attr]
        assert desk.venue.connect_attempts == 0
