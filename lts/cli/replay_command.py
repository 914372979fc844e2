"""``python -m lts.engine replay DATA... --strategy NAME``: a backtest through the engine.

Wired into :mod:`lts.cli.main`, which maps errors to one ``lts: error:`` line and status 2. The
data is one or several files, a directory (one symbol per file) or one long-format file with a
``symbol`` column (:mod:`lts.backtest.data`); the strategy is a plugin's name or a file of your
own (``path/to/my_strategy.py:MyStrategy``, :mod:`lts.plugins.strategy_files`). The console
gets what was inferred about each instrument, the statistics a quant reads first and, with
``--report DIR``, the report's files; ``--json`` ends with one JSON line.
"""

import argparse
import logging
import sys
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

from lts.cli.common import decimal_arg, parse_params

__all__ = ["add_backtest_args", "add_parser", "replay_options", "run"]


def add_backtest_args(p: argparse.ArgumentParser) -> None:
    """What a backtest takes (replay and sweep): its data, strategy, costs, sizing and
    instruments."""
    p.add_argument("data", nargs="+",
                   help="CSV or Parquet file(s) (SYMBOL=PATH names one), a directory, or one "
                        "file with a symbol column")
    p.add_argument("--strategy", required=True,
                   help="a strategy plugin's name, or path/to/file.py:ClassName")
    p.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                   help="strategy param, repeatable")
    p.add_argument("--symbol", help="the symbol of a single data file (default: its name)")
    p.add_argument("--cash", type=decimal_arg, default=Decimal(100_000))
    p.add_argument("--quantity", type=decimal_arg, help="fixed order quantity")
    p.add_argument("--fraction", type=decimal_arg,
                   help="share of equity per position when the portfolio sizes (default 0.1)")
    p.add_argument("--fees-bps", type=decimal_arg,
                   help="fee in basis points of notional, maker and taker alike (default 0)")
    p.add_argument("--maker-bps", type=decimal_arg, help="fee of a resting limit order")
    p.add_argument("--taker-bps", type=decimal_arg, help="fee of an order that takes")
    p.add_argument("--fee-per-order", type=decimal_arg, help="fixed fee per order")
    p.add_argument("--min-fee-per-order", type=decimal_arg, help="minimum fee per order")
    p.add_argument("--slippage-bps", type=decimal_arg, default=Decimal(0))
    p.add_argument("--fill-at", choices=["next-open", "close"], default="next-open")
    p.add_argument("--tick-size", type=decimal_arg,
                   help="price step of every symbol (default: from the data's decimals)")
    p.add_argument("--lot-size", type=decimal_arg, help="quantity step (default 1)")
    p.add_argument("--min-notional", type=decimal_arg, help="smallest order value")
    p.add_argument("--allow-short", action="store_true",
                   help="allow short sales (else sells stop at the position)")
    p.add_argument("--borrow-bps", type=decimal_arg,
                   help="annual borrow cost of short positions, basis points of their value")


def add_parser(sub: Any, common: Callable[[argparse.ArgumentParser], None]) -> None:
    rp = sub.add_parser("replay", help="replay historical bars through the engine (a backtest)")
    common(rp)
    add_backtest_args(rp)
    rp.add_argument("--report", type=Path, metavar="DIR",
                    help="write summary.json, fills.csv, trades.csv, equity.csv, report.html")
    rp.add_argument("--json", action="store_true", help="end with one JSON summary line")


def replay_options(args: argparse.Namespace, settings: Any, *, progress: bool) -> Any:
    """The backtest's options from the command line (shared with ``sweep``)."""
    from lts.backtest.replay import ReplayOptions

    costs = {k: getattr(args, a) for k, a in (
        ("maker_bps", "maker_bps"), ("taker_bps", "taker_bps"),
        ("fee_per_order", "fee_per_order"), ("min_fee_per_order", "min_fee_per_order"))
        if getattr(args, a) is not None}
    risk_update: dict[str, Any] = {"max_orders_per_second": None, "max_open_orders": None}
    if args.allow_short:
        risk_update["allow_short"] = True
    return ReplayOptions(
        strategy=args.strategy, params=parse_params(args.param), cash=args.cash,
        quantity=args.quantity, fraction=args.fraction, fees_bps=args.fees_bps,
        slippage_bps=args.slippage_bps, costs=costs, fill_at=args.fill_at.replace("-", "_"),
        tick_size=args.tick_size, lot_size=args.lot_size, min_notional=args.min_notional,
        borrow_bps=args.borrow_bps,
        db_url=settings.database.url, risk=settings.risk.model_copy(update=risk_update),
        progress=progress)


