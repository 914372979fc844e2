"""The backtest report's page: ``report.html`` with its chart, offline and without inline script.

Flow: :func:`lts.backtest.report.write_report` calls :func:`write_page`. The page loads three
local scripts and nothing else: ``plotly.min.js`` (copied from the installed plotly package),
``report-data.js`` (one global assignment: the chart's data, downsampled) and ``report.js``
(the plotting code, shipped next to this module). The engine's dashboard serves reports under
``Content-Security-Policy: script-src 'self'``, so nothing here is inline: no ``<script>`` body,
no event handler attribute, no CDN. Text from outside (the title, symbol names, parameters) is
HTML-escaped in the page, and escaped for plotly's text rendering (which reads tags such as
``<a href>``) in the chart's data.

The chart: one row per symbol (candles, with its trades: long entries as green triangles up,
short entries as red triangles down, exits as circles, each entry joined to its exit by a dotted
line, green for a win and red for a loss), then the equity and the drawdown, on one time axis
(UTC). At most ``MAX_CANDLES`` candles per symbol (bars merged), ``MAX_POINTS`` points per line
(the lowest and highest of each bucket kept) and ``MAX_MARKERS`` trades per symbol (1 in k shown
beyond that).
"""

import html
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from lts.backtest.chart_page import meta_text, page, plot_text, write_chart_files
from lts.backtest.downsample import candles, envelope, envelope_bucket
from lts.backtest.price_series import PriceSeries
from lts.domain.performance import EquityCurve, Statistics
from lts.domain.statistics_text import format_value, rows
from lts.domain.trades import Trade

__all__ = ["MAX_CANDLES", "MAX_MARKERS", "MAX_POINTS", "PAGE_FILES", "write_page"]

MAX_CANDLES = 3_000
MAX_POINTS = 4_000
MAX_MARKERS = 2_000
#: The page and the scripts it loads, all in the report's directory.
PAGE_FILES = ("report.html", "report-data.js", "report.js", "plotly.min.js")

_STYLE = """
table.stats td:last-child { text-align: right; font-variant-numeric: tabular-nums; }
.columns { display: flex; flex-wrap: wrap; gap: 32px; }
"""


def write_page(directory: Path, *, title: str, statistics: Statistics, trades: Sequence[Trade],
               curve: EquityCurve, prices: Mapping[str, PriceSeries],
               meta: Mapping[str, object], data_files: Sequence[str], currency: str = "$"
               ) -> list[Path]:
    """Write the page and its scripts into ``directory``; return their paths."""
    data, notes = _chart_data(curve, trades, prices, currency)
    return write_chart_files(
        directory, PAGE_FILES, global_name="LTS_REPORT", data=data, script="report.js",
        html=_page(title, statistics, curve, prices, meta, data_files, currency, notes))


def _page(title: str, statistics: Statistics, curve: EquityCurve,
          prices: Mapping[str, PriceSeries], meta: Mapping[str, object],
          data_files: Sequence[str], currency: str, notes: Sequence[str]) -> str:
    e = html.escape
    stats = "\n".join(f"<tr><td>{e(label)}</td><td>{e(value)}</td></tr>"
                      for label, value in rows(statistics, currency))
    params = "\n".join(f"<tr><th>{e(str(key))}</th><td>{e(meta_text(value))}</td></tr>"
                       for key, value in meta.items()) or "<tr><td>none</td></tr>"
    files = "\n".join(f'<li><a href="{e(name)}">{e(name)}</a></li>' for name in data_files)
    span = (f"{format_value(statistics.start)} to {format_value(statistics.end)}, "
            f"{len(curve):,} bars, {len(prices)} symbol{'s' * (len(prices) != 1)}: "
            f"{', '.join(sorted(prices))}")
    note = " ".join(notes)
    body = f"""<div class="columns">
<section><h2>Statistics</h2>
<table class="stats">
{stats}
</table></section>
<section><h2>Parameters</h2>
<table class="params">
{params}
</table>
<h2>Files</h2>
<ul>
{files}
</ul></section>
</div>"""
    return page(title=e(title), subtitle=e(span), note=e(note),
                without_script="The chart needs JavaScript; the statistics below and the CSV "
                               "files do not.",
                body=body, style=_STYLE, scripts=(PAGE_FILES[1], PAGE_FILES[2]))




