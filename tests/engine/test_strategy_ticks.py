"""Quotes and public trades reach a trading strategy where the feed gives them: ``on_quote``
and ``on_trade``, in time order with the bars, on the engine's clock, and an order placed from
them goes the usual way (risk, the paper venue, ``on_fill``). SYS-001 (market data through
the pipeline to strategies)."""

from collections.abc import Iterator
from decimal import Decimal as D
from typing import Any, ClassVar

import pytest

from lts.backtest.replay import ReplayOptions, run_replay
from lts.domain.market import Bar, Quote, TradeTick
from lts.domain.orders import Fill
from lts.plugins.registry import Registry
from lts.plugins.strategy.base import TradingStrategy

pytestmark = pytest.mark.anyio

MIN = 60 * 1_000_000_000
T0 = 1_700_000_040 * 1_000_000_000


class TickListener(TradingStrategy):
    """Records what it hears; buys 1 at the first quote whose spread is a cent or less."""

    plugin_name = "tick_listener"
    made: ClassVar[list["TickListener"]] = []  # the instances the engine made, for the test

    def __init__(self, **params: object) -> None:
        super().__init__(**params)
        TickListener.made.append(self)
        self.heard: list[tuple[str, int, int]] = []  # kind, its time, the clock's time
        self.fills: list[Fill] = []
        self.bought = False

    def on_bar(self, bar: Bar) -> None:
        self.heard.append(("bar", bar.ts_event, self.ctx.now_ns()))

    def on_quote(self, quote: Quote) -> None:
        self.heard.append(("quote", quote.ts_event, self.ctx.now_ns()))
        if not self.bought and quote.ask - quote.bid < 0.015:
            self.bought = self.ctx.buy(quote.symbol, 1) is not None

    def on_trade(self, trade: TradeTick) -> None:
        self.heard.append(("trade", trade.ts_event, self.ctx.now_ns()))

    def on_fill(self, fill: Fill) -> None:
        self.fills.append(fill)


class Ticks:
    """A market whose batches are bars, quotes and trades (each batch one kind), in time."""

    symbols = ["X"]

    def __init__(self, batches: list[list[Any]]) -> None:
        self._batches = batches

    def batches(self, batch: int = 4096, *, held: bool = True) -> Iterator[list[Any]]:
        yield from self._batches

    def bar_count(self, symbol: str | None = None) -> int | None:
        return None

    def tick_size(self, symbol: str) -> D:
        return D("0.01")


def bar(i: int, close: float) -> Bar:
    return Bar("X", T0 + i * MIN, close, close, close, close, 1_000.0)


async def test_quotes_and_trades_reach_the_strategy_in_time_order() -> None:
    registry = Registry.discover(lazy=True)
    registry.register("strategy", "tick_listener", TickListener)
    market = Ticks([
        [bar(0, 100.0)],
        [Quote("X", T0 + 10, 99.98, 100.02), Quote("X", T0 + 20, 99.99, 100.0)],
        [TradeTick("X", T0 + 30, 100.0, 2.0, "t1")],
        [bar(1, 101.0), bar(2, 102.0)],
        [TradeTick("X", T0 + 2 * MIN + 5, 102.5, 1.0, "t2")],
        [bar(3, 103.0)],
    ])
    result = await run_replay(market, ReplayOptions(strategy="tick_listener"), registry)
    strategy = TickListener.made[-1]
    assert [kind for kind, _, _ in strategy.heard] == [
        "bar", "quote", "quote", "trade", "bar", "bar", "trade", "bar"]
    assert all(event == clock for _, event, clock in strategy.heard)  # the clock followed
    assert [f.trade_id for f in strategy.fills] == [f.trade_id for f in result.fills]
    [fill] = result.fills  # bought at the tight quote, filled at the next bar's open
    assert (fill.quantity, fill.price, fill.ts_event) == (D(1), D("101.00"), T0 + MIN)

