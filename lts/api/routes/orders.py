"""``/api/v1/orders``: list (filtered, paged), get, place a manual order, modify, cancel.

A manual order goes through the same path as a strategy's: a command to the running portfolio's
runner (risk checks, write-ahead journal, broker), whose answer the request waits for (through
the engine's facade). An order denied (by a risk check, the kill switch) is journaled in state
``denied`` and answered 409 with code ``order_denied``, its reason code (``reason``) and the
order, which stays readable at its ``Location``; an order that could not be made durable is
refused (503); a cancel or a change of an order that is no longer open answers 409. Orders of
portfolios the caller may not see answer 404. A filter by an unknown status is a 422.
``avg_fill_price`` is shown to the asset's tick (the journal keeps the exact average).
"""

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Path, Query, Request, status
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, computed_field
from sqlalchemy import and_, select

from lts.api.context import ApiContext
from lts.api.deps import CurrentUser, Principal, TraderUser
from lts.api.errors import Problem, answers, correlation_id
from lts.api.portfolio_schemas import (
    ROW_ID_MAX,
    Offset,
    QueryId,
    QueryNs,
    Symbol,
    iso_time,
)
from lts.api.routes.portfolios import audited, owned
from lts.api.ticks import to_tick
from lts.domain.commands import (
    CancelOrder,
    Denied,
    ModifyOrder,
    Reason,
    Reply,
    SubmitOrder,
)
from lts.domain.orders import OrderRequest, OrderStatus, OrderType, Side, TimeInForce
from lts.errors import Conflict, InvalidParams, JournalUnavailable
from lts.persistence.tables import assets, orders, portfolios

router = APIRouter(prefix="/api/v1/orders", tags=["orders"])


#: A price the journal stores exactly: positive, below 10**20, at most 18 decimals.
Price = Annotated[Decimal, Field(gt=0, lt=Decimal(10) ** 20, decimal_places=18,
                                 allow_inf_nan=False)]


#: A client order id in a path: printable ASCII, as every id LTS or a venue makes.
OrderId = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[!-~]+$")]


class OrderCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    portfolio_id: int = Field(ge=1, le=ROW_ID_MAX)
    symbol: Symbol
    side: Literal["buy", "sell"]
    quantity: Decimal = Field(gt=0, max_digits=24, decimal_places=8)
    order_type: Literal["market", "limit", "stop", "stop_limit"] = "market"
    time_in_force: Literal["gtc", "ioc", "fok", "day"] = "gtc"
    limit_price: Price | None = None
    stop_price: Price | None = None


class OrderChange(BaseModel):
    """New values for a working order (left out: unchanged)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    quantity: Decimal | None = Field(None, gt=0, max_digits=24, decimal_places=8)
    limit_price: Price | None = None
    stop_price: Price | None = None


class OrderPublic(BaseModel):
    client_order_id: str
    portfolio_id: int
    symbol: str
    side: str
    order_type: str
    time_in_force: str
    quantity: Decimal
    limit_price: Decimal | None
    stop_price: Decimal | None
    status: str
    filled_quantity: Decimal
    avg_fill_price: Decimal | None = Field(
        description="the average price of its fills, to its asset's tick")
    broker: str
    reason: str
    tag: str
    ts_init: int = Field(description="when the order was made: nanoseconds since 1970 UTC")
    ts_last: int = Field(description="its last change: nanoseconds since 1970 UTC")

    @computed_field(description="ts_init as an ISO 8601 time (UTC)")  # type: ignore[prop-decorator]
    @property
    def time_init(self) -> datetime:
        return iso_time(self.ts_init)

    @computed_field(description="ts_last as an ISO 8601 time (UTC)")  # type: ignore[prop-decorator]
    @property
    def time_last(self) -> datetime:
        return iso_time(self.ts_last)


class OrderDenied(BaseModel):
    """A 409: the order was denied (it is journaled in state ``denied``, readable as ever)."""

    detail: str
    code: Literal["order_denied"] = "order_denied"
    correlation_id: str
    reason: str = Field(description="the reason code, e.g. TRADING_HALTED, BUYING_POWER")
    order: OrderPublic


#: Orders with their asset's tick (``tick_size``; None when the asset is gone).
_WITH_TICK = select(orders, assets.c.tick_size).outerjoin(assets, and_(
    assets.c.portfolio_id == orders.c.portfolio_id, assets.c.symbol == orders.c.symbol))


def _avg_to_tick(order: OrderPublic, row: Any) -> OrderPublic:
    """The average fill price shown to the asset's tick (a division gives 28 digits)."""
    tick = row["tick_size"]
    if order.avg_fill_price is not None and tick is not None:
        order.avg_fill_price = to_tick(order.avg_fill_price, Decimal(tick))
    return order


def _public(row: Any) -> OrderPublic:
    # the declared fields only (extra keys are ignored)
    return _avg_to_tick(OrderPublic.model_validate(row), row)


_ORDER_LIST = TypeAdapter(list[OrderPublic])  # one call for a page: about 2.5x faster than a loop


def _refused(reply: Reply) -> None:
    """A command's denial as the API's answer (a denied order request is not refused: it is an
    order in state ``denied``)."""
    if not isinstance(reply, Denied) or reply.order is not None:
        return
    if reply.reason is Reason.JOURNAL_UNAVAILABLE:
        raise JournalUnavailable(f"not recorded: {reply.detail or 'the journal cannot write'}")
    if reply.reason is Reason.UNKNOWN_SYMBOL:
        raise InvalidParams("order", "symbol", "not an asset of this portfolio")
    if reply.reason is Reason.INVALID_PARAMS:
        raise InvalidParams("order", "params", reply.detail or "invalid")
    raise Conflict(reply.detail or reply.reason.value)


