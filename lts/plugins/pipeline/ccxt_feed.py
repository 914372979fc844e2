"""Pipeline ``ccxt``: live bars of an exchange ccxt speaks, warm from the first bar.

Where it sits: a live feed (``historical = False``) the engine runs once per symbol and shares
between the portfolios that trade it. :meth:`CcxtFeed.bars` first yields the history
(``fetch_ohlcv``: the last ``backfill`` closed candles, oldest first, as one
:class:`~lts.domain.market.WarmUp`: strategies take it in, nothing trades on it), so that a
strategy's indicators are warm when it starts, then each candle once, when it has closed:

- ``source="ohlcv"``: ccxt.pro's ``watch_ohlcv`` gives the forming candle again and again; a
  candle is yielded when a later one starts (the exchange's own candles).
- ``source="trades"``: ``watch_trades`` aggregated into candles of ``timeframe`` by trade time;
  a candle is yielded when the first trade of a later one arrives.

Beside the candles, on request: every public trade once (``ticks``, with ``source="trades"``:
:class:`~lts.domain.market.TradeTick`), and the best bid and ask as they change (``quotes``:
``watch_bids_asks``, Binance's bookTicker stream: :class:`~lts.domain.market.Quote`, stamped
with the venue's time, or the receiving time where the stream carries none), for strategies'
``on_trade`` and ``on_quote``. The quotes stream is watched beside the candles' (a watch loop
each, their updates taken in the order they came); quotes are the present only: after a
dropped stream nothing of them is fetched back.

A stream that fails is opened again with a doubling back-off (ccxt replays nothing missed): the
candles that closed meanwhile are fetched with ``fetch_ohlcv`` (every one since the last yielded)
before streaming resumes, so no closed candle is lost or yielded twice; the newest the venue
answers is taken as still forming (the stream closes it), never yielded early. Bars carry the
candle's open time (ns) and float prices (indicator math; orders are priced by the broker). The
connection params are the ``ccxt`` broker's (:class:`~lts.plugins.ccxt_client.CcxtParams`); no key
is needed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterable, Sequence
from typing import Any, Literal

import anyio
from pydantic import Field, model_validator

from lts.domain.clock import Clock
from lts.domain.market import Bar, Quote, TradeTick, WarmUp
from lts.plugins.base import PluginBase
from lts.plugins.ccxt_client import CcxtClient, CcxtParams, ErrorKind, classify, open_client

__all__ = ["CcxtFeed", "CcxtFeedParams"]

log = logging.getLogger("lts.feed.ccxt")

_NS_PER_MS = 1_000_000
_PAGE = 1000  # candles per fetch_ohlcv after a gap (Binance's most)


class CcxtFeedParams(CcxtParams):
    timeframe: str = Field("1m", description="bar length, in ccxt's notation (1m, 5m, 1h...)")
    backfill: int = Field(100, ge=0, le=1000, description="closed bars of history first")
    source: Literal["ohlcv", "trades"] = Field("ohlcv", description="the exchange's candles, "
                                               "or its trades aggregated into candles")
    reconnect_max_s: float = Field(30.0, gt=0, description="longest wait between reconnects")
    ticks: bool = Field(False, description="with source=trades: every public trade too, to "
                                           "strategies' on_trade (as TradeTick)")
    quotes: bool = Field(False, description="the best bid and ask too, as they change, to "
                                            "strategies' on_quote (as Quote)")

    @model_validator(mode="after")
    def _ticks_come_from_trades(self) -> CcxtFeedParams:
        if self.ticks and self.source != "trades":
            raise ValueError("ticks needs source=trades (candles carry no trades)")
        return self


def _bar(symbol: str, candle: Sequence[Any]) -> Bar:
    return Bar(symbol, int(candle[0]) * _NS_PER_MS, float(candle[1]), float(candle[2]),
               float(candle[3]), float(candle[4]), float(candle[5] or 0.0))


class _Closing:
    """Candles closing one after another: the open time of the last one yielded and the one
    forming, and how a stream takes up again after a gap (:meth:`resume`)."""

    def __init__(self, last_closed_ms: int) -> None:
        self.last_closed = last_closed_ms  # open time of the last candle yielded
        self.forming: list[float] | None = None

    def resume(self, rows: Sequence[list[float]]) -> list[list[float]]:
        """Take the venue's candles since the last one yielded (REST, after a gap); return
        those closed: all but the newest (a later one exists). The newest is the one forming
        at the venue, whatever this side's clock says: the stream goes on with it and closes
        it when a later one starts, so a candle the venue was still forming is never yielded
        early (and its updates lost)."""
        rows = sorted((r for r in rows if r[0] > self.last_closed), key=lambda r: r[0])
        if not rows:
            return []
        if self.forming is not None and self.forming[0] > rows[-1][0]:
            closed = rows  # the stream is ahead of the answer already
        else:
            closed, self.forming = rows[:-1], list(rows[-1])
        if closed:
            self.last_closed = int(closed[-1][0])
        return closed


class _Candles(_Closing):
    """Closed candles, each once, in time order, from updates of the forming one."""

    def update(self, candles: Iterable[Sequence[Any]]) -> list[list[float]]:
        """Take candle updates (any order, repeats); return the candles they closed."""
        closed = []
        for candle in sorted(candles, key=lambda c: c[0]):
            row = [float(v) if v is not None else 0.0 for v in candle[:6]]
            if row[0] <= self.last_closed:
                continue
            if self.forming is None or row[0] == self.forming[0]:
                self.forming = row
            elif row[0] > self.forming[0]:
                closed.append(self.forming)
                self.last_closed = int(self.forming[0])
                self.forming = row
        return closed


class _TradeCandles(_Closing):
    """Trades aggregated into candles of ``tf_ms``; a candle closes at a later one's first trade."""

    def __init__(self, tf_ms: int, last_closed_ms: int) -> None:
        super().__init__(last_closed_ms)
        self.tf = tf_ms
        self._seen: set[str] = set()
        self.fresh: list[tuple[int, float, float, str]] = []  # the last update's new trades

    def update(self, trades: Iterable[dict[str, Any]]) -> list[list[float]]:
        closed = []
        self.fresh = []
        for trade in sorted(trades, key=lambda t: t.get("timestamp") or 0):
            tid, ts = str(trade.get("id")), trade.get("timestamp")
            price, amount = trade.get("price"), trade.get("amount")
            if ts is None or price is None or tid in self._seen:
                continue
            self._seen.add(tid)
            start = int(ts) // self.tf * self.tf
            if start <= self.last_closed:
                continue
            p, q = float(price), float(amount or 0.0)
            self.fresh.append((int(ts), p, q, tid))
            forming = self.forming
            if forming is not None and start > forming[0]:
                closed.append(forming)
                self.last_closed = int(forming[0])
                self._seen = {tid}
                forming = None
            if forming is None:
                self.forming = [float(start), p, p, p, p, q]
            elif start == forming[0]:
                forming[2], forming[3] = max(forming[2], p), min(forming[3], p)
                forming[4] = p
                forming[5] += q
        return closed


