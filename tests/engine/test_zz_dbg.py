import pytest

from tests.engine.test_state_machine import Cancel, Settle, Submit, run_program

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize("backend", ["sqlite"])
async def test_dbg(migrated_url):
    for _ in range(20):
        await run_program(migrated_url, [Submit(), Settle(), Cancel(answer="lost"), Settle()])
