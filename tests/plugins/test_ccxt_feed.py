"""Pipeline ``ccxt``: closed candles once each, in time order, from the forming candle's updates
or from trades; and the history backfill from the local venue's klines (real ccxt, real HTTP)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from decimal import Decimal as D
from typing import Any

import anyio
import pytest
import uvicorn

from lts.domain.market import Bar, Quote, TradeTick, WarmUp
from lts.errors import InvalidParams
from lts.plugins.pipeline.ccxt_feed import CcxtFeed, _Candles, _TradeCandles

from ._support import SettableClock
from ._venue import SYMBOL, Venue, serve_venue, until, wall_ms

pytestmark = pytest.mark.anyio
MIN = 60_000
DAY = 86_400_000


def test_params() -> None:
    feed = CcxtFeed(exchange="binance")
    assert (feed.params.timeframe, feed.params.backfill, feed.params.source) == \
        ("1m", 100, "ohlcv")
    assert feed.historical is False
    with pytest.raises(InvalidParams, match="param 'source'"):
        CcxtFeed(exchange="binance", source="book")
    with pytest.raises(InvalidParams, match="ticks needs source=trades"):
        CcxtFeed(exchange="binance", ticks=True)


def test_a_candle_is_yielded_once_when_the_next_one_starts() -> None:
    candles = _Candles(last_closed_ms=0)
    assert candles.update([[MIN, 1, 2, 0.5, 1.5, 10]]) == []
    assert candles.update([[MIN, 1, 3, 0.5, 2.5, 12]]) == []  # the forming one, again
    closed = candles.update([[MIN, 1, 3, 0.5, 2.6, 13], [2 * MIN, 2.6, 2.7, 2.5, 2.7, 1]])
    assert closed == [[MIN, 1, 3, 0.5, 2.6, 13]]
    assert candles.update([[MIN, 1, 3, 0.5, 2.6, 13], [2 * MIN, 2.6, 2.8, 2.5, 2.8, 2]]) == []
    assert candles.last_closed == MIN
    # a candle the backfill gave already is never yielded again
    late = _Candles(last_closed_ms=2 * MIN)
    assert late.update([[2 * MIN, 1, 1, 1, 1, 1], [3 * MIN, 1, 1, 1, 1, 1]]) == []


def test_after_a_gap_the_venue_s_newest_candle_is_the_one_forming() -> None:
    candles = _Candles(last_closed_ms=MIN)
    assert candles.update([[2 * MIN, 1, 1, 1, 1, 1]]) == []
    # the gap: what the venue has since the last yielded; its newest still forms
    rest = [[2 * MIN, 1, 2, 1, 2, 5.0], [3 * MIN, 2, 2, 2, 2, 1.0], [4 * MIN, 2, 3, 2, 3, 1.0]]
    assert candles.resume([[MIN, 9, 9, 9, 9, 9.0], *rest]) == rest[:2]
    assert (candles.last_closed, candles.forming) == (3 * MIN, rest[2])
    assert candles.update([[4 * MIN, 2, 4, 2, 4, 2.0]]) == []  # it goes on forming
    assert candles.update([[5 * MIN, 4, 4, 4, 4, 1.0]]) == [[4 * MIN, 2, 4, 2, 4, 2.0]]
    assert candles.resume([]) == []
    # an answer older than what the stream has: all of it closed, the stream's forming kept
    ahead = _Candles(last_closed_ms=MIN)
    ahead.update([[3 * MIN, 1, 1, 1, 1, 1]])
    assert ahead.resume([[2 * MIN, 1, 1, 1, 1, 1.0]]) == [[2 * MIN, 1, 1, 1, 1, 1.0]]
    assert ahead.forming == [3 * MIN, 1, 1, 1, 1, 1]
    # trades go on into the candle the venue was forming
    trades = _TradeCandles(MIN, last_closed_ms=MIN)
    assert trades.resume([[2 * MIN, 10, 12, 9, 11, 3.0]]) == []
    trades.update([{"id": "7", "timestamp": 2 * MIN + 9, "price": 13.0, "amount": 1.0}])
    closed = trades.update([{"id": "8", "timestamp": 3 * MIN, "price": 13.0, "amount": 1.0}])
    assert closed == [[2 * MIN, 10, 13.0, 9, 13.0, 4.0]]


def test_trades_are_aggregated_into_candles() -> None:
    candles = _TradeCandles(MIN, last_closed_ms=0)
    trades = [{"id": "1", "timestamp": MIN + 1, "price": 10.0, "amount": 1.0},
              {"id": "2", "timestamp": MIN + 2, "price": 12.0, "amount": 2.0},
              {"id": "2", "timestamp": MIN + 2, "price": 12.0, "amount": 2.0},  # a repeat
              {"id": "3", "timestamp": MIN + 3, "price": 9.0, "amount": 0.5}]
    assert candles.update(trades) == []
    closed = candles.update([{"id": "4", "timestamp": 2 * MIN + 5, "price": 11.0,
                              "amount": 1.0}])
    assert closed == [[MIN, 10.0, 12.0, 9.0, 9.0, 3.5]]


@pytest.fixture
async def klines_venue() -> AsyncIterator[tuple[int, int]]:
    """The local venue's REST front with four closed daily candles and the day's, forming.

    Daily candles, not minutes: which candle still forms is the wall clock's business (the
    feed asks ccxt's clock), and a minute's boundary fell between this fixture and the fetch
    often enough to fail a CI run. The test reads the clock before it fetches, too."""
    tape_module = pytest.importorskip("lts.venue.tape")
    from lts.venue.binance_rest import BinanceRest
    from lts.venue.exchange import Exchange, Market

    exchange = Exchange([Market("BTCUSDT", "BTC", "USDT")])
    tape = tape_module.Tape(exchange.markets)
    now = time.time_ns() // 1_000_000
    start = now - now % DAY - 4 * DAY
    for i in range(5):  # the last is today: still forming
        price = D(30_000 + i)
        tape.add("BTCUSDT", start + i * DAY + 1, price, price + 5, price - 5, price + 1, D(2))
    rest = BinanceRest(exchange, {}, tape=tape)
    server = uvicorn.Server(uvicorn.Config(rest.app, host="127.0.0.1", port=0,
                                           log_level="warning", lifespan="off"))
    async with anyio.create_task_group() as tg:
        tg.start_soon(server.serve)
        with anyio.fail_after(10):
            while not server.started:  # noqa: ASYNC110 - uvicorn offers no event
                await anyio.sleep(0.01)
        yield server.servers[0].sockets[0].getsockname()[1], start
        server.should_exit = True


async def test_the_backfill_is_the_closed_history_oldest_first(
        klines_venue: tuple[int, int]) -> None:
    port, first_day = klines_venue
    base = f"http://127.0.0.1:{port}/api/v3"
    feed = CcxtFeed(exchange="binance", backfill=3, timeframe="1d",
                    urls={"public": base, "private": base})
    bars = feed.bars("BTC/USDT", SettableClock())
    # the days closed now: the four before the fixture's day, and that day too if it ended since
    closed = [30_000.0 + i for i in range(5) if first_day + (i + 1) * DAY <= wall_ms()]
    try:
        with anyio.fail_after(15):
            first = await anext(bars)
    finally:
        await bars.aclose()
    assert isinstance(first, WarmUp)  # strategies take it in; nothing trades on it
    assert first.symbol == "BTC/USDT"
    history = first.bars
    assert [b.close for b in history] == [c + 1 for c in closed[-3:]]  # not the forming one
    times = [b.ts_event for b in history]
    assert times == sorted(times)
    assert times[1] - times[0] == DAY * 1_000_000
    assert {b.symbol for b in history} == {"BTC/USDT"}
    assert feed.bars_made == 3


# -- live, against the venue's WebSocket front --------------------------------------------------

SEC = 1_000


@pytest.fixture
async def venue() -> AsyncIterator[Venue]:
    async with serve_venue() as served:
        yield served


class Bars(list[Bar]):
    """What a feed yielded, bar by bar, while it runs in a task."""

    def __init__(self, feed: CcxtFeed) -> None:
        super().__init__()
        self.feed = feed
        self.batches = 0
        self.warm_up = 0  # bars of the history it began with

    async def run(self) -> None:
        self.ticks: list[TradeTick] = []
        self.quotes: list[Quote] = []
        async for batch in self.feed.bars(SYMBOL, SettableClock()):
            self.batches += 1
            if isinstance(batch, WarmUp):
                self.warm_up = len(batch.bars)
                self.extend(batch.bars)
            elif batch and isinstance(batch[0], TradeTick):
                self.ticks.extend(t for t in batch if isinstance(t, TradeTick))
            elif batch and isinstance(batch[0], Quote):
                self.quotes.extend(q for q in batch if isinstance(q, Quote))
            else:
                self.extend(b for b in batch if isinstance(b, Bar))

    def times(self) -> list[int]:
        return [b.ts_event // 1_000_000 for b in self]


@asynccontextmanager
async def feeding(venue: Venue, **params: Any) -> AsyncIterator[Bars]:
    bars = Bars(CcxtFeed(exchange="binance", urls=venue.urls, **params))
    async with anyio.create_task_group() as tg:
        tg.start_soon(bars.run)
        yield bars
        tg.cancel_scope.cancel()


def history(venue: Venue, start_ms: int, step_ms: int, closes: list[int]) -> None:
    """Bars on the venue's tape before the feed starts: one a candle, from ``start_ms``."""
    for i, close in enumerate(closes):
        venue.bar(str(close), at=start_ms + i * step_ms + 100)


