"""``GET /api/v1/audit`` (admin): the audit trail, newest first, filtered by action, actor,
outcome and a time range (ISO 8601; a time without a zone is UTC), paged (``limit`` at most 500).

Rows are read as committed: an audit row still in the journal's queue shows up a moment later.
A page is up to 500 rows of JSON: the database is read on the loop (the driver waits in its own
thread), while decoding the rows, building the models and encoding the answer run in a worker
thread, so a big page does not stall trading for milliseconds.
On SQLite the ``ts`` column is text of whole seconds in UTC, so the bounds are compared as text
of the same form (a bound is cut to the second); other databases compare timestamps.
"""

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import anyio
from fastapi import APIRouter, Query, Response
from pydantic import AfterValidator, BeforeValidator
from sqlalchemy import Result, String, func, select, type_coerce
from sqlalchemy.sql.elements import ColumnElement

from lts.api.admin_schemas import AuditEntry, AuditPage
from lts.api.deps import AdminUser
from lts.api.portfolio_schemas import PRINTABLE, Offset
from lts.persistence.tables import audit_logs

router = APIRouter(prefix="/api/v1", tags=["audit"])

Text64 = Annotated[str | None, Query(min_length=1, max_length=64, pattern=PRINTABLE)]


def _utc(ts: datetime) -> datetime:
    return ts.astimezone(UTC) if ts.tzinfo is not None else ts.replace(tzinfo=UTC)


def _iso(value: object) -> object:
    """Only ISO 8601 text: a bare number would be read as seconds since the epoch."""
    if isinstance(value, str) and value.strip().lstrip("+-").replace(".", "", 1).isdigit():
        raise ValueError("an ISO 8601 date and time, e.g. 2026-01-31T12:00:00Z")
    return value


def _in_utc(ts: datetime | None) -> datetime | None:
    """The bound in UTC; a time that has none (0001-01-01T00:00+01:00) is refused."""
    try:
        return None if ts is None else _utc(ts)
    except OverflowError:
        raise ValueError("out of range once in UTC") from None


Bound = Annotated[datetime | None, BeforeValidator(_iso), AfterValidator(_in_utc),
                  Query(description="ISO 8601; a time without a zone is UTC")]


def _bound(dialect: str, ts: datetime, after: bool) -> ColumnElement[bool]:
    utc = _utc(ts)
    if dialect == "sqlite":
        column: Any = type_coerce(audit_logs.c.ts, String)
        value: Any = utc.isoformat(sep=" ", timespec="seconds")[:19]  # years < 1000 padded
    else:
        column, value = audit_logs.c.ts, utc
    return column >= value if after else column <= value  # type: ignore[no-any-return]


def _page_json(result: Result[Any], total: int, limit: int, offset: int) -> bytes:
    """The page as JSON, from the fetched rows (in a worker thread: pure CPU)."""
    items = [AuditEntry(id=r["id"], ts=_utc(r["ts"]), actor=r["actor"], action=r["action"],
                        target=r["target"], client_address=r["client_address"],
                        outcome=r["outcome"], detail=dict(r["detail"] or {}))
             for r in result.mappings().all()]
    return AuditPage(items=items, total=total, limit=limit, offset=offset).model_dump_json(
    ).encode()


@router.get("/audit", response_model=AuditPage)
async def list_audit(caller: AdminUser, action: Text64 = None, actor: Text64 = None,
                     outcome: Literal["success", "failure", "denied"] | None = None,
                     since: Bound = None, until: Bound = None,
                     limit: Annotated[int, Query(ge=1, le=500)] = 100,
                     offset: Offset = 0) -> Response:
    ctx = caller.ctx
    db = ctx.engine.db
    where: list[ColumnElement[bool]] = []
    if action is not None:
        where.append(audit_logs.c.action == action)
    if actor is not None:
        where.append(audit_logs.c.actor == actor)
    if outcome is not None:
        where.append(audit_logs.c.outcome == outcome)
    if since is not None:
        where.append(_bound(db.dialect.name, since, after=True))
    if until is not None:
        where.append(_bound(db.dialect.name, until, after=False))
    async with db.connect() as conn:
        total = int((await conn.execute(
            select(func.count()).select_from(audit_logs).where(*where))).scalar_one())
        result = await conn.execute(
            select(audit_logs).where(*where)
            .order_by(audit_logs.c.ts.desc(), audit_logs.c.id.desc())
            .limit(limit).offset(offset))
        body = await anyio.to_thread.run_sync(_page_json, result, total, limit, offset)
    return Response(body, media_type="application/json")
