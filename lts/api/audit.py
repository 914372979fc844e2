"""The audit trail of the control API: every mutating request, allowed, failed or denied, leaves
an ``audit_logs`` row (who, what, target, client address, outcome). Rows go through the journal
writer (group commit); the request never waits for the commit, and a failed write is logged.
"""

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from fastapi import Request

from lts.api.context import ApiContext

if TYPE_CHECKING:
    from lts.api.deps import Principal

log = logging.getLogger("lts.api.audit")


def request_address(request: Request) -> str:
    """The peer's address (proxies are not trusted: no ``X-Forwarded-For``)."""
    return request.client.host if request.client else "unknown"


def audit(ctx: ApiContext, request: Request, principal: "Principal | None", action: str,
          target: str, outcome: str, detail: dict[str, Any] | None = None) -> None:
    """Enqueue one audit row; never awaits."""
    row = {"actor": (principal.username if principal else "anonymous")[:64],
           "action": action[:64], "target": target[:128],
           "client_address": request_address(request)[:64], "outcome": outcome[:16],
           "detail": detail or {}}
    try:
        future = ctx.engine.audit(row)
    except Exception:
        log.exception("audit row not written: %s %s %s", row["actor"], action, outcome)
        return
    future.add_done_callback(_log_failure)


def _log_failure(future: "asyncio.Future[None]") -> None:
    if not future.cancelled() and future.exception() is not None:
        log.error("audit row not written", exc_info=future.exception())
