"""A small client of Telegram's Bot API: ``getUpdates`` (long poll) and ``sendMessage``.

Where it sits: under :mod:`lts.notify.telegram`. Every method is a POST of JSON to
``<api_base_url>/bot<token>/<method>``; Telegram answers ``{"ok": true, "result": ...}`` or
``{"ok": false, "error_code": ..., "description": ..., "parameters": {"retry_after": ...}}``.
The token is part of every URL, so no URL is ever logged or put in an error: errors carry the
method name, Telegram's code and description, or the exception's class.
"""

from typing import Any

import aiohttp

from lts.errors import LtsError

__all__ = ["BotApi", "BotApiError"]

MAX_TEXT = 4096  # Telegram's limit on a message's text


class BotApiError(LtsError):
    """A call failed: Telegram said no (``code``), or no answer came."""

    def __init__(self, method: str, detail: str, code: int | None = None,
                 retry_after: float | None = None) -> None:
        super().__init__(f"telegram {method}: {detail}")
        self.code = code
        self.retry_after = retry_after


class BotApi:
    def __init__(self, session: aiohttp.ClientSession, base_url: str, token: str) -> None:
        self._session = session
        self._base = f"{base_url.rstrip('/')}/bot{token}/"

    async def call(self, method: str, payload: dict[str, Any], seconds: float) -> Any:
        try:
            async with self._session.post(self._base + method, json=payload,
                                          allow_redirects=False,
                                          timeout=aiohttp.ClientTimeout(total=seconds)) as resp:
                try:
                    answer = await resp.json(content_type=None)
                except ValueError:
                    raise BotApiError(method, f"HTTP {resp.status}, not JSON",
                                      resp.status) from None
        except TimeoutError:
            raise BotApiError(method, "timeout") from None
        except aiohttp.ClientError as exc:
            raise BotApiError(method, type(exc).__name__) from None
        if not isinstance(answer, dict) or not answer.get("ok"):
            answer = answer if isinstance(answer, dict) else {}
            params = answer.get("parameters") or {}
            retry = params.get("retry_after") if isinstance(params, dict) else None
            raise BotApiError(method, str(answer.get("description", "refused"))[:200],
                              answer.get("error_code"),
                              float(retry) if isinstance(retry, int | float) else None)
        return answer.get("result")

    async def get_updates(self, offset: int | None, poll_timeout: int) -> list[dict[str, Any]]:
        payload: dict[str, Any] = {"timeout": poll_timeout, "allowed_updates": ["message"]}
        if offset is not None:
            payload["offset"] = offset
        result = await self.call("getUpdates", payload, poll_timeout + 10.0)
        return [u for u in result if isinstance(u, dict)] if isinstance(result, list) else []

    async def send_message(self, chat_id: int, text: str) -> None:
        if len(text) > MAX_TEXT:
            text = text[:MAX_TEXT - 1] + "…"
        await self.call("sendMessage", {"chat_id": chat_id, "text": text,
                                        "disable_web_page_preview": True}, 30.0)
