"""The backtest report: ``replay ... --report DIR`` writes the run's figures into one directory.

Flow: the replay ends with its fills, their round trips (:func:`lts.domain.trades.round_trips`),
the equity curve it sampled at every bar (:class:`lts.domain.performance.EquityCurve`), the
statistics (:func:`lts.domain.performance.compute_statistics`) and each symbol's bars
(:class:`PriceSeries`); :func:`write_report` writes them:

- ``summary.json``: the title, the caller's parameters (``meta``) and the statistics (times in
  ISO 8601 UTC, durations as ISO 8601 durations, undefined statistics null);
- ``fills.csv``: time, symbol, side, quantity, price, fee, commission (taken in the asset),
  order_id (the client order id), fill_id (the venue's trade id), trade_id (the round trip it
  belongs to: two ids separated by ``;`` for a fill that reverses a position);
- ``trades.csv``: trade_id, symbol, side, entry_time, exit_time, entry_price, exit_price,
  quantity (the largest held), pnl (after fees), return_pct, duration_s, fees, open; an open
  trade has no exit time;
- ``equity.csv``: every sample: time, cash, position_value, equity, drawdown_pct (0 or
  negative: below the peak);
- ``report.html`` and its scripts (:mod:`lts.backtest.report_html`): the chart and the tables.

Times are ISO 8601 in UTC with their zone (``Z``); money from fills and trades is written
exactly (``Decimal``), the curve's as floats. The CSVs keep every row: a million bars are
written through Arrow's CSV writer in about a second. Blocking: call it from a worker thread
inside the engine.
"""

from collections.abc import Mapping, Sequence
from pathlib import Path

import msgspec
import pyarrow as pa
import pyarrow.csv as pa_csv

from lts.backtest.iso_times import iso_utc, iso_utc_column
from lts.backtest.price_series import PriceSeries
from lts.backtest.report_html import write_page
from lts.domain.orders import Fill
from lts.domain.performance import EquityCurve, Statistics
from lts.domain.trades import Trade, TradeBook

__all__ = ["DATA_FILES", "PriceSeries", "write_report"]

DATA_FILES = ("summary.json", "fills.csv", "trades.csv", "equity.csv")
_CSV = pa_csv.WriteOptions(quoting_style="needed")


def write_report(directory: Path, *, title: str, statistics: Statistics, fills: Sequence[Fill],
                 trades: Sequence[Trade], curve: EquityCurve,
                 prices: Mapping[str, PriceSeries], meta: Mapping[str, object] | None = None,
                 currency: str = "$") -> list[Path]:
    """Write the report into ``directory`` (created if missing; files of an earlier report
    there are replaced) and return the paths written. ``trades`` are the round trips of
    ``fills``; ``meta`` holds what the caller wants on record (strategy, parameters, data)."""
    directory.mkdir(parents=True, exist_ok=True)
    meta = dict(meta or {})
    summary, fills_csv, trades_csv, equity_csv = (directory / name for name in DATA_FILES)
    summary.write_bytes(msgspec.json.format(msgspec.json.encode(
        {"title": title, "currency": currency, "meta": meta, "statistics": statistics},
        enc_hook=str), indent=2) + b"\n")
    _write_fills(fills_csv, fills)
    _write_trades(trades_csv, trades)
    _write_equity(equity_csv, curve)
    page = write_page(directory, title=title, statistics=statistics, trades=trades,
                      curve=curve, prices=prices, meta=meta, data_files=DATA_FILES,
                      currency=currency)
    return [summary, fills_csv, trades_csv, equity_csv, *page]


def _write_fills(path: Path, fills: Sequence[Fill]) -> None:
    book = TradeBook()
    round_trip = [";".join(map(str, book.apply(f))) for f in fills]
    table = pa.table({
        "time": iso_utc([f.ts_event for f in fills]),
        "symbol": [f.symbol for f in fills],
        "side": [f.side.value for f in fills],
        "quantity": [str(f.quantity) for f in fills],
        "price": [str(f.price) for f in fills],
        "fee": [str(f.fee) for f in fills],
        "commission": [str(f.commission) for f in fills],
        "order_id": [f.client_order_id for f in fills],
        "fill_id": [f.trade_id for f in fills],
        "trade_id": round_trip,
    }, schema=_strings("time", "symbol", "side", "quantity", "price", "fee", "commission",
                       "order_id", "fill_id", "trade_id"))
    pa_csv.write_csv(table, path, write_options=_CSV)


def _write_trades(path: Path, trades: Sequence[Trade]) -> None:
    exits = iter(iso_utc([t.exit_ts for t in trades if t.exit_ts is not None]))
    table = pa.table({
        "trade_id": [t.trade_id for t in trades],
        "symbol": [t.symbol for t in trades],
        "side": [t.side for t in trades],
        "entry_time": iso_utc([t.entry_ts for t in trades]),
        "exit_time": [next(exits) if t.exit_ts is not None else None for t in trades],
        "entry_price": [str(t.entry_price) for t in trades],
        "exit_price": [None if t.exit_price is None else str(t.exit_price) for t in trades],
        "quantity": [str(t.quantity) for t in trades],
        "pnl": [str(t.pnl) for t in trades],
        "return_pct": [t.return_pct for t in trades],
        "duration_s": [None if t.duration_ns is None else t.duration_ns / 1e9 for t in trades],
        "fees": [str(t.fees) for t in trades],
        "open": [t.open for t in trades],
    }, schema=pa.schema([
        ("trade_id", pa.int64()), ("symbol", pa.string()), ("side", pa.string()),
        ("entry_time", pa.string()), ("exit_time", pa.string()), ("entry_price", pa.string()),
        ("exit_price", pa.string()), ("quantity", pa.string()), ("pnl", pa.string()),
        ("return_pct", pa.float64()), ("duration_s", pa.float64()), ("fees", pa.string()),
        ("open", pa.bool_())]))
    pa_csv.write_csv(table, path, write_options=_CSV)


def _write_equity(path: Path, curve: EquityCurve) -> None:
    table = pa.table({
        "time": iso_utc_column(curve.ts_ns),
        "cash": curve.cash,
        "position_value": curve.position_value,
        "equity": curve.equity,
        "drawdown_pct": curve.drawdown_pct,
    })
    pa_csv.write_csv(table, path, write_options=_CSV)


def _strings(*names: str) -> pa.Schema:
    return pa.schema([(name, pa.string()) for name in names])
