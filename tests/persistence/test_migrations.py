"""Alembic: head ↔ base round trip on SQLite, and the migrations match ``tables.py``."""

from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection, inspect
from sqlalchemy.ext.asyncio import AsyncEngine

from alembic import command
from lts.persistence.db import make_engine
from lts.persistence.migrations import (
    alembic_config,
    current_revision,
    downgrade,
    head_revision,
    upgrade_to_head,
)
from lts.persistence.tables import metadata

pytestmark = pytest.mark.anyio


async def _tables(engine: AsyncEngine) -> set[str]:
    async with engine.connect() as connection:
        return set(await connection.run_sync(lambda c: inspect(c).get_table_names()))


async def test_upgrade_downgrade_upgrade(db_url: str) -> None:
    expected = set(metadata.tables)
    engine = make_engine(db_url)
    try:
        assert await current_revision(engine) is None
        await upgrade_to_head(db_url)
        assert await current_revision(engine) == head_revision()
        assert await _tables(engine) == expected | {"alembic_version"}

        await downgrade(db_url, "base")
        assert await current_revision(engine) is None
        assert await _tables(engine) == {"alembic_version"}

        await upgrade_to_head(db_url)
        assert await current_revision(engine) == head_revision()
        assert await _tables(engine) == expected | {"alembic_version"}
    finally:
        await engine.dispose()


async def test_migrations_match_the_tables(migrated_engine: AsyncEngine) -> None:
    def compare(connection: Connection) -> list[Any]:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        return list(compare_metadata(context, metadata))

    async with migrated_engine.connect() as connection:
        assert await connection.run_sync(compare) == []


async def test_env_accepts_a_given_connection(db_url: str) -> None:
    cfg = alembic_config()
    engine = make_engine(db_url)
    try:
        async with engine.begin() as connection:
            def upgrade(sync_connection: Connection) -> None:
                cfg.attributes["connection"] = sync_connection
                command.upgrade(cfg, "head")

            await connection.run_sync(upgrade)
        assert await current_revision(engine) == head_revision()
    finally:
        await engine.dispose()
