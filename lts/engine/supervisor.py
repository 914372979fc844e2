"""Supervision at the portfolio boundary: a runner that raises never touches another portfolio.

The failing portfolio goes to ``error`` with a sanitized reason (exception type and a short,
single-line message, never a traceback), an audit row and a restart counter; it is restarted
with exponential backoff until ``max_restarts``, after which it stays in ``error``.
"""

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import anyio

from lts.persistence.journal import Journal

log = logging.getLogger("lts.supervisor")


def sanitize(exc: BaseException, limit: int = 200) -> str:
    """A reason safe to store and show: the innermost exception's type and first line."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    first = (str(exc).splitlines() or [""])[0].strip()
    text = f"{type(exc).__name__}: {first}" if first else type(exc).__name__
    return text[:limit]


@dataclass
class RestartPolicy:
    initial_delay: float = 1.0
    max_delay: float = 60.0
    max_restarts: int = 20


@dataclass
class SupervisedState:
    status: str = "starting"
    last_error: str | None = None
    restarts: int = 0


async def supervise(portfolio_id: int, run_once: Callable[[], Awaitable[None]],
                    journal: Journal, policy: RestartPolicy, state: SupervisedState) -> None:
    """Run ``run_once`` until it returns; on failure record it and retry with backoff."""
    delay = policy.initial_delay
    while True:
        try:
            state.status = "running"
            journal.update_portfolio({"id": portfolio_id, "status": "running",
                                      "last_error": None})
            await run_once()
            state.status = "stopped"
            return
        except Exception as exc:
            reason = sanitize(exc)
            state.status, state.last_error = "error", reason
            log.error("portfolio %s failed: %s", portfolio_id, reason, exc_info=exc)
            journal.update_portfolio({"id": portfolio_id, "status": "error",
                                      "last_error": reason})
            journal.insert_audit({"actor": "system", "action": "portfolio.error",
                                  "target": f"portfolio:{portfolio_id}", "client_address": None,
                                  "outcome": "failure",
                                  "detail": {"reason": reason, "restarts": state.restarts}})
            if state.restarts >= policy.max_restarts:
                log.error("portfolio %s stays in error after %d restarts", portfolio_id,
                          state.restarts)
                return
            state.restarts += 1
            await anyio.sleep(delay)
            delay = min(delay * 2, policy.max_delay)
