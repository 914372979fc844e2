"""The Telegram bot: the notifications as chat messages, and commands from allowed chats.

Where it sits: a task of the notifier (:mod:`lts.notify.service`) when ``notify.telegram`` is
enabled. It long-polls the Bot API (``getUpdates``, base URL ``notify.telegram.api_base_url``)
and answers commands (:mod:`lts.notify.chat_commands`) from the chats configured in
``notify.telegram.chats``, each mapped to an LTS user; a message from any other chat is refused
and audited (nothing about LTS is said to it). Notifications go to every configured chat whose
user may see the portfolio, for the types in ``notify.telegram.events``. Each chat has an
outgoing queue of its own (the oldest message dropped when full) and one sender, so replies keep
their order and a 429 (``retry_after``) from Telegram slows that chat only.
"""

import logging
from typing import Any

import aiohttp
import anyio
from anyio.abc import TaskStatus

from lts.bus import Mailbox, Overflow
from lts.engine.facade import EngineFacade
from lts.errors import ConfigError
from lts.notify.audience import Audience, Member
from lts.notify.chat_commands import ChatCommands
from lts.notify.config import TelegramSettings
from lts.notify.events import Notification, text_of
from lts.notify.telegram_api import MAX_TEXT, BotApi, BotApiError

__all__ = ["TelegramBot", "split_text"]

log = logging.getLogger("lts.notify.telegram")

_SEND_TRIES = 3


def split_text(text: str, limit: int = MAX_TEXT) -> list[str]:
    """``text`` in messages of at most ``limit`` characters, cut between lines where it can
    (an answer about hundreds of portfolios is several messages, none cut off)."""
    parts: list[str] = []
    current = ""
    for line in text.split("\n"):
        while len(line) > limit:  # one line longer than a message: cut it
            if current:
                parts.append(current)
                current = ""
            parts.append(line[:limit])
            line = line[limit:]
        if current and len(current) + 1 + len(line) > limit:
            parts.append(current)
            current = line
        else:
            current = f"{current}\n{line}" if current else line
    if current or not parts:
        parts.append(current)
    return parts


class TelegramBot:
    def __init__(self, engine: EngineFacade, settings: TelegramSettings, audience: Audience,
                 session: aiohttp.ClientSession) -> None:
        if settings.bot_token is None:
            raise ConfigError("notify.telegram: enabled without a bot_token "
                              "(LTS_NOTIFY__TELEGRAM__BOT_TOKEN)")
        self.engine = engine
        self.settings = settings
        self.audience = audience
        self.api = BotApi(session, settings.api_base_url, settings.bot_token.get_secret_value())
        self.commands = ChatCommands(engine)
        self._outboxes: dict[int, Mailbox[str]] = {
            chat: Mailbox(settings.queue, Overflow.DROP_OLDEST, name=f"telegram-{chat}")
            for chat in settings.chats}
        self._events = frozenset(settings.events)
        self.sent = 0
        self.dropped_sends = 0

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        async with anyio.create_task_group() as tg:
            for chat, outbox in self._outboxes.items():
                tg.start_soon(self._send_loop, chat, outbox, name=f"telegram chat {chat}")
            task_status.started()
            await self._poll()

    # -- notifications ------------------------------------------------------------------------
    def offer(self, n: Notification) -> None:
        if n.type not in self._events:
            return
        text = None
        for chat, username in self.settings.chats.items():
            member = self.audience.members.get(username)
            if member is None or not self.audience.may_see(member.user_id, member.role,
                                                           n.portfolio_id):
                continue
            text = text or text_of(n)
            self._outboxes[chat].put_nowait(text)

    async def _send_loop(self, chat: int, outbox: Mailbox[str]) -> None:
        while True:
            for text in await outbox.get_batch():
                await self._send(chat, text)

    async def _send(self, chat: int, text: str) -> None:
        for attempt in range(1, _SEND_TRIES + 1):
            try:
                await self.api.send_message(chat, text)
                self.sent += 1
                return
            except BotApiError as exc:
                if exc.code is not None and exc.code != 429 and exc.code < 500:
                    break  # refused (the bot was blocked, the chat is gone): no retry
                await anyio.sleep(exc.retry_after if exc.retry_after is not None
                                  else float(attempt))
        self.dropped_sends += 1
        log.warning("telegram: a message to chat %s was not sent", chat)

    # -- commands -----------------------------------------------------------------------------
    async def _poll(self) -> None:
        offset: int | None = None
        backoff = 1.0
        while True:
            try:
                updates = await self.api.get_updates(offset, self.settings.poll_timeout)
            except BotApiError as exc:
                log.warning("telegram: %s; polling again in %.0fs", exc, backoff)
                await anyio.sleep(exc.retry_after or backoff)
                backoff = min(backoff * 2, 60.0)
                continue
            backoff = 1.0
            for update in updates:
                update_id = update.get("update_id")
                if isinstance(update_id, int):
                    offset = max(offset or 0, update_id + 1)
                try:
                    await self._take(update)
                except Exception:  # one command's failure does not end the bot
                    log.exception("telegram: update %s not handled", update_id)

    async def _take(self, update: dict[str, Any]) -> None:
        message = update.get("message")
        if not isinstance(message, dict):
            return
        chat = (message.get("chat") or {}).get("id")
        text = message.get("text")
        if not isinstance(chat, int) or not isinstance(text, str) or not text.startswith("/"):
            return
        words = text.split()
        command = words[0][1:].split("@", 1)[0].lower()  # "/status@my_bot" in groups
        username = self.settings.chats.get(chat)
        if username is None:
            self._audit(None, chat, "telegram.refused", "", "denied",
                        {"command": command[:32], "reason": "chat not allowed"})
            return  # an unknown chat learns nothing
        await self.audience.refresh()
        member = self.audience.members.get(username)
        if member is None:
            self._audit(None, chat, "telegram.refused", "", "denied",
                        {"command": command[:32], "reason": f"no active user {username!r}"})
            self._outboxes[chat].put_nowait("this chat's LTS user does not exist or is "
                                            "disabled")
            return

        def audit(action: str, target: str, outcome: str, detail: dict[str, Any]) -> None:
            self._audit(member, chat, action, target, outcome, detail)

        reply = await self.commands.answer(member, command, words[1:], audit)
        for part in split_text(reply):
            self._outboxes[chat].put_nowait(part)

    def _audit(self, member: Member | None, chat: int, action: str, target: str, outcome: str,
               detail: dict[str, Any]) -> None:
        row = {"actor": (member.username if member else "anonymous")[:64],
               "action": action[:64], "target": target[:128],
               "client_address": f"telegram:{chat}"[:64], "outcome": outcome[:16],
               "detail": detail}
        try:
            self.engine.audit(row)
        except Exception:
            log.exception("audit row not written: %s %s", row["actor"], action)
