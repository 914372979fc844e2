"""``/api/v1/portfolios``: the portfolio lifecycle, the kill switch, positions and status.

A trader sees and changes only the portfolios they own (another's answers 404, nothing changes);
an admin sees all; a viewer reads their own. Starting, stopping and restarting go to the
portfolio's supervisor through the engine's facade and touch no other portfolio; the kill switch
is a command its runner answers once the new state is durable. Every change is audited,
failures included.
"""

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from decimal import Decimal
from typing import Any

import anyio
from fastapi import APIRouter, HTTPException, Request, status
from pydantic import TypeAdapter, ValidationError

from lts.api.audit import audit
from lts.api.context import ApiContext
from lts.api.deps import CurrentUser, Principal, TraderUser
from lts.api.errors import answers
from lts.api.portfolio_schemas import (
    AssetPnl,
    PathId,
    PortfolioAnalytics,
    PortfolioCreate,
    PortfolioPublic,
    PortfolioStatus,
    PortfolioUpdate,
    PositionPublic,
    TradingStateChange,
    portfolio_public,
)
from lts.api.ticks import to_tick
from lts.domain.analytics import analyze
from lts.domain.commands import Denied, SetTradingState, TradingState
from lts.errors import Conflict, InvalidParams, JournalUnavailable, PluginNotFound
from lts.persistence import portfolio_store as store
from lts.persistence import repositories as repo
from lts.settings import RiskLimits

router = APIRouter(prefix="/api/v1/portfolios", tags=["portfolios"])
_POSITION_LIST = TypeAdapter(list[PositionPublic])  # the declared fields of each row only


async def owned(ctx: ApiContext, who: Principal, portfolio_id: int) -> Mapping[str, Any]:
    """The portfolio's row if ``who`` may see it; 404 otherwise (no hint that it exists)."""
    row = await ctx.portfolios.get(portfolio_id)
    if row is None or (who.role != "admin" and row["owner_id"] != who.user_id):
        raise HTTPException(status.HTTP_404_NOT_FOUND, "portfolio not found")
    return row


def _public(ctx: ApiContext, row: Mapping[str, Any]) -> PortfolioPublic:
    """The row as the API shows it, with the supervisor's live status and last error (fresher
    than the row, which the engine writes through the journal)."""
    state = ctx.engine.state(row["id"])
    if state is None:
        return portfolio_public(row)
    return portfolio_public({**row, "status": state.status, "last_error": state.last_error})


@asynccontextmanager
async def audited(ctx: ApiContext, request: Request, who: Principal, action: str,
                  target: str) -> AsyncIterator[dict[str, Any]]:
    """Audit the change inside the block: success, or failure with the error's class."""
    detail: dict[str, Any] = {}
    try:
        yield detail
    except Exception as exc:
        detail["error"] = type(exc).__name__
        audit(ctx, request, who, action, target, "failure", detail)
        raise
    audit(ctx, request, who, action, target, "success", detail)


def _validate(ctx: ApiContext, plugin: str | None, params: dict[str, Any] | None,
              risk: dict[str, Any] | None) -> None:
    if plugin is not None:
        try:
            ctx.engine.registry.validate("portfolio", plugin, params or {})
        except PluginNotFound as exc:
            raise InvalidParams("portfolio", "portfolio_plugin", str(exc)) from None
    if risk is not None:
        try:
            RiskLimits.model_validate(risk)
        except ValidationError as exc:
            err = exc.errors()[0]
            field = "risk_params." + ".".join(str(p) for p in err["loc"])
            raise InvalidParams("risk", field, err["msg"]) from None


@router.get("", response_model=list[PortfolioPublic])
async def list_portfolios(caller: CurrentUser) -> list[PortfolioPublic]:
    ctx, who = caller
    rows = await store.list_portfolios(ctx.reader,
                                       None if who.role == "admin" else who.user_id)
    return [_public(ctx, r) for r in rows]


@router.post("", response_model=PortfolioPublic, status_code=status.HTTP_201_CREATED,
             responses=answers(409))
