"""Portfolio analytics from fills: equity, returns, drawdown, Sharpe, trades and per-asset P&L.

Pure: the API loads the fills and the last prices and runs this in a worker thread. The equity
curve has one point per fill (cash plus every position marked at the last fill price of its
symbol), and a final point marked at the given prices. A trade is a round trip: a position that
returns to flat; it wins when the P&L it realized (after fees) is positive. Sharpe is the mean
over the standard deviation of the curve's returns, per point and not annualized (fills come
at irregular times).
"""

import itertools
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal

from lts.domain.orders import Fill, Side
from lts.domain.position import Position
from lts.domain.values import ZERO


@dataclass
class AssetResult:
    symbol: str
    quantity: Decimal
    realized_pnl: Decimal
    unrealized_pnl: Decimal
    fees: Decimal

    @property
    def pnl(self) -> Decimal:
        return self.realized_pnl + self.unrealized_pnl - self.fees


@dataclass
class Analytics:
    initial_cash: Decimal
    equity: Decimal
    total_return: float
    max_drawdown: Decimal
    max_drawdown_pct: float
    sharpe: float | None
    trades: int
    win_rate: float | None
    assets: list[AssetResult] = field(default_factory=list)

    @property
    def best_asset(self) -> str | None:
        return max(self.assets, key=lambda a: a.pnl).symbol if self.assets else None

    @property
    def worst_asset(self) -> str | None:
        return min(self.assets, key=lambda a: a.pnl).symbol if self.assets else None


def analyze(initial_cash: Decimal, fills: Iterable[Fill],
            marks: Mapping[str, Decimal]) -> Analytics:
    cash = initial_cash
    positions: dict[str, Position] = {}
    last: dict[str, Decimal] = {}
    curve = [initial_cash]
    trade_start: dict[str, tuple[Decimal, Decimal]] = {}  # symbol -> (realized, fees) at open
    trades = wins = 0
    for fill in fills:
        pos = positions.setdefault(fill.symbol, Position(symbol=fill.symbol))
        before = pos.quantity
        if before == 0:
            trade_start[fill.symbol] = (pos.realized_pnl, pos.fees)
        quantity = fill.position_quantity
        pos.apply_fill(fill.side, quantity, fill.price, fill.total_fee)
        signed = quantity if fill.side is Side.BUY else -quantity
        cash -= signed * fill.price + fill.total_fee
        last[fill.symbol] = fill.price
        if before and (not pos.quantity or (pos.quantity > 0) != (before > 0)):
            # a trade closed (or reversed through zero: the fill's fee goes to the one closed)
            realized0, fees0 = trade_start.pop(fill.symbol, (ZERO, ZERO))
            trades += 1
            wins += (pos.realized_pnl - realized0) - (pos.fees - fees0) > 0
            if pos.quantity:  # the reversal opens the next trade
                trade_start[fill.symbol] = (pos.realized_pnl, pos.fees)
        curve.append(cash + sum((p.quantity * last[s] for s, p in positions.items()), ZERO))
    final_marks = {s: marks.get(s, last[s]) for s in positions}
    equity = cash + sum((p.quantity * final_marks[s] for s, p in positions.items()), ZERO)
    curve.append(equity)
    drawdown, drawdown_pct = _max_drawdown(curve)
    assets = [AssetResult(s, p.quantity, p.realized_pnl, p.unrealized_pnl(final_marks[s]),
                          p.fees) for s, p in sorted(positions.items())]
    return Analytics(
        initial_cash=initial_cash, equity=equity,
        total_return=float(equity / initial_cash - 1) if initial_cash else 0.0,
        max_drawdown=drawdown, max_drawdown_pct=drawdown_pct, sharpe=_sharpe(curve),
        trades=trades, win_rate=wins / trades if trades else None, assets=assets)


def _max_drawdown(curve: list[Decimal]) -> tuple[Decimal, float]:
    peak, worst, worst_pct = curve[0], ZERO, 0.0
    for value in curve:
        peak = max(peak, value)
        if peak - value > worst:
            worst = peak - value
            worst_pct = float(worst / peak) if peak > 0 else 0.0
    return worst, worst_pct


def _sharpe(curve: list[Decimal]) -> float | None:
    returns = [float(b / a - 1) for a, b in itertools.pairwise(curve) if a > 0]
    if len(returns) < 2:
        return None
    mean = sum(returns) / len(returns)
    var = sum((r - mean) ** 2 for r in returns) / (len(returns) - 1)
    return mean / math.sqrt(var) if var > 0 else None