async def test_one_minute_bars_are_the_history_then_each_closed_candle_once(
        venue: Venue) -> None:
    minute = wall_ms() // MIN * MIN
    history(venue, minute - 4 * MIN, MIN, [30_001, 30_002, 30_003, 30_004])
    async with feeding(venue, timeframe="1m", backfill=3) as bars:
        await until(lambda: len(bars) == 3 and venue.ws.subscribers("btcusdt@kline_1m") == 1)
        assert (bars.batches, bars.warm_up) == (1, 3)  # the history first, oldest first
        assert bars.times() == [minute - 3 * MIN, minute - 2 * MIN, minute - MIN]
        venue.bar("30010", at=minute + SEC)
        venue.bar("30020", high="30030", low="30000", at=minute + 30 * SEC)
        venue.bar("30005", at=minute + MIN + SEC)  # the minute's candle closes
        await until(lambda: len(bars) == 4)
        venue.bar("30006", at=minute + 2 * MIN + SEC)
        await until(lambda: len(bars) == 5)
    assert bars.times() == [minute + i * MIN for i in range(-3, 2)]
    live = bars[3]
    assert (live.open, live.high, live.low, live.close, live.volume) == \
        (30_010.0, 30_030.0, 30_000.0, 30_020.0, 200.0)
    assert (bars[4].open, bars[4].close, bars[4].volume) == (30_005.0, 30_005.0, 100.0)
    assert bars.feed.bars_made == 5


