"""Walk-forward analysis: the params chosen on one stretch of history, tried on the next.

Flow: ``sweep ... --walk-forward K --in-sample F`` (:mod:`lts.cli.sweep_command`). The data's
time range, from its first bar to just after its last, is cut into ``K`` consecutive windows
of equal time (:func:`windows`); each window's first ``F`` of its time is in-sample, the rest
out-of-sample. :func:`run_walk_forward` runs the whole grid on every window's in-sample bars
(all windows' runs share the workers); as soon as a window's grid is done, its best
combination by the metric runs on that window's out-of-sample bars (equal values: the first in
grid order). A window whose in-sample runs leave the metric undefined for every combination (no
trades...) chooses nothing and runs nothing out of sample; the combined result leaves it out.

Each out-of-sample run starts afresh: the initial cash, no position, the strategy's indicators
cold (they warm up on the out-of-sample bars themselves). The combined out-of-sample result
chains the windows: each window's equity curve is scaled by the equity the previous windows
ended with, and its statistics are computed on that curve with every window's trades (their
returns are exact; their P&L is each window's own, unscaled, so the SQN mixes scales); the
buy-and-hold return chains the windows' too.

``walk_forward.csv``: one row per window (its bounds in ISO 8601 UTC, the combination chosen,
its params, its in-sample metric, then the out-of-sample run's figures under
:mod:`lts.backtest.sweep_results`'s column names), and a last row ``combined``.
"""

import csv
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from fractions import Fraction
from pathlib import Path

import msgspec
import numpy as np

from lts.backtest.replay import ReplayResult
from lts.backtest.sweep_grid import GridValue, format_value
from lts.backtest.sweep_metrics import Metric
from lts.backtest.sweep_pool import Job, JobResult, SweepPool, run_jobs
from lts.backtest.sweep_results import (
    RUN_COLUMNS,
    STATISTIC_COLUMNS,
    SweepRow,
    run_cells,
    statistic_cells,
)
from lts.domain.performance import EquityCurve, Statistics, compute_statistics
from lts.domain.trades import Trade
from lts.errors import ConfigError

__all__ = ["Window", "WindowResult", "combined_statistics", "run_walk_forward", "windows",
           "write_walk_forward"]


@dataclass(frozen=True)
class Window:
    """Window ``index`` (from 1): in-sample ``[start, split)``, out-of-sample ``[split, end)``,
    times in ns."""

    index: int
    start: int
    split: int
    end: int