def _ms(ts_ns: Any) -> list[int]:
    """Milliseconds since the epoch: plotly's time axis (shown in UTC)."""
    ms: list[int] = (np.asarray(ts_ns, dtype=np.int64) // 1_000_000).tolist()
    return ms


def _chart_data(curve: EquityCurve, trades: Sequence[Trade],
                prices: Mapping[str, PriceSeries], currency: str
                ) -> tuple[dict[str, Any], list[str]]:
    """The chart's data (text escaped for plotly) and notes on what was downsampled."""
    notes: list[str] = []
    series = []
    for symbol in sorted(prices):
        bars = prices[symbol]
        (ts, o, h, lo, c), k = candles(bars.ts_ns, bars.open, bars.high, bars.low, bars.close,
                                      MAX_CANDLES)
        if k > 1:
            notes.append(f"{symbol}: each candle merges {k} bars.")
        own = [t for t in trades if t.symbol == symbol]
        step = max(1, -(-len(own) // MAX_MARKERS))
        if step > 1:
            notes.append(f"{symbol}: 1 in {step} of its {len(own)} trades is marked.")
        series.append({"symbol": plot_text(symbol), "x": _ms(ts), "open": o.tolist(),
                       "high": h.tolist(), "low": lo.tolist(), "close": c.tolist(),
                       **_markers(own[::step], currency)})
    equity_at = envelope(curve.equity, MAX_POINTS)
    drawdown = curve.drawdown_pct
    drawdown_at = envelope(drawdown, MAX_POINTS)
    if (k := envelope_bucket(len(curve), MAX_POINTS)) > 1:
        notes.append(f"Equity and drawdown: the lowest and highest of every {k} bars are "
                     f"drawn.")
    return {
        "currency": plot_text(currency), "prices": series,
        "equity": {"x": _ms(curve.ts_ns[equity_at]), "y": curve.equity[equity_at].tolist()},
        "drawdown": {"x": _ms(curve.ts_ns[drawdown_at]), "y": drawdown[drawdown_at].tolist()},
    }, notes


def _markers(trades: Sequence[Trade], currency: str) -> dict[str, Any]:
    """Entry and exit markers and entry-to-exit segments of one symbol's trades."""
    marks: dict[str, dict[str, list[Any]]] = {
        name: {"x": [], "y": [], "text": []}
        for name in ("long_entries", "short_entries", "exits")}
    segments: dict[str, dict[str, list[Any]]] = {
        name: {"x": [], "y": []} for name in ("wins", "losses")}
    for t in trades:
        entry = marks["long_entries" if t.side == "long" else "short_entries"]
        entry["x"].append(t.entry_ts // 1_000_000)
        entry["y"].append(float(t.entry_price))
        entry["text"].append(plot_text(f"#{t.trade_id} {t.side} {t.quantity} @ "
                                        f"{t.entry_price:.6g}"))
        if t.exit_ts is None or t.exit_price is None:
            continue
        marks["exits"]["x"].append(t.exit_ts // 1_000_000)
        marks["exits"]["y"].append(float(t.exit_price))
        marks["exits"]["text"].append(
            plot_text(f"#{t.trade_id} exit @ {t.exit_price:.6g}") + "<br>"
            + plot_text(f"P&L {t.pnl:,.2f} {currency} ({t.return_pct:+.2f} %)"))
        line = segments["wins" if t.pnl > 0 else "losses"]
        line["x"] += [t.entry_ts // 1_000_000, t.exit_ts // 1_000_000, None]
        line["y"] += [float(t.entry_price), float(t.exit_price), None]
    return {**marks, **segments}
