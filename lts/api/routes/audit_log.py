"""``GET /api/v1/audit`` (admin): the audit trail, newest first, filtered by action, actor,
outcome and a time range (ISO 8601; a time without a zone is UTC), paged (``limit`` at most 500).

Rows are read as committed: an audit row still in the journal's queue shows up a moment later.
On SQLite the ``ts`` column is text of whole seconds in UTC, so the bounds are compared as text
of the same form (a bound is cut to the second); other databases compare timestamps.
"""

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query
from sqlalchemy import String, func, select, type_coerce
from sqlalchemy.sql.elements import ColumnElement

from lts.api.admin_schemas import AuditEntry, AuditPage
from lts.api.deps import AdminUser, ContextDep
from lts.persistence.tables import audit_logs

router = APIRouter(prefix="/api/v1", tags=["audit"])

Text64 = Annotated[str | None, Query(min_length=1, max_length=64)]


def _utc(ts: datetime) -> datetime:
    return ts.astimezone(UTC) if ts.tzinfo is not None else ts.replace(tzinfo=UTC)


def _bound(dialect: str, ts: datetime, after: bool) -> ColumnElement[bool]:
    utc = _utc(ts)
    if dialect == "sqlite":
        column: Any = type_coerce(audit_logs.c.ts, String)
        value: Any = utc.strftime("%Y-%m-%d %H:%M:%S")
    else:
        column, value = audit_logs.c.ts, utc
    return column >= value if after else column <= value  # type: ignore[no-any-return]


@router.get("/audit", response_model=AuditPage)
async def list_audit(ctx: ContextDep, who: AdminUser, action: Text64 = None,
                     actor: Text64 = None, outcome: Annotated[str | None, Query(
                         min_length=1, max_length=16)] = None,
                     since: datetime | None = None, until: datetime | None = None,
                     limit: Annotated[int, Query(ge=1, le=500)] = 100,
                     offset: Annotated[int, Query(ge=0)] = 0) -> AuditPage:
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
        rows = (await conn.execute(
            select(audit_logs).where(*where)
            .order_by(audit_logs.c.ts.desc(), audit_logs.c.id.desc())
            .limit(limit).offset(offset))).mappings().all()
    items = [AuditEntry(id=r["id"], ts=_utc(r["ts"]), actor=r["actor"], action=r["action"],
                        target=r["target"], client_address=r["client_address"],
                        outcome=r["outcome"], detail=dict(r["detail"] or {}))
             for r in rows]
    return AuditPage(items=items, total=total, limit=limit, offset=offset)
