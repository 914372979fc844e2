"""Parameter sweeps and walk-forward (issue 11, item 8): the grid as written, combinations the
strategy refuses dropped and counted, every combination's figures those of its own replay, and
walk-forward windows that cover the data once with out-of-sample runs equal to a replay of that
slice (SYS-001 the pipeline, SYS-009 worker processes, SYS-011/SYS-018 bad input is a message).

The worker processes are real (spawned); one pool serves the module's sweeps."""

import itertools
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import anyio
import pytest

from lts.backtest.market_tape import MarketTape
from lts.backtest.replay import ReplayOptions, ReplayResult, run_replay
from lts.backtest.sweep import plan_sweep, ranked, run_sweep
from lts.backtest.sweep_grid import parse_grid, parse_values, plain_params
from lts.backtest.sweep_metrics import METRICS, Metric
from lts.backtest.sweep_pool import SweepPool, WorkerSetup
from lts.backtest.sweep_report import heatmap_cells
from lts.backtest.sweep_results import SweepRow
from lts.backtest.walk_forward import (
    WindowResult,
    combined_statistics,
    run_walk_forward,
    windows,
)
from lts.domain.market import Bar
from lts.errors import ConfigError
from lts.plugins.pipeline.synthetic import GbmSeries
from lts.plugins.registry import Registry
from lts.settings import RiskLimits

HOUR_NS = 3_600 * 10**9
T0 = 1_704_153_600 * 10**9  # 2024-01-02 UTC
BARS = 1_500
GRID = ["fast=5,10,20", "slow=10,30", "long_only=true,false"]


def hourly_bars(n: int = BARS, symbol: str = "GBM") -> list[Bar]:
    gbm = GbmSeries(7, 100.0, 0.0, 0.004, 1000.0)
    return [gbm.next_bar(symbol, T0 + i * HOUR_NS) for i in range(n)]


def options(**params: Any) -> ReplayOptions:
    return ReplayOptions(strategy="sma_crossover", params=params, quantity=Decimal(10),
                         risk=RiskLimits(max_orders_per_second=None, max_open_orders=None,
                                         allow_short=True))


@pytest.fixture(scope="module")
def registry() -> Registry:
    return Registry.discover(("strategy", "portfolio", "broker", "pipeline"), lazy=True)


@pytest.fixture(scope="module")
def tape() -> MarketTape:
    return MarketTape(["GBM"], hourly_bars(), {"GBM": Decimal("0.0001")})


@pytest.fixture(scope="module")
def pool(tape: MarketTape) -> Iterator[SweepPool]:
    with SweepPool(WorkerSetup(tape, options()), 2) as running:
        yield running


def replay(tape: MarketTape, registry: Registry, params: dict[str, Any]) -> ReplayResult:
    """A direct replay in this process, as ``replay`` runs it."""
    return anyio.run(run_replay, tape, options(**plain_params(params)), registry)


# -- the grid ------------------------------------------------------------------------------------

def test_ranges_include_stop_on_the_step_and_ints_stay_ints() -> None:
    grid = parse_grid(["fast=5:50:5", "slow=20:52:10"])
    assert grid.axes["fast"] == [5, 10, 15, 20, 25, 30, 35, 40, 45, 50]
    assert grid.axes["slow"] == [20, 30, 40, 50]  # 52 is not on a step
    assert all(type(v) is int for values in grid.axes.values() for v in values)
    assert grid.size == 40
    first = next(grid.combinations())
    assert first == {"fast": 5, "slow": 20}


def test_decimal_ranges_are_exact() -> None:
    values = parse_values("x", "0.1:0.5:0.1")
    assert values == [Decimal("0.1"), Decimal("0.2"), Decimal("0.3"), Decimal("0.4"),
                      Decimal("0.5")]
    assert all(isinstance(v, Decimal) for v in values)
    assert parse_values("x", "1:2:0.25") == [Decimal(1), Decimal("1.25"), Decimal("1.5"),
                                             Decimal("1.75"), Decimal(2)]
    assert plain_params({"x": Decimal("0.3")}) == {"x": "0.3"}  # passed to params as text


def test_lists_keep_their_types() -> None:
    assert parse_values("long_only", "true,false") == [True, False]
    assert parse_values("n", "3") == [3]
    mixed = parse_values("x", "1, 2.5 ,-3")
    assert mixed == [1, Decimal("2.5"), -3]
    assert [type(v) for v in mixed] == [int, Decimal, int]
    assert parse_values("mode", "fast,slow") == ["fast", "slow"]