def windows(first_ts: int, last_ts: int, count: int,
            in_sample: Fraction | Decimal | float | str
            ) -> list[Window]:
    """``count`` consecutive windows covering ``[first_ts, last_ts]`` without overlap."""
    share = Fraction(str(in_sample))
    if count < 1:
        raise ConfigError("--walk-forward: at least 1 window")
    if not 0 < share < 1:
        raise ConfigError("--in-sample: a share strictly between 0 and 1")
    end = last_ts + 1
    span = end - first_ts
    bounds = [first_ts + span * i // count for i in range(count + 1)]
    out = []
    for i in range(count):
        start, stop = bounds[i], bounds[i + 1]
        split = start + int((stop - start) * share)
        if not start < split < stop:
            raise ConfigError(f"--walk-forward {count}: the data's time range is too short "
                              "for that many windows")
        out.append(Window(i + 1, start, split, stop))
    return out


@dataclass
class WindowResult:
    window: Window
    rows: list[SweepRow] = field(default_factory=list)  # the in-sample runs
    chosen: SweepRow | None = None  # the best of them (None: the metric was never defined)
    in_sample_value: float | None = None
    out_of_sample: ReplayResult | None = None


def run_walk_forward(pool: SweepPool, combinations: Sequence[dict[str, GridValue]],
                     metric: Metric, plan: Sequence[Window],
                     on_row: Callable[[SweepRow], None] = lambda row: None,
                     on_window: Callable[[WindowResult], None] = lambda w: None
                     ) -> list[WindowResult]:
    """Run the walk-forward (module docstring); in-sample rows go to ``on_row`` and each
    window, once its out-of-sample run is done (or skipped), to ``on_window``."""
    results = {w.index: WindowResult(w) for w in plan}

    def finished(result: JobResult) -> list[Job]:
        job = result.job
        assert job.group is not None
        assert result.summary is not None
        state = results[job.group]
        if job.keep:
            state.out_of_sample = result.result
            on_window(state)
            return []
        row = SweepRow(job.key, job.params, result.summary, window=job.group)
        state.rows.append(row)
        on_row(row)
        if len(state.rows) < len(combinations):
            return []
        state.rows.sort(key=lambda r: r.key)
        values = [metric.value(r.statistics) for r in state.rows]
        best = metric.best(values)
        if best is None:
            on_window(state)
            return []
        state.chosen = state.rows[values.index(best)]
        state.in_sample_value = best
        w = state.window
        return [Job(state.chosen.key, state.chosen.params, (w.split, w.end), keep=True,
                    group=w.index)]

    jobs = (Job(key, params, (w.start, w.split), group=w.index)
            for w in plan for key, params in enumerate(combinations, 1))
    run_jobs(pool, jobs, finished)
    return [results[w.index] for w in plan]


def combined_statistics(runs: Sequence[ReplayResult]) -> Statistics | None:
    """The out-of-sample runs chained (module docstring); None if none replayed a bar."""
    curves = [(r.curve, r) for r in runs if r.curve is not None and len(r.curve)]
    if not curves:
        return None
    initial = curves[0][0].initial_cash
    scale = 1.0
    ts, cash, equity = [], [], []
    trades: list[Trade] = []
    buy_hold: float | None = 1.0
    for curve, run in curves:
        factor = scale * initial / curve.initial_cash
        ts.append(curve.ts_ns)
        cash.append(curve.cash * factor)
        equity.append(curve.equity * factor)
        scale = float(curve.equity[-1]) * factor / initial
        trades.extend(run.trades)
        stats = run.summary.statistics
        if buy_hold is not None and stats is not None and stats.buy_hold_return_pct is not None:
            buy_hold *= 1 + stats.buy_hold_return_pct / 100
        else:
            buy_hold = None
    chained = EquityCurve(np.concatenate(ts), np.concatenate(cash), np.concatenate(equity),
                          initial_cash=initial)
    statistics = compute_statistics(chained, trades)
    if buy_hold is not None:
        statistics = msgspec.structs.replace(statistics,
                                             buy_hold_return_pct=(buy_hold - 1) * 100)
    return statistics


def _iso(ts_ns: int) -> str:
    return (datetime.fromtimestamp(ts_ns // 10**9, UTC).replace(microsecond=ts_ns % 10**9 // 1000)
            .isoformat().replace("+00:00", "Z"))


def write_walk_forward(path: Path, results: Sequence[WindowResult], param_names: Sequence[str],
                       metric: Metric, combined: Statistics | None) -> None:
    """``walk_forward.csv`` (module docstring)."""
    header = ["window", "in_sample_start", "in_sample_end", "out_of_sample_start",
              "out_of_sample_end", "combination", *param_names, f"in_sample_{metric.name}",
              *RUN_COLUMNS, *STATISTIC_COLUMNS]
    partial = path.with_name(path.name + ".partial")
    with partial.open("w", newline="", encoding="utf-8") as f:
        out = csv.writer(f)
        out.writerow(header)
        for r in results:
            w, chosen, oos = r.window, r.chosen, r.out_of_sample
            params = ([format_value(chosen.params[n]) for n in param_names] if chosen
                      else [""] * len(param_names))
            figures = ([*run_cells(oos.summary), *statistic_cells(oos.summary.statistics)]
                       if oos is not None
                       else [""] * (len(RUN_COLUMNS) + len(STATISTIC_COLUMNS)))
            out.writerow([w.index, _iso(w.start), _iso(w.split), _iso(w.split), _iso(w.end),
                          chosen.key if chosen else "", *params,
                          "" if r.in_sample_value is None else repr(r.in_sample_value),
                          *figures])
        first, last = results[0].window, results[-1].window
        runs = [r.out_of_sample for r in results if r.out_of_sample is not None]
        totals = [str(sum(getattr(run.summary, name) for run in runs)) if name in _COUNTS
                  else "" for name in RUN_COLUMNS]
        out.writerow(["combined", "", "", _iso(first.split), _iso(last.end), "",
                      *[""] * len(param_names), "", *totals, *statistic_cells(combined)])
    os.replace(partial, path)


_COUNTS = frozenset({"bars", "orders", "fills", "denied", "unsized", "round_trips"})
