"""``GET /api/v1/plugins`` (any logged-in user): every discovered plugin by kind, whether it
loaded (and why not), and its params JSON schema. ``GET /api/v1/debug`` (admin): the
``get_debug_info()`` of every live plugin instance, per running portfolio, as plain JSON
(Decimal as text, secret-looking keys redacted).
"""

import logging
from typing import Any

from fastapi import APIRouter

from lts.api.admin_schemas import DebugExport, PluginCatalog, PluginPublic, PortfolioDebug, jsonable
from lts.api.deps import AdminUser, ContextDep, CurrentUser
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
async def list_plugins(ctx: ContextDep, who: CurrentUser) -> PluginCatalog:
    registry = ctx.engine.registry
    kinds = list(KINDS) + sorted({k for k, _ in registry.plugins} - set(KINDS))
    return PluginCatalog(
        plugins={kind: [PluginPublic(name=i.name, loaded=i.loaded, error=i.error,
                                     params_schema=_schema(i))
                        for i in registry.of_kind(kind)] for kind in kinds},
        problems=list(registry.problems))


@router.get("/debug", response_model=DebugExport)
async def debug_export(ctx: ContextDep, who: AdminUser) -> DebugExport:
    out: dict[str, PortfolioDebug] = {}
    for pid, handle in sorted(ctx.engine.portfolios.items()):
        runner = handle.runner
        if runner is None:
            out[str(pid)] = PortfolioDebug(status=handle.state.status, info=None)
            continue
        try:
            info = jsonable(runner.debug_info())
        except Exception as exc:  # one odd plugin must not hide the others' state
            log.exception("debug info of portfolio %s", pid)
            out[str(pid)] = PortfolioDebug(status=handle.state.status, info=None,
                                           error=type(exc).__name__)
            continue
        out[str(pid)] = PortfolioDebug(status=handle.state.status, info=info)
    return DebugExport(portfolios=out)
