"""The route-by-role matrix (issue 3, security): every route of the app has a declared policy,
and the running API enforces it for an anonymous caller, a viewer, a trader and an admin.

A route's policy is read from its dependencies (walked recursively): a ``lts.api.deps.SignedIn``
names the roles it lets in (admin; admin and trader; or every role: any signed-in user), else the
route must be on the explicit public allow-list below. A route with none of these fails
the test, so a new route cannot ship without a decision. Then every route is called over real
HTTP with each role; path parameters get an id that does not exist (so nothing is changed) and
bodies are ``{}``: 404 and 422 mean the call passed the role check.
"""

import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Annotated, Any

import pytest
from fastapi import Depends
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute, APIWebSocketRoute, iter_route_contexts
from starlette.routing import Route
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from lts.api.app import create_app
from lts.api.deps import ROLES, Caller, SignedIn

from .conftest import Api
from .test_portfolios import ADMIN, call, login, make_trader
from .test_websocket import receive, ws_url

pytestmark = pytest.mark.anyio

PUBLIC = frozenset({
    "/healthz", "/readyz", "/metrics", "/openapi.json", "/docs", "/docs/oauth2-redirect",
    "/docs/swagger-ui-bundle.js", "/docs/swagger-ui.css", "/docs/favicon-32x32.png",
    "/api/v1/auth/register", "/api/v1/auth/login", "/api/v1/auth/refresh",
    "/ws/orders",  # authenticates with its first message
    "/", "/dashboard/{asset}",  # the dashboard's page and static files: no data in them
})
#: Capability links (lts.api.routes.reports): the credential is a signed token in the path, never
#: a bearer header, so a made-up token is a 403 whoever calls; called with a well-formed path.
CAPABILITY = {"/reports/{token}/{name}/{file}": "/reports/made-up/sma-x/report.html"}
ADMIN_ONLY = frozenset({"admin"})
TRADERS = frozenset({"admin", "trader"})
MISSING_ID = "999999"  # no such portfolio, asset, user or order: a passed check ends in 404
ENDS_SESSION = frozenset({"/api/v1/auth/logout"})  # called with a throwaway login


@dataclass(frozen=True)
class Endpoint:
    path: str
    methods: tuple[str, ...]  # empty for a WebSocket
    policy: str  # "public" | "authenticated" | "trader" | "admin"


def _calls(dependant: Dependant) -> Iterator[Callable[..., Any]]:
    for dep in dependant.dependencies:
        if dep.call is not None:
            yield dep.call
        yield from _calls(dep)


def policy_of(path: str, dependant: Dependant | None) -> str | None:
    """The route's declared policy, or None when it has no recognizable one."""
    calls = list(_calls(dependant)) if dependant is not None else []
    roles = [c.roles for c in calls if isinstance(c, SignedIn)]
    if roles:
        narrowest = min(roles, key=len)  # several role checks: the narrowest one decides
        if narrowest == ADMIN_ONLY:
            return "admin"
        if narrowest == TRADERS:
            return "trader"
        if narrowest == ROLES:
            return "authenticated"
        return None  # a role set this matrix does not know: decide and add it here
    if path in CAPABILITY:
        return "capability"
    return "public" if path in PUBLIC else None


def endpoints(api: Api) -> list[Endpoint]:
    """Every route of the app the engine serves (``create_app`` is what the ``api`` plugin
    runs), flattened through included routers with their router-level dependencies."""
    found = []
    for context in iter_route_contexts(create_app(api.engine).routes):
        route = context.original_route
        path = str(context.path)
        dependant: Dependant | None = getattr(context, "dependant", None)
        policy = policy_of(path, dependant)
        assert policy is not None, f"{path}: no declared policy (SignedIn roles or PUBLIC)"
        if isinstance(route, APIWebSocketRoute):
            methods: tuple[str, ...] = ()
        elif isinstance(route, Route):
            methods = tuple(sorted((context.methods or set()) - {"HEAD"}))
        else:
            pytest.fail(f"{path}: a route of a kind this matrix does not know: {route!r}")
        found.append(Endpoint(path, methods, policy))
    return found


