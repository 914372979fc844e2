"""Core plugins: services the engine runs in its task group, each handed the engine's facade.

The built-in one is ``api`` (:mod:`lts.api.server`, registered by entry point, so the engine
never imports the API); notifications come next. A service reaches the engine only through the
facade it is given (:class:`lts.engine.facade.EngineFacade`, typed ``Any`` here: plugins sit
below the engine).
"""

from typing import Any, Protocol

from anyio.abc import TaskStatus

__all__ = ["CoreService"]


class CoreService(Protocol):
    async def serve(self, engine: Any, *, task_status: TaskStatus[None]) -> None:
        """Run until cancelled; call ``task_status.started()`` once serving."""
        ...
