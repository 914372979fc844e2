"""The sweep's heatmap: ``heatmap.html``, the metric over the first two swept params, offline.

Flow: :mod:`lts.cli.sweep_command` calls :func:`write_heatmap` when a sweep ends. Like the
backtest report (:mod:`lts.backtest.report_html`) the page loads three local scripts and
nothing else: ``plotly.min.js`` (copied from the installed plotly package),
``heatmap-data.js`` (one global assignment: the cells) and ``heatmap.js`` (the plotting code,
shipped next to this module as ``sweep_report.js``). No inline script, no event handler
attribute, no CDN: the dashboard serves it under ``Content-Security-Policy: script-src 'self'``.
Text from outside (param values, the title) is HTML-escaped in the page and in the chart's data
(plotly renders a few tags in labels).

A cell holds the best value of the metric among the combinations with those two values (the
other swept params vary inside the cell; its hover names the best one's params). With a single
swept param the heatmap has one row. Colours run from worse to better whichever way the metric
is better (lower-is-better metrics reverse the scale). The page also lists the best rows.
"""

import html
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from lts.backtest.chart_page import meta_text, page, plot_text, write_chart_files
from lts.backtest.sweep_grid import Grid, format_value
from lts.backtest.sweep_metrics import Direction, Metric
from lts.backtest.sweep_results import SweepRow

__all__ = ["HEATMAP_FILES", "heatmap_cells", "write_heatmap"]

#: The page and the scripts it loads, all in the sweep's directory.
HEATMAP_FILES = ("heatmap.html", "heatmap-data.js", "heatmap.js", "plotly.min.js")
_TOP = 20

_STYLE = """
td.num { text-align: right; font-variant-numeric: tabular-nums; }
"""
_COLUMNS = (("return_pct", "Return [%]"), ("sharpe", "Sharpe"),
            ("max_drawdown_pct", "Max. drawdown [%]"), ("trades", "Trades"),
            ("win_rate_pct", "Win rate [%]"))


def heatmap_cells(grid: Grid, rows: Sequence[SweepRow], metric: Metric
                  ) -> tuple[list[list[float | None]], list[list[SweepRow | None]]]:
    """The metric's best value per (second param's value, first param's value) cell, and the
    row that holds it; None where no combination ran or the metric is undefined."""
    names = grid.names
    xs = grid.axes[names[0]]
    ys = grid.axes[names[1]] if len(names) > 1 else [None]
    at_x = {_key(v): i for i, v in enumerate(xs)}
    at_y = {_key(v): i for i, v in enumerate(ys)}
    values: list[list[float | None]] = [[None] * len(xs) for _ in ys]
    best: list[list[SweepRow | None]] = [[None] * len(xs) for _ in ys]
    for row in rows:
        x = at_x[_key(row.params[names[0]])]
        y = at_y[_key(row.params[names[1]])] if len(names) > 1 else 0
        value = metric.value(row.statistics)
        if value is None:
            continue
        held = values[y][x]
        if held is None or metric.score(value) > metric.score(held):
            values[y][x] = value
            best[y][x] = row
    return values, best


def _key(value: object) -> tuple[type, object]:
    return type(value), value


def write_heatmap(directory: Path, *, title: str, grid: Grid, rows: Sequence[SweepRow],
                  best_first: Sequence[SweepRow], metric: Metric,
                  meta: Mapping[str, object]) -> list[Path]:
    """Write the page and its scripts into ``directory``; return their paths. ``rows`` are all
    the runs, ``best_first`` the same ranked by the metric; ``meta`` is shown as given."""
    return write_chart_files(
        directory, HEATMAP_FILES, global_name="LTS_SWEEP",
        data=_chart_data(grid, rows, metric), script="sweep_report.js",
        html=_page(title, grid, best_first, metric, meta))



def _params(row: SweepRow) -> str:
    return " ".join(f"{k}={format_value(v)}" for k, v in row.params.items())


def _chart_data(grid: Grid, rows: Sequence[SweepRow], metric: Metric) -> dict[str, Any]:
    values, best = heatmap_cells(grid, rows, metric)
    names = grid.names
    text = [[plot_text(f"{_params(row)}: {metric.name} {value:.6g}")
             if row is not None and value is not None else "no run or undefined"
             for row, value in zip(best_row, value_row, strict=True)]
            for best_row, value_row in zip(best, values, strict=True)]
    second = names[1] if len(names) > 1 else None
    return {
        "metric": plot_text(metric.name),
        "direction": plot_text(str(metric.direction)),
        "reverse": metric.direction is Direction.LOWER,
        "x": {"name": plot_text(names[0]),
              "values": [plot_text(format_value(v)) for v in grid.axes[names[0]]]},
        "y": {"name": plot_text(second or ""),
              "values": ([plot_text(format_value(v)) for v in grid.axes[second]]
                         if second else [""])},
        "z": values,
        "text": text,
    }


def _page(title: str, grid: Grid, best_first: Sequence[SweepRow], metric: Metric,
          meta: Mapping[str, object]) -> str:
    e = html.escape
    names = grid.names
    columns = [(name, label) for name, label in _COLUMNS if name != metric.name]
    head = "".join(f"<th>{e(n)}</th>" for n in ["#", *names, metric.name,
                                               *(label for _, label in columns)])
    body_rows = []
    for rank, row in enumerate(best_first[:_TOP], 1):
        cells = [str(rank), *(format_value(row.params[n]) for n in names),
                 _number(metric.value(row.statistics)),
                 *(_number(_stat(row, name)) for name, _ in columns)]
        body_rows.append("<tr>" + "".join(
            f'<td class="num">{e(c)}</td>' if i == 0 or i > len(names) else f"<td>{e(c)}</td>"
            for i, c in enumerate(cells)) + "</tr>")
    facts = "\n".join(f"<tr><th>{e(str(k))}</th><td>{e(meta_text(v))}</td></tr>"
                      for k, v in meta.items())
    rest = names[2:]
    note = (f"Each cell: the best {metric.name} ({metric.direction}) over "
            f"{', '.join(rest)}." if rest else f"{metric.name}: {metric.direction}.")
    body = f"""<h2>Best {min(_TOP, len(best_first))} of {len(best_first)}</h2>
<table class="best">
<tr>{head}</tr>
{chr(10).join(body_rows)}
</table>
<h2>Sweep</h2>
<table class="params">
{facts}
</table>"""
    return page(title=e(title), subtitle=f"{e(metric.name)} by {e(' and '.join(names[:2]))}",
                note=e(note), without_script="The chart needs JavaScript; the table below "
                                             "and results.csv do not.",
                body=body, style=_STYLE, scripts=(HEATMAP_FILES[1], HEATMAP_FILES[2]))


def _stat(row: SweepRow, name: str) -> float | None:
    stats = row.statistics
    value = None if stats is None else getattr(stats, name)
    return None if value is None else float(value)


def _number(value: float | None) -> str:
    return "" if value is None else f"{value:,.4g}" if abs(value) < 1e4 else f"{value:,.0f}"