class _Watches:
    """The candles' stream and, with quotes, the quotes' stream. One stream is watched in line;
    two are each a watch loop of its own (ccxt.pro wakes a watch for the next message only: a
    watch that is not pending when a message arrives sees it one message late), whose updates
    :meth:`next` takes in the order they came."""

    def __init__(self, client: CcxtClient, symbol: str, method: str, timeframe: str | None,
                 quotes: bool) -> None:
        self._client, self._symbol, self._method = client, symbol, method
        self._args: tuple[Any, ...] = (symbol,) if timeframe is None else (symbol, timeframe)
        self._quotes = quotes
        self._updates: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        self._loops: list[asyncio.Task[None]] = []

    async def next(self) -> tuple[Any, Any]:
        """(a candle or trade update, None) or (None, a quotes update); raises what failed."""
        if not self._quotes:
            return await self._client.watch(self._method, *self._args), None
        if not self._loops:
            self._loops = [asyncio.ensure_future(self._loop("candles", self._method, self._args)),
                           asyncio.ensure_future(self._loop("quotes", "watch_bids_asks",
                                                            ([self._symbol],)))]
        kind, value = await self._updates.get()
        if kind == "failed":
            raise value
        return (value, None) if kind == "candles" else (None, value)

    async def _loop(self, kind: str, method: str, args: tuple[Any, ...]) -> None:
        updates = self._updates
        try:
            while True:
                updates.put_nowait((kind, await self._client.watch(method, *args)))
        except Exception as exc:  # to the feed, in its place: it watches both anew
            updates.put_nowait(("failed", exc))

    def drop(self) -> None:
        """Stop both loops and forget what they left (after a failure the feed reads the
        candles it missed back; quotes are the present only)."""
        for loop in self._loops:
            loop.cancel()
        self._loops = []
        self._updates = asyncio.Queue()


