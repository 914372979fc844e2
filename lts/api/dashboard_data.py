"""The dashboard's two read routes (``/api/v1/dashboard/...``): what the pages need that the
REST API answers only row by row, in one request each.

Where it sits: API routes like the others (same bearer token, same visibility rule: an admin
sees every portfolio, anyone else their own; another's answers 404). ``overview`` is a row per
visible portfolio with the supervisor's live figures, so the overview page makes one request
for 500 portfolios, not 500. ``activity`` is one portfolio's equity curve (a point per fill,
downsampled, then the last mark), today's P&L, its recent fills and the journal's last event
sequence number, read *before* the rest, so a WebSocket subscription from that number misses
nothing that happened after the snapshot (events already in it come again; the page applies
them idempotently). The curve is kept per watched portfolio and brought up to date with the
fills since the last request (:mod:`lts.api.dashboard_curve`); a page that has bars asks only
for newer ones (``bars_after``), each bar encoded once for all pages
(:mod:`lts.api.dashboard_bars`). The answer is encoded with msgspec, in the shape the response
model documents: on the trading loop, pydantic building and checking it cost milliseconds.
"""

from decimal import Decimal
from typing import Annotated

import msgspec
from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel, Field
from sqlalchemy import func, select

from lts.api.dashboard_bars import BarCharts
from lts.api.dashboard_curve import EquityCurves
from lts.api.dashboard_opening import FILL_COLUMNS, OpeningEquity
from lts.api.deps import CurrentUser
from lts.api.portfolio_schemas import PathId
from lts.api.routes.portfolios import owned
from lts.domain.orders import OPEN_STATUSES
from lts.persistence import portfolio_store as store
from lts.persistence.tables import fills, order_events, orders, positions

router = APIRouter(prefix="/api/v1/dashboard", tags=["dashboard"])
_encode = msgspec.json.Encoder(decimal_format="string").encode

#: The curve sent to the page: at most this many points (a chart is a few hundred pixels wide).
CURVE_POINTS = 600
_OPEN = sorted(s.value for s in OPEN_STATUSES)


class OverviewRow(BaseModel):
    id: int
    name: str
    owner_id: int | None
    is_active: bool
    status: str = Field(description="the runner's status, else the stored one")
    trading_state: str
    equity: Decimal | None = Field(description="the running ledger's equity (null: not running)")
    today_pnl: float | None = Field(description="equity less the equity at 00:00 UTC (its fills "
                                    "until then at their prices; null: not running)")
    realized_pnl: Decimal | None
    initial_cash: Decimal
    open_positions: int
    open_orders: int
    fills: int
    last_tick_ns: int | None
    last_error: str | None


class CurvePoint(BaseModel):
    t: int = Field(description="nanoseconds since the epoch")
    equity: float


class BarPoint(BaseModel):
    t: int = Field(description="the bar's time, nanoseconds since the epoch")
    open: float
    high: float
    low: float
    close: float


class FillRow(BaseModel):
    trade_id: str
    client_order_id: str
    symbol: str
    side: str
    quantity: Decimal
    price: Decimal
    fee: Decimal
    ts_event: int


_FILL_FIELDS = tuple(FillRow.model_fields)


class Activity(BaseModel):
    portfolio_id: int
    last_seq: int = Field(description="the journal's last order event of the portfolio when the "
                          "snapshot was read: subscribe the WebSocket with it as since")
    initial_cash: Decimal
    equity: Decimal | None
    today_pnl: float | None = Field(description="equity now less equity at 00:00 UTC (null: "
                                    "not running)")
    curve: list[CurvePoint]
    fills: list[FillRow] = Field(description="the most recent fills, oldest first")
    marks: dict[str, Decimal] = Field(description="the running portfolio's last prices")
    bars: dict[str, list[BarPoint]] = Field(
        description="per asset, the latest bars of its live feed (500 at most)")


