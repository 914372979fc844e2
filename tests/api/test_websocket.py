"""WebSocket of order events against the real engine and uvicorn (SYS-006, SYS-014, SYS-016):
authentication by first message, replay from a sequence number, live events, closing rules."""

import json
import logging
from typing import Any

import anyio
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from .conftest import Api
from .test_portfolios import ADMIN, login

pytestmark = pytest.mark.anyio


def ws_url(api: Api) -> str:
    return api.base.replace("http://", "ws://") + "/ws/orders"


async def token(api: Api) -> str:
    return (await login(api, *ADMIN))["authorization"].removeprefix("Bearer ")


async def receive(ws: ClientConnection) -> Any:
    with anyio.fail_after(15):
        return json.loads(await ws.recv())


async def test_events_replay_from_since_then_stream_live(api: Api) -> None:
    """The demo portfolio (id 1) trades; a client gets every event in sequence, resumes after a
    reconnect without gaps or repeats."""
    access = await token(api)
    seen: list[int] = []
    async with connect(ws_url(api)) as ws:
        await ws.send(json.dumps({"action": "auth", "token": access}))
        await ws.send(json.dumps({"action": "subscribe", "since": {"1": 0, "999": 0}}))
        while len(seen) < 6:
            msg = await receive(ws)
            if msg["type"] == "subscribed":
                assert (msg["portfolios"], msg["refused"]) == ([1], [999])
                continue
            assert msg["portfolio_id"] == 1
            assert msg["type"].startswith("order.")
            assert {"client_order_id", "status", "quantity", "seq"} <= set(msg)
            seen.append(msg["seq"])
    assert seen == list(range(seen[0], seen[0] + len(seen)))  # no gap, no repeat

    async with connect(ws_url(api)) as ws:  # resume after the last seen
        await ws.send(json.dumps({"action": "auth", "token": access}))
        await ws.send(json.dumps({"action": "subscribe", "since": {"1": seen[-1]}}))
        msg = await receive(ws)
        while msg["type"] == "subscribed":
            msg = await receive(ws)
        assert msg["seq"] == seen[-1] + 1


async def test_a_replayed_event_is_the_same_json_as_the_live_one(api: Api) -> None:
    """Live events are encoded from the event, replays send the journal's payload: the same
    object either way."""
    access = await token(api)
    async with connect(ws_url(api)) as ws:
        await ws.send(json.dumps({"action": "auth", "token": access}))
        await ws.send(json.dumps({"action": "subscribe", "since": {"1": 10**9}}))
        msg = await receive(ws)
        while msg["type"] == "subscribed":
            msg = await receive(ws)
        live = msg
    async with connect(ws_url(api)) as ws:
        await ws.send(json.dumps({"action": "auth", "token": access}))
        await ws.send(json.dumps({"action": "subscribe", "since": {"1": live["seq"] - 1}}))
        replayed = await receive(ws)
    assert replayed == live


@pytest.mark.parametrize("message", [
    {"action": "subscribe", "portfolios": [1]},
    {"action": "subscribe", "portfolios": [1], "since": 0},
    {"action": "subscribe", "since": {}},
    {"action": "subscribe", "since": {"1": -1}},
    {"action": "subscribe", "since": {"1": "5"}},
    {"action": "subscribe", "since": {"one": 0}},
    {"action": "subscribe", "since": {"1": True}},
    {"action": "subscribe", "portfolios": [2], "since": {"1": 0}},
], ids=["missing", "a-number", "empty", "negative", "text", "not-an-id", "boolean",
        "disagrees"])
async def test_a_missing_or_malformed_since_is_an_error_not_zero(
        api: Api, message: dict[str, Any]) -> None:
    """Issue 9: ``since`` is a map per portfolio; leaving it out or malforming it answers an
    error (naming ``since`` or ``portfolios``) and subscribes nothing: no replay from 0."""
    access = await token(api)
    async with connect(ws_url(api)) as ws:
        await ws.send(json.dumps({"action": "auth", "token": access}))
        await ws.send(json.dumps(message))
        answer = await receive(ws)
        assert answer["type"] == "error", answer
        assert answer["detail"].startswith(("since", "portfolios")), answer
        await ws.send(json.dumps({"action": "subscribe", "since": {"999": 0}}))
        assert await receive(ws) == {"type": "subscribed", "portfolios": [], "refused": [999]}


async def drain_until_closed(ws: ClientConnection) -> None:
    while True:
        await receive(ws)


