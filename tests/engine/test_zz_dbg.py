import pytest

from tests.engine.desk import running_desk
from tests.engine.test_state_machine import ENGINE, RISK, Cancel, ProgramRun, Restart, Submit, retire_portfolios

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize("backend", ["sqlite"])
async def test_dbg(migrated_url):
    await retire_portfolios(migrated_url)
    async with running_desk(migrated_url, risk=RISK, engine=ENGINE) as desk:
        run = ProgramRun(desk)
        await run.run([Submit(), Cancel(answer="lost"), Restart()])
        print(run.story())
        print(desk.venue.cancels, desk.venue.queries)
