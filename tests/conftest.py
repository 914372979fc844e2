"""Shared pytest fixtures: the anyio backend and a migrated SQLite database per test.

Async tests use anyio's pytest plugin: mark them ``@pytest.mark.anyio``.
"""

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from lts.persistence.db import make_engine
from lts.persistence.migrations import upgrade_to_head


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    """A SQLite (aiosqlite) URL to a fresh file in the test's temporary directory."""
    return f"sqlite+aiosqlite:///{tmp_path / 'lts.db'}"


@pytest.fixture
async def migrated_engine(db_url: str) -> AsyncIterator[AsyncEngine]:
    """An engine on a database migrated to head; disposed at the end of the test."""
    await upgrade_to_head(db_url)
    engine = make_engine(db_url)
    try:
        yield engine
    finally:
        await engine.dispose()