async def test_one_second_bars_survive_a_dropped_stream_without_gaps_or_repeats(
        venue: Venue) -> None:
    """While the stream is down, candles close at the venue; after the reconnect the feed
    fetches them (klines since its last), then streams on: each candle once, in order, the
    one still forming at the venue yielded only once it closed (with all of its trades)."""
    second = wall_ms() // SEC * SEC - 20 * SEC  # the venue's times: the recent past
    history(venue, second, SEC, [30_001, 30_002, 30_003, 30_004])
    async with feeding(venue, timeframe="1s", backfill=3) as bars:
        await until(lambda: len(bars) == 3 and venue.ws.subscribers("btcusdt@kline_1s") == 1)
        venue.bar("30005", at=second + 4 * SEC + 100)
        venue.bar("30006", at=second + 5 * SEC + 100)
        await until(lambda: len(bars) == 4)  # second + 4 s closed
        venue.faults.drop_websockets()
        venue.bar("30007", at=second + 6 * SEC + 100)  # the stream misses these
        venue.bar("30008", at=second + 7 * SEC + 100)
        await until(lambda: bars.feed.reconnects == 1
                    and venue.ws.subscribers("btcusdt@kline_1s") == 1)
        venue.bar("30018", high="30020", low="30008", at=second + 7 * SEC + 600)
        venue.bar("30009", at=second + 8 * SEC + 100)
        await until(lambda: len(bars) == 7)
        venue.bar("30010", at=second + 9 * SEC + 100)
        await until(lambda: len(bars) == 8)
    assert bars.times() == [second + i * SEC for i in range(1, 9)]
    assert [b.close for b in bars] == [30_002.0, 30_003.0, 30_004.0, 30_005.0, 30_006.0,
                                       30_007.0, 30_018.0, 30_009.0]
    still_forming = bars[6]  # forming at the venue when the feed came back
    assert (still_forming.open, still_forming.high, still_forming.low, still_forming.volume) \
        == (30_008.0, 30_020.0, 30_008.0, 200.0)


