"""A local stand-in of Telegram's Bot API on 127.0.0.1: ``getUpdates`` (long poll, offsets
confirming what was taken) and ``sendMessage``, answering as Telegram does
(``{"ok": true, "result": ...}``, or ``{"ok": false, "error_code", "description"}``)."""

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web


@dataclass
class BotApiStandIn:
    token: str
    port: int = 0
    updates: list[dict[str, Any]] = field(default_factory=list)
    sent: list[tuple[int, str]] = field(default_factory=list)
    #: sendMessage answers 429 (retry_after 1) this many times first
    throttle: int = 0
    polls: int = 0
    _next_update: int = 1000
    _arrived: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def say(self, chat_id: int, text: str) -> None:
        """A user writes ``text`` in chat ``chat_id``."""
        self._next_update += 1
        self.updates.append({"update_id": self._next_update, "message": {
            "message_id": self._next_update, "date": int(time.time()), "text": text,
            "chat": {"id": chat_id, "type": "private"}, "from": {"id": chat_id,
                                                               "is_bot": False}}})
        self._arrived.set()

    def to(self, chat_id: int) -> list[str]:
        return [text for chat, text in self.sent if chat == chat_id]

    @staticmethod
    def _ok(result: Any) -> web.Response:
        return web.json_response({"ok": True, "result": result})

    async def _call(self, request: web.Request) -> web.Response:
        if request.match_info["token"] != self.token:
            return web.json_response({"ok": False, "error_code": 401,
                                      "description": "Unauthorized"}, status=401)
        payload = await request.json()
        method = request.match_info["method"]
        if method == "getUpdates":
            return await self._get_updates(payload)
        if method == "sendMessage":
            if self.throttle > 0:
                self.throttle -= 1
                return web.json_response({
                    "ok": False, "error_code": 429,
                    "description": "Too Many Requests: retry after 1",
                    "parameters": {"retry_after": 1}}, status=429)
            chat, text = int(payload["chat_id"]), str(payload["text"])
            self.sent.append((chat, text))
            return self._ok({"message_id": len(self.sent), "date": int(time.time()),
                             "chat": {"id": chat, "type": "private"}, "text": text})
        return web.json_response({"ok": False, "error_code": 404,
                                  "description": "Not Found"}, status=404)

    async def _get_updates(self, payload: dict[str, Any]) -> web.Response:
        self.polls += 1
        offset = payload.get("offset")
        if offset is not None:  # confirmed: Telegram forgets the earlier ones
            self.updates = [u for u in self.updates if u["update_id"] >= offset]
        if not self.updates:
            self._arrived.clear()
            with suppress(TimeoutError):
                await asyncio.wait_for(self._arrived.wait(), float(payload.get("timeout", 0)))
        return self._ok(list(self.updates))


@asynccontextmanager
async def bot_api(token: str) -> AsyncIterator[BotApiStandIn]:
    stand_in = BotApiStandIn(token)
    app = web.Application()
    app.router.add_post("/bot{token}/{method}", stand_in._call)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    stand_in.port = runner.addresses[0][1]
    try:
        yield stand_in
    finally:
        stand_in._arrived.set()
        await runner.cleanup()