@pytest.mark.parametrize(("specs", "words"), [
    (["fast"], "expected NAME="),
    (["=1:2:1"], "expected NAME="),
    (["fast="], "no values"),
    (["fast=1:2"], "START:STOP:STEP"),
    (["fast=1:10:0"], "step must be above zero"),
    (["fast=10:1:1"], "STOP is below START"),
    (["fast=a:9:1"], "'a' is not a number"),
    (["fast=1:inf:1"], "not a finite number"),
    (["fast=1,,2"], "empty value"),
    (["fast=1,2,1"], "1 twice"),
    (["fast=1,2", "fast=3"], "given twice"),
    (["a=1:1000:1", "b=1:1001:1"], "more than"),
    ([], "at least one --grid"),
])
def test_bad_grid_specs_are_one_line(specs: list[str], words: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_grid(specs)
    message = str(err.value)
    assert words in message
    assert "\n" not in message


def test_refused_combinations_are_dropped_and_counted(registry: Registry) -> None:
    plan = plan_sweep(["fast=10:30:10", "slow=20,30"], "sharpe", options(), registry)
    assert plan.combinations == [{"fast": 10, "slow": 20}, {"fast": 10, "slow": 30},
                                 {"fast": 20, "slow": 30}]
    assert plan.screened.refused_count == 3  # 20/20, 30/20, 30/30
    (reason,) = plan.screened.refused
    assert "fast must be smaller than slow" in reason


@pytest.mark.parametrize(("grid", "metric", "words"), [
    (["fastest=1,2"], "sharpe", "no param 'fastest'"),
    (["fast=30,40", "slow=10,20"], "sharpe", "no combination of the grid is valid"),
    (["fast=0,5"], "sharpe", None),  # fast=0 refused by its bound, fast=5 runs
    (["fast=5,10"], "luck", "--metric luck: not a statistic"),
    (["fast=5,10"], "start", "not a statistic"),
    (["quantity=1,2"], "sharpe", "also given as a fixed param"),
])
def test_bad_plans_are_refused_before_anything_runs(registry: Registry, grid: list[str],
                                                    metric: str, words: str | None) -> None:
    if words is None:
        plan = plan_sweep(grid, metric, options(slow=30), registry)
        assert plan.combinations == [{"fast": 5}]
        assert plan.screened.refused_count == 1
        return
    with pytest.raises(ConfigError, match=words):
        plan_sweep(grid, metric, options(), registry)


# -- metrics -------------------------------------------------------------------------------------

def test_metric_directions() -> None:
    assert Metric.named("sharpe").best([1.0, None, 2.5, -3.0]) == 2.5
    assert Metric.named("max_drawdown_pct").best([-12.0, -3.5, None, -7.0]) == -3.5
    assert Metric.named("volatility_ann_pct").best([30.0, 12.0, None]) == 12.0
    assert Metric.named("commissions").best([5.0, 1.0]) == 1.0
    assert Metric.named("sortino").best([None, None]) is None
    assert "duration" not in METRICS
    assert METRICS["max_drawdown_duration"] == METRICS["volatility_ann_pct"]


# -- a sweep against direct replays --------------------------------------------------------------

@pytest.fixture(scope="module")
def swept(pool: SweepPool, registry: Registry) -> tuple[Any, list[SweepRow]]:
    plan = plan_sweep(GRID, "sharpe", options(), registry)
    seen: list[int] = []
    rows = run_sweep(pool, plan.combinations, lambda row: seen.append(row.key))
    assert sorted(seen) == list(range(1, len(plan.combinations) + 1))  # each row streamed once
    return plan, rows


def test_each_combination_equals_its_own_replay(swept: tuple[Any, list[SweepRow]],
                                                tape: MarketTape, registry: Registry) -> None:
    plan, rows = swept
    assert [r.key for r in rows] == list(range(1, len(plan.combinations) + 1))
    assert len(rows) == 8  # 10/10 and 20/10 refused, twice each
    assert [r.params for r in rows] == plan.combinations
    assert len({r.summary.fills for r in rows}) > 3  # the params matter
    for row in [*rows[::3], ranked(rows, plan.metric)[0]]:
        direct = replay(tape, registry, row.params)
        assert row.statistics == direct.summary.statistics
        assert row.summary.fills == direct.summary.fills
        assert row.summary.final_equity == direct.summary.final_equity


def test_ranked_best_first_and_heatmap_takes_the_best_over_the_rest(
        swept: tuple[Any, list[SweepRow]]) -> None:
    plan, rows = swept
    metric = plan.metric
    best = ranked(rows, metric)
    values = [metric.value(r.statistics) for r in best]
    defined = [v for v in values if v is not None]
    assert defined == sorted(defined, reverse=True)
    assert values[:len(defined)] == defined  # undefined last
    cells, holders = heatmap_cells(plan.grid, rows, metric)
    assert len(cells) == 2
    assert len(cells[0]) == 3
    for y, slow in enumerate([10, 30]):
        for x, fast in enumerate([5, 10, 20]):
            runs = [r for r in rows if r.params["fast"] == fast and r.params["slow"] == slow]
            expected = metric.best([metric.value(r.statistics) for r in runs])
            assert cells[y][x] == expected
            holder = holders[y][x]
            if expected is None:
                assert holder is None
            else:
                assert holder is not None
                assert metric.value(holder.statistics) == expected


# -- walk-forward --------------------------------------------------------------------------------

@pytest.mark.parametrize(("count", "share"), [(1, "0.7"), (3, "0.7"), (4, "0.5"), (7, "0.9")])
def test_windows_cover_the_data_once(tape: MarketTape, count: int, share: str) -> None:
    cut = windows(tape.first_ts, tape.last_ts, count, Decimal(share))
    assert [w.index for w in cut] == list(range(1, count + 1))
    assert cut[0].start == tape.first_ts
    assert cut[-1].end == tape.last_ts + 1
    for w, after in itertools.pairwise(cut):
        assert w.end == after.start
    for w in cut:
        assert w.start < w.split < w.end
    parts = [tape.window(a, b) for w in cut for a, b in ((w.start, w.split), (w.split, w.end))]
    assert sum(len(p) for p in parts) == len(tape)  # every bar in exactly one part
    times = [bar.ts_event for p in parts for batch in p.batches() for bar in batch]
    assert times == [bar.ts_event for batch in tape.batches() for bar in batch]


def test_windows_refuse_bad_shares_and_too_many_windows() -> None:
    with pytest.raises(ConfigError, match="between 0 and 1"):
        windows(0, 100, 2, "1")
    with pytest.raises(ConfigError, match="too short"):
        windows(0, 9, 20, "0.5")
    with pytest.raises(ConfigError, match="at least 1"):
        windows(0, 9, 0, "0.5")


def test_walk_forward_out_of_sample_equals_a_replay_of_the_slice(
        pool: SweepPool, tape: MarketTape, registry: Registry) -> None:
    plan = plan_sweep(GRID, "return_pct", options(), registry)
    cut = windows(tape.first_ts, tape.last_ts, 3, "0.7")
    finished: list[WindowResult] = []
    results = run_walk_forward(pool, plan.combinations, plan.metric, cut,
                               on_window=finished.append)
    assert sorted(w.window.index for w in finished) == [1, 2, 3]
    runs = []
    for result in results:
        w = result.window
        assert [r.key for r in result.rows] == list(range(1, len(plan.combinations) + 1))
        assert all(r.window == w.index for r in result.rows)
        in_sample = [plan.metric.value(r.statistics) for r in result.rows]
        assert result.chosen is not None
        assert result.out_of_sample is not None
        assert result.in_sample_value == max(v for v in in_sample if v is not None)
        assert plan.metric.value(result.chosen.statistics) == result.in_sample_value
        # the in-sample figure is a replay of the in-sample slice
        direct_in = anyio.run(run_replay, tape.window(w.start, w.split),
                              options(**plain_params(result.chosen.params)), registry)
        assert direct_in.summary.statistics == result.chosen.statistics
        direct = anyio.run(run_replay, tape.window(w.split, w.end),
                           options(**plain_params(result.chosen.params)), registry)
        oos = result.out_of_sample
        assert oos.summary.statistics == direct.summary.statistics
        assert oos.summary.bars == len(tape.window(w.split, w.end))
        assert oos.fills == direct.fills
        runs.append(oos)
    combined = combined_statistics(runs)
    assert combined is not None
    chained = 1.0
    for run in runs:
        assert run.summary.statistics is not None
        chained *= 1 + run.summary.statistics.return_pct / 100
    assert combined.return_pct == pytest.approx((chained - 1) * 100, rel=1e-9, abs=1e-9)
    assert combined.trades == sum(r.summary.statistics.trades for r in runs
                                  if r.summary.statistics is not None)


def test_tape_window_keeps_every_symbol() -> None:
    a = [Bar("A", T0 + i * HOUR_NS, 1, 1, 1, 1, 1) for i in range(10)]
    b = [Bar("B", T0 + i * HOUR_NS, 2, 2, 2, 2, 1) for i in range(0, 10, 2)]
    merged = sorted(a + b, key=lambda bar: (bar.ts_event, bar.symbol))
    tape = MarketTape(["A", "B"], merged, {"A": Decimal("0.01"), "B": Decimal("0.01")})
    part = tape.window(T0 + 3 * HOUR_NS, T0 + 5 * HOUR_NS)
    assert part.symbols == ["A", "B"]
    assert [(bar.symbol, (bar.ts_event - T0) // HOUR_NS) for bar in
            next(part.batches())] == [("A", 3), ("A", 4), ("B", 4)]
    assert part.bar_count() == 3
    assert part.bar_count("B") == 1
    with pytest.raises(ValueError, match="time order"):
        MarketTape(["A"], list(reversed(a)), {"A": Decimal("0.01")})
