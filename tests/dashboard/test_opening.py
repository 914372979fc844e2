"""Today's P&L of the dashboard: the opening equity (00:00 UTC) from the fills before midnight,
on both stores, and the book's value as the domain's analytics values a portfolio."""

from decimal import Decimal

import pytest
from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncEngine

from lts.api.dashboard_opening import DAY_NS, Book, OpeningEquity, midnight_ns
from lts.domain.analytics import analyze
from lts.domain.orders import Fill, Side
from lts.persistence.reader import Reader
from lts.persistence.tables import fills, orders, portfolios

pytestmark = pytest.mark.anyio

TODAY = 1_796_000_000 * 10**9 - 1_796_000_000 * 10**9 % DAY_NS  # some midnight
#: (symbol, side, quantity, price, fee, when): two fills yesterday, one today
FILLS = [("AAA", "buy", "10", "100", "1", TODAY - 3600 * 10**9),
         ("AAA", "sell", "4", "110", "0.5", TODAY - 60 * 10**9),
         ("BBB", "buy", "2", "50", "0.1", TODAY + 60 * 10**9)]


async def _store(db: AsyncEngine) -> int:
    async with db.begin() as conn:
        pid = (await conn.execute(insert(portfolios).values(
            name="book", initial_cash=Decimal(10_000), portfolio_params={}, risk_params={})
            .returning(portfolios.c.id))).scalar_one()
        for n, (symbol, side, qty, price, fee, ts) in enumerate(FILLS, 1):
            coid = f"{pid}-{n}"
            await conn.execute(insert(orders).values(
                client_order_id=coid, portfolio_id=pid, symbol=symbol, side=side,
                order_type="market", time_in_force="gtc", quantity=Decimal(qty),
                status="filled", filled_quantity=Decimal(qty), broker="paper", ts_init=ts,
                ts_last=ts))
            await conn.execute(insert(fills).values(
                portfolio_id=pid, client_order_id=coid, broker="paper", trade_id=coid,
                symbol=symbol, side=side, quantity=Decimal(qty), price=Decimal(price),
                fee=Decimal(fee), ts_event=ts))
    return int(pid)


async def test_the_opening_equity_counts_the_fills_before_midnight(
        migrated_engine: AsyncEngine) -> None:
    pid = await _store(migrated_engine)
    reader = Reader(migrated_engine)
    try:
        await _openings(reader, pid)
    finally:
        reader.dispose()


async def _openings(reader: Reader, pid: int) -> None:
    opening = OpeningEquity()
    row = {"id": pid, "initial_cash": Decimal(10_000)}
    # yesterday's two fills: cash 10000 - 1001 + 439.5 = 9438.5, 6 AAA at 110 = 660
    assert await opening.of(reader, [row], now_ns=TODAY + 5) == {pid: 9438.5 + 660}
    # the day before: nothing had happened yet
    assert await OpeningEquity().of(reader, [row], now_ns=TODAY - 5) == {pid: 10_000.0}
    # asked again the same day: the value kept (no read)
    assert await opening.of(reader, [row], now_ns=TODAY + 10**9) == {pid: 10_098.5}
    # tomorrow: read again, today's fill counted (cash 9438.5 - 100.1, 2 BBB at 50)
    tomorrow = await opening.of(reader, [row], now_ns=TODAY + DAY_NS)
    assert tomorrow == {pid: pytest.approx(9338.4 + 660 + 100)}


def test_midnight_is_the_start_of_the_utc_day() -> None:
    assert midnight_ns(TODAY) == TODAY
    assert midnight_ns(TODAY + DAY_NS - 1) == TODAY


def test_a_book_is_valued_as_the_analytics_value_a_portfolio() -> None:
    book = Book(Decimal(10_000))
    domain = []
    for n, (symbol, side, qty, price, fee, ts) in enumerate(FILLS, 1):
        book.apply({"symbol": symbol, "side": side, "quantity": qty, "price": price, "fee": fee,
                    "commission": "0"})
        domain.append(Fill(1, f"1-{n}", "paper", f"t{n}", symbol, Side(side), Decimal(qty),
                           Decimal(price), Decimal(fee), ts))
    marks = {"AAA": Decimal(120), "BBB": Decimal(40)}
    assert book.value(marks) == analyze(Decimal(10_000), domain, marks).equity
    assert book.value() == analyze(Decimal(10_000), domain, {}).equity