@router.get("/overview", response_model=list[OverviewRow])
async def overview(request: Request, caller: CurrentUser) -> list[OverviewRow]:
    """Every portfolio the caller may see with its live figures: four queries in all (and once
    a day the fills before midnight, for the opening equity)."""
    ctx, who = caller
    owner = None if who.role == "admin" else who.user_id
    rows = await store.list_portfolios(ctx.reader, owner)
    opening = await _openings(request).of(ctx.reader, rows)
    ids = [r["id"] for r in rows]
    # quantities are text on SQLite: compared as decimals here, not in SQL
    held = await ctx.reader.all(select(positions.c.portfolio_id, positions.c.quantity)
                                .where(positions.c.portfolio_id.in_(ids)))
    working = await ctx.reader.all(
        select(orders.c.portfolio_id, func.count().label("n"))
        .where(orders.c.portfolio_id.in_(ids), orders.c.status.in_(_OPEN))
        .group_by(orders.c.portfolio_id))
    filled = await ctx.reader.all(
        select(fills.c.portfolio_id, func.count().label("n"))
        .where(fills.c.portfolio_id.in_(ids)).group_by(fills.c.portfolio_id))
    n_held: dict[int, int] = {}
    for r in held:
        if r["quantity"] != 0:
            n_held[r["portfolio_id"]] = n_held.get(r["portfolio_id"], 0) + 1
    n_working = {r["portfolio_id"]: int(r["n"]) for r in working}
    n_fills = {r["portfolio_id"]: int(r["n"]) for r in filled}
    out = []
    for row in rows:
        pid = row["id"]
        state = ctx.engine.state(pid)
        running = state is not None and state.status == "running"
        out.append(OverviewRow(
            id=pid, name=row["name"], owner_id=row["owner_id"], is_active=row["is_active"],
            status=state.status if state is not None else row["status"],
            trading_state=(state.trading_state if state is not None and state.trading_state
                           else row["trading_state"]),
            equity=state.equity if state is not None else None,
            today_pnl=(float(state.equity) - opening[pid]
                       if state is not None and state.equity is not None else None),
            realized_pnl=state.realized_pnl if state is not None else None,
            initial_cash=row["initial_cash"], open_positions=n_held.get(pid, 0),
            open_orders=(state.open_orders if running and state is not None
                         else n_working.get(pid, 0)),
            fills=n_fills.get(pid, 0),
            last_tick_ns=state.last_tick_ns if state is not None else None,
            last_error=state.last_error if state is not None else row["last_error"]))
    return out


@router.get("/portfolios/{portfolio_id}/activity", response_model=Activity)
async def activity(
        portfolio_id: PathId, request: Request, caller: CurrentUser,
        recent: Annotated[int, Query(ge=1, le=1000)] = 200,
        bars_after: Annotated[int, Query(ge=0, le=2**63 - 1, description=(
            "only bars later than this time (ns since the epoch): a page that has the bars "
            "until then asks for the new ones"))] = 0) -> Response:
    """The portfolio's figures, equity curve, recent fills and its assets' latest bars."""
    ctx, who = caller
    row = await owned(ctx, who, portfolio_id)
    await ctx.engine.flush()
    top = await ctx.reader.first(select(func.max(order_events.c.seq).label("seq"))
                                 .where(order_events.c.portfolio_id == portfolio_id))
    last_seq = int(top["seq"] or 0) if top is not None else 0
    marks = ctx.engine.last_prices(portfolio_id)
    points, at_marks = await _curves(request).of(ctx.reader, portfolio_id,
                                                 Decimal(row["initial_cash"]), marks)
    tail = await ctx.reader.all(
        select(fills.c.trade_id, fills.c.client_order_id, fills.c.ts_event, *FILL_COLUMNS)
        .where(fills.c.portfolio_id == portfolio_id).order_by(fills.c.id.desc())
        .limit(recent))
    state = ctx.engine.state(portfolio_id)
    equity = state.equity if state is not None else None
    curve = [{"t": t, "equity": e} for t, e in _downsample(points, CURVE_POINTS)]
    if curve:  # then the book at the marks, now
        now_ns = state.last_tick_ns if state is not None and state.last_tick_ns else 0
        curve.append({"t": max(now_ns, curve[-1]["t"]), "equity": at_marks})
    opening = (await _openings(request).of(ctx.reader, [row]))[portfolio_id]
    today = float(equity) - opening if equity is not None else None
    # encoded here (msgspec), not through the response model: pydantic building and checking
    # 600 curve points was milliseconds of the trading loop per request (the model documents
    # the same shape)
    return Response(_encode({
        "portfolio_id": portfolio_id, "last_seq": last_seq,
        "initial_cash": Decimal(row["initial_cash"]), "equity": equity, "today_pnl": today,
        "curve": curve,
        "fills": [{k: r[k] for k in _FILL_FIELDS} for r in reversed(tail)], "marks": marks,
        "bars": _bars(request).after(portfolio_id, ctx.engine.recent_bars(portfolio_id),
                                     bars_after)}),
        media_type="application/json")


def _curves(request: Request) -> EquityCurves:
    curves: EquityCurves = request.app.state.dashboard_curves
    return curves


def _bars(request: Request) -> BarCharts:
    bars: BarCharts = request.app.state.dashboard_bars
    return bars


def _openings(request: Request) -> OpeningEquity:
    openings: OpeningEquity = request.app.state.dashboard_openings
    return openings


def _downsample(curve: list[tuple[int, float]], limit: int) -> list[tuple[int, float]]:
    """At most ``limit`` points, the first and the last kept (an even stride between)."""
    if len(curve) <= limit:
        return curve
    step = (len(curve) - 1) / (limit - 1)
    return [curve[round(i * step)] for i in range(limit)]
