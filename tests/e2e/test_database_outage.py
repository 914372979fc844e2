"""PostgreSQL goes away three times for 8 s while the engine trades (issue 9, defect 6; SYS-011
recovery, SYS-013 integrity, SYS-016 operations).

A private PostgreSQL server (:mod:`tests.pg_cluster`: the shared one serves the other workers)
holds the engine's database; the real engine runs in this process with its API on a loopback
port, trading a synthetic portfolio fast on the paper venue. Each outage: the journal holds
what it cannot write and the portfolio submits nothing new, ``/readyz`` says why it is not ready,
API reads answer 503 with ``Retry-After`` (never a 500, no traceback); once the server is back
the portfolio trades again by itself, never restarted, and nothing was lost: every fill the
venue made is in the journal once, positions equal the fills, the event sequence has no gap.

How long trading takes to come back (the first order the risk checks let through after the
server accepts connections again; the target is 2 s) is printed (``-s``); the test only waits
for it, within a deadline.
"""

import json
import logging
import time
import urllib.error
import urllib.request
from decimal import Decimal
from typing import Any

import anyio
import pytest
from api.conftest import free_port
from pg_cluster import PgCluster

from lts.domain.portfolio_spec import PortfolioSpec
from lts.engine.engine import Engine
from lts.settings import load_settings

from ._support import Db, check_integrity, prepare_portfolios, synthetic_asset

pytestmark = [pytest.mark.anyio, pytest.mark.postgres]

PASSWORD = "Out4ge-pass"
OUTAGES = 3
OUTAGE_SECONDS = 8.0
DEADLINE = 30.0  # seconds a condition may take before the test fails (never asserted on)


def get(base: str, path: str, token: str = "") -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(base + path, headers={"authorization": f"Bearer {token}"}
                                     if token else {})
    try:
        with urllib.request.urlopen(request, timeout=10) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers), err.read()


def login(base: str) -> str:
    body = json.dumps({"username": "admin", "password": PASSWORD}).encode()
    request = urllib.request.Request(base + "/api/v1/auth/login", data=body,
                                     headers={"content-type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as resp:
        return str(json.loads(resp.read())["access_token"])


async def until(check: Any, what: str) -> Any:
    with anyio.move_on_after(DEADLINE):
        while not (result := check()):  # noqa: ASYNC110 - polls the engine's counters
            await anyio.sleep(0.02)
        return result
    raise AssertionError(f"timed out after {DEADLINE:.0f}s waiting for {what}")


async def test_three_database_outages_never_add_up_to_a_halt(
        pg_cluster: PgCluster, caplog: pytest.LogCaptureFixture) -> None:
    url = pg_cluster.create_database("outage")
    [pid] = await anyio.to_thread.run_sync(prepare_portfolios, url, [PortfolioSpec(
        name="steady", initial_cash=Decimal(1_000_000), assets=(
            synthetic_asset("OA", seed=51, interval=0.02, broker_params={"fill_at": "close"}),
            synthetic_asset("OB", seed=52, interval=0.02)))])
    port = free_port()
    settings = load_settings(overrides={
        "database": {"url": url}, "demo": {"enabled": False}, "admin_password": PASSWORD,
        "api": {"port": port, "rate_limit_per_second": 0}, "auth": {"bcrypt_rounds": 4},
        "engine": {"max_restarts": 6, "restart_reset_after": 5}})
    engine = Engine(settings)
    base = f"http://127.0.0.1:{port}"
    caplog.set_level(logging.WARNING)
    resumed_after: list[float] = []
    async with anyio.create_task_group() as tg:
        tg.start_soon(engine.run)
        with anyio.fail_after(DEADLINE):
            await engine.started.wait()
        facade = engine.facade
        token = await anyio.to_thread.run_sync(login, base)

        def fills() -> int:
            state = facade.state(pid)
            return 0 if state is None else state.fills

        def placed() -> int:
            """Orders the risk checks let through (denied ones are not placed)."""
            state = facade.state(pid)
            return 0 if state is None else state.orders_created - state.orders_denied

        for _ in range(OUTAGES):
            before = fills()
            await until(lambda before=before: fills() >= before + 5, "trading")
            await anyio.to_thread.run_sync(pg_cluster.stop)
            await until(lambda: not facade.readiness().journal_available,
                        "the journal to notice the outage")
            status, _, body = await anyio.to_thread.run_sync(get, base, "/readyz")
            assert status == 503
            assert b"journal cannot write" in body, body
            status, headers, _ = await anyio.to_thread.run_sync(
                get, base, f"/api/v1/portfolios/{pid}/positions", token)
            assert status == 503, status  # not a 500
            assert int(headers["retry-after"]) > 0
            stopped_placing = placed()
            await anyio.sleep(OUTAGE_SECONDS)  # the outage itself: the scenario's length
            assert placed() == stopped_placing, "orders were placed while nothing was durable"
            await anyio.to_thread.run_sync(pg_cluster.start)
            back = time.monotonic()
            await until(lambda held=stopped_placing: placed() > held, "trading to resume")
            resumed_after.append(time.monotonic() - back)
            await until(lambda: facade.readiness().ready, "/readyz to be ready again")
            state = facade.state(pid)
            assert state is not None
            assert (state.status, state.restarts) == ("running", 0)
        await engine.facade.flush(DEADLINE)
        engine.stop()
    print(f"trading resumed {', '.join(f'{s:.2f}' for s in resumed_after)} s after each "
          "return of the database")
    assert len(resumed_after) == OUTAGES
    counts = await anyio.to_thread.run_sync(check_integrity, Db(url))
    assert counts["fills"] > 0
    noise = [r.getMessage() for r in caplog.records
             if "never retrieved" in r.getMessage() or "Exception in ASGI" in r.getMessage()]
    assert not noise, noise
