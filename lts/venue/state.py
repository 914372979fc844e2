"""The venue's state on disk, so that its accounts, orders and trades survive a restart
(``python -m lts.engine venue --state FILE``).

Where it sits: beside :class:`~lts.venue.exchange.Exchange`, in the venue process
(:mod:`lts.venue.server`): loaded once before the venue listens, saved by :class:`StateSaver`
before the venue says anything of a change (the REST front's answer, the tape's next prints and
reports: :meth:`StateSaver.flush` after each request and each bar, so a venue killed at any
moment restarts with every order and trade a client heard of), a moment after any other change
(the admin endpoint's external fill: at most one write per :data:`DEBOUNCE` seconds), and once
more at stop.

The file is JSON (``"format": "lts-venue-state"``, ``"version": 1``): the accounts' balances
(free, locked), every order and trade with all their fields, the last price per symbol and the
next order and trade ids. Decimals are strings, exactly as the exchange holds them. A write is
atomic: a temporary file beside it, flushed and fsynced, renamed over it, the directory fsynced;
a reader sees the old state or the new one, never half of one.
"""

from __future__ import annotations

import dataclasses
import enum
import itertools
import json
import os
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import anyio

from lts.errors import ConfigError
from lts.venue.exchange import (
    Balance,
    Exchange,
    Order,
    OrderType,
    Report,
    Side,
    Status,
    TimeInForce,
    Trade,
    VenueError,
)

FORMAT = "lts-venue-state"
VERSION = 1
DEBOUNCE = 0.1  # seconds between a change and its write
_ENUMS: dict[str, type[enum.Enum]] = {"side": Side, "type": OrderType,
                                       "time_in_force": TimeInForce, "status": Status}
_PLAIN: dict[str, type] = {"int": int, "bool": bool, "str": str}
_temporary = itertools.count()


def snapshot(exchange: Exchange) -> dict[str, Any]:
    """The exchange's state as JSON-ready values."""
    next_order, next_trade = exchange.next_ids
    return {
        "format": FORMAT, "version": VERSION, "saved_at": exchange.clock(),
        "next_order_id": next_order, "next_trade_id": next_trade,
        "last": {s: str(p) for s, p in exchange.last.items()},
        "accounts": {a: {asset: {"free": str(b.free), "locked": str(b.locked)}
                         for asset, b in balances.items()}
                     for a, balances in exchange.accounts.items()},
        "orders": [_record(o) for o in exchange.orders.values()],
        "trades": [_record(t) for t in exchange.trades],
    }


def restore(exchange: Exchange, data: dict[str, Any], source: str) -> None:
    """Put ``data`` (a :func:`snapshot`) back into ``exchange``; ``source`` names it in the
    one-line :class:`~lts.errors.ConfigError` a file that is not one raises."""
    try:
        if data.get("format") != FORMAT or data.get("version") != VERSION:
            raise ValueError(f"not a {FORMAT} file of version {VERSION}")
        accounts = {a: {asset: Balance(Decimal(b["free"]), Decimal(b["locked"]))
                        for asset, b in balances.items()}
                    for a, balances in data["accounts"].items()}
        orders = [Order(**_fields(Order, r)) for r in data["orders"]]
        trades = [Trade(**_fields(Trade, r)) for r in data["trades"]]
        last = {s: Decimal(p) for s, p in data["last"].items()}
        exchange.restore(accounts, orders, trades, last,
                         (int(data["next_order_id"]), int(data["next_trade_id"])))
    except VenueError as exc:
        raise ConfigError(f"{source}: holds orders of a symbol the venue does not trade "
                          f"({exc.msg})") from None
    except (KeyError, TypeError, ValueError, AttributeError, InvalidOperation) as exc:
        raise ConfigError(f"{source}: not a venue state file ({type(exc).__name__}: "
                          f"{exc})") from None


def save(path: Path, data: dict[str, Any]) -> None:
    """Write ``data`` to ``path`` atomically (see the module's docstring)."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{next(_temporary)}.tmp")
    try:
        with temporary.open("w", encoding="utf-8") as f:
            json.dump(data, f, separators=(",", ":"))
            f.flush()
            os.fsync(f.fileno())
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def load(path: Path) -> dict[str, Any] | None:
    """The state saved at ``path``; None if there is no file yet."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ConfigError(f"--state {path}: cannot read: {exc.strerror}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"--state {path}: not JSON ({exc.msg}, line {exc.lineno})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"--state {path}: not a venue state file")
    return data


class StateSaver:
    """Saves the exchange to ``path``: on :meth:`flush` when it changed, a moment after a change
    no flush followed, and on :meth:`save_now`."""

    def __init__(self, exchange: Exchange, path: Path, *, debounce: float = DEBOUNCE) -> None:
        self.exchange = exchange
        self.path = path
        self.debounce = debounce
        self.dirty = False
        self._changed = anyio.Event()
        exchange.listeners.append(self._on_report)

    def _on_report(self, report: Report) -> None:
        self.dirty = True
        self._changed.set()

    def flush(self) -> None:
        """Write now if the exchange changed (on the loop: nothing is said of the change, no
        answer, no stream frame, before it is on disk)."""
        if self.dirty:
            self.save_now()

    async def run(self) -> None:
        """Write a change that no flush wrote, a moment after it (in a worker thread, from a
        snapshot taken on the loop)."""
        while True:
            await self._changed.wait()
            await anyio.sleep(self.debounce)
            self._changed = anyio.Event()
            if self.dirty:
                self.dirty = False
                await anyio.to_thread.run_sync(save, self.path, snapshot(self.exchange))

    def save_now(self) -> None:
        self.dirty = False
        save(self.path, snapshot(self.exchange))


def _record(item: Order | Trade) -> dict[str, Any]:
    record: dict[str, Any] = {}
    for f in dataclasses.fields(item):
        value = getattr(item, f.name)
        record[f.name] = value.value if isinstance(value, enum.Enum) else \
            str(value) if isinstance(value, Decimal) else value
    return record


def _fields(kind: type[Order] | type[Trade], record: dict[str, Any]) -> dict[str, Any]:
    """A record's fields as ``kind`` takes them (the exchange's annotations are strings)."""
    values: dict[str, Any] = {}
    for f in dataclasses.fields(kind):
        value = record[f.name]
        if f.name in _ENUMS:
            value = _ENUMS[f.name](value)
        elif f.type == "Decimal" and isinstance(value, str):
            value = Decimal(value)
        elif _PLAIN.get(str(f.type)) is not type(value):
            raise TypeError(f"{kind.__name__}.{f.name}: {value!r}")
        values[f.name] = value
    return values
