"""WebSocket clients that stop reading, against the real engine and uvicorn (issue 12, section
3): each is closed with 1013 ("try again later") once its socket's buffers are full, and is
counted out of ``lts_websocket_clients`` at once (its subscription and queued events dropped),
while a client that reads receives every event of the journal, in order, without a gap."""

import json
import re
from pathlib import Path
from typing import Any

import anyio
import pytest
from sqlalchemy import select
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from lts.persistence.tables import order_events

from ._auth import running_api
from .conftest import Api
from .test_portfolios import ADMIN, call, login
from .test_websocket import ws_url

pytestmark = pytest.mark.anyio

STALLED = 5
#: A strategy that trades on most bars of a fast, jumpy synthetic feed: order events flow.
BUSY_ASSET = {"symbol": "BUSY", "strategy_plugin": "sma_crossover",
              "strategy_params": {"fast": 1, "slow": 2, "quantity": "1"},
              "pipeline_plugin": "synthetic",
              "pipeline_params": {"seed": 3, "interval": 0.002, "volatility": 0.01}}


async def ws_clients(api: Api) -> float:
    text = (await api.request("GET", "/metrics")).body.decode()
    found = re.search(r"^lts_websocket_clients (\S+)$", text, re.MULTILINE)
    assert found is not None
    return float(found.group(1))


async def subscribed(ws: ClientConnection, access: str, pid: int) -> list[int]:
    """Authenticate and subscribe from the start; the seqs replayed before the answer."""
    await ws.send(json.dumps({"action": "auth", "token": access}))
    await ws.send(json.dumps({"action": "subscribe", "since": {str(pid): 0}}))
    seqs = []
    with anyio.fail_after(15):
        while (msg := json.loads(await ws.recv()))["type"] != "subscribed":
            seqs.append(msg["seq"])
    return seqs


async def journal_seqs(api: Api, pid: int) -> list[int]:
    await api.engine.journal.flush()
    async with api.engine.db.connect() as conn:
        return list((await conn.execute(select(order_events.c.seq).where(
            order_events.c.portfolio_id == pid).order_by(order_events.c.seq))).scalars())


async def read_until_closed(ws: ClientConnection) -> int | None:
    """Read what the server sent until its close frame: its code."""
    with anyio.fail_after(30):
        try:
            while True:
                await ws.recv()
        except ConnectionClosed as closed:
            return closed.rcvd.code if closed.rcvd is not None else None


async def test_clients_that_stop_reading_are_closed_1013_the_others_get_every_event(
        tmp_path: Path) -> None:
    async with running_api(tmp_path) as api:
        admin = await login(api, *ADMIN)
        access = admin["authorization"].removeprefix("Bearer ")
        pid = (await call(api, "POST", "/api/v1/portfolios", admin,
                          {"name": "busy", "initial_cash": "1000000"})).json()["id"]
        assert (await call(api, "POST", f"/api/v1/portfolios/{pid}/assets", admin,
                           BUSY_ASSET)).status == 201
        assert (await call(api, "POST", f"/api/v1/portfolios/{pid}/activate",
                           admin)).status == 200

        # max_queue=1: the client library stops reading its socket at once; no pings of its own
        stalled = [await connect(ws_url(api), max_queue=1, ping_interval=None)
                   for _ in range(STALLED)]
        for ws in stalled:
            await subscribed(ws, access, pid)
        seen: list[int] = []
        target = [1 << 62]  # the seq the reader must reach
        caught_up = anyio.Event()

        async def read(ws: ClientConnection) -> None:
            seen.extend(await subscribed(ws, access, pid))
            async for text in ws:
                msg: dict[str, Any] = json.loads(text)
                assert msg["portfolio_id"] == pid
                seen.append(msg["seq"])
                if msg["seq"] >= target[0]:
                    caught_up.set()

        async with connect(ws_url(api)) as reader, anyio.create_task_group() as tg:
            tg.start_soon(read, reader)
            with anyio.fail_after(60):  # the stalled ones are counted out, the reader stays
                while await ws_clients(api) != 1:  # noqa: ASYNC110 - polls the API
                    await anyio.sleep(0.1)
            codes: list[int | None] = []

            async def resume(ws: ClientConnection) -> None:
                codes.append(await read_until_closed(ws))

            async with anyio.create_task_group() as readers:
                for ws in stalled:
                    readers.start_soon(resume, ws)
            assert codes == [1013] * STALLED

            # events go on, and the reader gets them
            target[0] = (await journal_seqs(api, pid))[-1]
            if seen and seen[-1] >= target[0]:
                caught_up.set()
            with anyio.fail_after(30):
                await caught_up.wait()
            tg.cancel_scope.cancel()
        assert seen == (await journal_seqs(api, pid))[:len(seen)]  # every one, in order
        assert len(seen) > 1000  # enough to fill the stalled clients' buffers
