"""The journal's fill step on PostgreSQL: fills and their positions, right with many writers.

Where it sits: inside each batch transaction of :class:`lts.persistence.journal.Journal` on
PostgreSQL, after the order writes (architecture §5). Several engines — processes, connections —
may apply fills to one position, so a position row is never overwritten with a state computed
elsewhere. For the fills of a batch, in the batch's one READ COMMITTED transaction:

1. the missing position rows are inserted flat (``ON CONFLICT DO NOTHING``);
2. the batch's position rows are locked, ``SELECT ... FOR UPDATE`` ordered by
   ``(portfolio_id, symbol)``: every writer locks in that order, so writers queue on a position
   instead of deadlocking over two;
3. the fills are inserted, ``ON CONFLICT (broker, trade_id) DO NOTHING RETURNING``: only the
   fills really inserted count, so a duplicate — in the batch, or sent by another writer —
   changes nothing;
4. those fills are applied, in batch order, to the locked state with the domain's
   :meth:`~lts.domain.position.Position.apply_fill`, and each changed position is written back.

The row keeps the exact signed cost basis (``cost``); ``avg_price`` is derived from it, rounded
to the column's 18 places, and never read back into the arithmetic. So with one writer the row
equals that writer's ledger, and with many it equals a replay of the position's fills in id
order (a position's fills are inserted under its lock, so their ids follow the order in which
they were applied).
"""

from collections.abc import Mapping, Sequence
from typing import Any, Final

from sqlalchemy import bindparam, select, tuple_, update
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.base import Executable

from lts.domain.orders import Side
from lts.domain.position import Position
from lts.domain.values import ZERO
from lts.persistence.pg_bulk import BulkInsert
from lts.persistence.tables import fills, positions

__all__ = ["PgFillWriter"]

Row = Mapping[str, Any]

_FLAT: Final[dict[str, Any]] = {"quantity": ZERO, "cost": ZERO, "avg_price": ZERO,
                                "realized_pnl": ZERO, "fees": ZERO, "ts_last": 0}


class PgFillWriter:
    """Statements built once (SQLAlchemy's compiled cache serves them); no state between
    batches: everything a batch needs is read under its locks."""

    def __init__(self) -> None:
        key = (positions.c.portfolio_id, positions.c.symbol)
        self._insert_missing: Executable = postgresql.insert(positions).on_conflict_do_nothing(
            index_elements=list(key))
        self._lock: Executable = (
            select(positions.c.id, *key, positions.c.quantity, positions.c.cost,
                   positions.c.realized_pnl, positions.c.fees)
            .where(tuple_(*key).in_(bindparam("keys", expanding=True)))
            .order_by(*key)
            .with_for_update())
        self._insert_fills = BulkInsert(
            fills, " ON CONFLICT (broker, trade_id) DO NOTHING RETURNING broker, trade_id")
        self._write_back: Executable = update(positions).where(
            positions.c.id == bindparam("b_id"))

    async def write(self, connection: AsyncConnection, rows: Sequence[Row]) -> None:
        """Insert the fill ``rows`` (oldest first) and apply the new ones to their positions,
        inside the transaction open on ``connection``."""
        if not rows:
            return
        unique: dict[tuple[str, str], Row] = {}
        for row in rows:  # the first of a duplicated (broker, trade_id) is the one inserted
            unique.setdefault((row["broker"], row["trade_id"]), row)
        keys = sorted({(row["portfolio_id"], row["symbol"]) for row in unique.values()})
        await connection.execute(self._insert_missing, [
            {"portfolio_id": portfolio_id, "symbol": symbol, **_FLAT}
            for portfolio_id, symbol in keys])
        ids: dict[tuple[int, str], int] = {}
        state: dict[tuple[int, str], Position] = {}
        for r in await connection.execute(self._lock, {"keys": keys}):
            ids[(r.portfolio_id, r.symbol)] = r.id
            state[(r.portfolio_id, r.symbol)] = Position(
                symbol=r.symbol, quantity=r.quantity, cost=r.cost, realized_pnl=r.realized_pnl,
                fees=r.fees)
        results = await self._insert_fills.execute(connection, list(unique.values()))
        inserted = {(r.broker, r.trade_id) for result in results for r in result}
        last_ts: dict[tuple[int, str], int] = {}
        for trade, row in unique.items():
            if trade in inserted:
                key = (row["portfolio_id"], row["symbol"])
                side, quantity = Side(row["side"]), row["quantity"]
                commission = row.get("commission") or ZERO
                if commission:  # a fee in the asset itself (Fill.position_quantity)
                    quantity = quantity - commission if side is Side.BUY else \
                        quantity + commission
                state[key].apply_fill(side, quantity, row["price"],
                                      row["fee"] + commission * row["price"])
                last_ts[key] = row["ts_event"]
        if last_ts:
            await connection.execute(self._write_back, [
                {"b_id": ids[key], "quantity": state[key].quantity, "cost": state[key].cost,
                 "avg_price": state[key].avg_price, "realized_pnl": state[key].realized_pnl,
                 "fees": state[key].fees, "ts_last": ts}
                for key, ts in last_ts.items()])
