"""Writes the sample bars the README and docs/strategies.md use (seeded: the same files each
time). Synthetic, so they carry no one's licence: daily bars of three made-up stocks that share
a market factor (AAA and BBB closely: a pair to trade), and one hour bars of a made-up coin.

    python examples/data/make_sample_data.py
"""

import csv
import math
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

HERE = Path(__file__).resolve().parent


def _write(path: Path, rows: list[tuple[str, float, float, float, float, float]],
           decimals: int) -> None:
    with path.open("w", newline="") as f:
        out = csv.writer(f)
        out.writerow(["time", "open", "high", "low", "close", "volume"])
        for t, o, h, lo, c, v in rows:
            out.writerow([t, f"{o:.{decimals}f}", f"{h:.{decimals}f}", f"{lo:.{decimals}f}",
                          f"{c:.{decimals}f}", f"{v:.0f}"])


def _bar(rng: random.Random, open_: float, close: float) -> tuple[float, float]:
    spread = abs(close - open_) + open_ * 0.004
    return (max(open_, close) + rng.random() * spread * 0.5,
            min(open_, close) - rng.random() * spread * 0.5)


def stocks(days: int = 1500) -> None:
    """Log prices: a market random walk, plus for AAA and BBB half a mean-reverting gap each
    way (their log spread reverts, half-life about a week), plus small moves of their own."""
    rng = random.Random(11)
    market, gap = math.log(50.0), 0.0
    own = {"AAA": 0.0, "BBB": math.log(0.96), "CCC": math.log(2.4)}
    beta = {"AAA": 1.0, "BBB": 1.0, "CCC": 1.3}
    close = {"AAA": 50.0, "BBB": 48.0, "CCC": 120.0}
    rows: dict[str, list[tuple[str, float, float, float, float, float]]] = {s: [] for s in own}
    day = datetime(2019, 1, 2, tzinfo=UTC)
    for _ in range(days):
        while day.weekday() >= 5:
            day += timedelta(days=1)
        market += rng.gauss(0.0003, 0.011)
        gap = 0.9 * gap + rng.gauss(0, 0.008)
        for symbol in own:
            own[symbol] += rng.gauss(0.0002 if symbol == "CCC" else 0.0, 0.003)
            level = beta[symbol] * market + own[symbol] + {"AAA": 0.5 * gap,
                                                           "BBB": -0.5 * gap}.get(symbol, 0.0)
            open_ = close[symbol] * math.exp(rng.gauss(0, 0.002))
            close[symbol] = math.exp(level) * (1.0 if symbol != "CCC" else 50.0 ** -0.3)
            high, low = _bar(rng, open_, close[symbol])
            rows[symbol].append((day.date().isoformat(), open_, high, low, close[symbol],
                                 rng.randint(800_000, 3_000_000)))
        day += timedelta(days=1)
    for symbol, bars in rows.items():
        _write(HERE / f"{symbol}.csv", bars, 2)


def coin(hours: int = 8760) -> None:
    rng = random.Random(5)
    price = 0.0000123
    start = datetime(2024, 1, 1, tzinfo=UTC)
    rows = []
    for i in range(hours):
        open_ = price
        close = open_ * math.exp(rng.gauss(0, 0.012))
        high, low = _bar(rng, open_, close)
        rows.append(((start + timedelta(hours=i)).isoformat().replace("+00:00", "Z"), open_,
                     high, low, close, rng.randint(10**9, 10**10)))
        price = close
    _write(HERE / "COIN-1h.csv", rows, 10)


if __name__ == "__main__":
    stocks()
    coin()
