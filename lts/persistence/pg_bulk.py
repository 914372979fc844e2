"""PostgreSQL's bulk insert for the journal: a batch's rows as one ``INSERT ... SELECT * FROM
unnest(...)``, one array per column.

Where it sits: under the journal's PostgreSQL path (:mod:`lts.persistence.journal` for orders,
order events and audit rows, :mod:`lts.persistence.pg_fills` for fills). The statement is the
same whatever the batch size, so asyncpg prepares it once and the server plans it once.
SQLAlchemy's ``executemany`` sends one execution per row instead, and its multi-row ``VALUES``
form is a new statement, planned anew, for every batch size. Measured here (2 busy cores), a
batch of 100 orders committed in 9.5 ms against about 14 ms either way, with 2.9 ms of client
CPU against 4.2-4.6 ms.

Values are converted as the column types convert them: ``Money`` to ``Decimal``, ``JSON`` to its
text (a pre-encoded ``msgspec.Raw`` as it is). Column names come from LTS's own rows and are
checked against the table.

:meth:`BulkInsert.execute_with_xid` runs the first statement as ``WITH w AS (INSERT ...) SELECT
txid_current()``: the journal learns the transaction's id (to settle a commit cut off by a lost
connection) without a round trip of its own.
"""

from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal
from operator import itemgetter
from typing import Any

import msgspec
from sqlalchemy import JSON, Table
from sqlalchemy.engine import CursorResult
from sqlalchemy.ext.asyncio import AsyncConnection

from lts.persistence.types import Money

__all__ = ["BulkInsert"]

Row = Mapping[str, Any]

_json = msgspec.json.Encoder().encode


def _json_text(value: Any) -> str | None:
    if value is None:
        return None
    raw = value if type(value) is msgspec.Raw else _json(value)
    return bytes(raw).decode()


def _money(value: Any) -> Decimal | None:
    return value if value is None or type(value) is Decimal else Decimal(value)


class BulkInsert:
    """``INSERT INTO table (keys) SELECT * FROM unnest(...)`` plus ``suffix`` (``ON CONFLICT``,
    ``RETURNING``), one statement per key set."""

    def __init__(self, table: Table, suffix: str = "") -> None:
        self._table = table
        self._suffix = suffix
        self._sql: dict[tuple[str, ...], tuple[str, list[Callable[[Any], Any] | None]]] = {}
        self._xid_sql: dict[tuple[str, ...], str] = {}

    def _statement(self, keys: tuple[str, ...],
                   connection: AsyncConnection) -> tuple[str, list[Callable[[Any], Any] | None]]:
        cached = self._sql.get(keys)
        if cached is not None:
            return cached
        unknown = [k for k in keys if k not in self._table.c]
        if unknown:
            raise ValueError(f"unknown {self._table.name} column(s): {unknown}")
        columns = [self._table.c[k] for k in keys]
        dialect = connection.dialect
        arrays = ", ".join(f"${i}::{column.type.compile(dialect)}[]"
                           for i, column in enumerate(columns, 1))
        sql = (f"INSERT INTO {self._table.name} ({', '.join(keys)}) "  # noqa: S608 # nosec B608
               f"SELECT * FROM unnest({arrays}){self._suffix}")
        converters: list[Callable[[Any], Any] | None] = [
            _money if isinstance(c.type, Money) else _json_text if isinstance(c.type, JSON)
            else None for c in columns]
        self._sql[keys] = (sql, converters)
        return sql, converters

    async def execute(self, connection: AsyncConnection,
                      rows: Sequence[Row]) -> list[CursorResult[Any]]:
        """Insert ``rows`` (in order), one statement per key set; the results in that order."""
        results = []
        for keys, group in self._groups(rows).items():
            sql, converters = self._statement(keys, connection)
            results.append(await connection.exec_driver_sql(
                sql, _arrays(keys, group, converters)))
        return results

    async def execute_with_xid(self, connection: AsyncConnection, rows: Sequence[Row]) -> int:
        """Insert ``rows`` (at least one; without ``RETURNING``) as :meth:`execute` does; the id
        of the transaction (``txid_current()``), read by the first statement."""
        xid: int | None = None
        for keys, group in self._groups(rows).items():
            sql, converters = self._statement(keys, connection)
            if xid is None:
                xid_sql = self._xid_sql.get(keys)
                if xid_sql is None:
                    xid_sql = self._xid_sql[keys] = f"WITH w AS ({sql}) SELECT txid_current()"
                result = await connection.exec_driver_sql(xid_sql,
                                                          _arrays(keys, group, converters))
                xid = int(result.scalar_one())
            else:
                await connection.exec_driver_sql(sql, _arrays(keys, group, converters))
        if xid is None:
            raise ValueError("no rows to insert")
        return xid

    @staticmethod
    def _groups(rows: Sequence[Row]) -> dict[tuple[str, ...], list[Row]]:
        groups: dict[tuple[str, ...], list[Row]] = {}
        for row in rows:
            groups.setdefault(tuple(row), []).append(row)
        return groups


def _arrays(keys: tuple[str, ...], group: Sequence[Row],
            converters: Sequence[Callable[[Any], Any] | None]) -> tuple[list[Any], ...]:
    """One array per column of ``group``, converted."""
    take = itemgetter(*keys)
    values = [take(row) for row in group] if len(keys) > 1 else [(take(row),) for row in group]
    columns = zip(*values, strict=True)
    return tuple(list(column) if convert is None else [convert(v) for v in column]
                 for column, convert in zip(columns, converters, strict=True))
