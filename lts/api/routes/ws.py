"""WebSocket ``/ws/orders``: order events and fills of the portfolios a client may see.

Protocol: the first message authenticates (``{"action": "auth", "token": ACCESS_TOKEN}``), or the
URL carries a single-use ticket from ``POST /api/v1/auth/ws-ticket`` (``/ws/orders?ticket=T``;
never a long-lived token in a URL); then
``{"action": "subscribe", "since": {"<portfolio id>": N, ...}}`` replays each portfolio's
committed events after its sequence number ``N`` (0: from the start) and streams new ones, each
a JSON object with ``type``, ``portfolio_id``, ``seq``, the order's fields, ``ts_event``
(nanoseconds since 1970 UTC) and ``time_event`` (the same time in ISO 8601 UTC, to the
microsecond: ``"2026-12-05T23:20:12.123456Z"``); a replayed event is the same text as it was
live. ``since`` is
required: a missing or malformed one is answered with an error message, never taken as 0.
Events are sent only once the journal has committed them, and sequence numbers are never
reused, so a client that resumes with the last ``seq`` it saw per portfolio misses nothing.
Each client has a bounded mailbox with the CLOSE policy, and a client that falls behind is
disconnected with 1013 ("try again later": reconnect and resume with ``since``) without ever
slowing trading or the other clients: when its mailbox overflows, or when a send to it has
waited more than :data:`STALL_LIMIT` seconds (it stopped reading: its socket's buffers are
full). Its subscriptions and queued events are dropped at once; the close frame follows
what the socket holds already, and the connection is let go after :data:`CLOSE_GRACE`
seconds if the client never reads it. A revoked or expired session closes the socket with
1008, as does a wrong Origin.
"""

import asyncio
import contextlib
import logging
import time
from typing import Any
from urllib.parse import urlsplit

import anyio
from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from sqlalchemy import Text, cast, func, select
from starlette.websockets import WebSocketDisconnected

from lts.api import security
from lts.api.context import ApiContext
from lts.api.event_text import EventText, with_time
from lts.api.portfolio_schemas import ROW_ID_MAX
from lts.bus import Mailbox, MailboxClosed, Overflow
from lts.bus.inprocess import Subscription
from lts.domain.events import OrderEvent
from lts.persistence.tables import order_events

router = APIRouter()
log = logging.getLogger("lts.api.ws")

POLICY_VIOLATION = 1008
TRY_AGAIN_LATER = 1013
QUEUE_BOUND = 10_000
AUTH_TIMEOUT = 10.0
SESSION_CHECK_EVERY = 1.0  # answered from the session cache: cheap; stalls are checked as often
STALL_LIMIT = 5.0  # seconds one send may wait for the client to read before it is closed
CLOSE_GRACE = 20.0  # seconds the close frame may wait for a client that does not read


class _Closed(Exception):
    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


async def _authenticate(ws: WebSocket, ctx: ApiContext) -> tuple[int, str, str]:
    """(user id, session id, role) from the URL's ticket, else from the first message."""
    ticket = ws.query_params.get("ticket")
    try:
        if ticket is not None:
            user = await ctx.sessions.redeem_ticket(ticket)
            return user.user_id, user.session_id, user.role
        with anyio.move_on_after(AUTH_TIMEOUT):
            first = await ws.receive_json()
            if not isinstance(first, dict) or first.get("action") != "auth":
                raise _Closed(POLICY_VIOLATION, "authenticate first")
            user = await ctx.sessions.user_for_token(str(first.get("token", "")))
            return user.user_id, user.session_id, user.role
    except security.InvalidToken:
        raise _Closed(POLICY_VIOLATION, "invalid token" if ticket is None
                      else "invalid ticket") from None
    raise _Closed(POLICY_VIOLATION, "no authentication in time")


async def _visible(ctx: ApiContext, user_id: int, role: str, wanted: list[int]) -> list[int]:
    allowed = []
    for pid in sorted(set(wanted)):
        row = await ctx.portfolios.get(pid)
        if row is not None and (role == "admin" or row["owner_id"] == user_id):
            allowed.append(pid)
    return allowed


