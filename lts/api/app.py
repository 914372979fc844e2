"""The app factory: routes, error handlers, edge middleware, admission control and CORS, built
for one engine (through its facade: the API's only door into it)."""

from typing import Any

from fastapi import APIRouter, FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.openapi.utils import get_openapi

from lts import __version__
from lts.api.admission import AdmissionMiddleware
from lts.api.context import ApiContext
from lts.api.dashboard import add_dashboard
from lts.api.docs import add_docs
from lts.api.errors import document_errors, install_error_handlers
from lts.api.metrics import ApiMetrics
from lts.api.middleware import EdgeMiddleware
from lts.api.portfolio_rows import PortfolioRows
from lts.api.routes import (
    assets,
    audit_log,
    auth,
    config,
    credentials,
    health,
    orders,
    plugins,
    portfolios,
    reports,
    stats,
    users,
    webhooks,
    ws,
)
from lts.api.sessions import SessionCache
from lts.engine.facade import EngineFacade
from lts.persistence.reader import Reader


def create_app(engine: EngineFacade, metrics: ApiMetrics | None = None) -> FastAPI:
    settings = engine.settings.api
    docs = settings.docs if settings.docs is not None else engine.settings.profile != "prod"
    # LTS exports its own Prometheus metrics; FastAPI's OpenTelemetry bridge stays off (it looks
    # for configured providers on every request)
    app = FastAPI(title="LTS", version=__version__, openapi_url="/openapi.json" if docs else None,
                  docs_url=None, redoc_url=None,  # /docs: served from this package
                  telemetry={"tracing": False, "metrics": False, "logs": False})
    metrics = metrics or ApiMetrics(engine)
    ttl = settings.cache_seconds
    reader = Reader(engine.db, settings.read_threads)
    app.state.ctx = ApiContext(engine=engine, metrics=metrics,
                               sessions=SessionCache(engine.db, engine.settings.auth, ttl),
                               portfolios=PortfolioRows(engine.db, reader, ttl), reader=reader)
    install_error_handlers(app)
    if docs:
        add_docs(app, "/openapi.json")
    # Most used first: a request is matched against the routes in this order.
    for module in (portfolios, orders, assets, auth, ws, health, users, plugins, audit_log,
                   config, stats, credentials, webhooks, reports):
        _add_routes(app, module.router)
    add_dashboard(app)
    _document_errors(app)
    if settings.cors_origins:  # without any, no cross-origin request is let in: nothing to add
        app.add_middleware(CORSMiddleware, allow_origins=list(settings.cors_origins),
                           allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
                           allow_headers=["authorization", "content-type", "x-correlation-id"],
                           allow_credentials=False)
    # the last added runs first: edge (correlation id, headers) -> admission -> CORS -> routes
    app.add_middleware(AdmissionMiddleware, metrics=metrics,
                       max_concurrent=settings.max_concurrent_requests,
                       rate_per_second=settings.rate_limit_per_second,
                       burst=settings.rate_limit_burst)
    app.add_middleware(EdgeMiddleware, metrics=metrics, max_body=settings.max_body_bytes)
    return app


def _document_errors(app: FastAPI) -> None:
    """The app's OpenAPI schema with every error answer its operations can give (built once,
    on first request of ``/openapi.json``)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(title=app.title, version=app.version, routes=app.routes)
            document_errors(schema, app.routes)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def _add_routes(app: FastAPI, router: APIRouter) -> None:
    """Put ``router``'s routes on the app itself. ``include_router`` keeps the router as a
    node that is matched route by route at request time, and matched again to dispatch: about
    half of an authenticated request's time in this FastAPI version. The module routers carry
    no dependencies or settings of their own (their prefix and tags are already in each route),
    so the routes are the same routes either way."""
    assert not router.dependencies, "a router with dependencies must be included"
    app.router.routes.extend(router.routes)
