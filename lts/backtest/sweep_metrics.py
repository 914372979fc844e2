"""What a sweep ranks its combinations by: one statistic of the run and which way is better.

Where it sits: :mod:`lts.backtest.sweep` ranks the results, :mod:`lts.backtest.walk_forward`
picks each window's params and :mod:`lts.backtest.sweep_report` colours the heatmap with a
:class:`Metric`. Any statistic of :class:`lts.domain.performance.Statistics` that measures the
run can rank it:

- higher is better: returns, Sharpe, Sortino, Calmar, win rate, profit factor, SQN, final
  equity, ... (the default);
- lower is better: annual volatility, commissions, and the drawdown durations (in seconds);
- closest to zero is better: the drawdowns (``max_drawdown_pct``, ``avg_drawdown_pct``,
  ``max_drawdown``), which LTS reports as 0 or negative.

Not metrics: ``start``, ``end``, ``duration`` and ``periods_per_year`` (the same for every
combination on the same data), and the trade durations (neither longer nor shorter is better).
An undefined statistic (None: no trades, no variance) ranks below every defined one.
"""

import enum
import math
from dataclasses import dataclass
from datetime import timedelta

from lts.domain.performance import Statistics
from lts.errors import ConfigError

__all__ = ["METRICS", "Direction", "Metric"]


class Direction(enum.StrEnum):
    HIGHER = "higher is better"
    LOWER = "lower is better"
    NEAR_ZERO = "closest to zero is better"


_NOT_METRICS = frozenset({"start", "end", "duration", "periods_per_year",
                          "max_trade_duration", "avg_trade_duration"})
_LOWER = frozenset({"volatility_ann_pct", "commissions", "max_drawdown_duration",
                    "avg_drawdown_duration"})
_NEAR_ZERO = frozenset({"max_drawdown_pct", "avg_drawdown_pct", "max_drawdown"})

#: Every statistic a sweep can rank by, and its direction.
METRICS: dict[str, Direction] = {
    name: (Direction.LOWER if name in _LOWER else
           Direction.NEAR_ZERO if name in _NEAR_ZERO else Direction.HIGHER)
    for name in Statistics.__struct_fields__ if name not in _NOT_METRICS}


@dataclass(frozen=True)
class Metric:
    name: str
    direction: Direction

    @classmethod
    def named(cls, name: str) -> "Metric":
        if name not in METRICS:
            raise ConfigError(f"--metric {name}: not a statistic to rank by (one of "
                              f"{', '.join(METRICS)})")
        return cls(name, METRICS[name])

    def value(self, statistics: Statistics | None) -> float | None:
        """The statistic of a run (durations in seconds); None when undefined or no run."""
        if statistics is None:
            return None
        raw = getattr(statistics, self.name)
        if raw is None:
            return None
        value = raw.total_seconds() if isinstance(raw, timedelta) else float(raw)
        return value if math.isfinite(value) else None

    def score(self, value: float | None) -> float:
        """``value`` on a scale where higher is better (undefined: minus infinity)."""
        if value is None:
            return -math.inf
        if self.direction is Direction.LOWER:
            return -value
        if self.direction is Direction.NEAR_ZERO:
            return -abs(value)
        return value

    def best(self, values: list[float | None]) -> float | None:
        """The best of ``values`` (None if none is defined)."""
        defined = [v for v in values if v is not None]
        return max(defined, key=self.score) if defined else None
