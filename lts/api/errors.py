"""One place maps errors to HTTP answers: a stable ``code``, a safe ``detail``, the request's
correlation id. A 5xx never carries ``str(exc)``: the log gets the detail, the client the id.

Where it sits: the app's exception handlers, and the error answers of its OpenAPI schema
(:func:`document_errors`), so that what the schema documents is what the API sends. Two shapes:
a 422 is :class:`InvalidRequest` (``detail`` lists ``{field, message}``, the field dotted, a
query or path parameter prefixed ``query.``/``path.``); every other error is :class:`Problem`
(``detail`` a sentence). A 405 carries ``Allow`` with every method of the path.
"""

import contextlib
import logging
from collections.abc import Iterator
from typing import Any

from fastapi import FastAPI, Request
from fastapi.dependencies.models import Dependant
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from pydantic import BaseModel, Field
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException

from lts.api import security
from lts.api.audit import audit
from lts.api.deps import ROLES, SignedIn
from lts.errors import (
    ConfigError,
    Conflict,
    InvalidParams,
    LtsError,
    PluginNotFound,
    Unavailable,
)

log = logging.getLogger("lts.api")


class FieldError(BaseModel):
    field: str = Field(description="the offending field, dotted (a query or path parameter is "
                       "prefixed query. or path.), e.g. limit_price or query.offset")
    message: str


class Problem(BaseModel):
    """Every error answer but a 422."""

    detail: str = Field(description="what went wrong, safe to show")
    code: str = Field(description="stable: unauthenticated, forbidden, not_found, not_allowed, "
                      "conflict, too_many_requests, rate_limited, body_too_large, unavailable, "
                      "overloaded, bad_request...")
    correlation_id: str = Field(description="the request's id, as in the server's log")


class InvalidRequest(BaseModel):
    """A 422: the request is well-formed but some of its values are not acceptable."""

    detail: list[FieldError]
    code: str = Field(description="invalid_request or invalid_params")
    correlation_id: str


def correlation_id(request: Request) -> str:
    return str(request.scope.get("state", {}).get("correlation_id", ""))


def _answer(request: Request, status: int, code: str, detail: object,
            headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"detail": detail, "code": code,
                         "correlation_id": correlation_id(request)},
                        status_code=status, headers=headers)


_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def _audit_rejected(request: Request, action: str, detail: dict[str, object]) -> None:
    """A mutating request refused before any handler ran still leaves an audit row. The caller
    is named by the user id in its token when the token decodes (no database read here)."""
    if request.method in _SAFE_METHODS:
        return
    ctx = request.app.state.ctx
    header = request.headers.get("authorization", "")
    user_id: int | None = None
    if header.lower().startswith("bearer "):
        with contextlib.suppress(security.InvalidToken):
            user_id = ctx.sessions.decode(header[7:])[0]
    audit(ctx, request, None, action, security.redact_url_credentials(request.url.path),
          "failure", {"method": request.method, "user_id": user_id, **detail})


def _field(loc: tuple[Any, ...] | list[Any]) -> str:
    return ".".join(str(p) for p in loc if p != "body")


def _allow(request: Request) -> str:
    """Every method some route of the request's path answers (Starlette's 405 names only those
    of the first route that matched the path)."""
    path = request.url.path
    methods: set[str] = set()
    for route in request.app.router.routes:
        regex, known = getattr(route, "path_regex", None), getattr(route, "methods", None)
        if regex is not None and known and regex.match(path):
            methods |= known
    return ", ".join(sorted(methods))


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        if request.scope.get("endpoint") is None:  # no route took it (404, 405)
            _audit_rejected(request, "request.unrouted", {"status": exc.status_code})
        code = {400: "bad_request", 401: "unauthenticated", 403: "forbidden",
                404: "not_found", 405: "not_allowed", 409: "conflict", 415: "unsupported_media",
                429: "too_many_requests"}.get(exc.status_code, "http_error")
        headers = dict(exc.headers) if exc.headers else {}
        if exc.status_code == 405:
            headers["Allow"] = _allow(request)
        if exc.status_code == 422:
            return _answer(request, 422, "invalid_request",
                           [{"field": "", "message": str(exc.detail)}], headers or None)
        return _answer(request, exc.status_code, code, str(exc.detail), headers or None)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [{"field": _field(e.get("loc", ())),
                   "message": str(e.get("msg", "invalid")).removeprefix("Value error, ")}
                  for e in exc.errors()]
        _audit_rejected(request, "request.invalid", {"fields": [e["field"] for e in errors]})
        return _answer(request, 422, "invalid_request", errors)

    @app.exception_handler(LtsError)
    async def lts_error(request: Request, exc: LtsError) -> JSONResponse:
        if isinstance(exc, Unavailable):
            return _answer(request, 503, "unavailable", str(exc),
                           {"Retry-After": str(exc.retry_after)})
        if isinstance(exc, InvalidParams):
            return _answer(request, 422, "invalid_params",
                           [{"field": exc.field, "message": str(exc)}])
        if isinstance(exc, Conflict):
            return _answer(request, 409, "conflict", str(exc))
        if isinstance(exc, PluginNotFound | ConfigError):
            return _answer(request, 422, "invalid_request", [{"field": "", "message": str(exc)}])
        return _answer(request, 400, "bad_request", str(exc))

    async def database_error(request: Request, exc: Exception) -> JSONResponse:
        """The database is away: 503, and one warning line (no traceback: an outage is not a
        bug). Any other database error is re-raised: a 500 with its detail in the log."""
        if not _database_away(exc):
            raise exc
        log.warning("database unavailable on %s %s (correlation id %s): %s",
                    request.method, request.url.path, correlation_id(request),
                    type(exc).__name__)
        return _answer(request, 503, "unavailable", "the database is unavailable",
                       {"Retry-After": "2"})

    # handled here, not by the catch-all below (Starlette re-raises what reaches that one, and
    # the server logs it as a traceback)
    for kind in (DBAPIError, PoolTimeout, ConnectionError, OSError):
        app.add_exception_handler(kind, database_error)

    @app.exception_handler(Exception)
    async def internal(request: Request, exc: Exception) -> JSONResponse:
        cid = correlation_id(request)
        log.error("internal error on %s %s (correlation id %s)", request.method,
                  request.url.path, cid, exc_info=exc)
        return _answer(request, 500, "internal_error", "internal error")