async def test_trades_are_aggregated_into_candles_live(venue: Venue) -> None:
    second = wall_ms() // SEC * SEC - 20 * SEC
    history(venue, second, SEC, [30_001, 30_002, 30_003])
    async with feeding(venue, timeframe="1s", backfill=2, source="trades") as bars:
        await until(lambda: len(bars) == 2 and venue.ws.subscribers("btcusdt@trade") == 1)
        for close, at in ((30_010, 100), (30_030, 400), (30_000, 600), (30_020, 900)):
            venue.bar(str(close), volume="1.5", at=second + 3 * SEC + at)
        venue.bar("30040", at=second + 4 * SEC + 100)
        await until(lambda: len(bars) == 3)
        venue.bar("30050", at=second + 6 * SEC + 100)  # no trade in second + 5 s: no candle
        await until(lambda: len(bars) == 4)
    assert bars.times() == [second + SEC, second + 2 * SEC, second + 3 * SEC, second + 4 * SEC]
    live = bars[2]
    assert (live.open, live.high, live.low, live.close, live.volume) == \
        (30_010.0, 30_030.0, 30_000.0, 30_020.0, 6.0)
    assert (bars[3].open, bars[3].close, bars[3].volume) == (30_040.0, 30_040.0, 100.0)


async def test_with_ticks_every_public_trade_comes_once_beside_the_candles(venue: Venue) -> None:
    """``ticks=true``: each trade of the venue's stream as a TradeTick (its price, size, id and
    time), once, in batches of their own; the candles are the same as without."""
    second = wall_ms() // SEC * SEC - 20 * SEC
    history(venue, second, SEC, [30_001, 30_002, 30_003])
    async with feeding(venue, timeframe="1s", backfill=2, source="trades", ticks=True) as bars:
        await until(lambda: len(bars) == 2 and venue.ws.subscribers("btcusdt@trade") == 1)
        for close, at in ((30_010, 100), (30_030, 400)):
            venue.bar(str(close), volume="1.5", at=second + 3 * SEC + at)
        venue.bar("30040", at=second + 4 * SEC + 100)
        await until(lambda: len(bars) == 3 and len(bars.ticks) == 3)
    assert [(t.price, t.size) for t in bars.ticks] == [(30_010.0, 1.5), (30_030.0, 1.5),
                                                       (30_040.0, 100.0)]
    assert [t.ts_event // 1_000_000 for t in bars.ticks] == [
        second + 3 * SEC + 100, second + 3 * SEC + 400, second + 4 * SEC + 100]
    assert len({t.trade_id for t in bars.ticks}) == 3
    assert {t.symbol for t in bars.ticks} == {SYMBOL}
    live = bars[2]
    assert (live.open, live.close, live.volume) == (30_010.0, 30_030.0, 3.0)


async def test_quotes_come_beside_the_candles(venue: Venue) -> None:
    """``quotes=true``: the venue's bookTicker (one tick each side of the last price, the
    print's liquidity on each) as Quotes, while the closed candles go on as before; a dropped
    stream is watched anew for both."""
    second = wall_ms() // SEC * SEC - 20 * SEC
    history(venue, second, SEC, [30_001, 30_002])
    async with feeding(venue, timeframe="1s", backfill=1, quotes=True) as bars:
        await until(lambda: len(bars) == 1
                    and venue.ws.subscribers("btcusdt@bookTicker") == 1
                    and venue.ws.subscribers("btcusdt@kline_1s") == 1)
        venue.bar("30010", at=second + 2 * SEC + 100)
        await until(lambda: any(q.bid < 30_010 < q.ask for q in bars.quotes))
        venue.bar("30011", at=second + 3 * SEC + 100)  # the second before closes
        await until(lambda: len(bars) == 2)
        venue.faults.drop_websockets()
        await until(lambda: bars.feed.reconnects == 1
                    and venue.ws.subscribers("btcusdt@bookTicker") == 1)
        venue.bar("30020", at=second + 4 * SEC + 100)
        await until(lambda: any(q.bid < 30_020 < q.ask for q in bars.quotes))
    quote = next(q for q in bars.quotes if q.bid < 30_010 < q.ask)
    assert quote.symbol == SYMBOL
    assert quote.ask - quote.bid < 1
    assert quote.bid_size > 0
    assert quote.ask_size > 0
    assert bars.times()[:2] == [second + SEC, second + 2 * SEC]
