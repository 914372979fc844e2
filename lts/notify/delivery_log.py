"""The webhook delivery log: every attempt's row, written to ``webhook_deliveries`` in batches.

Where it sits: in the webhook delivery process (:mod:`lts.notify.webhook_worker`), under the
senders (:mod:`lts.notify.webhooks`), with its own connection to the engine's database: the
engine never handles an attempt. One task writes the rows and prunes each webhook's log to its
latest ``keep`` rows. Rows wait in a bounded queue: while the database cannot keep up the oldest
are dropped (counted).
"""

import logging
import time
from typing import Any

import anyio
from anyio.abc import TaskStatus
from sqlalchemy.ext.asyncio import AsyncEngine

from lts.bus import Mailbox, Overflow
from lts.persistence import webhooks_repo as repo

__all__ = ["DeliveryLog"]

log = logging.getLogger("lts.notify.webhooks")

#: rows per insert, at most
BATCH = 500


class DeliveryLog:
    """Attempt rows, written in batches by one task; the latest ``keep`` per webhook kept.
    Rows wait in a bounded queue (the oldest dropped while the database cannot keep up)."""

    def __init__(self, db: AsyncEngine, keep: int, capacity: int = 10_000) -> None:
        self._db = db
        self._keep = keep
        self._rows: Mailbox[dict[str, Any]] = Mailbox(capacity, Overflow.DROP_OLDEST,
                                                       name="webhook-log")
        self.written = 0
        self._since_prune: set[int] = set()
        self._pruned_at = 0.0

    @property
    def dropped(self) -> int:
        return self._rows.dropped

    def record(self, row: dict[str, Any]) -> None:
        self._rows.put_nowait(row)

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        while True:
            await self._write(await self._rows.get_batch(BATCH))

    async def write_waiting(self) -> None:
        """Write the rows waiting now (on the way out)."""
        while rows := self._rows.drain(BATCH):
            await self._write(rows)

    async def _write(self, rows: list[dict[str, Any]]) -> None:
        try:
            self.written += await repo.record_deliveries(self._db, rows)
            self._since_prune.update(r["webhook_id"] for r in rows)
            if time.monotonic() - self._pruned_at > 10.0:
                await repo.prune_deliveries(self._db, sorted(self._since_prune), self._keep)
                self._since_prune.clear()
                self._pruned_at = time.monotonic()
        except Exception as exc:  # the database is away: these rows are lost, not trading
            log.warning("webhook delivery log: %d row(s) not written (%s)", len(rows),
                        type(exc).__name__)
