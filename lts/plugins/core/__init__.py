"""Core plugins: services run in the engine's root task group (the API server, later others)."""

from typing import Any, Protocol

from anyio.abc import TaskStatus


class CoreService(Protocol):
    async def serve(self, engine: Any, *, task_status: TaskStatus[None]) -> None:
        """Run until cancelled; call ``task_status.started()`` once serving."""
        ...
