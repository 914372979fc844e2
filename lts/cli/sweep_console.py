"""The sweep command's runs and what it prints: progress, the best table, walk-forward lines.

Where it sits: :mod:`lts.cli.sweep_command` checks the input and builds a :class:`SweepSession`;
:func:`run_plain` or :func:`run_walk` runs it in a :class:`~lts.backtest.sweep_pool.SweepPool`,
writes the files and prints. A Ctrl-C (``KeyboardInterrupt`` in this, the main thread) leaves
the pool, which terminates the workers; the rows already appended to ``results.csv`` stay and
the status is 130.
"""

import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any, TextIO

from lts.backtest.data import MarketData
from lts.backtest.replay import ReplayOptions
from lts.backtest.sweep import SweepPlan, ranked, run_sweep
from lts.backtest.sweep_grid import format_value
from lts.backtest.sweep_metrics import Metric
from lts.backtest.sweep_pool import MarketFiles, SweepPool, WorkerSetup
from lts.backtest.sweep_report import write_heatmap
from lts.backtest.sweep_results import ResultsFile, SweepRow
from lts.backtest.walk_forward import (
    WindowResult,
    combined_statistics,
    run_walk_forward,
    windows,
    write_walk_forward,
)
from lts.domain.performance import Statistics

__all__ = ["EXIT_INTERRUPTED", "Progress", "SweepSession", "best_table", "run_plain",
           "run_walk"]

EXIT_INTERRUPTED = 130


@dataclass
class SweepSession:
    """A sweep the command checked and is about to run."""

    strategy: str
    data: list[str]
    grid_specs: list[str]
    plan: SweepPlan
    options: ReplayOptions
    files: MarketFiles
    market: MarketData
    out: Path
    workers: int
    log_level: str
    top: int = 10
    walk_forward: int | None = None
    in_sample: Decimal = Decimal("0.7")
    meta: dict[str, Any] = field(default_factory=dict)

    def setup(self) -> WorkerSetup:
        return WorkerSetup(self.files, self.options, self.log_level)


class Progress:
    """Runs finished, on ``stream``: a bar redrawn in place on a terminal, else a line at every
    10 %."""

    def __init__(self, total: int, stream: TextIO, what: str = "combinations") -> None:
        self.total, self.done, self.what = total, 0, what
        self._stream = stream
        self._tty = stream.isatty()
        self._started = time.monotonic()
        self._tenth = 0

    def step(self) -> None:
        self.done += 1
        elapsed = time.monotonic() - self._started
        if self._tty:
            width = 30
            filled = width * self.done // self.total
            left = elapsed / self.done * (self.total - self.done)
            print(f"\r[{'#' * filled}{'.' * (width - filled)}] {self.done:,}/{self.total:,} "
                  f"{self.what}, {elapsed:,.0f}s, ~{left:,.0f}s left ", end="",
                  file=self._stream, flush=True)
            return
        tenth = 10 * self.done // self.total
        if tenth > self._tenth:
            self._tenth = tenth
            print(f"lts: {self.done:,}/{self.total:,} {self.what} ({10 * tenth} %), "
                  f"{elapsed:,.0f}s", file=self._stream, flush=True)

    def end(self) -> None:
        if self._tty and self.done:
            print(file=self._stream, flush=True)


_TABLE = (("return_pct", "Return [%]"), ("sharpe", "Sharpe"),
          ("max_drawdown_pct", "Max DD [%]"), ("trades", "Trades"),
          ("win_rate_pct", "Win rate [%]"), ("profit_factor", "Profit factor"))


def best_table(rows: Sequence[SweepRow], names: Sequence[str], metric: Metric) -> str:
    """The rows (best first) as an aligned table: rank, params, the metric, key statistics."""
    stats = [(n, label) for n, label in _TABLE if n != metric.name]
    header = ["#", *names, metric.name, *(label for _, label in stats)]
    lines = [header]
    for rank, row in enumerate(rows, 1):
        s = row.statistics
        lines.append([str(rank), *(format_value(row.params[n]) for n in names),
                      _fmt(metric.value(s)),
                      *(_fmt(None if s is None else getattr(s, n)) for n, _ in stats)])
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    numbers = {i for i in range(len(header))
                 if all(_numeric(line[i]) for line in lines[1:])}  # text params stay left
    return "\n".join("  ".join(cell.rjust(w) if i in numbers else cell.ljust(w)
                               for i, (cell, w) in enumerate(zip(line, widths, strict=True)))
                     .rstrip() for line in lines)


def _numeric(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return cell in ("", "--")
    return True


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, int):
        return f"{value:,}"
    number = float(value)
    return f"{number:,.4g}" if abs(number) < 1e5 else f"{number:,.0f}"