async def create_portfolio(body: PortfolioCreate, request: Request,
                           caller: TraderUser) -> PortfolioPublic:
    ctx, who = caller
    async with audited(ctx, request, who, "portfolio.create", f"portfolio:{body.name}"):
        _validate(ctx, body.portfolio_plugin, body.portfolio_params, body.risk_params)
        pid = await ctx.portfolios.create({
            **body.model_dump(), "owner_id": who.user_id, "is_active": False})
    row = await ctx.portfolios.get(pid)
    assert row is not None
    return _public(ctx, row)


@router.get("/{portfolio_id}", response_model=PortfolioPublic)
async def get_portfolio(portfolio_id: PathId, caller: CurrentUser) -> PortfolioPublic:
    ctx, who = caller
    return _public(ctx, await owned(ctx, who, portfolio_id))


@router.patch("/{portfolio_id}", response_model=PortfolioPublic, responses=answers(409))
async def update_portfolio(portfolio_id: PathId, body: PortfolioUpdate, request: Request,
                           caller: TraderUser) -> PortfolioPublic:
    ctx, who = caller
    target = f"portfolio:{portfolio_id}"
    async with audited(ctx, request, who, "portfolio.update", target) as detail:
        row = await owned(ctx, who, portfolio_id)
        values = body.model_dump(exclude_none=True)
        detail["fields"] = sorted(values)
        _validate(ctx, values.get("portfolio_plugin", row["portfolio_plugin"]),
                  values.get("portfolio_params", row["portfolio_params"]),
                  values.get("risk_params"))
        await ctx.portfolios.update(portfolio_id, values)
        if row["is_active"]:
            await ctx.engine.restart(portfolio_id)
    return _public(ctx, await owned(ctx, who, portfolio_id))


@router.delete("/{portfolio_id}", status_code=status.HTTP_204_NO_CONTENT,
               responses=answers(409))
async def delete_portfolio(portfolio_id: PathId, request: Request, caller: TraderUser) -> None:
    ctx, who = caller
    async with audited(ctx, request, who, "portfolio.delete", f"portfolio:{portfolio_id}"):
        row = await owned(ctx, who, portfolio_id)
        if row["is_active"]:
            raise Conflict("deactivate the portfolio before deleting it")
        await ctx.portfolios.delete(portfolio_id)


@router.post("/{portfolio_id}/activate", response_model=PortfolioPublic)
async def activate(portfolio_id: PathId, request: Request, caller: TraderUser) -> PortfolioPublic:
    ctx, who = caller
    async with audited(ctx, request, who, "portfolio.activate", f"portfolio:{portfolio_id}"):
        await owned(ctx, who, portfolio_id)
        await ctx.portfolios.update(portfolio_id, {"is_active": True})
        ctx.engine.activate(portfolio_id)
    return _public(ctx, await owned(ctx, who, portfolio_id))


@router.post("/{portfolio_id}/deactivate", response_model=PortfolioPublic)
async def deactivate(portfolio_id: PathId, request: Request, caller: TraderUser) -> PortfolioPublic:
    ctx, who = caller
    async with audited(ctx, request, who, "portfolio.deactivate", f"portfolio:{portfolio_id}"):
        await owned(ctx, who, portfolio_id)
        await ctx.portfolios.update(portfolio_id, {"is_active": False})
        await ctx.engine.deactivate(portfolio_id)
        await ctx.engine.flush()
    return _public(ctx, await owned(ctx, who, portfolio_id))


@router.put("/{portfolio_id}/trading-state", response_model=PortfolioPublic)
async def set_trading_state(portfolio_id: PathId, body: TradingStateChange, request: Request,
                            caller: TraderUser) -> PortfolioPublic:
    """The kill switch: once this answers, HALTED denies every new order (and cancels the ones
    not yet sent), REDUCING only lets orders through that shrink a position without flipping
    it; the state is durable before the answer and survives restarts."""
    ctx, who = caller
    target = f"portfolio:{portfolio_id}"
    async with audited(ctx, request, who, "portfolio.trading_state", target) as detail:
        await owned(ctx, who, portfolio_id)
        detail["state"] = body.state
        state = ctx.engine.state(portfolio_id)
        if state is not None and state.status == "running":
            reply = await ctx.engine.command(portfolio_id, SetTradingState(
                TradingState(body.state)))
            if isinstance(reply, Denied):
                raise JournalUnavailable(reply.detail or "the trading state was not recorded")
            ctx.portfolios.forget(portfolio_id)  # the runner wrote the row
        else:
            await ctx.portfolios.update(portfolio_id, {"trading_state": body.state})
    return _public(ctx, await owned(ctx, who, portfolio_id))


