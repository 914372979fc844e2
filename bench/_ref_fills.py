"""The common ground of the parity bench: a fill and a run's result as every engine is read into.

Each engine (LTS, backtesting.py, backtrader) is read into the same shape: fills as (bar time in
ns UTC, side, quantity, price) with exact decimals, and the final equity marked at the last close.
Prices from a float go through ``repr`` (``1.0716`` stays ``1.0716``), the way LTS reads a float.
"""

from dataclasses import dataclass, field
from decimal import Decimal
from typing import NamedTuple

import pandas as pd

__all__ = ["CENT", "Fill", "RunResult", "bar_ns", "decimal_of", "exact_ties", "first_difference",
           "net", "same_equity"]

CENT = Decimal("0.01")


class Fill(NamedTuple):
    ts_ns: int  # the time of the bar whose price the fill took
    side: str  # "buy" or "sell"
    quantity: Decimal
    price: Decimal

    def show(self) -> str:
        when = pd.Timestamp(self.ts_ns, tz="UTC").strftime("%Y-%m-%d %H:%M")
        return f"{when} {self.side:<4} {self.quantity.normalize():f} @ {self.price.normalize():f}"


@dataclass
class RunResult:
    engine: str
    fills: list[Fill]
    final_equity: Decimal
    notes: list[str] = field(default_factory=list)
    extra: dict[str, object] = field(default_factory=dict)


def decimal_of(value: float) -> Decimal:
    """A float as written (its shortest repr), not its binary expansion."""
    return Decimal(repr(float(value)))


def bar_ns(when: object) -> int:
    """A bar time (pandas/datetime, naive taken as UTC) in ns since the epoch."""
    ts = pd.Timestamp(when)  # type: ignore[arg-type]
    if ts.tzinfo is None:
        ts = ts.tz_localize("UTC")
    return int(ts.value)


def net(fills: list[Fill]) -> list[Fill]:
    """Fills of the same bar, side and price as one: a reversal is one order of 2Q in LTS and
    backtrader, and two trades (close Q, open Q) in backtesting.py."""
    out: list[Fill] = []
    for f in sorted(fills, key=lambda f: f.ts_ns):
        last = out[-1] if out else None
        if last is not None and (last.ts_ns, last.side, last.price) == (f.ts_ns, f.side, f.price):
            out[-1] = last._replace(quantity=last.quantity + f.quantity)
        else:
            out.append(f)
    return out


def first_difference(a: list[Fill], b: list[Fill]) -> tuple[int, Fill | None, Fill | None] | None:
    """The index of the first fill that differs (exactly), with both sides; None if equal."""
    for i in range(max(len(a), len(b))):
        fa = a[i] if i < len(a) else None
        fb = b[i] if i < len(b) else None
        if fa is None or fb is None or fa.ts_ns != fb.ts_ns or fa.side != fb.side \
                or fa.quantity != fb.quantity or fa.price != fb.price:
            return i, fa, fb
    return None


def same_equity(a: Decimal, b: Decimal) -> bool:
    """Equal to the cent."""
    return abs(a - b) < CENT / 2


def exact_ties(frame: pd.DataFrame, decimals: int, fast: int, slow: int) -> list[int]:
    """Bars (ns) where the fast and slow means of the closes are exactly equal (as integers
    in units of the last decimal: ``fast_sum * slow == slow_sum * fast``). There the cross
    depends on how each engine rounds: LTS compares exactly; the references' float means come
    out a few 1e-21 above or below, each its own way."""
    closes = (frame["Close"] * 10**decimals).round().astype("int64")
    diff = closes.rolling(fast).sum() * slow - closes.rolling(slow).sum() * fast
    return [bar_ns(t) for t in frame.index[(diff == 0).to_numpy()]]
