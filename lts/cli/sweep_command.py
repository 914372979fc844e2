"""``python -m lts.engine sweep DATA... --strategy NAME --grid NAME=SPEC...``: a parameter sweep.

Wired into :mod:`lts.cli.main`, which maps errors to one ``lts: error:`` line and status 2. It
takes every flag of ``replay`` that shapes a backtest
(:func:`lts.cli.replay_command.add_backtest_args`) and replays the strategy once per combination
of the grid in worker processes (:mod:`lts.backtest.sweep`), or walks forward (``--walk-forward
K``, :mod:`lts.backtest.walk_forward`). The runs are in memory (``--db-url`` is not written
to).

Output, in ``--out DIR`` (default ``sweep-<UTC time>``): ``results.csv`` (a row appended as
each combination finishes), ``heatmap.html`` with its scripts (a plain sweep), and
``walk_forward.csv`` (a walk-forward). The console gets progress on stderr (a bar on a terminal,
else a line per 10 %) and, at the end, the best combinations as a table (or a line per
walk-forward window and the combined out-of-sample result). Ctrl-C stops: nothing new starts,
the workers are terminated, ``results.csv`` keeps what finished, the status is 130.
"""

import argparse
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from lts.cli.common import decimal_arg
from lts.cli.replay_command import add_backtest_args

__all__ = ["add_parser", "run"]


def add_parser(sub: Any, common: Callable[[argparse.ArgumentParser], None]) -> None:
    sp = sub.add_parser("sweep", help="replay a strategy over a grid of its params")
    common(sp)
    add_backtest_args(sp)
    sp.add_argument("--grid", action="append", required=True, metavar="NAME=SPEC",
                    help="a swept param: START:STOP:STEP (STOP included when on a step) or "
                         "A,B,C; repeatable")
    sp.add_argument("--workers", type=int, help="worker processes (default: one per CPU)")
    sp.add_argument("--metric", default="sharpe",
                    help="the statistic that ranks the combinations (default sharpe)")
    sp.add_argument("--top", type=int, default=10, help="best combinations printed (10)")
    sp.add_argument("--walk-forward", type=int, metavar="K",
                    help="K consecutive windows: choose on each in-sample part, run the "
                         "choice on its out-of-sample part")
    sp.add_argument("--in-sample", type=decimal_arg, default=Decimal("0.7"), metavar="SHARE",
                    help="the in-sample share of each walk-forward window (0.7)")
    sp.add_argument("--out", type=Path, metavar="DIR",
                    help="output directory (default sweep-<UTC time>)")


def run(args: argparse.Namespace, settings: Any) -> int:
    from lts.backtest.data import open_market_data
    from lts.backtest.sweep import plan_sweep
    from lts.backtest.sweep_pool import MarketFiles, default_workers
    from lts.errors import ConfigError
    from lts.plugins.registry import Registry
    from lts.plugins.strategy_files import is_strategy_file, load_strategy_file

    from .replay_command import replay_options

    registry = Registry.discover(("strategy", "portfolio", "broker", "pipeline"), lazy=True)
    if is_strategy_file(args.strategy):
        load_strategy_file(registry, args.strategy)
    opts = replay_options(args, settings, progress=False)
    opts.db_url = None  # each worker replays in memory
    plan = plan_sweep(args.grid, args.metric, opts, registry)
    if args.workers is not None and args.workers < 1:
        raise ConfigError("--workers must be at least 1")
    if args.top < 1:
        raise ConfigError("--top must be at least 1")
    if args.walk_forward is not None and args.walk_forward < 1:
        raise ConfigError("--walk-forward: at least 1 window")
    if not 0 < args.in_sample < 1:
        raise ConfigError("--in-sample: a share strictly between 0 and 1")
    market = open_market_data(args.data, args.symbol, args.tick_size)
    if args.tick_size is None:
        for symbol in market.symbols:
            print(f"lts: {market.describe(symbol)}", file=sys.stderr)
    out: Path = args.out or Path(f"sweep-{datetime.now(UTC):%Y%m%d-%H%M%S}")
    out.mkdir(parents=True, exist_ok=True)
    combinations = plan.combinations
    jobs = len(combinations) * (args.walk_forward or 1)
    workers = min(args.workers or default_workers(), jobs)
    refused = plan.screened.refused
    why = "; ".join(f"{reason}: {n}" for reason, n in refused.most_common(3))
    print(f"lts: sweep of {args.strategy}: {len(combinations):,} combinations"
          + (f" ({plan.screened.refused_count:,} refused by the strategy: {why})"
             if refused else "")
          + f", {workers} worker{'s' * (workers != 1)}; ranked by {plan.metric.name} "
          f"({plan.metric.direction})", file=sys.stderr)
    from lts.cli.sweep_console import SweepSession, run_plain, run_walk

    session = SweepSession(
        strategy=args.strategy, data=[str(d) for d in args.data], grid_specs=list(args.grid),
        plan=plan, options=opts,
        files=MarketFiles(tuple(str(d) for d in args.data), args.symbol, args.tick_size),
        market=market, out=out, workers=workers,
        log_level="DEBUG" if settings.log_level == "DEBUG" else "WARNING", top=args.top,
        walk_forward=args.walk_forward, in_sample=args.in_sample,
        meta={"strategy": args.strategy, "data": [str(d) for d in args.data],
              "symbols": market.symbols, "grid": list(args.grid),
              "fixed params": opts.params, "cash": str(opts.cash),
              "quantity": None if opts.quantity is None else str(opts.quantity),
              "fill at": opts.fill_at, "workers": workers})
    return run_walk(session) if args.walk_forward is not None else run_plain(session)