def test_an_unknown_route_has_no_policy() -> None:
    """The walk recognizes nothing it was not told about."""
    async def handler() -> dict[str, bool]:
        return {"ok": True}

    bare = APIRoute("/api/v1/new-thing", handler).dependant
    assert policy_of("/api/v1/new-thing", bare) is None
    assert policy_of("/healthz", bare) == "public"

    async def viewers_only(caller: Annotated[Caller, Depends(SignedIn("viewer"))]) -> None:
        return None

    odd = APIRoute("/api/v1/new-thing", viewers_only).dependant
    assert policy_of("/api/v1/new-thing", odd) is None  # a role set the matrix does not know


async def test_every_route_declares_a_policy(api: Api) -> None:
    found = endpoints(api)
    by_policy = {p: sorted(e.path for e in found if e.policy == p)
                 for p in ("public", "authenticated", "trader", "admin")}
    assert all(by_policy.values()), by_policy  # each class has members: the walk sees them
    assert {e.path for e in found if e.policy == "public"} == PUBLIC, \
        "the public allow-list names a route that is gone or now has an auth dependency"
    assert "/api/v1/users" in by_policy["admin"]
    assert "/api/v1/portfolios/{portfolio_id}/trading-state" in by_policy["trader"]
    assert "/api/v1/portfolios/{portfolio_id}" in by_policy["authenticated"]


def concrete(path: str) -> str:
    return re.sub(r"\{[^}]+\}", MISSING_ID, path)


async def test_the_running_api_enforces_each_policy_for_each_role(api: Api) -> None:
    admin = await login(api, *ADMIN)
    await make_trader(api, admin, "tina")
    viewer_password = "Viewer-pass-9876"
    reply = await call(api, "POST", "/api/v1/auth/register", {"content-type": "application/json"},
                       {"username": "vic", "email": "vic@example.org",
                        "password": viewer_password})
    assert reply.status == 201, reply.body
    credentials = {"admin": ADMIN, "trader": ("tina", "Tina-pass-9876"),
                   "viewer": ("vic", viewer_password)}
    tokens = {role: await login(api, *cred) for role, cred in credentials.items()}
    tokens["anonymous"] = {"content-type": "application/json"}

    allowed = {"public": {"anonymous", "viewer", "trader", "admin"},
               "authenticated": {"viewer", "trader", "admin"},
               "trader": {"trader", "admin"}, "admin": {"admin"}}
    failures: list[str] = []
    checked = 0
    for endpoint in endpoints(api):
        for method in endpoint.methods:
            path = CAPABILITY.get(endpoint.path) or concrete(endpoint.path)
            body = {} if method in {"POST", "PUT", "PATCH"} else None
            for role in ("anonymous", "viewer", "trader", "admin"):
                auth = tokens[role]
                if endpoint.path in ENDS_SESSION and role != "anonymous":
                    auth = await login(api, *credentials[role])
                status = (await call(api, method, path, auth, body)).status
                checked += 1
                if endpoint.policy == "capability":
                    ok = status == 403  # a bearer token opens no report
                elif role in allowed[endpoint.policy]:
                    ok = status not in (401, 403)
                else:
                    ok = status == (401 if role == "anonymous" else 403)
                if not ok:
                    failures.append(f"{method} {endpoint.path} ({endpoint.policy}) as {role}: "
                                    f"{status}")
    assert not failures, "\n".join(failures)
    assert checked >= 4 * 25

    # the WebSocket is public at the handshake and authenticates with its first message
    async with connect(ws_url(api)) as ws:
        await ws.send(json.dumps({"action": "subscribe", "since": {"1": 0}}))
        with pytest.raises(ConnectionClosed) as closed:
            await receive(ws)
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 1008
    async with connect(ws_url(api)) as ws:
        access = tokens["viewer"]["authorization"].removeprefix("Bearer ")
        await ws.send(json.dumps({"action": "auth", "token": access}))
        await ws.send(json.dumps({"action": "subscribe", "since": {"1": 0}}))
        msg = await receive(ws)
        assert msg == {"type": "subscribed", "portfolios": [], "refused": [1]}  # not hers
