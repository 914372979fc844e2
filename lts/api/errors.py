"""One place maps errors to HTTP answers: a stable ``code``, a safe ``detail``, the request's
correlation id. A 5xx never carries ``str(exc)``: the log gets the detail, the client the id.
"""

import contextlib
import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException

from lts.api import security
from lts.api.audit import audit
from lts.errors import (
    ConfigError,
    Conflict,
    InvalidParams,
    LtsError,
    PluginNotFound,
    Unavailable,
)

log = logging.getLogger("lts.api")


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
    audit(ctx, request, None, action, request.url.path, "failure",
          {"method": request.method, "user_id": user_id, **detail})


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        if request.scope.get("endpoint") is None:  # no route took it (404, 405)
            _audit_rejected(request, "request.unrouted", {"status": exc.status_code})
        code = {401: "unauthenticated", 403: "forbidden", 404: "not_found", 405: "not_allowed",
                409: "conflict", 429: "too_many_requests"}.get(exc.status_code, "http_error")
        return _answer(request, exc.status_code, code, exc.detail,
                       dict(exc.headers) if exc.headers else None)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [{"field": ".".join(str(p) for p in e.get("loc", ()) if p != "body"),
                   "message": e.get("msg", "invalid")} for e in exc.errors()]
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
            return _answer(request, 422, "invalid_request", str(exc))
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