@router.get("/{portfolio_id}/positions", response_model=list[PositionPublic])
async def positions(portfolio_id: PathId, caller: CurrentUser) -> list[PositionPublic]:
    """Each position, its average price to its asset's tick (an average of fills carries as
    many digits as the division gives)."""
    ctx, who = caller
    await owned(ctx, who, portfolio_id)
    ticks = {a["symbol"]: a["tick_size"] for a in await store.list_assets(ctx.reader,
                                                                          portfolio_id)}
    held = _POSITION_LIST.validate_python(await store.list_positions(ctx.reader, portfolio_id))
    for position in held:
        tick = ticks.get(position.symbol)
        if tick is not None:
            position.avg_price = to_tick(position.avg_price, Decimal(tick))
    return held


@router.get("/{portfolio_id}/status", response_model=PortfolioStatus)
async def portfolio_status(portfolio_id: PathId, caller: CurrentUser) -> PortfolioStatus:
    ctx, who = caller
    row = await owned(ctx, who, portfolio_id)
    state = ctx.engine.state(portfolio_id)
    if state is None:
        return PortfolioStatus(id=portfolio_id, runner="stopped", last_error=row["last_error"],
                               restarts=0, last_tick_ns=None, bars=0, open_orders=0,
                               equity=None, trading_state=row["trading_state"])
    return PortfolioStatus(
        id=portfolio_id, runner=state.status, last_error=state.last_error,
        restarts=state.restarts, last_tick_ns=state.last_tick_ns, bars=state.bars,
        open_orders=state.open_orders, equity=state.equity,
        trading_state=state.trading_state or row["trading_state"], held_by=state.holder,
        venues=state.venues)


@router.get("/{portfolio_id}/analytics", response_model=PortfolioAnalytics)
async def analytics(portfolio_id: PathId, caller: CurrentUser) -> PortfolioAnalytics:
    """Computed from the journal's fills in a worker thread (the loop keeps trading); open
    positions are marked at the running portfolio's last prices, else at their last fill, as
    of its last tick."""
    ctx, who = caller
    row = await owned(ctx, who, portfolio_id)
    await ctx.engine.flush()
    fills = await repo.load_fills(ctx.engine.db, portfolio_id)
    marks = ctx.engine.last_prices(portfolio_id)
    state = ctx.engine.state(portfolio_id)
    as_of = state.last_tick_ns if state is not None else None
    result = await anyio.to_thread.run_sync(analyze, row["initial_cash"], fills, marks, as_of)
    stats = result.statistics
    longest = stats.max_drawdown_duration
    return PortfolioAnalytics(
        initial_cash=result.initial_cash, equity=result.equity,
        total_return=result.total_return, max_drawdown=result.max_drawdown,
        max_drawdown_pct=result.max_drawdown_pct, sharpe=result.sharpe, trades=result.trades,
        win_rate=result.win_rate, best_asset=result.best_asset, worst_asset=result.worst_asset,
        assets=[AssetPnl(symbol=a.symbol, quantity=a.quantity, realized_pnl=a.realized_pnl,
                         unrealized_pnl=a.unrealized_pnl, fees=a.fees, pnl=a.pnl)
                for a in result.assets],
        return_pct=stats.return_pct, return_ann_pct=stats.return_ann_pct,
        volatility_ann_pct=stats.volatility_ann_pct, sortino=stats.sortino,
        calmar=stats.calmar, avg_drawdown_pct=stats.avg_drawdown_pct,
        max_drawdown_duration_s=longest.total_seconds() if longest is not None else None,
        exposure_time_pct=stats.exposure_time_pct, open_trades=stats.open_trades,
        best_trade_pct=stats.best_trade_pct, worst_trade_pct=stats.worst_trade_pct,
        avg_trade_pct=stats.avg_trade_pct, profit_factor=stats.profit_factor,
        expectancy_pct=stats.expectancy_pct, sqn=stats.sqn,
        fees=result.fees)