def _interrupted(progress: Progress, results: ResultsFile, total: int) -> int:
    progress.end()
    results.close()
    print(f"lts: interrupted: {results.rows:,} of {total:,} combinations finished; "
          f"{results.path} holds them", file=sys.stderr)
    return EXIT_INTERRUPTED


def run_plain(session: SweepSession) -> int:
    plan, out = session.plan, session.out
    names = plan.grid.names
    total = len(plan.combinations)
    results = ResultsFile(out / "results.csv", names)
    progress = Progress(total, sys.stderr)

    def on_row(row: SweepRow) -> None:
        results.append(row)
        progress.step()

    started = time.monotonic()
    try:
        with SweepPool(session.setup(), session.workers) as pool:
            rows = run_sweep(pool, plan.combinations, on_row)
    except KeyboardInterrupt:
        return _interrupted(progress, results, total)
    finally:
        results.close()
    progress.end()
    elapsed = time.monotonic() - started
    results.rewrite(rows)
    best = ranked(rows, plan.metric)
    print(best_table(best[:session.top], names, plan.metric))
    meta = {**session.meta, "combinations run": len(rows),
            "refused by the strategy": plan.screened.refused_count,
            "elapsed [s]": round(elapsed, 1)}
    write_heatmap(out, title=f"Sweep of {session.strategy}", grid=plan.grid, rows=rows,
                  best_first=best, metric=plan.metric, meta=meta)
    print(f"lts: {len(rows):,} combinations in {elapsed:,.1f}s; wrote {out / 'results.csv'} "
          f"and {out / 'heatmap.html'}", file=sys.stderr)
    return 0


def _span(market: MarketData) -> tuple[int, int]:
    """The first and the last bar's time (one pass over the data)."""
    first = last = None
    for batch in market.batches():
        if first is None:
            first = batch[0].ts_event
        last = batch[-1].ts_event
    if first is None or last is None:
        from lts.errors import DataError

        raise DataError("no market data")
    return first, last


def run_walk(session: SweepSession) -> int:
    from datetime import UTC, datetime

    plan, out, k = session.plan, session.out, session.walk_forward
    assert k is not None
    names = plan.grid.names
    cut = windows(*_span(session.market), k, session.in_sample)
    total = len(plan.combinations) * k
    results = ResultsFile(out / "results.csv", names, windowed=True)
    progress = Progress(total + k, sys.stderr, "runs")

    def on_row(row: SweepRow) -> None:
        results.append(row)
        progress.step()

    def on_window(window: WindowResult) -> None:
        progress.step()

    started = time.monotonic()
    try:
        with SweepPool(session.setup(), session.workers) as pool:
            done = run_walk_forward(pool, plan.combinations, plan.metric, cut, on_row,
                                    on_window)
    except KeyboardInterrupt:
        return _interrupted(progress, results, total)
    finally:
        results.close()
    progress.end()
    results.rewrite(sorted((r for w in done for r in w.rows), key=lambda r: (r.window, r.key)))
    combined = combined_statistics([w.out_of_sample for w in done
                                    if w.out_of_sample is not None])
    write_walk_forward(out / "walk_forward.csv", done, names, plan.metric, combined)

    def when(ts_ns: int) -> str:
        return datetime.fromtimestamp(ts_ns / 1e9, UTC).strftime("%Y-%m-%d %H:%M")

    for w in done:
        win = w.window
        head = (f"window {win.index}/{k}: in-sample {when(win.start)} to {when(win.split)}, ")
        if w.chosen is None or w.out_of_sample is None:
            print(head + f"no combination defined {plan.metric.name}; nothing run out of "
                  "sample")
            continue
        params = " ".join(f"{n}={format_value(w.chosen.params[n])}" for n in names)
        print(head + f"chose #{w.chosen.key} {params} ({plan.metric.name} "
              f"{_fmt(w.in_sample_value)}); out-of-sample to {when(win.end)}: "
              + _figures(w.out_of_sample.summary.statistics))
    print("out-of-sample, combined: " + _figures(combined, buy_hold=True))
    print(f"lts: {len(plan.combinations):,} combinations x {k} windows in "
          f"{time.monotonic() - started:,.1f}s; wrote {out / 'results.csv'} and "
          f"{out / 'walk_forward.csv'}", file=sys.stderr)
    return 0


def _figures(s: Statistics | None, *, buy_hold: bool = False) -> str:
    if s is None:
        return "no bars"
    text = (f"return {_fmt(s.return_pct)} %, sharpe {_fmt(s.sharpe)}, max DD "
            f"{_fmt(s.max_drawdown_pct)} %, {s.trades} trades")
    if buy_hold:
        text += f", buy & hold {_fmt(s.buy_hold_return_pct)} %"
    return text
