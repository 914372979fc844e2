"""Market data values: what a pipeline plugin publishes and a strategy consumes.

Bars carry floats: they feed indicator math only. Prices that reach an order or a fill are
converted once, by the broker or the portfolio plugin, with :func:`lts.domain.values.to_decimal`.
Timestamps are integer nanoseconds since the Unix epoch (``ts_event``: the bar's time).
"""

import msgspec


class Bar(msgspec.Struct, frozen=True, gc=False):
    """One OHLCV bar of ``symbol``; ``ts_event`` is the bar's open time in ns."""

    symbol: str
    ts_event: int
    open: float
    high: float
    low: float
    close: float
    volume: float


class Quote(msgspec.Struct, frozen=True, gc=False):
    """The best bid and ask of ``symbol`` at ``ts_event`` (ns), where a feed gives them."""

    symbol: str
    ts_event: int
    bid: float
    ask: float
    bid_size: float = 0.0
    ask_size: float = 0.0


class TradeTick(msgspec.Struct, frozen=True, gc=False):
    """One public trade of ``symbol`` at ``ts_event`` (ns), where a feed gives them."""

    symbol: str
    ts_event: int
    price: float
    size: float
    trade_id: str = ""


class WarmUp(msgspec.Struct, frozen=True):
    """Bars of ``symbol`` from before now (a live feed's history backfill, oldest first): a
    strategy takes them in so that its indicators are warm, and nothing trades on them."""

    symbol: str
    bars: tuple[Bar, ...]


class FeedEnded(msgspec.Struct, frozen=True):
    """A feed stopped: the end of historical data, or a failure (``error`` says which)."""

    symbol: str
    error: str = ""
