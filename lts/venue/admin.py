"""The venue's admin endpoint: its faults (:mod:`lts.venue.faults`), read and set while it runs.

Where it sits: beside the Binance REST front, in the same app, off ``/api/v3`` (no request
weight, no injected faults of its own). Both requests need a key of the venue's in
``X-MBX-APIKEY`` (else 401); no signature.

- ``GET /admin/faults`` answers ``{"settings": {NAME: VALUE, ...}, "actions": [NAME, ...]}``.
- ``POST /admin/faults`` with a JSON object ``{NAME: VALUE, ...}`` (values as JSON: numbers,
  ``true``, ``"BTCUSDT:BUY:0.01"``) checks every one first, then does them: an
  ``external_fill`` (on the key's account), the settings, ``ws_drop``, and ``down`` last, once
  this answer is sent. It answers ``{"settings": {...}, "done": {NAME: what it did}}``. A bad
  name or value, or an external fill the exchange refuses: 400 ``{"msg": "<one line>"}``, and
  nothing is done.
"""

from __future__ import annotations

import json
import secrets
from typing import Any

from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from lts.venue.exchange import Exchange, OrderType, VenueError
from lts.venue.faults import ACTIONS, ExternalFill, FaultError, Faults, parse


class Admin:
    """``/admin/faults`` over one venue's faults and exchange."""

    def __init__(self, faults: Faults, exchange: Exchange,
                 keys: dict[str, tuple[str, str]]) -> None:
        self.faults = faults
        self.exchange = exchange
        self.keys = keys
        self.routes = [Route("/admin/faults", self._faults, methods=["GET", "POST"])]

    async def _faults(self, request: Request) -> Response:
        known = self.keys.get(request.headers.get("x-mbx-apikey", ""))
        if known is None:
            return _refuse(401, "admin: X-MBX-APIKEY is not a key of this venue")
        if request.method == "GET":
            return JSONResponse({"settings": self.faults.settings(), "actions": list(ACTIONS)})
        try:
            asked = json.loads(await request.body())
        except (json.JSONDecodeError, UnicodeDecodeError):
            asked = None
        if not isinstance(asked, dict) or not asked:
            return _refuse(400, 'admin: the body is not a JSON object {"NAME": VALUE, ...}')
        try:
            parsed = {name: parse(name, value) for name, value in asked.items()}
        except FaultError as exc:
            return _refuse(400, str(exc))
        done: dict[str, Any] = {}
        fill = parsed.pop("external_fill", None)
        if isinstance(fill, ExternalFill):
            try:
                done["external_fill"] = self._external_fill(known[0], fill)
            except VenueError as exc:
                return _refuse(400, f"fault external_fill: {exc.msg}")
        down = parsed.pop("down", None)
        if parsed.pop("ws_drop", None):
            self.faults.drop_websockets()
            done["ws_drop"] = True
        for name, value in parsed.items():
            self.faults.set(name, value)
        task = None
        if down is not None:
            done["down"] = down

            async def go_down() -> None:  # on the loop, after the answer
                self.faults.go_down(down)

            task = BackgroundTask(go_down)
        return JSONResponse({"settings": self.faults.settings(), "done": done},
                            background=task)

    def _external_fill(self, account: str, fill: ExternalFill) -> dict[str, Any]:
        """A market order as Binance's own UI places one: not through any API client."""
        order = self.exchange.place(account, fill.symbol, fill.side, OrderType.MARKET,
                                    fill.quantity,
                                    client_order_id=f"web_{secrets.token_hex(16)}")
        return {"symbol": order.symbol, "orderId": order.order_id,
                "clientOrderId": order.client_order_id, "status": order.status.value,
                "executedQty": str(order.executed_qty)}


def _refuse(status: int, message: str) -> Response:
    return JSONResponse({"msg": message}, status)
