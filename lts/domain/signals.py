"""Signals: a strategy's intent, before any sizing, risk or broker is involved.

A signal names a target exposure (long, flat or short). It may name a quantity; otherwise the
portfolio plugin sizes it. Flow: strategy --Signal--> portfolio plugin --OrderRequest--> risk.
"""

import enum
from decimal import Decimal

import msgspec


class Target(enum.Enum):
    LONG = "long"
    FLAT = "flat"
    SHORT = "short"


class Signal(msgspec.Struct, frozen=True):
    symbol: str
    target: Target
    ts_event: int
    quantity: Decimal | None = None
    reason: str = ""
