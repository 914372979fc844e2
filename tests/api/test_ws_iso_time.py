"""Order events on the WebSocket carry their time in ISO 8601 beside the nanoseconds (issue 12:
"API times are nanosecond integers next to ISO dates elsewhere"), the same text live and
replayed, against the real engine and uvicorn, on SQLite and PostgreSQL."""

import json
from datetime import UTC, datetime, timedelta

import anyio
import pytest
from websockets.asyncio.client import ClientConnection, connect

from .conftest import Api
from .test_websocket import token, ws_url

pytestmark = pytest.mark.anyio


async def next_event(ws: ClientConnection) -> str:
    """The raw text of the next message."""
    with anyio.fail_after(15):
        text = await ws.recv()
    assert isinstance(text, str)
    return text


async def subscribed(api: Api, access: str, since: int) -> tuple[ClientConnection, list[str]]:
    """A client of portfolio 1 after ``since``, once the server answered the subscription
    (events published from then on reach it), and the replayed events' texts (sent before
    that answer)."""
    ws = await connect(ws_url(api))
    await ws.send(json.dumps({"action": "auth", "token": access}))
    await ws.send(json.dumps({"action": "subscribe", "since": {"1": since}}))
    replayed: list[str] = []
    while json.loads(text := await next_event(ws))["type"] != "subscribed":
        replayed.append(text)
    return ws, replayed


def expected_iso(ns: int) -> str:
    """What a reader of the nanoseconds would write: UTC to the microsecond, ``Z``."""
    moment = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=ns // 1000)
    return moment.isoformat().replace("+00:00", "Z")


async def test_a_live_event_carries_its_time_in_iso_8601_and_replays_as_the_same_text(
        api: Api) -> None:
    access = await token(api)
    live_a, _ = await subscribed(api, access, 10**9)  # live events only
    live_b, _ = await subscribed(api, access, 10**9)  # after a: a gets all that b gets
    try:
        text = await next_event(live_b)
        event = json.loads(text)
        while json.loads(other := await next_event(live_a))["seq"] < event["seq"]:
            pass
        assert other == text  # two clients, the very same text
    finally:
        await live_a.close()
        await live_b.close()

    assert isinstance(event["ts_event"], int)  # the nanoseconds stay
    assert event["time_event"] == expected_iso(event["ts_event"])
    assert event["time_event"].endswith("Z")
    parsed = datetime.fromisoformat(event["time_event"])
    assert parsed.utcoffset() == timedelta(0)

    replay, replayed = await subscribed(api, access, event["seq"] - 1)  # after a reconnect
    await replay.close()
    assert replayed[0] == text  # the same JSON text, byte for byte


async def test_every_replayed_event_has_the_iso_time_of_its_nanoseconds(api: Api) -> None:
    access = await token(api)
    live, _ = await subscribed(api, access, 10**9)
    try:
        while json.loads(await next_event(live))["seq"] < 4:
            pass  # the journal holds 4 events at least
    finally:
        await live.close()
    ws, replayed = await subscribed(api, access, 0)
    await ws.close()
    events = [json.loads(text) for text in replayed]
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert len(events) >= 4
    for event in events:
        assert event["time_event"] == expected_iso(event["ts_event"])
        if "fill" in event and event["fill"] is not None:  # the nested fill is untouched
            assert "time_event" not in event["fill"]
