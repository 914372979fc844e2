"""Faults the local exchange injects on purpose, so that LTS is tested against a venue that
misbehaves the way real ones do.

Where it sits: one :class:`Faults` per venue process, read by its fronts (REST and WebSocket)
and by the process that serves them (:mod:`lts.venue.server`); set at start with
``--fault NAME=VALUE`` (settings only) and at run time through the admin endpoint
(:mod:`lts.venue.admin`: ``POST /admin/faults`` with ``{"NAME": VALUE, ...}``). A value is the
command line's text or a JSON value; :func:`parse` turns either into what the fault takes, or
raises :class:`FaultError` with one line saying why not.

Settings (they stay until set again):

- ``order_delay=SECONDS`` (0): answers to ``POST`` and ``DELETE /api/v3/order`` wait this long;
  the order is placed or canceled at once.
- ``weight_limit=N`` (6000, Binance's): request weight per minute and address. Beyond it a
  request answers 429 ``{"code": -1003, ...}`` with ``Retry-After``; an address that sends
  :data:`BAN_AFTER` more requests while limited is banned: 418, ``Retry-After``, for every
  request until the ban ends. Setting it starts a fresh count and lifts every ban.
- ``ban_seconds=SECONDS`` (120): how long a ban lasts.

Counters (each use takes one; set to 0 to stop early):

- ``drop_order_answers=N``: the next N ``POST /api/v3/order`` are carried out (placed, or
  refused by the matching engine) and their answer never comes: the connection is cut.
- ``duplicate_reports=N``: the next N executionReports on the user stream are sent twice.
- ``http_5xx=N``: the next N ``/api/v3`` requests answer 503 and do nothing.

Actions (done once, when set; refused at start):

- ``ws_drop=true``: every WebSocket connection is closed now.
- ``down=SECONDS``: the venue goes down: new connections are refused, open ones (HTTP in
  flight, WebSockets) are cut; it comes back after SECONDS on the same port.
- ``external_fill=SYMBOL:SIDE:QTY`` (``BTCUSDT:BUY:0.01``, ``BTC/USDT:SELL:1``): a market order
  on the account from outside any client (client order id ``web_<hex>``, as Binance's own UI
  names them): its executionReports and balance changes reach the user stream.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from lts.venue.exchange import Side

WEIGHT_LIMIT = 6_000  # Binance's, per minute and address
BAN_SECONDS = 120.0
BAN_AFTER = 3  # requests an address may send while limited before it is banned

SETTINGS = ("order_delay", "weight_limit", "ban_seconds")
COUNTERS = ("drop_order_answers", "duplicate_reports", "http_5xx")
ACTIONS = ("ws_drop", "down", "external_fill")
NAMES = SETTINGS + COUNTERS + ACTIONS


class FaultError(ValueError):
    """A fault name or value the venue does not take; its text is one line."""


@dataclass(frozen=True)
class ExternalFill:
    """The ``external_fill`` action: a market order placed on the account from outside."""

    symbol: str  # the venue's id: BTCUSDT
    side: Side
    quantity: Decimal


@dataclass
class Faults:
    order_delay: float = 0.0
    weight_limit: int = WEIGHT_LIMIT
    ban_seconds: float = BAN_SECONDS
    drop_order_answers: int = 0
    duplicate_reports: int = 0  # the next N executionReports are each sent twice
    http_5xx: int = 0
    limits_set: int = 0  # bumped when weight_limit is set: counts restart, bans are lifted
    ws_drop_listeners: list[Callable[[], None]] = field(default_factory=list)
    down_listeners: list[Callable[[float], None]] = field(default_factory=list)

    def set(self, name: str, value: object) -> None:
        """Set a setting or a counter (``value`` as :func:`parse` takes it)."""
        if name not in SETTINGS + COUNTERS:
            raise FaultError(f"fault {name}: an action, not a setting" if name in ACTIONS
                             else _unknown(name))
        setattr(self, name, parse(name, value))
        if name == "weight_limit":
            self.limits_set += 1

    def settings(self) -> dict[str, Any]:
        """The settings and counters as they are now (what ``GET /admin/faults`` answers)."""
        return {name: getattr(self, name) for name in SETTINGS + COUNTERS}

    def take_duplicate(self) -> bool:
        """Whether this executionReport is to be sent twice (uses up one)."""
        if self.duplicate_reports > 0:
            self.duplicate_reports -= 1
            return True
        return False

    def take_dropped_answer(self) -> bool:
        """Whether the answer to this order is to be lost (uses up one)."""
        if self.drop_order_answers > 0:
            self.drop_order_answers -= 1
            return True
        return False

    def take_5xx(self) -> bool:
        """Whether this request is to answer 503 (uses up one)."""
        if self.http_5xx > 0:
            self.http_5xx -= 1
            return True
        return False

    def drop_websockets(self) -> None:
        """Close every WebSocket connection now (clients see the connection drop)."""
        for listener in list(self.ws_drop_listeners):
            listener()

    def go_down(self, seconds: float) -> None:
        """Take the venue down for ``seconds`` (its server listens in ``down_listeners``)."""
        for listener in list(self.down_listeners):
            listener(seconds)


def parse(name: str, value: object) -> Any:
    """``value`` (command-line text or a JSON value) as fault ``name`` takes it."""
    if name == "weight_limit":
        return _integer(name, value, least=1)
    if name in COUNTERS:
        return _integer(name, value, least=0)
    if name in ("order_delay", "ban_seconds"):
        return _seconds(name, value, positive=False)
    if name == "down":
        return _seconds(name, value, positive=True)
    if name == "ws_drop":
        if value is True or value == 1 or (isinstance(value, str) and value in ("true", "1")):
            return True
        raise FaultError(f"fault ws_drop: {value!r} is not true")
    if name == "external_fill":
        return _external_fill(value)
    raise FaultError(_unknown(name))


def parse_assignment(text: str) -> tuple[str, Any]:
    """``NAME=VALUE`` (``--fault``) as the fault's name and value."""
    name, sep, value = text.partition("=")
    name = name.strip()
    if not sep:
        raise FaultError(f"{text!r} is not NAME=VALUE (e.g. order_delay=2)")
    return name, parse(name, value.strip())


