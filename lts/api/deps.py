"""The HTTP edge's dependencies (``Depends`` stops here; the engine uses constructor injection):
the app's context, the aaa plugin, the caller as a :class:`Principal`, and role checks.

``CurrentUser`` answers 401 (code ``unauthenticated``) without a valid bearer token of an open
session; ``require_roles`` answers 403 (code ``forbidden``) and writes an audit row when the
caller's role is not among those allowed.
"""

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from fastapi.security import OAuth2PasswordBearer

from lts.api import security
from lts.api.audit import audit, request_address
from lts.api.context import ApiContext
from lts.plugins.aaa.local import LocalAuth

_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


@dataclass(frozen=True)
class Principal:
    user_id: int
    username: str
    role: str  # "admin" | "trader" | "viewer"
    session_id: str


# Dependencies are ``async def`` even when they await nothing: FastAPI runs a plain ``def``
# dependency in a worker thread, a hop per request that waits for the GIL behind the trading loop.

async def get_context(request: Request) -> ApiContext:
    ctx: ApiContext = request.app.state.ctx
    return ctx


ContextDep = Annotated[ApiContext, Depends(get_context)]


def client_address(request: Request) -> str:
    return request_address(request)


async def get_auth(request: Request, ctx: ContextDep) -> LocalAuth:
    """The app's aaa plugin, made from the registry on first use and kept on the app."""
    auth: LocalAuth | None = getattr(request.app.state, "auth", None)
    if auth is None:
        settings = ctx.engine.settings
        auth = ctx.engine.registry.create("aaa", settings.auth.plugin)
        assert auth is not None
        auth.configure(settings)
        request.app.state.auth = auth
    return auth


AuthDep = Annotated[LocalAuth, Depends(get_auth)]


def _unauthenticated() -> HTTPException:
    return HTTPException(401, "not authenticated", headers={"WWW-Authenticate": "Bearer"})


class _BearerSession(OAuth2PasswordBearer):
    """The caller of a request, from its bearer token and open session; one dependency (each
    one costs per request in FastAPI), declared in OpenAPI as OAuth2's password flow so the
    interactive docs can log in. Answers 401 (audited when the request would change
    something)."""

    async def __call__(self, request: Request) -> Principal:  # type: ignore[override]
        ctx: ApiContext = request.app.state.ctx
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        try:
            if scheme.lower() != "bearer" or not token:
                raise security.InvalidToken
            found = await ctx.sessions.user_for_token(token)
        except security.InvalidToken:
            if request.method not in _SAFE_METHODS:
                audit(ctx, request, None, "auth.check", request.url.path, "denied",
                      {"method": request.method, "reason": "unauthenticated"})
            raise _unauthenticated() from None
        return Principal(found.user_id, found.username, found.role, found.session_id)


current_user = _BearerSession(tokenUrl="/api/v1/auth/login", auto_error=False,
                              description="access token from POST /api/v1/auth/login")
CurrentUser = Annotated[Principal, Depends(current_user)]


def require_roles(*roles: str) -> Callable[..., Awaitable[Principal]]:
    allowed = frozenset(roles)

    async def check(request: Request, ctx: ContextDep, principal: CurrentUser) -> Principal:
        if principal.role not in allowed:
            audit(ctx, request, principal, "auth.check", request.url.path, "denied",
                  {"method": request.method, "role": principal.role,
                   "needs": sorted(allowed)})
            raise HTTPException(403, "forbidden")
        return principal

    check.__name__ = f"require_{'_or_'.join(roles)}"
    return check


TraderUser = Annotated[Principal, Depends(require_roles("admin", "trader"))]
AdminUser = Annotated[Principal, Depends(require_roles("admin"))]

__all__ = ["AdminUser", "AuthDep", "ContextDep", "CurrentUser", "Principal", "TraderUser",
           "client_address", "get_auth", "get_context", "require_roles"]
