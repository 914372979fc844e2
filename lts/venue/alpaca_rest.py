"""The local Alpaca trading API's HTTP routes: ``/v2`` as alpaca-py's ``TradingClient`` calls it.

Where it sits: between a client and :class:`~lts.venue.alpaca_server.AlpacaVenue`, in the
Starlette app :func:`~lts.venue.alpaca_server.build_app` makes. Every route checks the
``APCA-API-KEY-ID`` and ``APCA-API-SECRET-KEY`` headers (else 403, code 40310000); errors are
Alpaca's ``{"code", "message"}``. Amounts are strings, as Alpaca writes them.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from lts.venue.alpaca_server import (
    FORBIDDEN,
    NOT_FOUND,
    UNPROCESSABLE,
    AlpacaError,
    AlpacaOrder,
    plain,
)

if TYPE_CHECKING:
    from lts.venue.alpaca_server import AlpacaVenue

__all__ = ["rest_routes"]

Handler = Callable[[Request], Awaitable[Any]]
_ACCOUNT_ID = "a1b2c3d4-0000-4000-8000-00000000a1ca"
_MAX_ORDERS = 500
_MAX_PAGE = 100


def _since(text: str | None, name: str) -> int | None:
    """An RFC 3339 time (or a date) of a query parameter, in ns."""
    if not text:
        return None
    try:
        return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 10**9)
    except ValueError:
        raise AlpacaError(422, UNPROCESSABLE, f"invalid {name}") from None


def _int(text: str | None, default: int, name: str) -> int:
    if text is None:
        return default
    try:
        return int(text)
    except ValueError:
        raise AlpacaError(422, UNPROCESSABLE, f"invalid {name}") from None


def rest_routes(venue: AlpacaVenue) -> list[Route]:
    def endpoint(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        async def answer(request: Request) -> Response:
            headers = request.headers
            if not venue.authorized(headers.get("apca-api-key-id"),
                                    headers.get("apca-api-secret-key")):
                return JSONResponse({"code": FORBIDDEN, "message": "request is not authorized"},
                                    403)
            try:
                result = await handler(request)
            except AlpacaError as err:
                return JSONResponse({"code": err.code, "message": err.message}, err.status)
            if result is None:
                return Response(status_code=204)
            return JSONResponse(result)

        return answer

    async def body(request: Request) -> dict[str, Any]:
        try:
            parsed = json.loads(await request.body() or b"{}")
        except ValueError:
            parsed = None
        if not isinstance(parsed, dict):
            raise AlpacaError(400, 40010000, "request body format is invalid")
        return parsed

    async def account(request: Request) -> Any:
        cash = venue.cash()
        held = sum((q * (venue.last_price(s) or p) for s, (q, p) in venue.positions().items()),
                   start=cash - cash)
        equity = cash + held
        return {"id": _ACCOUNT_ID, "account_number": "PA0LOCAL0001", "status": "ACTIVE",
                "crypto_status": "INACTIVE", "currency": "USD",
                "buying_power": plain(venue.buying_power()), "regt_buying_power": plain(cash),
                "non_marginable_buying_power": plain(venue.buying_power()), "cash": plain(cash),
                "accrued_fees": "0", "portfolio_value": plain(equity), "equity": plain(equity),
                "last_equity": plain(equity), "long_market_value": plain(held),
                "short_market_value": "0", "initial_margin": "0", "maintenance_margin": "0",
                "multiplier": "1", "shorting_enabled": False, "trading_blocked": False,
                "transfers_blocked": False, "account_blocked": False,
                "trade_suspended_by_user": False, "created_at": "2024-01-02T00:00:00Z"}

    def asset_json(symbol: str) -> dict[str, Any]:
        market = venue.exchange.markets[symbol]
        whole = market.step_size >= 1
        return {"id": AlpacaOrder.asset_id(symbol), "class": "us_equity",
                "exchange": "NASDAQ", "symbol": symbol, "name": f"{symbol} (local venue)",
                "status": "active", "tradable": True, "marginable": True, "shortable": False,
                "easy_to_borrow": False, "fractionable": not whole,
                "min_order_size": plain(market.min_qty), "min_trade_increment":
                plain(market.step_size), "price_increment": plain(market.tick_size),
                "attributes": ["fractional_eh_enabled"] if not whole else []}

    async def assets(request: Request) -> Any:
        return [asset_json(s) for s in venue.exchange.markets]

    async def asset(request: Request) -> Any:
        symbol = request.path_params["symbol"].upper()
        if symbol not in venue.exchange.markets:
            raise AlpacaError(404, NOT_FOUND, "asset not found")
        return asset_json(symbol)

    async def place(request: Request) -> Any:
        order = venue.place(await body(request))
        if venue.faults.hang_orders > 0:  # placed; the answer is held back (lost)
            venue.faults.hang_orders -= 1
            await venue.faults.hold()
        return order.json()

    async def orders(request: Request) -> Any:
        q = request.query_params
        status = q.get("status", "open")
        if status not in ("open", "closed", "all"):
            raise AlpacaError(422, UNPROCESSABLE, "invalid status")
        limit = min(_int(q.get("limit"), 50, "limit"), _MAX_ORDERS)
        after, until = _since(q.get("after"), "after"), _since(q.get("until"), "until")
        symbols = {s.upper() for s in q.get("symbols", "").split(",") if s}
        chosen = [o for o in venue.orders.values()
                  if (status == "all" or o.is_open == (status == "open"))
                  and (not symbols or o.symbol in symbols)
                  and (after is None or o.created_at > after)
                  and (until is None or o.created_at < until)]
        chosen.sort(key=lambda o: o.created_at, reverse=q.get("direction", "desc") == "desc")
        return [o.json() for o in chosen[:limit]]

    async def by_client(request: Request) -> Any:
        return venue.by_client_order_id(request.query_params.get("client_order_id", "")).json()

    async def order(request: Request) -> Any:
        return venue.get(request.path_params["order_id"]).json()

    async def cancel(request: Request) -> Any:
        venue.cancel(request.path_params["order_id"])
        return None

    async def replace(request: Request) -> Any:
        return venue.replace(request.path_params["order_id"], await body(request)).json()

    async def positions(request: Request) -> Any:
        held = []
        for symbol, (qty, entry) in sorted(venue.positions().items()):
            price = venue.last_price(symbol) or entry
            held.append({
                "asset_id": AlpacaOrder.asset_id(symbol), "symbol": symbol,
                "exchange": "NASDAQ", "asset_class": "us_equity", "asset_marginable": True,
                "avg_entry_price": plain(entry), "qty": plain(qty), "qty_available": plain(qty),
                "side": "long" if qty > 0 else "short", "market_value": plain(qty * price),
                "cost_basis": plain(qty * entry), "unrealized_pl": plain(qty * (price - entry)),
                "current_price": plain(price)})
        return held

    async def fills(request: Request) -> Any:
        q = request.query_params
        if "activity_types" in q and "FILL" not in q["activity_types"].split(","):
            return []
        after, until = _since(q.get("after"), "after"), _since(q.get("until"), "until")
        size = max(1, min(_int(q.get("page_size"), _MAX_PAGE, "page_size"), _MAX_PAGE))
        ascending = q.get("direction", "desc") == "asc"
        chosen = [a for a in venue.activities if (after is None or a["_ns"] > after)
                  and (until is None or a["_ns"] < until)]
        if not ascending:
            chosen.reverse()
        token = q.get("page_token")
        if token:
            ids = [a["id"] for a in chosen]
            chosen = chosen[ids.index(token) + 1:] if token in ids else []
        return [{k: v for k, v in a.items() if k != "_ns"} for a in chosen[:size]]

    routes: list[tuple[str, Handler, str]] = [
        ("/v2/account", account, "GET"),
        ("/v2/assets", assets, "GET"),
        ("/v2/assets/{symbol}", asset, "GET"),
        ("/v2/orders", place, "POST"),
        ("/v2/orders", orders, "GET"),
        ("/v2/orders:by_client_order_id", by_client, "GET"),
        ("/v2/orders/{order_id}", order, "GET"),
        ("/v2/orders/{order_id}", cancel, "DELETE"),
        ("/v2/orders/{order_id}", replace, "PATCH"),
        ("/v2/positions", positions, "GET"),
        ("/v2/account/activities/FILL", fills, "GET"),
        ("/v2/account/activities", fills, "GET"),
    ]
    by_path: dict[str, dict[str, Handler]] = {}
    for path, handler, method in routes:
        by_path.setdefault(path, {})[method] = handler

    def dispatch(handlers: dict[str, Handler]) -> Callable[[Request], Awaitable[Response]]:
        wrapped = {m: endpoint(h) for m, h in handlers.items()}

        async def route(request: Request) -> Response:
            return await wrapped[request.method](request)

        return route

    return [Route(path, dispatch(handlers), methods=list(handlers))
            for path, handlers in by_path.items()]
