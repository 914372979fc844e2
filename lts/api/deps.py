"""The HTTP edge's dependencies (``Depends`` stops here; the engine uses constructor injection):
the app's context, and the caller with their role checked.

A route that needs a signed-in user takes one :class:`Caller` (the context and the
:class:`Principal`) from one dependency: ``CurrentUser`` (any role), ``TraderUser`` (admin or
trader) or ``AdminUser``. One dependency rather than a chain of them, because FastAPI solves every
dependency node anew on each request (a cache key, generator checks, the request's parameters:
about a tenth of a cheap request per node). Without a valid bearer token of an open session the
answer is 401 (code ``unauthenticated``); with a role not among those allowed, 403 (code
``forbidden``). Both are audited when the request would change something; a 403 always is.
"""

from dataclasses import dataclass
from typing import Annotated, NamedTuple

from fastapi import Depends, HTTPException, Request
from fastapi.security import OAuth2PasswordBearer

from lts.api import security
from lts.api.audit import audit, request_address
from lts.api.context import ApiContext

_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
ROLES = frozenset({"admin", "trader", "viewer"})


@dataclass(frozen=True)
class Principal:
    user_id: int
    username: str
    role: str  # "admin" | "trader" | "viewer"
    session_id: str


class Caller(NamedTuple):
    """Who calls, and the context they act through: ``ctx, who = caller``."""

    ctx: ApiContext
    who: Principal


# Dependencies are ``async def`` even when they await nothing: FastAPI runs a plain ``def``
# dependency in a worker thread, a hop per request that waits for the GIL behind the trading loop.

async def get_context(request: Request) -> ApiContext:
    ctx: ApiContext = request.app.state.ctx
    return ctx


ContextDep = Annotated[ApiContext, Depends(get_context)]


def client_address(request: Request) -> str:
    return request_address(request)


def _unauthenticated(detail: str = security.InvalidToken.detail) -> HTTPException:
    return HTTPException(401, detail, headers={"WWW-Authenticate": "Bearer"})


class SignedIn(OAuth2PasswordBearer):
    """The caller of a request, from its bearer token and open session, if their role is one of
    ``roles``. Declared in OpenAPI as OAuth2's password flow so the interactive docs can log
    in; every instance is the same scheme there."""

    def __init__(self, *roles: str) -> None:
        assert roles, "name at least one role"
        assert set(roles) <= ROLES, roles
        super().__init__(tokenUrl="/api/v1/auth/login", auto_error=False,
                         scheme_name="BearerSession",
                         description="access token from POST /api/v1/auth/login")
        self.roles = frozenset(roles)

    async def __call__(self, request: Request) -> Caller:  # type: ignore[override]
        ctx: ApiContext = request.app.state.ctx
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        try:
            if scheme.lower() != "bearer" or not token:
                raise security.InvalidToken
            found = await ctx.sessions.user_for_token(token)
        except security.InvalidToken as exc:  # its detail says why (expired, for one)
            if request.method not in _SAFE_METHODS:
                audit(ctx, request, None, "auth.check", request.url.path, "denied",
                      {"method": request.method, "reason": "unauthenticated"})
            raise _unauthenticated(exc.detail) from None
        who = Principal(found.user_id, found.username, found.role, found.session_id)
        if who.role not in self.roles:
            audit(ctx, request, who, "auth.check", request.url.path, "denied",
                  {"method": request.method, "role": who.role, "needs": sorted(self.roles)})
            raise HTTPException(403, "forbidden")
        return Caller(ctx, who)


CurrentUser = Annotated[Caller, Depends(SignedIn("admin", "trader", "viewer"))]
TraderUser = Annotated[Caller, Depends(SignedIn("admin", "trader"))]
AdminUser = Annotated[Caller, Depends(SignedIn("admin"))]

__all__ = ["AdminUser", "Caller", "ContextDep", "CurrentUser", "Principal", "SignedIn",
           "TraderUser", "client_address", "get_context"]