class CcxtFeed(PluginBase):
    Params = CcxtFeedParams
    plugin_name = "ccxt"
    plugin_debug_vars = ["bars_made", "reconnects"]
    historical = False

    def __init__(self, **params: object) -> None:
        super().__init__(**params)
        self.bars_made = 0
        self.reconnects = 0

    async def bars(self, symbol: str, clock: Clock
                   ) -> AsyncIterator[Sequence[Bar] | Sequence[TradeTick] | Sequence[Quote]
                                      | WarmUp]:
        p: CcxtFeedParams = self.params
        client = open_client(p)
        watching = _Watches(client, symbol, "watch_ohlcv" if p.source == "ohlcv"
                            else "watch_trades", p.timeframe if p.source == "ohlcv" else None,
                            p.quotes)
        try:
            tf_ms = client.timeframe_ms(p.timeframe)
            history = await self._history(client, symbol, None, p.backfill, tf_ms)
            last = int(history[-1][0]) if history else 0
            if history:
                yield WarmUp(symbol, tuple(self._made([_bar(symbol, c) for c in history])))
            stream = _Candles(last) if p.source == "ohlcv" else _TradeCandles(tf_ms, last)
            backoff = initial = 0.25
            failed = False
            while True:
                try:
                    if failed:  # what closed while the stream was away
                        # since the last yielded (none yet: since the one forming, if any)
                        after = stream.last_closed or (int(stream.forming[0]) - 1
                                                       if stream.forming else None)
                        missed = [] if after is None else stream.resume(
                            await self._missed(client, symbol, after))
                        if missed:
                            yield self._made([_bar(symbol, c) for c in missed])
                        failed = False
                        self.reconnects += 1
                        backoff = initial
                    update, book = await watching.next()
                    if book is not None:
                        quotes = self._quotes(client, symbol, book)
                        if quotes:
                            yield quotes
                        continue
                except Exception as exc:
                    reason = client.reason(exc)
                    wait = backoff
                    if classify(exc) in (ErrorKind.RATE_LIMITED, ErrorKind.BANNED):
                        wait = max(wait, client.note_rate_limited())
                    log.warning("%s %s: market data stream: %s; again in %.1f s", p.exchange,
                                symbol, reason, wait)
                    failed = True
                    watching.drop()
                    await anyio.sleep(wait)
                    backoff = min(backoff * 2, p.reconnect_max_s)
                    continue
                closed = stream.update(update or ())
                if closed:
                    yield self._made([_bar(symbol, c) for c in closed])
                if p.ticks and isinstance(stream, _TradeCandles) and stream.fresh:
                    yield [TradeTick(symbol, ts * _NS_PER_MS, price, size, tid)
                           for ts, price, size, tid in stream.fresh]
        finally:
            watching.drop()
            with anyio.CancelScope(shield=True):
                await client.close()

    @staticmethod
    def _quotes(client: CcxtClient, symbol: str, book: Any) -> list[Quote]:
        """The best bid and ask ccxt gives for ``symbol`` (a venue with none on one side:
        nothing yet)."""
        quote = book.get(symbol) if isinstance(book, dict) else None
        if not quote or quote.get("bid") is None or quote.get("ask") is None:
            return []
        ms = quote.get("timestamp") or client.milliseconds()
        return [Quote(symbol, int(ms) * _NS_PER_MS, float(quote["bid"]), float(quote["ask"]),
                      float(quote.get("bidVolume") or 0.0),
                      float(quote.get("askVolume") or 0.0))]

    def _made(self, bars: list[Bar]) -> list[Bar]:
        self.bars_made += len(bars)
        return bars

    async def _history(self, client: CcxtClient, symbol: str, since_ms: int | None,
                       limit: int, tf_ms: int) -> list[list[float]]:
        """Closed candles from REST (the forming one left out), oldest first."""
        if limit <= 0:
            return []
        rows = await self._fetch(client, symbol, since_ms, limit + 1)
        now = client.milliseconds()
        return [r for r in rows if r[0] + tf_ms <= now][-limit:]

    async def _missed(self, client: CcxtClient, symbol: str,
                      last_ms: int) -> list[list[float]]:
        """Every candle the venue has after the one opened at ``last_ms``, page by page."""
        rows: list[list[float]] = []
        since = last_ms + 1
        while True:
            page = await self._fetch(client, symbol, since, _PAGE)
            rows.extend(page)
            if len(page) < _PAGE or int(page[-1][0]) < since:
                return rows
            since = int(page[-1][0]) + 1

    async def _fetch(self, client: CcxtClient, symbol: str, since_ms: int | None,
                     limit: int) -> list[list[float]]:
        candles = await client.call("fetch_ohlcv", symbol, self.params.timeframe, since_ms,
                                    limit)
        rows = [[float(v) if v is not None else 0.0 for v in c[:6]] for c in candles or ()]
        return sorted(rows, key=lambda r: r[0])
