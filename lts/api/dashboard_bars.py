"""The bars the dashboard's candle charts are drawn from, each encoded once however many pages
ask for it.

Where it sits: used by the ``activity`` route of :mod:`lts.api.dashboard_data`, between the
running portfolio's feeds (:meth:`lts.engine.facade.EngineFacade.recent_bars`: each asset's
latest bars, oldest first, at most :data:`lts.engine.feeds.SHOWN`) and the answer. A portfolio
page asks again after fills for the bars newer than those it has (``bars_after``); at a high
bar rate that is hundreds of bars per asset per refresh, and building each bar's JSON object
again for every page and every refresh was most of the request's time on the trading loop.
Here each watched portfolio keeps, per asset, the times of its bars and each bar encoded once
(a :class:`msgspec.Raw` fragment the answer's encoder copies as it is); a look encodes only the
bars that came since the last one and finds the newer ones by bisection. The last
:data:`WATCHED` portfolios asked for are kept.
"""

from bisect import bisect_left, bisect_right
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import msgspec

from lts.domain.market import Bar

__all__ = ["WATCHED", "BarCharts"]

#: portfolios whose encoded bars are kept (the least recently asked for is dropped first)
WATCHED = 64
_encode = msgspec.json.Encoder().encode


@dataclass
class _Encoded:
    """One asset's bars: their times (ascending) and each bar's JSON object."""

    times: list[int] = field(default_factory=list)
    bars: list[msgspec.Raw] = field(default_factory=list)

    def update(self, recent: Sequence[Bar]) -> None:
        """Encode the bars of ``recent`` newer than the last one kept; forget those the feed no
        longer keeps. A feed that went back in time (restarted from older data) starts over."""
        if not recent:
            self.times.clear()
            self.bars.clear()
            return
        if self.times and recent[-1].ts_event < self.times[-1]:
            self.times.clear()
            self.bars.clear()
        last = self.times[-1] if self.times else None
        start = len(recent)
        while start > 0 and (last is None or recent[start - 1].ts_event > last):
            start -= 1
        for b in recent[start:]:
            self.times.append(b.ts_event)
            self.bars.append(msgspec.Raw(_encode({
                "t": b.ts_event, "open": b.open, "high": b.high, "low": b.low, "close": b.close})))
        drop = bisect_left(self.times, recent[0].ts_event)
        if drop:
            del self.times[:drop]
            del self.bars[:drop]

    def after(self, ts_ns: int) -> list[msgspec.Raw]:
        return self.bars[bisect_right(self.times, ts_ns):]


class BarCharts:
    """Each watched portfolio's latest bars per asset, encoded for the answer."""

    def __init__(self) -> None:
        self._portfolios: OrderedDict[int, dict[str, _Encoded]] = OrderedDict()

    def after(self, portfolio_id: int, recent: Mapping[str, Sequence[Bar]],
              ts_ns: int) -> dict[str, list[msgspec.Raw]]:
        """Per asset of ``recent`` (the portfolio's latest bars), its bars later than ``ts_ns``
        (0: all of them), oldest first."""
        kept = self._portfolios.get(portfolio_id)
        if kept is None:
            kept = self._portfolios[portfolio_id] = {}
        self._portfolios.move_to_end(portfolio_id)
        while len(self._portfolios) > WATCHED:
            self._portfolios.popitem(last=False)
        for gone in kept.keys() - recent.keys():
            del kept[gone]
        answer = {}
        for symbol, bars in recent.items():
            encoded = kept.get(symbol)
            if encoded is None:
                encoded = kept[symbol] = _Encoded()
            encoded.update(bars)
            answer[symbol] = encoded.after(ts_ns)
        return answer