@router.get("", response_model=list[OrderPublic])
async def list_orders(
    caller: CurrentUser,
    portfolio_id: QueryId = None,
    symbol: Annotated[str | None, Query(pattern=r"^[A-Za-z0-9._:/-]{1,64}$")] = None,
    order_status: Annotated[OrderStatus | None, Query(alias="status")] = None,
    since_ns: QueryNs = None, until_ns: QueryNs = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Offset = 0,
) -> list[OrderPublic]:
    ctx, who = caller
    query = _WITH_TICK.join(portfolios, portfolios.c.id == orders.c.portfolio_id)
    if who.role != "admin":
        query = query.where(portfolios.c.owner_id == who.user_id)
    for column, value in ((orders.c.portfolio_id, portfolio_id), (orders.c.symbol, symbol),
                          (orders.c.status, order_status and order_status.value)):
        if value is not None:
            query = query.where(column == value)
    if since_ns is not None:
        query = query.where(orders.c.ts_init >= since_ns)
    if until_ns is not None:
        query = query.where(orders.c.ts_init < until_ns)
    query = query.order_by(orders.c.id.desc()).limit(limit).offset(offset)
    rows = await ctx.reader.all(query)
    return [_avg_to_tick(order, row)
            for order, row in zip(_ORDER_LIST.validate_python(rows), rows, strict=True)]


async def _visible(ctx: ApiContext, who: Principal, client_order_id: str) -> Any:
    row = await ctx.reader.first(_WITH_TICK.where(orders.c.client_order_id == client_order_id))
    if row is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "order not found")
    await owned(ctx, who, row["portfolio_id"])
    return row


@router.get("/{client_order_id}", response_model=OrderPublic)
async def get_order(client_order_id: OrderId, caller: CurrentUser) -> OrderPublic:
    ctx, who = caller
    return _public(await _visible(ctx, who, client_order_id))


@router.post("", response_model=OrderPublic, status_code=status.HTTP_201_CREATED,
             responses={**answers(404),
                        409: {"model": OrderDenied | Problem, "description": "The order was "
                              "denied (risk, kill switch): its reason code and the order; or "
                              "the portfolio cannot take orders now"}})
async def place_order(body: OrderCreate, request: Request,
                      caller: TraderUser) -> OrderPublic | JSONResponse:
    ctx, who = caller
    target = f"portfolio:{body.portfolio_id}"
    async with audited(ctx, request, who, "order.create", target) as detail:
        await owned(ctx, who, body.portfolio_id)
        kind = OrderType(body.order_type)
        if kind in (OrderType.LIMIT, OrderType.STOP_LIMIT) and body.limit_price is None:
            raise InvalidParams("order", "limit_price", "required for this order type")
        if kind in (OrderType.STOP, OrderType.STOP_LIMIT) and body.stop_price is None:
            raise InvalidParams("order", "stop_price", "required for this order type")
        reply = await ctx.engine.command(body.portfolio_id, SubmitOrder(OrderRequest(
            body.symbol, Side(body.side), body.quantity, kind, TimeInForce(body.time_in_force),
            body.limit_price, body.stop_price, tag=f"manual:{who.username}"[:64])))
        _refused(reply)
        order = reply.order
        assert order is not None
        detail.update(client_order_id=order.client_order_id, status=order.status.value)
    await ctx.engine.flush()
    placed = _public(await _visible(ctx, who, order.client_order_id))
    if placed.status != OrderStatus.DENIED.value:
        return placed
    denied = OrderDenied(detail=f"order denied: {placed.reason}",
                         correlation_id=correlation_id(request), reason=placed.reason,
                         order=placed)
    return JSONResponse(denied.model_dump(mode="json"), status.HTTP_409_CONFLICT,
                        headers={"Location": f"{router.prefix}/{placed.client_order_id}"})


@router.patch("/{client_order_id}", response_model=OrderPublic, responses=answers(409))
async def modify_order(client_order_id: OrderId, body: OrderChange, request: Request,
                       caller: TraderUser) -> OrderPublic:
    """Change a working order's quantity or prices (where its venue can); the answer shows the
    order as it stands: the change applies once the venue has accepted it."""
    ctx, who = caller
    async with audited(ctx, request, who, "order.modify", f"order:{client_order_id}") as detail:
        row = await _visible(ctx, who, client_order_id)
        change = ModifyOrder(client_order_id, body.quantity, body.limit_price, body.stop_price)
        detail["fields"] = sorted(body.model_dump(exclude_none=True))
        reply = await ctx.engine.command(row["portfolio_id"], change)
        if isinstance(reply, Denied):
            if reply.reason is Reason.ORDER_NOT_OPEN:
                raise Conflict(reply.detail or "the order is no longer open")
            if reply.reason is Reason.UNSUPPORTED:
                raise Conflict(reply.detail or "the venue cannot modify orders")
            raise InvalidParams("order", "params", f"{reply.reason.value}: {reply.detail}"
                                if reply.detail else reply.reason.value)
    await ctx.engine.flush()
    return _public(await _visible(ctx, who, client_order_id))


@router.delete("/{client_order_id}", response_model=OrderPublic, responses=answers(409))
async def cancel_order(client_order_id: OrderId, request: Request,
                       caller: TraderUser) -> OrderPublic:
    ctx, who = caller
    async with audited(ctx, request, who, "order.cancel", f"order:{client_order_id}"):
        row = await _visible(ctx, who, client_order_id)
        reply = await ctx.engine.command(row["portfolio_id"], CancelOrder(client_order_id))
        if isinstance(reply, Denied):
            raise Conflict(reply.detail or "the order is no longer open")
    await ctx.engine.flush()
    return _public(await _visible(ctx, who, client_order_id))