async def _replay(ws: WebSocket, ctx: ApiContext, client: "_Client", pid: int,
                  since: int) -> int:
    """Send the journal's events of ``pid`` after ``since``; return the last seq sent (a
    ``since`` past the journal's last event counts as that event: live events follow). Live
    events are committed before they are published, so nothing falls between the two."""
    of_pid = order_events.c.portfolio_id == pid
    async with ctx.engine.db.connect() as conn:
        # the stored payload is the event's JSON as it went out live: sent as it is, with its
        # time added as the live sender adds it
        rows = (await conn.execute(select(order_events.c.seq, cast(order_events.c.payload, Text),
                                          order_events.c.ts_event)
                                   .where(of_pid, order_events.c.seq > since)
                                   .order_by(order_events.c.seq))).all()
        if not rows:
            top = await conn.scalar(select(func.max(order_events.c.seq)).where(of_pid))
            return min(since, top or 0)
    for _, payload, ts_event in rows:
        await client.send(ws, with_time(payload, ts_event))
    return int(rows[-1][0])


class _Client:
    """One connection: its mailbox, its subscriptions, the last seq sent per portfolio, and
    since when a send has been waiting for the client to read (None: no send waiting)."""

    def __init__(self) -> None:
        self.box: Mailbox[OrderEvent] = Mailbox(QUEUE_BOUND, Overflow.CLOSE, name="websocket")
        self.subs: list[Subscription] = []
        self.last_seq: dict[int, int] = {}
        self.waiting_since: float | None = None
        self.counted = True  # in the lts_websocket_clients gauge
        # a replay and the live stream never interleave; asyncio's lock: taking a free one costs
        # nothing (anyio's looks up the task and checks for cancellation), and this is per batch
        # per client
        self.sending = asyncio.Lock()

    async def send(self, ws: WebSocket, text: str) -> None:
        """Send one message; it waits while the socket's buffers are full."""
        self.waiting_since = time.monotonic()
        await ws.send_text(text)
        self.waiting_since = None

    def too_slow(self) -> bool:
        """Its mailbox overflowed, or a send has waited longer than :data:`STALL_LIMIT`."""
        since = self.waiting_since
        return self.box.overflowed or (
            since is not None and time.monotonic() - since > STALL_LIMIT)

    def drop(self) -> None:
        """Stop its subscriptions and free its queued events."""
        for sub in self.subs:
            sub.cancel()
        self.subs.clear()
        self.box.close()
        self.box.drain()


def _same_origin(origin: str, host: str | None) -> bool:
    """A page of this very server (the dashboard): the Origin's host and port are the Host the
    browser connected to. Any other origin must be listed in ``api.cors_origins`` (a page
    elsewhere must not ride a user's session: cross-site WebSocket hijacking)."""
    if not host:
        return False
    parts = urlsplit(origin)
    return parts.scheme in ("http", "https") and parts.netloc.lower() == host.lower()


@router.websocket("/ws/orders")
async def order_events_ws(ws: WebSocket) -> None:
    ctx: ApiContext = ws.app.state.ctx
    origin = ws.headers.get("origin")
    if origin is not None and not _same_origin(origin, ws.headers.get("host")) and \
            origin not in ctx.engine.settings.api.cors_origins:
        await ws.close(POLICY_VIOLATION, "origin not allowed")
        return
    await ws.accept()
    ctx.metrics.ws_clients.inc()
    client = _Client()
    try:
        await _session(ws, ctx, client)
    except _Closed as closed:
        client.drop()
        ctx.metrics.ws_clients.dec()  # counted out now: the close may wait for the client
        client.counted = False
        await _close(ws, closed.code, closed.reason)
    except (WebSocketDisconnect, WebSocketDisconnected):
        pass
    finally:
        if client.counted:
            client.drop()
            ctx.metrics.ws_clients.dec()


