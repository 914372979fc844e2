"""Pipeline ``ccxt``: live bars of an exchange ccxt speaks, warm from the first bar.

Where it sits: a live feed (``historical = False``) the engine runs once per symbol and shares
between the portfolios that trade it. :meth:`CcxtFeed.bars` first yields the history
(``fetch_ohlcv``: the last ``backfill`` closed candles, oldest first, in one batch), so that a
strategy's indicators are warm when it starts, then each candle once, when it has closed:

- ``source="ohlcv"``: ccxt.pro's ``watch_ohlcv`` gives the forming candle again and again; a
  candle is yielded when a later one starts (the exchange's own candles).
- ``source="trades"``: ``watch_trades`` aggregated into candles of ``timeframe`` by trade time;
  a candle is yielded when the first trade of a later one arrives.

A stream that fails is opened again with a doubling back-off (ccxt replays nothing missed): the
candles that closed meanwhile are fetched with ``fetch_ohlcv`` before streaming resumes, so no
closed candle is lost or yielded twice. Bars carry the candle's open time (ns) and float prices
(indicator math; orders are priced by the broker). The connection params are the ``ccxt``
broker's (:class:`~lts.plugins.ccxt_client.CcxtParams`); no key is needed.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterable, Sequence
from typing import Any, Literal

import anyio
from pydantic import Field

from lts.domain.clock import Clock
from lts.domain.market import Bar
from lts.plugins.base import PluginBase
from lts.plugins.ccxt_client import CcxtClient, CcxtParams, ErrorKind, classify, open_client

__all__ = ["CcxtFeed", "CcxtFeedParams"]

log = logging.getLogger("lts.feed.ccxt")

_NS_PER_MS = 1_000_000
Candle = list[float]  # ccxt's [open time ms, open, high, low, close, volume]


class CcxtFeedParams(CcxtParams):
    timeframe: str = Field("1m", description="bar length, in ccxt's notation (1m, 5m, 1h...)")
    backfill: int = Field(100, ge=0, le=1000, description="closed bars of history first")
    source: Literal["ohlcv", "trades"] = Field("ohlcv", description="the exchange's candles, "
                                               "or its trades aggregated into candles")
    reconnect_max_s: float = Field(30.0, gt=0, description="longest wait between reconnects")


def _bar(symbol: str, candle: Sequence[Any]) -> Bar:
    return Bar(symbol, int(candle[0]) * _NS_PER_MS, float(candle[1]), float(candle[2]),
               float(candle[3]), float(candle[4]), float(candle[5] or 0.0))


class _Candles:
    """Closed candles, each once, in time order, from updates of the forming one."""

    def __init__(self, last_closed_ms: int) -> None:
        self.last_closed = last_closed_ms  # open time of the last candle yielded
        self.forming: list[float] | None = None

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


class _TradeCandles:
    """Trades aggregated into candles of ``tf_ms``; a candle closes at a later one's first trade."""

    def __init__(self, tf_ms: int, last_closed_ms: int) -> None:
        self.tf = tf_ms
        self.last_closed = last_closed_ms
        self.forming: list[float] | None = None
        self._seen: set[str] = set()

    def update(self, trades: Iterable[dict[str, Any]]) -> list[list[float]]:
        closed = []
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


class CcxtFeed(PluginBase):
    Params = CcxtFeedParams
    plugin_name = "ccxt"
    plugin_debug_vars = ["bars_made", "reconnects"]
    historical = False

    def __init__(self, **params: object) -> None:
        super().__init__(**params)
        self.bars_made = 0
        self.reconnects = 0

    async def bars(self, symbol: str, clock: Clock) -> AsyncIterator[Sequence[Bar]]:
        p: CcxtFeedParams = self.params
        client = open_client(p)
        try:
            tf_ms = client.timeframe_ms(p.timeframe)
            history = await self._history(client, symbol, None, p.backfill, tf_ms)
            last = int(history[-1][0]) if history else 0
            if history:
                yield self._made([_bar(symbol, c) for c in history])
            stream = _Candles(last) if p.source == "ohlcv" else _TradeCandles(tf_ms, last)
            backoff = initial = 0.25
            failed = False
            while True:
                try:
                    if failed:  # what closed while the stream was away
                        missed = await self._history(client, symbol, stream.last_closed + 1,
                                                     1000, tf_ms)
                        if missed:
                            stream.last_closed = int(missed[-1][0])
                            if stream.forming is not None and \
                                    stream.forming[0] <= stream.last_closed:
                                stream.forming = None
                            yield self._made([_bar(symbol, c) for c in missed])
                        failed = False
                        self.reconnects += 1
                        backoff = initial
                    if p.source == "ohlcv":
                        update = await client.watch("watch_ohlcv", symbol, p.timeframe)
                    else:
                        update = await client.watch("watch_trades", symbol)
                except Exception as exc:
                    reason = client.reason(exc)
                    wait = backoff
                    if classify(exc) in (ErrorKind.RATE_LIMITED, ErrorKind.BANNED):
                        wait = max(wait, client.note_rate_limited())
                    log.warning("%s %s: market data stream: %s; again in %.1f s", p.exchange,
                                symbol, reason, wait)
                    failed = True
                    await anyio.sleep(wait)
                    backoff = min(backoff * 2, p.reconnect_max_s)
                    continue
                closed = stream.update(update or ())
                if closed:
                    yield self._made([_bar(symbol, c) for c in closed])
        finally:
            with anyio.CancelScope(shield=True):
                await client.close()

    def _made(self, bars: list[Bar]) -> list[Bar]:
        self.bars_made += len(bars)
        return bars

    async def _history(self, client: CcxtClient, symbol: str, since_ms: int | None,
                       limit: int, tf_ms: int) -> list[list[float]]:
        """Closed candles from REST (the forming one left out), oldest first."""
        if limit <= 0:
            return []
        candles = await client.call("fetch_ohlcv", symbol, self.params.timeframe, since_ms,
                                    limit + 1)
        now = client.milliseconds()
        rows = [[float(v) if v is not None else 0.0 for v in c[:6]] for c in candles or ()]
        closed = sorted((r for r in rows if r[0] + tf_ms <= now), key=lambda r: r[0])
        return closed[-limit:]
