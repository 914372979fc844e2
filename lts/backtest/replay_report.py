"""A replay's report directory (``replay ... --report DIR``): the run's result, the market's
prices read again for the chart, and what the run was.

Where it sits: after :func:`lts.backtest.replay.run_replay`, before the command line prints.
The prices are read a second time from the market data (the replay streams them and keeps none)
into one :class:`~lts.backtest.price_series.PriceSeries` per symbol, which the report
downsamples for its chart.
"""

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from lts.backtest.price_series import PriceSeries
from lts.backtest.replay import Market, ReplayResult
from lts.backtest.report import write_report
from lts.errors import DataError

__all__ = ["price_series", "write_replay_report"]


def price_series(market: Market) -> dict[str, PriceSeries]:
    """Every symbol's bars as arrays (read again from the market data)."""
    columns: dict[str, list[list[float]]] = {s: [[], [], [], [], []] for s in market.symbols}
    for batch in market.batches():
        for bar in batch:
            ts, o, h, lo, c = columns[bar.symbol]
            ts.append(bar.ts_event)
            o.append(bar.open)
            h.append(bar.high)
            lo.append(bar.low)
            c.append(bar.close)
    return {s: PriceSeries(s, np.array(v[0], dtype=np.int64), *v[1:])
            for s, v in columns.items()}


def write_replay_report(directory: Path, result: ReplayResult, market: Market,
                        meta: Mapping[str, Any]) -> list[Path]:
    summary = result.summary
    if result.curve is None or summary.statistics is None:
        raise DataError("no bars were replayed: nothing to report")
    title = f"{summary.strategy} on {', '.join(summary.symbols)}"
    return write_report(directory, title=title, statistics=summary.statistics,
                        fills=result.fills, trades=result.trades, curve=result.curve,
                        prices=price_series(market), meta=meta)
