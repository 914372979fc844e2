"""Operational endpoints: ``/healthz`` (the process answers), ``/readyz`` (ready to trade, and
if not, why: the engine is not running, the journal cannot write (database away, disk full),
the database does not answer; which portfolios are in error) and ``/metrics`` (Prometheus
text)."""

import anyio
from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel
from sqlalchemy import text

from lts.api.deps import ContextDep

router = APIRouter(tags=["operations"])
_DATABASE_WITHIN = 2.0  # seconds /readyz waits for the database


class Health(BaseModel):
    status: str


class Readiness(BaseModel):
    ready: bool
    reasons: list[str]
    database: bool
    journal: bool
    engine_running: bool
    portfolios_running: int
    portfolios_in_error: list[int]


@router.get("/healthz", response_model=Health)
async def healthz() -> Health:
    return Health(status="ok")


@router.get("/readyz", response_model=Readiness, responses={503: {"model": Readiness}})
async def readyz(ctx: ContextDep) -> Response:
    engine = ctx.engine
    state = engine.readiness()
    reasons = list(state.reasons)
    database = True
    try:
        with anyio.fail_after(_DATABASE_WITHIN):
            async with engine.db.connect() as conn:
                await conn.execute(text("SELECT 1"))
    except Exception as exc:  # any failure to answer is "not ready", with its kind
        database = False
        reasons.append(f"database does not answer: {type(exc).__name__}")
    body = Readiness(
        ready=not reasons, reasons=reasons, database=database,
        journal=state.journal_available, engine_running=state.engine_running,
        portfolios_running=state.portfolios_running,
        portfolios_in_error=list(state.portfolios_in_error))
    headers = None if body.ready else {"Retry-After": "2"}
    return JSONResponse(body.model_dump(), status_code=200 if body.ready else 503,
                        headers=headers)


@router.get("/metrics", response_class=Response)
async def metrics(ctx: ContextDep) -> Response:
    return Response(generate_latest(ctx.metrics.registry), media_type=CONTENT_TYPE_LATEST)