def _unknown(name: str) -> str:
    return f"unknown fault {name!r} (known: {', '.join(NAMES)})"


def _integer(name: str, value: object, *, least: int) -> int:
    number: int | None = None
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, str) and value.strip().isdigit():
        number = int(value)
    if number is None or number < least:
        raise FaultError(f"fault {name}: {value!r} is not a whole number of at least {least}")
    return number


def _seconds(name: str, value: object, *, positive: bool) -> float:
    number: float | None = None
    if isinstance(value, int | float) and not isinstance(value, bool):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            number = None
    if number is None or not math.isfinite(number) or number < 0 or (positive and number == 0):
        kind = "more than 0" if positive else "0 or more"
        raise FaultError(f"fault {name}: {value!r} is not a number of seconds, {kind}")
    return number


def _external_fill(value: object) -> ExternalFill:
    fields = value.split(":") if isinstance(value, str) else []
    bad = FaultError(f"fault external_fill: {value!r} is not SYMBOL:SIDE:QTY "
                     "(e.g. BTCUSDT:BUY:0.01)")
    if len(fields) != 3:
        raise bad
    symbol, side, quantity = (f.strip() for f in fields)
    try:
        qty = Decimal(quantity)
    except InvalidOperation:
        raise bad from None
    symbol = symbol.replace("/", "").upper()
    if not symbol.isalnum() or side.upper() not in ("BUY", "SELL") or not qty.is_finite() \
            or qty <= 0:
        raise bad
    return ExternalFill(symbol, Side(side.upper()), qty)
