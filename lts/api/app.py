"""The app factory: routes, error handlers, edge middleware and CORS, built for one engine."""

from typing import TYPE_CHECKING

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from lts import __version__
from lts.api.context import ApiContext
from lts.api.errors import install_error_handlers
from lts.api.metrics import ApiMetrics
from lts.api.middleware import EdgeMiddleware
from lts.api.routes import (
    assets,
    audit_log,
    auth,
    config,
    health,
    orders,
    plugins,
    portfolios,
    stats,
    users,
    ws,
)

if TYPE_CHECKING:
    from lts.engine.engine import Engine


def create_app(engine: "Engine", metrics: ApiMetrics | None = None) -> FastAPI:
    settings = engine.settings.api
    docs = settings.docs
    app = FastAPI(title="LTS", version=__version__, openapi_url="/openapi.json" if docs else None,
                  docs_url="/docs" if docs else None, redoc_url=None)
    metrics = metrics or ApiMetrics(engine)
    app.state.ctx = ApiContext(engine=engine, metrics=metrics)
    install_error_handlers(app)
    app.include_router(health.router)
    app.include_router(auth.router)
    app.include_router(users.router)
    app.include_router(portfolios.router)
    app.include_router(assets.router)
    app.include_router(orders.router)
    app.include_router(ws.router)
    app.include_router(plugins.router)
    app.include_router(audit_log.router)
    app.include_router(config.router)
    app.include_router(stats.router)
    app.add_middleware(CORSMiddleware, allow_origins=list(settings.cors_origins),
                       allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
                       allow_headers=["authorization", "content-type", "x-correlation-id"],
                       allow_credentials=False)
    app.add_middleware(EdgeMiddleware, metrics=metrics, max_body=settings.max_body_bytes)
    return app
