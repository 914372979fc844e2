"""The venue's tape as candles: the bars that traded, aggregated per Binance kline interval.

Where it sits: beside :class:`~lts.venue.exchange.Exchange`, fed the same bars (the venue's
feed task calls both); read by the REST front's ``klines`` and ``ticker`` endpoints. Each
symbol keeps, per interval, a bounded history (:data:`HISTORY` candles, the newest still open)
so a client's backfill (``fetch_ohlcv`` with ``since``) finds the recent past. Pure and
synchronous; times in ms since the epoch, prices exact decimals.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from decimal import Decimal

HISTORY = 1500  # candles kept per symbol and interval: a day and more of 1m candles
DAY_MS = 86_400_000
_FIXED_MS = {"1s": 1_000, "1m": 60_000, "3m": 180_000, "5m": 300_000, "15m": 900_000,
             "30m": 1_800_000, "1h": 3_600_000, "2h": 7_200_000, "4h": 14_400_000,
             "6h": 21_600_000, "8h": 28_800_000, "12h": 43_200_000, "1d": DAY_MS,
             "3d": 3 * DAY_MS, "1w": 7 * DAY_MS}
_WEEK_OFFSET_MS = 4 * DAY_MS  # Binance's weeks start on Monday; 1970-01-01 was a Thursday
INTERVALS = (*_FIXED_MS, "1M")


@dataclass(frozen=True)
class Candle:
    open_time: int
    close_time: int  # the last ms of the interval
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal
    quote_volume: Decimal  # close times volume, summed over its bars
    count: int  # bars


@dataclass(frozen=True)
class Window:
    """The 24-hour statistics of a symbol (the ``ticker/24hr`` endpoint)."""

    open_time: int
    close_time: int
    open: Decimal
    high: Decimal
    low: Decimal
    last: Decimal
    volume: Decimal
    quote_volume: Decimal
    count: int


def bounds(interval: str, time_ms: int) -> tuple[int, int]:
    """The open and close time of the ``interval`` candle that holds ``time_ms``."""
    if interval == "1M":
        day = datetime.fromtimestamp(time_ms / 1000, UTC)
        first = datetime(day.year, day.month, 1, tzinfo=UTC)
        after = datetime(day.year + day.month // 12, day.month % 12 + 1, 1, tzinfo=UTC)
        return int(first.timestamp() * 1000), int(after.timestamp() * 1000) - 1
    size = _FIXED_MS[interval]
    offset = _WEEK_OFFSET_MS if interval == "1w" else 0
    start = time_ms - (time_ms - offset) % size
    return start, start + size - 1


class Tape:
    """Candles per symbol and interval, from the bars the venue trades."""

    def __init__(self, symbols: Iterable[str], *, history: int = HISTORY) -> None:
        self._candles: dict[str, dict[str, deque[Candle]]] = {
            s: {i: deque(maxlen=history) for i in INTERVALS} for s in symbols}
        self.last_volume: dict[str, Decimal] = {}  # the newest bar's

    def add(self, symbol: str, time_ms: int, open: Decimal, high: Decimal, low: Decimal,
            close: Decimal, volume: Decimal) -> None:
        """A bar of ``symbol`` traded at ``time_ms``: every interval's candle takes it in (a
        bar older than the newest candle joins that candle)."""
        self.last_volume[symbol] = volume
        quote = close * volume
        for interval, candles in self._candles[symbol].items():
            newest = candles[-1] if candles else None
            if newest is not None and time_ms <= newest.close_time:
                candles[-1] = replace(newest, high=max(newest.high, high),
                                      low=min(newest.low, low), close=close,
                                      volume=newest.volume + volume,
                                      quote_volume=newest.quote_volume + quote,
                                      count=newest.count + 1)
            else:
                start, end = bounds(interval, time_ms)
                candles.append(Candle(start, end, open, high, low, close, volume, quote, 1))

    def candles(self, symbol: str, interval: str, *, start: int | None = None,
                end: int | None = None, limit: int = 500) -> list[Candle]:
        """As Binance's ``klines`` answers: candles opened in [start, end]; from ``start``
        the first ``limit`` of them, else the last ``limit``."""
        chosen = [c for c in self._candles[symbol][interval]
                  if (start is None or c.open_time >= start)
                  and (end is None or c.open_time <= end)]
        return chosen[:limit] if start is not None else chosen[-limit:]

    def window(self, symbol: str, now: int) -> Window | None:
        """The last 24 hours of ``symbol`` (from its 1m candles); None before its first bar."""
        day = [c for c in self._candles[symbol]["1m"] if c.open_time > now - DAY_MS]
        if not day:
            return None
        return Window(day[0].open_time, now, day[0].open, max(c.high for c in day),
                      min(c.low for c in day), day[-1].close, sum((c.volume for c in day),
                                                                  Decimal(0)),
                      sum((c.quote_volume for c in day), Decimal(0)), sum(c.count for c in day))
