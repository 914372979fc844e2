"""``GET /api/v1/plugins`` (any logged-in user): every discovered plugin by kind, whether it
loaded (and why not), and its params JSON schema. ``GET /api/v1/debug`` (admin): the
``get_debug_info()`` of every live plugin instance, per running portfolio, as plain JSON
(Decimal as text, secret-looking keys redacted).

The export reads live plugin state, so each portfolio is taken on the loop (a consistent
snapshot), one at a time with a checkpoint between them: with hundreds of portfolios the loop
keeps trading between snapshots. Validating and encoding the whole answer, plain data by then,
runs in a worker thread.
"""

import logging
from typing import Any

import anyio
import anyio.lowlevel
from fastapi import APIRouter, Response

from lts.api.admin_schemas import DebugExport, PluginCatalog, PluginPublic, PortfolioDebug, jsonable
from lts.api.deps import AdminUser, CurrentUser
from lts.engine.facade import EngineFacade
from lts.plugins.registry import KINDS, PluginInfo

log = logging.getLogger("lts.api")
router = APIRouter(prefix="/api/v1", tags=["plugins"])


def _schema(info: PluginInfo) -> dict[str, Any] | None:
    if info.cls is None:
        return None
    try:
        return info.cls.params_schema()
    except Exception:  # a plugin's odd params model must not break the listing
        log.exception("params schema of %s plugin %r", info.kind, info.name)
        return None


@router.get("/plugins", response_model=PluginCatalog)
async def list_plugins(caller: CurrentUser) -> PluginCatalog:
    ctx = caller.ctx
    registry = ctx.engine.registry
    kinds = list(KINDS) + sorted({k for k, _ in registry.plugins} - set(KINDS))
    return PluginCatalog(
        plugins={kind: [PluginPublic(name=i.name, loaded=i.loaded, error=i.error,
                                     params_schema=_schema(i))
                        for i in registry.of_kind(kind)] for kind in kinds},
        problems=list(registry.problems))


def _snapshot(engine: EngineFacade, pid: int, status: str) -> dict[str, Any]:
    """One portfolio's plugins as plain JSON (on the loop: it reads live state)."""
    try:
        info = engine.debug_info(pid)
        return {"status": status, "info": None if info is None else jsonable(info)}
    except Exception as exc:  # one odd plugin must not hide the others' state
        log.exception("debug info of portfolio %s", pid)
        return {"status": status, "info": None, "error": type(exc).__name__}


def _export_json(snapshots: dict[str, dict[str, Any]]) -> bytes:
    portfolios = {pid: PortfolioDebug(**s) for pid, s in snapshots.items()}
    return DebugExport(portfolios=portfolios).model_dump_json().encode()


@router.get("/debug", response_model=DebugExport)
async def debug_export(caller: AdminUser) -> Response:
    ctx = caller.ctx
    snapshots: dict[str, dict[str, Any]] = {}
    for state in ctx.engine.states():
        snapshots[str(state.portfolio_id)] = _snapshot(ctx.engine, state.portfolio_id,
                                                       state.status)
        await anyio.lowlevel.checkpoint()
    body = await anyio.to_thread.run_sync(_export_json, snapshots)
    return Response(body, media_type="application/json")
