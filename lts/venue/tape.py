"""The venue's tape: the bars that traded, as public trades (one print a bar) and as candles
per Binance kline interval, with the rolling day's statistics.

Where it sits: one per venue process, fed right after :class:`~lts.venue.exchange.Exchange` the
same bars (the venue's feed tasks in :mod:`lts.venue.server` call :meth:`Tape.add` after
:meth:`Exchange.on_bar <lts.venue.exchange.Exchange.on_bar>`); read by both Binance fronts: the
REST front's ``klines`` and ``ticker`` endpoints (:mod:`lts.venue.binance_rest`) ask it, the
market streams (:mod:`lts.venue.binance_streams`) hear each print from it (:attr:`Tape.listeners`)
and read the candles and the day it changed. So a kline on the stream and the REST klines are the
same candle. Each symbol keeps, per interval, a bounded history (:data:`HISTORY` candles, the
newest still open) so a client's backfill (``fetch_ohlcv`` with ``since``) finds the recent past;
the rolling day is read off the 1m candles. Pure and synchronous; times in ms since the epoch,
prices exact decimals.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable
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
class Print:
    """A bar as one public trade: at the bar's time, at its close, its whole volume."""

    trade_id: int  # per symbol, from 1
    time: int
    price: Decimal
    qty: Decimal
    buyer_maker: bool  # the price went down from the print before: the seller took


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
    first_id: int  # the trade ids of its first and last print
    last_id: int


@dataclass(frozen=True)
class Window:
    """The 24-hour statistics of a symbol (``ticker/24hr``; the ``ticker`` streams)."""

    open_time: int
    close_time: int
    open: Decimal
    high: Decimal
    low: Decimal
    last: Decimal
    volume: Decimal
    quote_volume: Decimal
    count: int
    first_id: int
    last_id: int
    previous_close: Decimal | None  # the close just before the window, if the tape has it


Listener = Callable[[str, Print], None]


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
    """Prints and candles per symbol and interval, from the bars the venue trades.

    ``listeners`` hear each print (symbol, :class:`Print`) once every candle has taken it in."""

    def __init__(self, symbols: Iterable[str], *, history: int = HISTORY) -> None:
        self._candles: dict[str, dict[str, deque[Candle]]] = {
            s: {i: deque(maxlen=history) for i in INTERVALS} for s in symbols}
        self._last: dict[str, Print] = {}
        self.listeners: list[Listener] = []

    def add(self, symbol: str, time_ms: int, open: Decimal, high: Decimal, low: Decimal,
            close: Decimal, volume: Decimal) -> Print:
        """A bar of ``symbol`` traded at ``time_ms``: its print, which every interval's candle
        takes in (a bar older than the newest candle joins that candle); then the listeners
        hear it. A candle's high and low take in the bar's open and close too."""
        before = self._last.get(symbol)
        p = Print(before.trade_id + 1 if before else 1, time_ms, close, volume,
                  before is not None and close < before.price)
        self._last[symbol] = p
        high, low = max(high, open, close), min(low, open, close)
        quote = close * volume
        for interval, candles in self._candles[symbol].items():
            newest = candles[-1] if candles else None
            if newest is not None and time_ms <= newest.close_time:
                candles[-1] = replace(newest, high=max(newest.high, high),
                                      low=min(newest.low, low), close=close,
                                      volume=newest.volume + volume,
                                      quote_volume=newest.quote_volume + quote,
                                      count=newest.count + 1, last_id=p.trade_id)
            else:
                start, end = bounds(interval, time_ms)
                candles.append(Candle(start, end, open, high, low, close, volume, quote, 1,
                                      p.trade_id, p.trade_id))
        for listener in list(self.listeners):
            listener(symbol, p)
        return p

    def last(self, symbol: str) -> Print | None:
        """The newest print of ``symbol``; None before its first bar."""
        return self._last.get(symbol)

    @property
    def last_volume(self) -> dict[str, Decimal]:
        """The newest bar's volume, per symbol that has traded."""
        return {s: p.qty for s, p in self._last.items()}

    def latest(self, symbol: str, interval: str, n: int = 1) -> list[Candle]:
        """The newest ``n`` candles of ``symbol`` and ``interval``, oldest first (the last one
        still open)."""
        candles = self._candles[symbol][interval]
        return [candles[i] for i in range(max(0, len(candles) - n), len(candles))]

    def candles(self, symbol: str, interval: str, *, start: int | None = None,
                end: int | None = None, limit: int = 500) -> list[Candle]:
        """As Binance's ``klines`` answers: candles opened in [start, end]; from ``start``
        the first ``limit`` of them, else the last ``limit``."""
        chosen = [c for c in self._candles[symbol][interval]
                  if (start is None or c.open_time >= start)
                  and (end is None or c.open_time <= end)]
        return chosen[:limit] if start is not None else chosen[-limit:]

    def window(self, symbol: str, now: int) -> Window | None:
        """The last 24 hours of ``symbol`` (its 1m candles opened after ``now`` less a day);
        None when it has none."""
        day: list[Candle] = []
        previous: Decimal | None = None
        for c in reversed(self._candles[symbol]["1m"]):
            if c.open_time <= now - DAY_MS:
                previous = c.close
                break
            day.append(c)
        if not day:
            return None
        day.reverse()
        return Window(day[0].open_time, now, day[0].open, max(c.high for c in day),
                      min(c.low for c in day), day[-1].close,
                      sum((c.volume for c in day), Decimal(0)),
                      sum((c.quote_volume for c in day), Decimal(0)), sum(c.count for c in day),
                      day[0].first_id, day[-1].last_id, previous)
