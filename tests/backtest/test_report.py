"""The backtest report (issue 11: ``replay ... --report DIR``): every file, its columns and rows,
times in ISO 8601 with their zone, and a page that loads only local scripts, has no inline
script and escapes what it shows (SYS-002 analyze portfolios).

The data is real: Google's daily bars 2004-2013 as backtesting.py ships them, traded by an SMA
10/20 cross that reverses at each cross (filled at the next bar's open, 0.1 % fee), under two
symbols: ``GOOG`` and one named like an XSS payload.
"""

import csv
import json
import shutil
import subprocess
from datetime import datetime, timedelta
from decimal import Decimal as D
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import pytest
from backtesting.test import GOOG

from lts.backtest.report import DATA_FILES, PriceSeries, write_report
from lts.backtest.report_html import MAX_CANDLES, MAX_POINTS, PAGE_FILES
from lts.domain.orders import Fill, Side
from lts.domain.performance import EquityCurve, Statistics, compute_statistics
from lts.domain.trades import Trade, round_trips

EVIL = "<img src=x onerror=alert(1)>"
CASH = 100_000.0


def sma_cross_fills(symbol: str, prices: PriceSeries, portfolio: int = 1) -> list[Fill]:
    """Reverse at each SMA 10/20 cross, 10 shares, at the next open; the last trade left open."""
    close = prices.close
    fast = np.convolve(close, np.ones(10) / 10, "valid")[10:]  # [j]: the bar j + 19
    slow = np.convolve(close, np.ones(20) / 20, "valid")
    above = fast > slow[: len(fast)]
    crosses = np.flatnonzero(above[1:] != above[:-1]) + 1
    fills, held = [], 0
    for n, j in enumerate(crosses[crosses + 20 < len(close)]):
        bar = j + 19
        side = Side.BUY if above[j] else Side.SELL
        quantity = 10 if held == 0 else 20
        price = D(repr(round(float(prices.open[bar + 1]), 2)))
        fills.append(Fill(portfolio, f"{portfolio}-{n}", "paper", f"{symbol}-{n}", symbol, side,
                          D(quantity), price, (price * quantity / 1000).quantize(D("0.01")),
                          int(prices.ts_ns[bar + 1])))
        held += quantity * side.sign
    return fills


def replay(prices: dict[str, PriceSeries]) -> tuple[list[Fill], EquityCurve]:
    """The fills of every symbol and the equity after each bar's fills (closes as marks)."""
    fills = sorted((f for s, p in prices.items() for f in sma_cross_fills(s, p)),
                   key=lambda f: f.ts_event)
    ts = next(iter(prices.values())).ts_ns
    cash = np.full(len(ts), CASH)
    value = np.zeros(len(ts))
    for f in fills:
        at = int(np.searchsorted(ts, f.ts_event))
        cash[at:] -= f.side.sign * float(f.quantity * f.price) + float(f.fee)
        value[at:] += f.side.sign * float(f.quantity) * (prices[f.symbol].close[at:])
    return fills, EquityCurve(ts, cash, cash + value, initial_cash=CASH)


@pytest.fixture(scope="module")
def goog() -> PriceSeries:
    ts = GOOG.index.as_unit("ns").asi8
    return PriceSeries("GOOG", ts, GOOG.Open.to_numpy(), GOOG.High.to_numpy(),
                       GOOG.Low.to_numpy(), GOOG.Close.to_numpy())


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory, goog: PriceSeries) -> dict[str, Any]:
    prices = {"GOOG": goog, EVIL: PriceSeries(EVIL, goog.ts_ns, goog.open, goog.high, goog.low,
                                              goog.close)}
    fills, curve = replay(prices)
    trades = round_trips(fills, {s: D(repr(float(p.close[-1]))) for s, p in prices.items()})
    stats = compute_statistics(curve, trades, buy_hold={
        s: (p.close[0], p.close[-1]) for s, p in prices.items()})
    directory = tmp_path_factory.mktemp("report") / "run"
    paths = write_report(directory, title=f"SMA cross on {EVIL}", statistics=stats,
                         fills=fills, trades=trades, curve=curve, prices=prices,
                         meta={"strategy": "sma_crossover", "fast": 10, "slow": 20,
                               "note": EVIL})
    return {"dir": directory, "paths": paths, "fills": fills, "trades": trades,
            "curve": curve, "stats": stats}


