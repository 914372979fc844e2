"""A sweep's results: one row per combination that ran, and ``results.csv`` written as they come.

Where it sits: :mod:`lts.backtest.sweep` turns each finished job into a :class:`SweepRow` and
appends it to a :class:`ResultsFile` at once (written and flushed: a sweep stopped by Ctrl-C
leaves every finished row on disk); a sweep that ends rewrites the file in grid order.

Columns: ``combination`` (its number in grid order, from 1), ``window`` (walk-forward only),
the swept params as given, then what the replay did (``bars``, ``orders``, ``fills``,
``denied``, ``unsized``, ``round_trips``, ``final_equity``, ``realized_pnl``, ``fees``) and
every statistic of :class:`lts.domain.performance.Statistics` under its own name: times in
ISO 8601 UTC, durations in seconds (the column named ``<statistic>_s``), undefined ones empty.
"""

import csv
import io
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TextIO

from lts.backtest.replay import ReplaySummary
from lts.backtest.sweep_grid import GridValue, format_value
from lts.domain.performance import Statistics

__all__ = ["RUN_COLUMNS", "STATISTIC_COLUMNS", "ResultsFile", "SweepRow", "columns", "run_cells",
           "statistic_cells"]

#: What the replay did, from its summary.
RUN_COLUMNS = ("bars", "orders", "fills", "denied", "unsized", "round_trips", "final_equity",
               "realized_pnl", "fees")
_DURATIONS = frozenset({"duration", "max_drawdown_duration", "avg_drawdown_duration",
                        "max_trade_duration", "avg_trade_duration"})
#: Every statistic, durations suffixed ``_s`` (seconds).
STATISTIC_COLUMNS = tuple(f"{name}_s" if name in _DURATIONS else name
                          for name in Statistics.__struct_fields__)


@dataclass
class SweepRow:
    """One combination's run: ``key`` is its number in grid order (from 1); ``window`` the
    walk-forward window it ran in (from 1), None in a plain sweep."""

    key: int
    params: dict[str, GridValue]
    summary: ReplaySummary
    window: int | None = None

    @property
    def statistics(self) -> Statistics | None:
        return self.summary.statistics


def columns(param_names: Sequence[str], windowed: bool = False) -> list[str]:
    head = ["combination", *(["window"] if windowed else [])]
    return [*head, *param_names, *RUN_COLUMNS, *STATISTIC_COLUMNS]


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return format_value(value)
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else ""
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    if isinstance(value, timedelta):
        return repr(value.total_seconds())
    return str(value)


def run_cells(summary: ReplaySummary) -> list[str]:
    """The :data:`RUN_COLUMNS` of a run."""
    return [_cell(getattr(summary, name)) for name in RUN_COLUMNS]


def statistic_cells(statistics: Statistics | None) -> list[str]:
    """The :data:`STATISTIC_COLUMNS` (all empty: no statistics)."""
    return [_cell(None if statistics is None else getattr(statistics, name))
            for name in Statistics.__struct_fields__]


def _values(row: SweepRow, param_names: Sequence[str], windowed: bool) -> list[str]:
    head = [str(row.key), *([str(row.window)] if windowed else [])]
    params = [format_value(row.params[name]) for name in param_names]
    return [*head, *params, *run_cells(row.summary), *statistic_cells(row.statistics)]


class ResultsFile:
    """``results.csv``, a row appended and flushed as each combination finishes."""

    def __init__(self, path: Path, param_names: Sequence[str], windowed: bool = False) -> None:
        self.path = path
        self._names = list(param_names)
        self._windowed = windowed
        self.rows = 0
        self._file: TextIO = path.open("w", newline="", encoding="utf-8")
        self._csv = csv.writer(self._file)
        self._csv.writerow(columns(self._names, windowed))
        self._file.flush()

    def append(self, row: SweepRow) -> None:
        line = io.StringIO()
        csv.writer(line).writerow(_values(row, self._names, self._windowed))
        self._file.write(line.getvalue())  # one write: a line is on disk whole or not at all
        self._file.flush()
        self.rows += 1

    def close(self) -> None:
        self._file.close()

    def rewrite(self, rows: Sequence[SweepRow]) -> None:
        """Replace the file with ``rows`` in order (the sweep ended: grid order)."""
        self.close()
        partial = self.path.with_name(self.path.name + ".partial")
        with partial.open("w", newline="", encoding="utf-8") as f:
            out = csv.writer(f)
            out.writerow(columns(self._names, self._windowed))
            out.writerows(_values(r, self._names, self._windowed) for r in rows)
        os.replace(partial, self.path)