async def test_without_authentication_the_socket_closes_1008(api: Api) -> None:
    async with connect(ws_url(api)) as ws:
        await ws.send(json.dumps({"action": "subscribe", "portfolios": [1]}))
        with pytest.raises(ConnectionClosed) as closed:
            await receive(ws)
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 1008

    async with connect(ws_url(api)) as ws:
        await ws.send(json.dumps({"action": "auth", "token": "not.a.token"}))
        with pytest.raises(ConnectionClosed) as closed:
            await receive(ws)
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 1008


async def test_a_foreign_origin_is_refused(api: Api) -> None:
    with pytest.raises(Exception, match="403"):
        async with connect(ws_url(api), origin="https://evil.example"):  # type: ignore[arg-type]
            pass


async def test_a_page_of_the_server_itself_may_connect(api: Api) -> None:
    """The dashboard's origin (the Host the browser connected to) needs no CORS listing; the
    same host on another port is another origin, refused."""
    own = api.base  # http://127.0.0.1:PORT
    async with connect(ws_url(api), origin=own) as ws:  # type: ignore[arg-type]
        await ws.send(json.dumps({"action": "auth", "token": await token(api)}))
        await ws.send(json.dumps({"action": "subscribe", "since": {"999": 0}}))
        assert (await receive(ws))["type"] == "subscribed"
    other_port = own.rsplit(":", 1)[0] + ":1"
    with pytest.raises(Exception, match="403"):
        async with connect(ws_url(api), origin=other_port):  # type: ignore[arg-type]
            pass


async def test_logout_closes_the_socket_with_1008(api: Api) -> None:
    headers = await login(api, *ADMIN)
    access = headers["authorization"].removeprefix("Bearer ")
    async with connect(ws_url(api)) as ws:
        await ws.send(json.dumps({"action": "auth", "token": access}))
        await ws.send(json.dumps({"action": "subscribe", "since": {"999": 0}}))
        assert (await receive(ws))["type"] == "subscribed"
        out = await api.request("POST", "/api/v1/auth/logout", b"{}", headers)
        assert out.status in (200, 204)
        with pytest.raises(ConnectionClosed) as closed:
            await drain_until_closed(ws)
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 1008


async def ticket(api: Api, headers: dict[str, str]) -> str:
    reply = await api.request("POST", "/api/v1/auth/ws-ticket", None, headers)
    assert reply.status == 200, reply.body
    body = json.loads(reply.body)
    assert body["expires_in"] > 0
    return str(body["ticket"])


async def test_a_ticket_in_the_url_lets_a_client_in_once(api: Api) -> None:
    """``POST /auth/ws-ticket`` gives a short-lived, single-use ticket: the socket needs no auth
    message, and the same ticket never works twice."""
    headers = await login(api, *ADMIN)
    once = await ticket(api, headers)
    async with connect(f"{ws_url(api)}?ticket={once}") as ws:
        await ws.send(json.dumps({"action": "subscribe", "since": {"1": 0}}))
        msg = await receive(ws)
        while msg["type"] != "subscribed":  # the replay of the journal comes first
            assert msg["portfolio_id"] == 1
            msg = await receive(ws)
        assert msg["portfolios"] == [1]
    for spent in (once, "made-up"):
        async with connect(f"{ws_url(api)}?ticket={spent}") as ws:
            with pytest.raises(ConnectionClosed) as closed:
                await receive(ws)
        assert closed.value.rcvd is not None
        assert closed.value.rcvd.code == 1008


async def test_a_ticket_of_an_ended_session_is_refused(api: Api) -> None:
    headers = await login(api, *ADMIN)
    unused = await ticket(api, headers)
    assert (await api.request("POST", "/api/v1/auth/logout", b"{}", headers)).status == 204
    async with connect(f"{ws_url(api)}?ticket={unused}") as ws:
        with pytest.raises(ConnectionClosed) as closed:
            await receive(ws)
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 1008


async def test_the_ticket_never_reaches_the_log(api: Api, caplog: pytest.LogCaptureFixture) -> None:
    """uvicorn logs each WebSocket handshake with its URL: the ticket in it is redacted."""
    caplog.set_level(logging.INFO, logger="uvicorn.error")
    headers = await login(api, *ADMIN)
    once = await ticket(api, headers)
    async with connect(f"{ws_url(api)}?ticket={once}") as ws:
        await ws.send(json.dumps({"action": "subscribe", "since": {"1": 0}}))
        while (await receive(ws))["type"] != "subscribed":
            pass
    lines = [r.getMessage() for r in caplog.records if r.name == "uvicorn.error"]
    assert any('"WebSocket /ws/orders?ticket=<redacted>" [accepted]' in line for line in lines)
    assert not any(once in line for line in lines), lines
