"""The engine at start: stored runtime overrides are applied before any portfolio trades
(SYS-005). Real engine, real SQLite file; no API, no demo."""

from decimal import Decimal
from pathlib import Path

import anyio
import pytest
from sqlalchemy import insert

from lts.engine.engine import Engine
from lts.persistence.db import make_engine
from lts.persistence.migrations import upgrade_to_head
from lts.persistence.tables import configuration
from lts.settings import load_settings

pytestmark = pytest.mark.anyio


async def test_stored_runtime_overrides_are_applied_at_start(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'lts.db'}"
    await upgrade_to_head(url)
    db = make_engine(url)
    async with db.begin() as conn:
        await conn.execute(insert(configuration), [
            {"key": "risk.max_order_notional", "value": "1234", "updated_by": "admin"}])
    await db.dispose()
    engine = Engine(load_settings(overrides={
        "admin_password": "Adm1n-pass-word", "database": {"url": url},
        "api": {"enabled": False}, "demo": {"enabled": False}}))
    async with anyio.create_task_group() as tg:
        tg.start_soon(engine.run)
        with anyio.fail_after(30):
            await engine.started.wait()
        assert engine.settings.risk.max_order_notional == Decimal(1234)
        engine.stop()
