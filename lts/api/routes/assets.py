"""``/api/v1/portfolios/{id}/assets``: the assets of a portfolio, each with its strategy, broker
and pipeline plugins and their params (validated against each plugin's params model: 422 naming
the field). A change to an asset of a running portfolio restarts that portfolio only."""

from collections.abc import Mapping
from typing import Any

from fastapi import APIRouter, HTTPException, Request, status

from lts.api.context import ApiContext
from lts.api.deps import CurrentUser, TraderUser
from lts.api.errors import answers
from lts.api.portfolio_schemas import (
    AssetCreate,
    AssetPublic,
    AssetUpdate,
    PathId,
    asset_public,
)
from lts.api.routes.portfolios import audited, owned
from lts.errors import InvalidParams, PluginNotFound
from lts.persistence import portfolio_store as store

router = APIRouter(prefix="/api/v1/portfolios/{portfolio_id}/assets", tags=["assets"])

_KINDS = (("strategy", "strategy_plugin", "strategy_params"),
          ("broker", "broker_plugin", "broker_params"),
          ("pipeline", "pipeline_plugin", "pipeline_params"))


def _validate_plugins(ctx: ApiContext, asset: dict[str, Any]) -> None:
    for kind, plugin_key, params_key in _KINDS:
        try:
            ctx.engine.registry.validate(kind, asset[plugin_key], asset[params_key])
        except PluginNotFound as exc:
            raise InvalidParams(kind, plugin_key, str(exc)) from None
        except InvalidParams as exc:
            raise InvalidParams(exc.plugin, f"{params_key}.{exc.field}", str(exc)) from None


async def _restart_if_running(ctx: ApiContext, portfolio: Mapping[str, Any]) -> None:
    if portfolio["is_active"]:
        await ctx.engine.restart(portfolio["id"])


async def _asset(ctx: ApiContext, portfolio_id: int, asset_id: int) -> dict[str, Any]:
    row = await store.get_asset(ctx.reader, portfolio_id, asset_id)
    if row is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "asset not found")
    return row


@router.get("", response_model=list[AssetPublic])
async def list_assets(portfolio_id: PathId, caller: CurrentUser) -> list[AssetPublic]:
    ctx, who = caller
    await owned(ctx, who, portfolio_id)
    return [asset_public(r) for r in await store.list_assets(ctx.reader, portfolio_id)]


@router.post("", response_model=AssetPublic, status_code=status.HTTP_201_CREATED,
             responses=answers(409))
async def add_asset(portfolio_id: PathId, body: AssetCreate, request: Request,
                    caller: TraderUser) -> AssetPublic:
    ctx, who = caller
    async with audited(ctx, request, who, "asset.create", f"portfolio:{portfolio_id}"):
        portfolio = await owned(ctx, who, portfolio_id)
        values = body.model_dump()
        _validate_plugins(ctx, values)
        asset_id = await store.add_asset(ctx.engine.db, portfolio_id, values)
        await _restart_if_running(ctx, portfolio)
    return asset_public(await _asset(ctx, portfolio_id, asset_id))


@router.get("/{asset_id}", response_model=AssetPublic)
async def get_asset(portfolio_id: PathId, asset_id: PathId, caller: CurrentUser) -> AssetPublic:
    ctx, who = caller
    await owned(ctx, who, portfolio_id)
    return asset_public(await _asset(ctx, portfolio_id, asset_id))


@router.patch("/{asset_id}", response_model=AssetPublic)
async def update_asset(portfolio_id: PathId, asset_id: PathId, body: AssetUpdate, request: Request,
                       caller: TraderUser) -> AssetPublic:
    ctx, who = caller
    async with audited(ctx, request, who, "asset.update", f"asset:{asset_id}") as detail:
        portfolio = await owned(ctx, who, portfolio_id)
        row = await _asset(ctx, portfolio_id, asset_id)
        values = body.model_dump(exclude_none=True)
        detail["fields"] = sorted(values)
        _validate_plugins(ctx, {**row, **values})
        await store.update_asset(ctx.engine.db, asset_id, values)
        await _restart_if_running(ctx, portfolio)
    return asset_public(await _asset(ctx, portfolio_id, asset_id))


@router.delete("/{asset_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_asset(portfolio_id: PathId, asset_id: PathId, request: Request,
                       caller: TraderUser) -> None:
    ctx, who = caller
    async with audited(ctx, request, who, "asset.delete", f"asset:{asset_id}"):
        portfolio = await owned(ctx, who, portfolio_id)
        await _asset(ctx, portfolio_id, asset_id)
        await store.delete_asset(ctx.engine.db, asset_id)
        await _restart_if_running(ctx, portfolio)


async def _set_active(portfolio_id: PathId, asset_id: PathId, active: bool, request: Request,
                      ctx: ApiContext, who: Any) -> AssetPublic:
    action = "asset.activate" if active else "asset.deactivate"
    async with audited(ctx, request, who, action, f"asset:{asset_id}"):
        portfolio = await owned(ctx, who, portfolio_id)
        await _asset(ctx, portfolio_id, asset_id)
        await store.update_asset(ctx.engine.db, asset_id, {"is_active": active})
        await _restart_if_running(ctx, portfolio)
    return asset_public(await _asset(ctx, portfolio_id, asset_id))


@router.post("/{asset_id}/activate", response_model=AssetPublic)
async def activate_asset(portfolio_id: PathId, asset_id: PathId, request: Request,
                         caller: TraderUser) -> AssetPublic:
    ctx, who = caller
    return await _set_active(portfolio_id, asset_id, True, request, ctx, who)


@router.post("/{asset_id}/deactivate", response_model=AssetPublic)
async def deactivate_asset(portfolio_id: PathId, asset_id: PathId, request: Request,
                           caller: TraderUser) -> AssetPublic:
    ctx, who = caller
    return await _set_active(portfolio_id, asset_id, False, request, ctx, who)
