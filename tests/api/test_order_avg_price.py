"""An order's average fill price is shown to its asset's tick (issue 12: it came with the 28
digits of the division), while the journal keeps the exact average. The demo portfolio trades on
the paper venue with a volume cap, so its market orders fill in several parts at several prices
(an average of them has many digits); real engine and uvicorn, SQLite and PostgreSQL."""

from decimal import Decimal
from pathlib import Path

import anyio
import pytest
from sqlalchemy import select

from lts.persistence.tables import orders

from .conftest import Api, running_api
from .test_portfolios import ADMIN, call, login

pytestmark = pytest.mark.anyio


async def filled_with_a_long_average(api: Api) -> tuple[str, Decimal]:
    """A filled order whose stored average price has more than two decimals, and that average
    (waited for: the strategy trades within seconds)."""
    query = select(orders.c.client_order_id, orders.c.avg_fill_price).where(
        orders.c.portfolio_id == 1, orders.c.status == "filled")
    with anyio.fail_after(60):
        while True:
            async with api.engine.db.connect() as conn:
                for coid, avg in (await conn.execute(query)).all():
                    if int(Decimal(avg).as_tuple().exponent) < -2:
                        return str(coid), Decimal(avg)
            await anyio.sleep(0.2)


async def stored_average(api: Api, client_order_id: str) -> Decimal:
    async with api.engine.db.connect() as conn:
        avg = await conn.scalar(select(orders.c.avg_fill_price)
                                .where(orders.c.client_order_id == client_order_id))
    return Decimal(avg)


async def test_the_average_fill_price_is_shown_to_the_assets_tick(
        tmp_path: Path, migrated_url: str) -> None:
    async with running_api(tmp_path, database={"url": migrated_url}, demo={
            "interval": 0.05,
            "broker_params": {"fees_bps": "1", "slippage_bps": "2", "volume_cap": 0.003}},
            ) as api:
        admin = await login(api, *ADMIN)
        coid, exact = await filled_with_a_long_average(api)
        tick_of = {a["symbol"]: Decimal(a["tick_size"]) for a in
                   (await call(api, "GET", "/api/v1/portfolios/1/assets", admin)).json()}

        one = (await call(api, "GET", f"/api/v1/orders/{coid}", admin)).json()
        tick = tick_of[one["symbol"]]
        assert tick == Decimal("0.01")
        shown = one["avg_fill_price"]
        assert Decimal(shown) == exact.quantize(tick)
        assert len(shown.partition(".")[2]) == 2  # as many decimals as the tick, no more
        assert abs(Decimal(shown) - exact) <= tick / 2

        page = (await call(api, "GET", "/api/v1/orders?portfolio_id=1&limit=1000",
                           admin)).json()
        listed = next(o for o in page if o["client_order_id"] == coid)
        assert listed["avg_fill_price"] == shown
        for order in page:  # every order of the page, not only this one
            if order["avg_fill_price"] is not None:
                decimals = order["avg_fill_price"].partition(".")[2]
                assert len(decimals) <= 2, order

        assert await stored_average(api, coid) == exact  # the journal keeps it exact
