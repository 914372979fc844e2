"""The journal's records: the kinds of write, the record a producer enqueues, a batch's plan.

Where it sits: between the producers of :class:`lts.persistence.journal.Journal`, which enqueue
one record per write, and the statement builders of each store
(:mod:`lts.persistence.journal_sqlite`, :mod:`lts.persistence.journal_pg`), which run a batch
as :func:`plan` sorts it: one ``executemany`` group per kind and key set, the kinds in the order
a batch writes them, the last update per order and the last position state per
``(portfolio_id, symbol)`` only.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import Any, Final

__all__ = [
    "AUDIT",
    "FILL",
    "KINDS",
    "KIND_NAMES",
    "ORDER_EVENT",
    "ORDER_INSERT",
    "ORDER_UPDATE",
    "PORTFOLIO_UPDATE",
    "POSITION",
    "Guard",
    "Plan",
    "Record",
    "Row",
    "plan",
]

Row = Mapping[str, Any]

# Kinds of record, in the order a batch writes them.
ORDER_INSERT: Final = 0
ORDER_UPDATE: Final = 1
FILL: Final = 2  # the fill insert, then its position (kind 3)
POSITION: Final = 3  # SQLite: the fill's position state upserted; PostgreSQL: see pg_fills
ORDER_EVENT: Final = 4
AUDIT: Final = 5
PORTFOLIO_UPDATE: Final = 6
KINDS: Final = 7
KIND_NAMES: Final = ("order insert", "order update", "fill", "position upsert", "order event",
                     "audit", "portfolio update")

# A record's fence: (portfolio id, the token fenced when it was enqueued; None: not fenced then).
Guard = tuple[int, int | None]
# A record: (kind, row, position row of a fill or None, future, guard or None).
Record = tuple[int, Row, Row | None, asyncio.Future[None], Guard | None]
# A batch's plan: per kind, the executemany groups by key set.
Plan = list[dict[tuple[str, ...], list[Row]]]


def _group(groups: dict[tuple[str, ...], list[Row]], row: Row) -> None:
    """Add ``row`` to the executemany group of its key set (one executemany needs one)."""
    key = tuple(row)
    rows = groups.get(key)
    if rows is None:
        groups[key] = [row]
    else:
        rows.append(row)


def _rebind(row: Row, key: str, bind_name: str) -> dict[str, Any]:
    """An update's parameters: the WHERE key renamed (a column name is taken by SET)."""
    params = dict(row)
    params[bind_name] = params.pop(key)
    return params


def plan(records: Sequence[Record]) -> Plan:
    """Sort a batch into one executemany group per (kind, key set), positions deduplicated."""
    groups: Plan = [{} for _ in range(KINDS)]
    last_position: dict[tuple[Any, Any], Row] = {}
    last_update: dict[Any, Row] = {}
    for kind, row, position, _, _ in records:
        if kind == ORDER_UPDATE:
            # Every update carries the order's whole mutable state: the last one per order wins.
            last_update[row["client_order_id"]] = row
        elif kind == PORTFOLIO_UPDATE:
            _group(groups[kind], _rebind(row, "id", "b_id"))
        else:
            _group(groups[kind], row)
            if position is not None:
                last_position[(position["portfolio_id"], position["symbol"])] = position
    for row in last_update.values():
        _group(groups[ORDER_UPDATE], _rebind(row, "client_order_id", "b_coid"))
    for position in last_position.values():
        _group(groups[POSITION], position)
    return groups
