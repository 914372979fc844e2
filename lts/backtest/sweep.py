"""Parameter sweeps: one strategy replayed over a grid of its params, in worker processes.

Flow: ``python -m lts.engine sweep`` (:mod:`lts.cli.sweep_command`) or a program calls
:func:`plan_sweep` (the grid parsed and screened by the strategy's own params, the metric
checked: every mistake is one :class:`~lts.errors.ConfigError` before anything runs), then,
inside a :class:`~lts.backtest.sweep_pool.SweepPool`, :func:`run_sweep` (every combination over
the whole data) or :func:`lts.backtest.walk_forward.run_walk_forward`. Each finished run is
handed to the caller as a :class:`~lts.backtest.sweep_results.SweepRow` as it comes (the command
appends it to ``results.csv`` at once); :func:`ranked` orders rows by the metric and
:mod:`lts.backtest.sweep_report` draws the heatmap.

Every run is :func:`lts.backtest.replay.run_replay` with the sweep's options and the
combination's params: the statistics of a combination are those a ``replay`` of it prints.
:func:`sweep` does it all in one call (tests, notebooks).
"""

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from lts.backtest.market_tape import MarketTape
from lts.backtest.replay import ReplayOptions, strategy_params
from lts.backtest.sweep_grid import Grid, GridValue, Screened, parse_grid, screen
from lts.backtest.sweep_metrics import Metric
from lts.backtest.sweep_pool import (
    Job,
    JobResult,
    MarketFiles,
    SweepPool,
    WorkerSetup,
    default_workers,
    run_jobs,
)
from lts.backtest.sweep_results import SweepRow
from lts.plugins.registry import Registry

__all__ = ["SweepPlan", "plan_sweep", "ranked", "run_sweep", "sweep"]


@dataclass(frozen=True)
class SweepPlan:
    """What a sweep will run: the grid, the combinations the strategy takes (and the refused
    ones, counted by reason), the metric that ranks them."""

    grid: Grid
    screened: Screened
    metric: Metric

    @property
    def combinations(self) -> list[dict[str, GridValue]]:
        return self.screened.valid


def plan_sweep(grid_specs: Sequence[str], metric: str, options: ReplayOptions,
               registry: Registry) -> SweepPlan:
    """Parse and screen the grid for ``options.strategy`` (a registered strategy: load a
    strategy file into ``registry`` first). Raises :class:`~lts.errors.LtsError` on bad input:
    a spec, an unknown param, a grid with no valid combination, an unknown metric."""
    grid = parse_grid(grid_specs)
    ranking = Metric.named(metric)
    cls = registry.get("strategy", options.strategy)
    fixed = strategy_params(registry, options)  # the fixed params alone must be valid
    screened = screen(grid, strategy=options.strategy, known=list(cls.Params.model_fields),
                      fixed=fixed, validate=cls.validate_params)
    return SweepPlan(grid, screened, ranking)


def ranked(rows: Iterable[SweepRow], metric: Metric) -> list[SweepRow]:
    """Best first by ``metric``; equal (or undefined) values in grid order."""
    return sorted(rows, key=lambda r: (-metric.score(metric.value(r.statistics)), r.key))


def run_sweep(pool: SweepPool, combinations: Sequence[dict[str, GridValue]],
              on_row: Callable[[SweepRow], None] = lambda row: None, *,
              window: tuple[int, int] | None = None) -> list[SweepRow]:
    """Replay every combination (over ``window``, ``[start, end)`` in ns, if given); each row
    goes to ``on_row`` as it finishes. Returns the rows in grid order."""
    rows: list[SweepRow] = []

    def finished(result: JobResult) -> tuple[Job, ...]:
        assert result.summary is not None
        row = SweepRow(result.job.key, result.job.params, result.summary)
        rows.append(row)
        on_row(row)
        return ()

    jobs = (Job(key, params, window) for key, params in enumerate(combinations, 1))
    run_jobs(pool, jobs, finished)
    return sorted(rows, key=lambda r: r.key)


def sweep(market: MarketTape | MarketFiles, options: ReplayOptions, grid: Sequence[str], *,
          metric: str = "sharpe", workers: int | None = None,
          registry: Registry | None = None) -> tuple[SweepPlan, list[SweepRow]]:
    """Plan and run a sweep in one call; the rows come back best first."""
    from lts.plugins.strategy_files import is_strategy_file, load_strategy_file

    registry = registry or Registry.discover(("strategy", "portfolio", "broker", "pipeline"),
                                             lazy=True)
    if is_strategy_file(options.strategy):
        load_strategy_file(registry, options.strategy)
    plan = plan_sweep(grid, metric, options, registry)
    n = min(workers or default_workers(), len(plan.combinations))
    with SweepPool(WorkerSetup(market, options), n) as pool:
        rows = run_sweep(pool, plan.combinations)
    return plan, ranked(rows, plan.metric)
