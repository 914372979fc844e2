"""One supervisor per portfolio, on the real engine (issue 9, defects 1 and 6). SYS-011
(recovery), SYS-013 (integrity).

The venue's connection is the test's (:class:`~tests.engine.venue.VenueWorld`): it refuses
connects, drops the live one (the broker's ``run()`` raises, so the runner fails at the
portfolio boundary), and counts connections, so two runners of one portfolio would show as two
live connections.
"""

import time

import pytest

from lts.domain.commands import Accepted, Reply
from lts.domain.orders import Side
from lts.persistence.tables import audit_logs, orders

from .desk import EngineDesk, running_desk
from .venue import VenueWorld

pytestmark = pytest.mark.anyio

FOREVER = 1_000_000  # connects to refuse: the venue is down until the test says otherwise


def _accepted(reply: Reply) -> str:
    assert isinstance(reply, Accepted), reply
    assert reply.order is not None
    return reply.order.client_order_id


async def _failed_attempt(desk: EngineDesk, attempts_before: int) -> None:
    """Until the supervisor has tried again (a new connect) and is back in its backoff."""
    world = desk.venue
    await desk.until(lambda: world.connect_attempts > attempts_before
                     and desk.state().status == "error", "a restart that fails again")


async def _back_running(desk: EngineDesk, attempts: int) -> None:
    """Until the runner is back on the venue after ``attempts`` connects in all."""
    world = desk.venue
    await desk.until(lambda: world.connect_attempts >= attempts and world.connections
                     and desk.state().status == "running", "the runner to be back")
    assert world.connections == 1, f"{world.connections} runners hold the venue at once"


async def _own_order(desk: EngineDesk) -> str:
    await desk.marked()
    return _accepted(await desk.submit(Side.BUY, 1))


def _venue_down(world: VenueWorld) -> None:
    world.refuse_connections = FOREVER
    world.drop()


# -- defect 1: never two runners ----------------------------------------------------------------

async def test_activate_during_backoff_restarts_that_runner_never_a_second(
        migrated_url: str) -> None:
    """Defect 1 (SYS-011, SYS-013). The venue goes down; the portfolio fails and waits in a
    long restart backoff (status ``error``). Each burst of ``activate`` calls restarts that
    runner at once: one new connect per burst, never a second runner (the venue never sees two
    connections at once). Once the venue is back, one ``activate`` brings the portfolio back;
    client order ids stay unique and numbered on; ``deactivate`` stops it (``stopped``, no
    connection left). Before issue 9 ``activate`` during the backoff started a second
    supervised runner beside the first: both read one order counter, and ``deactivate``
    stopped only one."""
    async with running_desk(migrated_url, engine={"restart_initial_delay": 30,
                                                  "restart_max_delay": 60}) as desk:
        world = desk.venue
        before = _accepted(await desk.submit(Side.BUY, 1))
        _venue_down(world)
        await desk.until(lambda: desk.state().status == "error", "the portfolio to fail")

        for _ in range(3):
            attempts = world.connect_attempts
            for _ in range(3):
                desk.facade.activate(desk.portfolio_id)
            await _failed_attempt(desk, attempts)
            assert world.connect_attempts == attempts + 1, "one burst, several restarts"
            assert world.connections == 0

        world.refuse_connections = 0
        attempts = world.connect_attempts
        desk.facade.activate(desk.portfolio_id)
        await _back_running(desk, attempts + 1)
        after = await _own_order(desk)
        coids = [r["client_order_id"] for r in await desk.rows(orders)]
        assert coids == [before, after] == [f"{desk.portfolio_id}-1", f"{desk.portfolio_id}-2"]

        await desk.facade.deactivate(desk.portfolio_id)
        assert desk.state().status == "stopped"
        assert world.connections == 0
        assert world.max_connections == 1, "two runners held the venue at once"


async def test_deactivate_during_backoff_stops_the_portfolio(migrated_url: str) -> None:
    """Defect 1 (SYS-011): ``deactivate`` while the portfolio waits in its backoff stops it
    (``stopped``, no connection left); activating it again, twice in a row as a double click
    on the API's button does, starts exactly one runner: one connect, never two connections."""
    async with running_desk(migrated_url, engine={"restart_initial_delay": 30,
                                                  "restart_max_delay": 60}) as desk:
        world = desk.venue
        _venue_down(world)
        await desk.until(lambda: desk.state().status == "error", "the portfolio to fail")

        await desk.facade.deactivate(desk.portfolio_id)
        assert desk.state().status == "stopped"
        assert world.connections == 0

        world.refuse_connections = 0
        attempts = world.connect_attempts
        desk.facade.activate(desk.portfolio_id)  # a double click on "activate"
        desk.facade.activate(desk.portfolio_id)
        await _back_running(desk, attempts + 1)
        assert world.connect_attempts == attempts + 1
        assert world.max_connections == 1


# -- defect 6: outages do not add up ------------------------------------------------------------

RESET_AFTER = 0.3
MAX_RESTARTS = 2
OUTAGES = 4


async def test_outages_spaced_by_healthy_running_never_add_up_to_a_halt(
        migrated_url: str) -> None:
    """Defect 6 (SYS-011). ``engine.restart_reset_after`` 0.3 s, ``engine.max_restarts`` 2.
    Four outages, each after more than 0.3 s of healthy running: the connection drops, and the
    first reconnect is refused too (two failures per outage, eight in all, four times
    ``max_restarts``). After each healthy period the restart count starts over (the audit of
    each outage's failures counts 0 then 1 restarts before them), and the portfolio always
    comes back: it never stays in ``error``. Before issue 9 the count and the backoff never
    reset: three PostgreSQL outages with ``max_restarts`` 6 left a portfolio in error for
    good."""
    async with running_desk(migrated_url, engine={"restart_reset_after": RESET_AFTER,
                                                  "max_restarts": MAX_RESTARTS}) as desk:
        world = desk.venue
        for _ in range(OUTAGES):
            # a healthy period is time itself: waited on the clock, while the portfolio runs
            since = time.monotonic()
            await desk.until(lambda since=since: time.monotonic() - since > 2 * RESET_AFTER
                             and desk.state().status == "running", "a healthy period")
            attempts = world.connect_attempts
            world.refuse_connections = 1
            world.drop()
            await _back_running(desk, attempts + 2)

        assert desk.state().restarts == MAX_RESTARTS
        failures = await desk.rows(audit_logs, action="portfolio.error")
        counts = [row["detail"]["restarts"] for row in failures]
        assert counts == [0, 1] * OUTAGES, f"restart counts before each failure: {counts}"
        await _own_order(desk)
