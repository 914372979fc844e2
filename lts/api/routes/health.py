"""Operational endpoints: ``/healthz`` (the process answers), ``/readyz`` (database reachable,
engine running, which portfolios are in error) and ``/metrics`` (Prometheus text)."""

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel
from sqlalchemy import text

from lts.api.deps import ContextDep

router = APIRouter(tags=["operations"])


class Health(BaseModel):
    status: str


class Readiness(BaseModel):
    ready: bool
    database: bool
    engine_running: bool
    portfolios_running: int
    portfolios_in_error: list[int]


@router.get("/healthz", response_model=Health)
async def healthz() -> Health:
    return Health(status="ok")


@router.get("/readyz", response_model=Readiness, responses={503: {"model": Readiness}})
async def readyz(ctx: ContextDep) -> Response:
    engine = ctx.engine
    try:
        async with engine.db.connect() as conn:
            await conn.execute(text("SELECT 1"))
        database = True
    except Exception:
        database = False
    states = {pid: h.state.status for pid, h in engine.portfolios.items()}
    body = Readiness(
        ready=database and engine.running, database=database, engine_running=engine.running,
        portfolios_running=sum(1 for s in states.values() if s == "running"),
        portfolios_in_error=sorted(pid for pid, s in states.items() if s == "error"))
    return JSONResponse(body.model_dump(), status_code=200 if body.ready else 503)


@router.get("/metrics", response_class=Response)
async def metrics(ctx: ContextDep) -> Response:
    return Response(generate_latest(ctx.metrics.registry), media_type=CONTENT_TYPE_LATEST)
