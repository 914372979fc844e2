"""Pipeline ``ccxt``: closed candles once each, in time order, from the forming candle's updates
or from trades; and the history backfill from the local venue's klines (real ccxt, real HTTP)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from decimal import Decimal as D

import anyio
import pytest
import uvicorn

from lts.errors import InvalidParams
from lts.plugins.pipeline.ccxt_feed import CcxtFeed, _Candles, _TradeCandles

from ._support import SettableClock

pytestmark = pytest.mark.anyio
MIN = 60_000


def test_params() -> None:
    feed = CcxtFeed(exchange="binance")
    assert (feed.params.timeframe, feed.params.backfill, feed.params.source) == \
        ("1m", 100, "ohlcv")
    assert feed.historical is False
    with pytest.raises(InvalidParams, match="param 'source'"):
        CcxtFeed(exchange="binance", source="book")


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
async def klines_venue() -> AsyncIterator[int]:
    """The local venue's REST front with four closed one-minute candles and a forming one."""
    tape_module = pytest.importorskip("lts.venue.tape")
    from lts.venue.binance_rest import BinanceRest
    from lts.venue.exchange import Exchange, Market

    exchange = Exchange([Market("BTCUSDT", "BTC", "USDT")])
    tape = tape_module.Tape(exchange.markets)
    now = time.time_ns() // 1_000_000
    start = now - now % MIN - 4 * MIN
    for i in range(5):  # the last is the minute now: still forming
        price = D(30_000 + i)
        tape.add("BTCUSDT", start + i * MIN + 1, price, price + 5, price - 5, price + 1, D(2))
    rest = BinanceRest(exchange, {}, tape=tape)
    server = uvicorn.Server(uvicorn.Config(rest.app, host="127.0.0.1", port=0,
                                           log_level="warning", lifespan="off"))
    async with anyio.create_task_group() as tg:
        tg.start_soon(server.serve)
        with anyio.fail_after(10):
            while not server.started:  # noqa: ASYNC110 - uvicorn offers no event
                await anyio.sleep(0.01)
        yield server.servers[0].sockets[0].getsockname()[1]
        server.should_exit = True


async def test_the_backfill_is_the_closed_history_oldest_first(klines_venue: int) -> None:
    base = f"http://127.0.0.1:{klines_venue}/api/v3"
    feed = CcxtFeed(exchange="binance", backfill=3, urls={"public": base, "private": base})
    bars = feed.bars("BTC/USDT", SettableClock())
    try:
        with anyio.fail_after(15):
            history = await anext(bars)
    finally:
        await bars.aclose()
    assert [b.close for b in history] == [30_002.0, 30_003.0, 30_004.0]  # not the forming one
    times = [b.ts_event for b in history]
    assert times == sorted(times)
    assert times[1] - times[0] == MIN * 1_000_000
    assert {b.symbol for b in history} == {"BTC/USDT"}
    assert feed.bars_made == 3