async def _session(ws: WebSocket, ctx: ApiContext, client: _Client) -> None:
    user_id, sid, role = await _authenticate(ws, ctx)
    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(_watch, ctx, client, user_id, sid)
            tg.start_soon(_send, ws, client, ctx.event_text)
            await _serve_requests(ws, ctx, user_id, role, client)
    except* _Closed as group:
        raise group.exceptions[0] from None
    except* (WebSocketDisconnect, WebSocketDisconnected):
        pass  # the client went away (a send may find the socket closed first)


async def _serve_requests(ws: WebSocket, ctx: ApiContext, user_id: int, role: str,
                          client: _Client) -> None:
    while True:
        message: Any = await ws.receive_json()
        if not isinstance(message, dict) or message.get("action") != "subscribe":
            await ws.send_json({"type": "error", "detail": "expected a subscribe message"})
            continue
        since = _since(message)
        if isinstance(since, str):
            await ws.send_json({"type": "error", "detail": since})
            continue
        wanted = sorted(since)
        allowed = await _visible(ctx, user_id, role, wanted)
        for pid in allowed:
            if pid in client.last_seq:
                continue
            async with client.sending:
                client.last_seq[pid] = since[pid]
                client.subs.append(ctx.engine.subscribe_events(client.box, pid))
                client.last_seq[pid] = await _replay(ws, ctx, client, pid, since[pid])
        await ws.send_json({"type": "subscribed", "portfolios": allowed,
                            "refused": sorted(set(wanted) - set(allowed))})


def _since(message: dict[str, Any]) -> dict[int, int] | str:
    """The ``since`` map of a subscribe message (portfolio id -> last seq seen), or the error
    to send back."""
    since = message.get("since")
    if not isinstance(since, dict) or not since:
        return ("since: required, a map of portfolio id to the last seq seen (0 for none), "
                'e.g. {"1": 0}')
    out: dict[int, int] = {}
    for key, seq in since.items():
        if not (isinstance(key, str) and key.isascii() and key.isdigit() and len(key) <= 10
                and 0 < int(key) <= ROW_ID_MAX):
            return f"since: {key!r} is not a portfolio id"
        if isinstance(seq, bool) or not isinstance(seq, int) or seq < 0:
            return f"since.{key}: must be a whole number >= 0"
        out[int(key)] = seq
    listed = message.get("portfolios")
    if listed is not None and (not isinstance(listed, list) or set(listed) != set(out)):
        return "portfolios: must list exactly the portfolios of since (or be left out)"
    return out


async def _send(ws: WebSocket, client: _Client, text_of: EventText) -> None:
    box, last = client.box, client.last_seq
    while not box.overflowed:
        try:
            batch = await box.get_batch()
        except MailboxClosed:
            break
        async with client.sending:
            for event in batch:
                if event.seq <= last.get(event.portfolio_id, 0):
                    continue  # sent already by the replay
                last[event.portfolio_id] = event.seq
                await client.send(ws, text_of(event))
    raise _Closed(TRY_AGAIN_LATER, _TOO_SLOW)


_TOO_SLOW = "too slow: reconnect and resume with since"


async def _watch(ctx: ApiContext, client: _Client, user_id: int, sid: str) -> None:
    """Close the socket when its session ends (1008) or its client falls behind (1013)."""
    while True:
        await anyio.sleep(SESSION_CHECK_EVERY)
        if client.too_slow():
            raise _Closed(TRY_AGAIN_LATER, _TOO_SLOW)
        try:
            await ctx.sessions.user(user_id, sid)
        except security.InvalidToken:
            raise _Closed(POLICY_VIOLATION, "session ended") from None


async def _close(ws: WebSocket, code: int, reason: str) -> None:
    """Send the close frame: after what the socket holds already, so a client that does not
    read gets :data:`CLOSE_GRACE` seconds to take it, then the connection is let go."""
    with (anyio.move_on_after(CLOSE_GRACE),
          contextlib.suppress(RuntimeError, WebSocketDisconnect, WebSocketDisconnected)):
        await ws.close(code, reason)