def run(args: argparse.Namespace, settings: Any) -> int:
    import anyio
    import msgspec

    from lts.backtest.data import open_market_data
    from lts.backtest.replay import run_replay
    from lts.cli.common import has_uvloop
    from lts.plugins.registry import Registry
    from lts.plugins.strategy_files import is_strategy_file, load_strategy_file

    if settings.log_level != "DEBUG":
        for name in ("lts.orders", "lts.runner", "lts.strategy"):
            logging.getLogger(name).setLevel(logging.WARNING)
    registry = Registry.discover(("strategy", "portfolio", "broker", "pipeline"), lazy=True)
    if is_strategy_file(args.strategy):
        load_strategy_file(registry, args.strategy)
    opts = replay_options(args, settings, progress=sys.stderr.isatty())
    from lts.backtest.replay import strategy_params

    strategy_params(registry, opts)  # a bad strategy or param fails before the data loads
    market = open_market_data(args.data, args.symbol, args.tick_size, whole=False)
    if args.tick_size is None:
        for symbol in market.symbols:
            print(f"lts: {market.describe(symbol)}", file=sys.stderr)

    results: list[Any] = []

    async def main() -> None:
        # kept out of the main task's result: asyncio's Runner restores the SIGINT handler at
        # the end and Python 3.11's signal module formats the old one (a partial holding the
        # main task, whose repr holds its result): a full repr of every fill (0.2 s per 200k
        # bars)
        results.append(await run_replay(market, opts, registry))

    anyio.run(main, backend_options={"use_uvloop": has_uvloop()})
    (result,) = results
    summary = result.summary
    if args.report is not None:
        from lts.backtest.replay_report import write_replay_report

        meta = {"strategy": opts.strategy, "params": opts.params, "data": list(args.data),
                "symbols": summary.symbols, "cash": str(opts.cash), "fill_at": opts.fill_at,
                "costs": {"fees_bps": str(opts.fees_bps or 0),
                          "slippage_bps": str(opts.slippage_bps),
                          **{k: str(v) for k, v in opts.costs.items()}},
                "orders": summary.orders, "denied": summary.denied, "unsized": summary.unsized}
        written = write_replay_report(args.report, result, market, meta)
        print(f"lts: report: {len(written)} files in {args.report}/ (open "
              f"{args.report / 'report.html'})", file=sys.stderr)
    if args.json:
        encoded = msgspec.json.Encoder(decimal_format="number").encode(summary)
        sys.stdout.write(encoded.decode() + "\n")
        return 0
    print(_console(summary))
    return 0


def _console(summary: Any) -> str:
    """The statistics block backtesting.py prints, then what the engine did."""
    from lts.domain.statistics_text import to_console

    lines = [] if summary.statistics is None else [to_console(summary.statistics)]
    positions = ", ".join(f"{s} {q}" for s, q in summary.final_positions.items())
    engine = [("Symbols", ", ".join(summary.symbols)), ("Strategy", summary.strategy),
              ("Bars", f"{summary.bars:,}"), ("Orders", summary.orders),
              ("Denied", summary.denied), ("Unsized", summary.unsized),
              ("Fills", summary.fills), ("Final equity", summary.final_equity),
              ("Fees", summary.fees), ("Borrow costs", summary.borrow_costs),
              ("Final positions", positions or "none"),
              ("Elapsed [s]", summary.elapsed_seconds),
              ("Bars per second", f"{summary.bars_per_second:,.0f}")]
    width = 26
    lines += [f"{name:<{width}}{value}" for name, value in engine]
    return "\n".join(lines)
