"""A portfolio's failure goes out on the bus as ``PortfolioStatusChanged("error")`` once the
journal committed its audit row (the supervisor on a real journal and database; its runner
fails to start, as one whose plugin is missing does)."""

import anyio
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from lts.bus import InProcessBus, Mailbox, Overflow
from lts.domain.events import PortfolioStatusChanged
from lts.engine.runner import PortfolioRunner
from lts.engine.supervisor import PortfolioSupervisor, RestartPolicy
from lts.errors import PluginNotFound
from lts.persistence.journal import Journal
from lts.persistence.tables import audit_logs

pytestmark = pytest.mark.anyio


async def test_each_failure_is_published_once_its_audit_row_is_committed(
        migrated_engine: AsyncEngine) -> None:
    bus = InProcessBus()
    seen: Mailbox[PortfolioStatusChanged] = Mailbox(100, Overflow.DROP_OLDEST)
    bus.subscribe(PortfolioStatusChanged, seen)
    journal = Journal(migrated_engine, stop_timeout=5)

    async def make_runner(fence: int | None, restart: bool) -> PortfolioRunner:
        raise PluginNotFound("no strategy plugin 'gone'")

    policy = RestartPolicy(initial_delay=0.01, max_delay=0.01, max_restarts=1)
    sup = PortfolioSupervisor(7, make_runner, journal=journal, leases=None, policy=policy,
                              bus=bus)
    async with anyio.create_task_group() as tg:
        await tg.start(journal.run)
        sup.activate()
        tg.start_soon(sup.run)
        events: list[PortfolioStatusChanged] = []
        with anyio.fail_after(20):
            while len(events) < 2:
                events += await seen.get_batch()
        async with migrated_engine.connect() as conn:
            audited = (await conn.execute(select(audit_logs.c.action, audit_logs.c.detail)
                                          .where(audit_logs.c.target == "portfolio:7")
                                          .order_by(audit_logs.c.id))).all()
        # each event went out after its row was durable: the rows are there to read
        assert [a for a, _ in audited] == ["portfolio.error", "portfolio.error"]
        assert [(e.portfolio_id, e.status, e.restarts) for e in events] == \
            [(7, "error", 0), (7, "error", 1)]
        assert events[0].reason == "PluginNotFound: no strategy plugin 'gone'"
        await sup.deactivate()
        tg.cancel_scope.cancel()