def read_csv(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        return list(reader.fieldnames or []), list(reader)


def utc(text: str) -> datetime:
    moment = datetime.fromisoformat(text)
    assert moment.utcoffset() == timedelta(0), text  # ISO 8601 with its zone: UTC
    return moment


def test_the_report_writes_every_file(report: dict[str, Any]) -> None:
    names = [p.name for p in report["paths"]]
    assert names == [*DATA_FILES, *PAGE_FILES]
    assert all(p.is_file() and p.stat().st_size > 0 for p in report["paths"])


def test_equity_csv_has_every_bar(report: dict[str, Any]) -> None:
    curve: EquityCurve = report["curve"]
    columns, rows = read_csv(report["dir"] / "equity.csv")
    assert columns == ["time", "cash", "position_value", "equity", "drawdown_pct"]
    assert len(rows) == len(curve) == 2148
    times = [int(utc(r["time"]).timestamp()) * 10**9 for r in rows]
    assert times == curve.ts_ns.tolist()
    assert [float(r["equity"]) for r in rows] == curve.equity.tolist()
    assert [float(r["cash"]) + float(r["position_value"]) for r in rows] == pytest.approx(
        curve.equity.tolist())
    drawdown = [float(r["drawdown_pct"]) for r in rows]
    assert max(drawdown) == 0.0
    assert min(drawdown) == pytest.approx(report["stats"].max_drawdown_pct)


def test_fills_csv_has_every_fill_and_its_round_trip(report: dict[str, Any]) -> None:
    fills: list[Fill] = report["fills"]
    columns, rows = read_csv(report["dir"] / "fills.csv")
    assert columns == ["time", "symbol", "side", "quantity", "price", "fee", "commission",
                       "order_id", "fill_id", "trade_id"]
    assert len(rows) == len(fills) > 100
    for row, f in zip(rows, fills, strict=True):
        assert int(utc(row["time"]).timestamp()) * 10**9 == f.ts_event
        assert (row["symbol"], row["side"], D(row["quantity"]), D(row["price"]),
                D(row["fee"])) == (f.symbol, f.side.value, f.quantity, f.price, f.fee)
        assert row["order_id"] == f.client_order_id
    # the first fill of a symbol opens a trade; each reversal after it closes one, opens one
    ids = [r["trade_id"] for r in rows if r["symbol"] == "GOOG"]
    assert ";" not in ids[0]
    assert all(len(i.split(";")) == 2 for i in ids[1:])
    assert EVIL in {r["symbol"] for r in rows}  # the CSV keeps names as they are


def test_trades_csv_has_every_trade(report: dict[str, Any]) -> None:
    trades: list[Trade] = report["trades"]
    columns, rows = read_csv(report["dir"] / "trades.csv")
    assert columns == ["trade_id", "symbol", "side", "entry_time", "exit_time", "entry_price",
                       "exit_price", "quantity", "pnl", "return_pct", "duration_s", "fees",
                       "open"]
    assert len(rows) == len(trades)
    for row, t in zip(rows, trades, strict=True):
        assert int(row["trade_id"]) == t.trade_id
        assert D(row["pnl"]) == t.pnl
        assert int(utc(row["entry_time"]).timestamp()) * 10**9 == t.entry_ts
        if t.open:
            assert (row["exit_time"], row["duration_s"], row["open"]) == ("", "", "true")
        else:
            assert utc(row["exit_time"]) - utc(row["entry_time"]) == timedelta(
                seconds=float(row["duration_s"]))
    assert sum(r["open"] == "true" for r in rows) == 2  # each symbol ends in a position


def test_summary_json_has_the_statistics_and_the_parameters(report: dict[str, Any]) -> None:
    raw = (report["dir"] / "summary.json").read_bytes()
    summary = json.loads(raw)
    assert summary["title"] == f"SMA cross on {EVIL}"
    assert summary["meta"] == {"strategy": "sma_crossover", "fast": 10, "slow": 20,
                               "note": EVIL}
    assert msgspec.convert(summary["statistics"], Statistics) == report["stats"]
    assert summary["statistics"]["start"] == "2004-08-19T00:00:00Z"
    assert b"NaN" not in raw
    assert b"Infinity" not in raw


class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.scripts: list[tuple[str | None, str]] = []
        self.links: list[str] = []
        self.handlers: list[str] = []
        self.tags: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        found = dict(attrs)
        self.handlers += [name for name in found if name.startswith("on")]
        if tag == "script":
            self.scripts.append((found.get("src"), ""))
            self._in_script = True
        for name in ("src", "href"):
            if found.get(name) is not None:
                self.links.append(str(found[name]))

    def handle_endtag(self, tag: str) -> None:
        self._in_script = self._in_script and tag != "script"

    def handle_data(self, data: str) -> None:
        if self._in_script and self.scripts:
            src, body = self.scripts[-1]
            self.scripts[-1] = (src, body + data)


def test_the_page_loads_only_its_own_files_and_has_no_inline_script(
        report: dict[str, Any]) -> None:
    page = _Page()
    page.feed((report["dir"] / "report.html").read_text())
    assert [src for src, _ in page.scripts] == ["plotly.min.js", "report-data.js", "report.js"]
    assert all(not body.strip() for _, body in page.scripts)  # no inline script
    assert page.handlers == []  # no onclick=, onload=, ...
    assert page.links
    for link in page.links:
        assert "http" not in link
        assert ":" not in link
        assert not link.startswith("/")
        assert (report["dir"] / link).is_file()
    assert "img" not in page.tags  # the symbol's markup is text, not an element
    plotly = Path(__import__("plotly").__file__).parent / "package_data" / "plotly.min.js"
    assert (report["dir"] / "plotly.min.js").read_bytes() == plotly.read_bytes()


def test_names_are_escaped_in_the_page_and_in_the_chart_data(report: dict[str, Any]) -> None:
    html = (report["dir"] / "report.html").read_text()
    assert EVIL not in html
    assert "SMA cross on &lt;img src=x onerror=alert(1)&gt;" in html
    data = (report["dir"] / "report-data.js").read_text()
    assert "<img" not in data  # plotly renders some tags in text: escaped for it too
    assert "&lt;img src=x onerror=alert(1)&gt;" in data


def run_chart_script(directory: Path) -> dict[str, Any]:
    """report-data.js and report.js in node, with a Plotly that records what it is given."""
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed")
    script = """
const fs = require("fs"), vm = require("vm"), dir = process.argv[1], calls = [];
const ctx = {window: {Plotly: {newPlot: (el, traces, layout, config) =>
                                  calls.push({traces, layout, config})}},
             document: {getElementById: (id) => (id === "chart" ? {id} : null)}};
vm.createContext(ctx);
for (const f of ["report-data.js", "report.js"])
  vm.runInContext(fs.readFileSync(dir + "/" + f, "utf8"), ctx, {filename: f});
process.stdout.write(JSON.stringify(calls));
"""
    out = subprocess.run([node, "-e", script, str(directory)], capture_output=True, text=True,
                         timeout=60, check=True)
    calls = json.loads(out.stdout)
    assert len(calls) == 1
    return dict(calls[0])


def test_the_chart_draws_prices_trades_equity_and_drawdown(report: dict[str, Any]) -> None:
    plot = run_chart_script(report["dir"])
    traces, layout = plot["traces"], plot["layout"]
    assert {t["type"] for t in traces} == {"candlestick", "scatter"}  # SVG only, no WebGL
    names = [t["name"] for t in traces]
    assert names.count("long entry") == names.count("short entry") == 2  # one per symbol
    assert names[-2:] == ["equity", "drawdown"]
    for t in traces:
        axis = "yaxis" + t["yaxis"][1:]
        assert axis in layout, axis
    equity = traces[-2]
    assert len(equity["x"]) == len(report["curve"])  # 2148 bars: drawn whole
    long_entries = sum(len(t["x"]) for t in traces if t["name"] == "long entry")
    short_entries = sum(len(t["x"]) for t in traces if t["name"] == "short entry")
    assert long_entries + short_entries == len(report["trades"])


def test_a_million_bars_make_a_light_page_and_full_csvs(tmp_path: Path) -> None:
    count = 1_000_000
    ts = 1_700_000_000 * 10**9 + np.arange(count, dtype=np.int64) * 60 * 10**9
    rng = np.random.default_rng(3)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 1e-3, count)))
    prices = {"BTC": PriceSeries("BTC", ts, close, close * 1.001, close * 0.999, close)}
    fills = [Fill(1, f"1-{i}", "paper", f"t{i}", "BTC", Side.BUY if i % 2 == 0 else Side.SELL,
                  D(1), D(f"{close[i * 100]:.2f}"), D("0.01"), int(ts[i * 100]))
             for i in range(9_000)]
    trades = round_trips(fills)
    held = np.zeros(count)
    for i in range(0, 9_000, 2):
        held[i * 100:(i + 1) * 100] = 1
    curve = EquityCurve(ts, np.full(count, CASH), CASH + held * close, initial_cash=CASH)
    stats = compute_statistics(curve, trades)
    write_report(tmp_path, title="a million bars", statistics=stats, fills=fills,
                 trades=trades, curve=curve, prices=prices)
    with (tmp_path / "equity.csv").open() as f:
        assert sum(1 for _ in f) == count + 1
    assert (tmp_path / "report-data.js").stat().st_size < 1_500_000
    plot = run_chart_script(tmp_path)
    candles, equity, drawdown = plot["traces"][0], plot["traces"][-2], plot["traces"][-1]
    assert len(candles["x"]) <= MAX_CANDLES
    assert max(candles["high"]) == pytest.approx(close.max() * 1.001)  # no extreme lost
    assert min(candles["low"]) == pytest.approx(close.min() * 0.999)
    assert len(equity["x"]) <= MAX_POINTS
    assert min(equity["y"]) == curve.equity.min()
    assert max(equity["y"]) == curve.equity.max()
    assert min(drawdown["y"]) == pytest.approx(stats.max_drawdown_pct)
    assert "1 in 3 of its 4500 trades" in (tmp_path / "report.html").read_text()
