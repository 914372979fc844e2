"""The dashboard's equity curve, kept up to date by the fills since the last look: the same
values as the whole history replayed, at most twice the chart's width of points, the first and
the newest kept, on both stores; a first look at a long history and later looks that read only
the new fills agree."""

import random
from decimal import Decimal

import pytest
from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncEngine

from lts.api.dashboard_curve import EquityCurves
from lts.persistence.reader import Reader
from lts.persistence.tables import fills, orders, portfolios

pytestmark = pytest.mark.anyio

CASH = Decimal(100_000)


def _fills(n: int, start: int) -> list[dict[str, object]]:
    rng = random.Random(start)
    out = []
    for k in range(start, start + n):
        side = rng.choice(("buy", "sell"))
        out.append({"symbol": rng.choice(("AAA", "BBB")), "side": side,
                    "quantity": Decimal(rng.randint(1, 9)),
                    "price": Decimal(rng.randint(9_000, 11_000)) / 100,
                    "fee": Decimal(rng.randint(0, 50)) / 100, "ts_event": 10**18 + k * 10**9})
    return out


async def _store(db: AsyncEngine, pid: int | None, rows: list[dict[str, object]]) -> int:
    async with db.begin() as conn:
        if pid is None:
            pid = (await conn.execute(insert(portfolios).values(
                name="curve", initial_cash=CASH, portfolio_params={}, risk_params={})
                .returning(portfolios.c.id))).scalar_one()
        for r in rows:
            coid = f"{pid}-{r['ts_event']}"
            await conn.execute(insert(orders).values(
                client_order_id=coid, portfolio_id=pid, symbol=r["symbol"], side=r["side"],
                order_type="market", time_in_force="gtc", quantity=r["quantity"],
                status="filled", filled_quantity=r["quantity"], broker="paper",
                ts_init=r["ts_event"], ts_last=r["ts_event"]))
            await conn.execute(insert(fills).values(
                portfolio_id=pid, client_order_id=coid, broker="paper", trade_id=coid, **r))
    return int(pid)


def _replayed(rows: list[dict[str, object]]) -> dict[int, float]:
    """The equity after each fill, from scratch: cash plus each holding at its last price."""
    cash, held, last = CASH, {}, {}
    out = {}
    for r in rows:
        q = r["quantity"] if r["side"] == "buy" else -r["quantity"]  # type: ignore[operator]
        cash -= q * r["price"] + r["fee"]  # type: ignore[operator]
        held[r["symbol"]] = held.get(r["symbol"], 0) + q
        last[r["symbol"]] = r["price"]
        out[r["ts_event"]] = float(cash + sum(h * last[s] for s, h in held.items()))
    return out  # type: ignore[return-value]


async def test_the_curve_follows_new_fills_and_stays_bounded(
        migrated_engine: AsyncEngine) -> None:
    limit = 100
    first, later = _fills(3_000, 0), _fills(350, 3_000)
    pid = await _store(migrated_engine, None, first)
    reader = Reader(migrated_engine)
    try:
        curves = EquityCurves(limit)
        points, _ = await curves.of(reader, pid, CASH, {})  # a long history: in a worker thread
        await _store(migrated_engine, pid, later)
        for _ in range(2):  # the new fills once; asked again, nothing new
            again, at_last = await curves.of(reader, pid, CASH, {})
        fresh, _ = await EquityCurves(limit).of(reader, pid, CASH, {})
    finally:
        reader.dispose()
    every = _replayed(first + later)
    for curve, fills_seen in ((points, first), (again, first + later)):
        assert limit < len(curve) <= 2 * limit + 1
        assert curve[0] == (fills_seen[0]["ts_event"], float(CASH))  # before the first fill
        assert curve[-1][0] == fills_seen[-1]["ts_event"]  # the newest fill is kept
        times = [t for t, _ in curve]
        assert times == sorted(times)
        for t, equity in curve[1:]:
            assert equity == pytest.approx(every[t], abs=1e-6)
    assert at_last == pytest.approx(every[later[-1]["ts_event"]], abs=1e-6)
    assert len(fresh) <= 2 * limit + 1
    assert fresh[-1] == again[-1]
