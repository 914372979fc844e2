"""With one writer, the journal's position row is the ledger's position, on both stores
(SYS-006 positions, SYS-013 integrity): market orders through the real engine, filled by the
venue at awkward prices (averages that do not divide evenly, positions that cross zero)."""

import random
from decimal import ROUND_HALF_UP, Decimal

import pytest

from lts.domain.commands import Accepted
from lts.domain.orders import Side
from lts.domain.position import Position
from lts.persistence.tables import fills, positions

from .desk import running_desk

pytestmark = pytest.mark.anyio

STATE = ("quantity", "cost", "realized_pnl", "fees")


async def test_with_one_writer_the_row_is_the_ledger(migrated_url: str) -> None:
    rng = random.Random(7)
    expected = Position(symbol="AAA")
    async with running_desk(migrated_url, cash="1000000", lot_size="0.001",
                            risk={"allow_short": True, "max_leverage": 5,
                                  "max_orders_per_second": None}) as desk:
        for _ in range(60):
            side = rng.choice([Side.BUY, Side.SELL])
            quantity = Decimal(rng.randint(1, 9_000)) / 1_000
            reply = await desk.submit(side, str(quantity))
            assert isinstance(reply, Accepted), reply
            assert reply.order is not None
            coid = reply.order.client_order_id
            await desk.until(lambda coid=coid: coid in desk.venue.book, "the venue to take it")
            price = Decimal(rng.randint(900_000, 1_100_000)) / 10_000
            desk.venue.fill(coid, quantity, price)
            expected.apply_fill(side, quantity, price)
            await desk.until(lambda coid=coid: any(
                e.client_order_id == coid and e.status == "filled" for e in desk.committed()),
                "the fill to be committed")
        [row] = await desk.rows(positions)
        assert len(await desk.rows(fills)) == 60
    assert expected.realized_pnl != 0
    assert tuple(row[name] for name in STATE) == tuple(getattr(expected, n) for n in STATE)
    half_up = Decimal("1e-18")
    assert row["avg_price"].quantize(half_up, ROUND_HALF_UP) == expected.avg_price.quantize(
        half_up, ROUND_HALF_UP)