def _database_away(exc: BaseException) -> bool:
    """The database could not be reached or dropped the connection (not a bad query)."""
    if isinstance(exc, PoolTimeout | ConnectionError | OSError):
        return True
    if isinstance(exc, DBAPIError):
        if exc.connection_invalidated or isinstance(exc.orig, ConnectionError | OSError):
            return True
        return isinstance(exc, OperationalError | InterfaceError)
    return False


# -- the error answers in the OpenAPI schema --------------------------------------------------
_DESCRIPTIONS = {
    400: "Malformed request (a body that cannot be read)",
    401: "No valid access token (missing, expired or of an ended session)",
    403: "The caller's role may not do this",
    404: "Not found, or not the caller's",
    409: "The current state forbids it",
    413: "Request body too large",
    415: "Unsupported content type",
    422: "A value is not acceptable: each offending field is named",
    429: "Too many requests: retry after Retry-After seconds",
    503: "Not now (database or journal unavailable, server busy): retry after Retry-After "
         "seconds",
}

#: What routes of modules that declare no ``responses`` raise themselves (the auth routes).
_RAISED: dict[tuple[str, str], tuple[int, ...]] = {
    ("POST", "/api/v1/auth/register"): (403, 409),
    ("POST", "/api/v1/auth/login"): (400, 401, 413, 415, 422, 429),
    ("POST", "/api/v1/auth/refresh"): (401,),
    ("GET", "/api/v1/auth/me"): (401,),
    ("POST", "/api/v1/auth/password"): (403,),
}


def answers(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """A route's ``responses=``: the error statuses it raises itself. Their bodies, and the
    statuses every route of its kind can answer (401, 403, 404, 422, 429, 503...), are added
    by :func:`document_errors`."""
    return {status: {"description": _DESCRIPTIONS[status]} for status in statuses}


def _roles(dependant: Dependant) -> frozenset[str] | None:
    """The roles the route's :class:`~lts.api.deps.SignedIn` dependency lets in, if any."""
    for dep in dependant.dependencies:
        if isinstance(dep.call, SignedIn):
            return dep.call.roles
        roles = _roles(dep)
        if roles is not None:
            return roles
    return None


def _flat(dependant: Dependant) -> Iterator[Dependant]:
    yield dependant
    for dep in dependant.dependencies:
        yield from _flat(dep)


def _statuses(route: APIRoute) -> set[int]:
    """The error statuses any route like ``route`` can answer: admission control's 429 and
    503, the database's 503, its role check's 401 and 403, 404 for a path naming something,
    422 for a parameter or body refused, 413 for a body too large."""
    statuses = {429, 503}
    roles = _roles(route.dependant)
    if roles is not None:
        statuses.add(401)
        if roles != ROLES:
            statuses.add(403)
    parts = list(_flat(route.dependant))
    if any(d.path_params for d in parts):
        statuses |= {404, 422}
    if any(d.query_params for d in parts):
        statuses.add(422)
    if any(d.body_params for d in parts):
        statuses |= {400, 413, 422}  # 400: a body that is not text
    return statuses


def _ref(model: type[BaseModel]) -> dict[str, Any]:
    return {"application/json": {"schema": {"$ref": f"#/components/schemas/{model.__name__}"}}}


def document_errors(schema: dict[str, Any], routes: list[Any]) -> None:
    """Put every error answer of every operation in ``schema`` (FastAPI's own: only its 422,
    with a body the API never sends): 422 is :class:`InvalidRequest`, any other error
    :class:`Problem` unless the route declared a model of its own."""
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    for model in (FieldError, Problem, InvalidRequest):
        spec = model.model_json_schema(ref_template="#/components/schemas/{model}")
        components.update(spec.pop("$defs", {}))
        components[model.__name__] = spec
    for name in ("HTTPValidationError", "ValidationError"):
        components.pop(name, None)
    for route in routes:
        if not isinstance(route, APIRoute) or not route.include_in_schema:
            continue
        for method in route.methods or ():
            operation = schema["paths"][route.path_format][method.lower()]
            responses = operation.setdefault("responses", {})
            raised = _RAISED.get((method, route.path_format), ())
            for status in sorted(_statuses(route) | set(raised)):
                responses.setdefault(str(status), {"description": _DESCRIPTIONS[status]})
            for key, response in responses.items():
                if key == "422":
                    response["content"] = _ref(InvalidRequest)
                    response["description"] = _DESCRIPTIONS[422]
                elif key[0] in "45":
                    content = response.get("content", {})
                    if not any(c.get("schema") for c in content.values()):
                        response["content"] = _ref(Problem)
