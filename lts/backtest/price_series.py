"""The bars of one symbol as arrays: what the backtest report charts under the trades.

Flow: the replay's market data --PriceSeries (one per symbol)--> :func:`lts.backtest.report.
write_report`, which draws them (downsampled for the chart). Times are ns since the epoch, each
bar stamped with its open time (:attr:`lts.domain.market.Bar.ts_event`); prices are floats.
"""

from collections.abc import Iterable, Sequence
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt

from lts.domain.market import Bar
from lts.errors import DataError

__all__ = ["PriceSeries"]

_Floats = Sequence[float] | npt.NDArray[np.float64]
_A = TypeVar("_A", bound=np.ndarray[Any, Any])


class PriceSeries:
    """Open, high, low and close of one symbol at times ``ts_ns`` (read-only copies)."""

    __slots__ = ("close", "high", "low", "open", "symbol", "ts_ns")

    def __init__(self, symbol: str, ts_ns: Sequence[int] | npt.NDArray[np.int64],
                 open: _Floats, high: _Floats, low: _Floats, close: _Floats) -> None:
        self.symbol = symbol
        self.ts_ns = _read_only(np.array(ts_ns, dtype=np.int64))
        self.open, self.high, self.low, self.close = (
            _read_only(np.array(v, dtype=np.float64)) for v in (open, high, low, close))
        if not (self.ts_ns.ndim == 1 and len(self.ts_ns) == len(self.open) == len(self.high)
                == len(self.low) == len(self.close)):
            raise DataError(f"{symbol}: times, open, high, low and close differ in length")
        if len(self.ts_ns) > 1 and bool(np.any(np.diff(self.ts_ns) < 0)):
            raise DataError(f"{symbol}: bar times go back")

    @classmethod
    def from_bars(cls, symbol: str, bars: Iterable[Bar]) -> "PriceSeries":
        """The series of ``bars`` (all of ``symbol``, in time order)."""
        rows = [(b.ts_event, b.open, b.high, b.low, b.close) for b in bars]
        ts, o, h, lo, c = zip(*rows, strict=True) if rows else ((), (), (), (), ())
        return cls(symbol, ts, o, h, lo, c)

    def __len__(self) -> int:
        return len(self.ts_ns)

    @property
    def first_close(self) -> float | None:
        return float(self.close[0]) if len(self) else None

    @property
    def last_close(self) -> float | None:
        return float(self.close[-1]) if len(self) else None


def _read_only(array: _A) -> _A:
    array.setflags(write=False)
    return array
