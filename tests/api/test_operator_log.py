"""The kill switch in the engine's log: a trading state changed through the API is a log line
naming who, which portfolio and what state (INFO), a refused change a WARNING, besides the
audit row. A real engine and API, the demo portfolio running."""

import logging
from pathlib import Path

import pytest

from ._auth import ADMIN, audit_rows, call, login, user_with_role
from .conftest import running_api

pytestmark = pytest.mark.anyio


async def test_a_kill_switch_change_is_logged_and_audited(tmp_path: Path,
                                                          caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="lts.engine")
    async with running_api(tmp_path) as api:
        admin = (await login(api, *ADMIN))["access_token"]
        _, trader = await user_with_role(api, "tess", "trader")
        pid = api.engine.facade.states()[0].portfolio_id
        path = f"/api/v1/portfolios/{pid}/trading-state"
        assert (await call(api, "PUT", path, {"state": "HALTED"}, admin)).status == 200
        assert (await call(api, "PUT", path, {"state": "ACTIVE"}, trader)).status == 404
        rows = await audit_rows(api, "portfolio.trading_state")
    lines = [(r.levelname, r.getMessage()) for r in caplog.records
             if r.getMessage().startswith("kill switch:")]
    assert lines == [
        ("INFO", f"kill switch: portfolio {pid} set to HALTED by admin from 127.0.0.1"),
        ("WARNING", f"kill switch: portfolio {pid}: a change by tess from 127.0.0.1 refused "
                    f"({rows[1]['detail']['error']})")]
    assert [(r["actor"], r["outcome"]) for r in rows] == [("admin", "success"),
                                                           ("tess", "failure")]
