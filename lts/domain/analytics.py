"""Portfolio analytics from fills: equity, returns, drawdown, the performance statistics, trades
and per-asset P&L.

Pure: the API loads the fills and the last prices and runs this in a worker thread. The equity
curve starts at the initial cash (at the first fill's time) and has one point per fill (cash
plus every position marked at the last fill price of its symbol), and a final point marked at
the given prices (at ``as_of_ns``, else at the last fill's time). Its statistics are those of a
backtest (:func:`lts.domain.performance.compute_statistics`: annualised from the curve's times,
by calendar day for fills less than two days apart) and its trades are the round trips of
:func:`lts.domain.trades.round_trips` (a reversal through zero closes one and opens the next;
the reversal fill's fee is shared between the two by quantity). A trade wins when its P&L
after fees is positive. Money stays exact: equity and the maximum drawdown in currency (the
same definition, the initial cash counting as a peak) are computed in ``Decimal``.
"""

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal

from lts.domain.orders import Fill, Side
from lts.domain.performance import EquityCurve, Statistics, compute_statistics
from lts.domain.position import Position
from lts.domain.trades import Trade, TradeBook
from lts.domain.values import ZERO

__all__ = ["Analytics", "AssetResult", "analyze"]


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
    """``total_return`` and ``max_drawdown_pct`` are fractions (0.1 is 10 %), the drawdowns
    positive; ``statistics`` holds the full block (percentages, drawdowns negative)."""

    initial_cash: Decimal
    equity: Decimal
    total_return: float
    max_drawdown: Decimal
    max_drawdown_pct: float
    sharpe: float | None
    trades: int
    win_rate: float | None
    statistics: Statistics
    round_trips: list[Trade] = field(default_factory=list)
    assets: list[AssetResult] = field(default_factory=list)

    @property
    def fees(self) -> Decimal:
        """Every fee paid (commissions in the asset itself at their fill's price)."""
        return sum((a.fees for a in self.assets), ZERO)

    @property
    def best_asset(self) -> str | None:
        return max(self.assets, key=lambda a: a.pnl).symbol if self.assets else None

    @property
    def worst_asset(self) -> str | None:
        return min(self.assets, key=lambda a: a.pnl).symbol if self.assets else None


def analyze(initial_cash: Decimal, fills: Iterable[Fill], marks: Mapping[str, Decimal],
            as_of_ns: int | None = None) -> Analytics:
    """The analytics of a portfolio that started with ``initial_cash`` and has ``fills`` (in
    time order); open positions are marked at ``marks`` (else at their last fill price)."""
    cash = initial_cash
    positions: dict[str, Position] = {}
    last: dict[str, Decimal] = {}
    book = TradeBook()
    held_value = ZERO  # every position at the last fill price of its symbol
    times: list[int] = []
    cash_curve: list[Decimal] = []
    curve: list[Decimal] = []
    for fill in fills:
        if not times:
            times.append(fill.ts_event)
            cash_curve.append(cash)
            curve.append(cash)
        pos = positions.setdefault(fill.symbol, Position(symbol=fill.symbol))
        held_value -= pos.quantity * last.get(fill.symbol, ZERO)
        quantity = fill.position_quantity
        pos.apply_fill(fill.side, quantity, fill.price, fill.total_fee)
        cash -= (quantity if fill.side is Side.BUY else -quantity) * fill.price + fill.total_fee
        last[fill.symbol] = fill.price
        held_value += pos.quantity * fill.price
        book.apply(fill)
        times.append(fill.ts_event)
        cash_curve.append(cash)
        curve.append(cash + held_value)
    final_marks = {s: marks.get(s, last[s]) for s in positions}
    equity = cash + sum((p.quantity * final_marks[s] for s, p in positions.items()), ZERO)
    times.append(max(as_of_ns or 0, times[-1]) if times else as_of_ns or 0)
    cash_curve.append(cash)
    curve.append(equity)

    trades = book.trades(final_marks)
    stats = compute_statistics(
        EquityCurve(times, [float(c) for c in cash_curve], [float(e) for e in curve],
                    initial_cash=initial_cash), trades)
    assets = [AssetResult(s, p.quantity, p.realized_pnl, p.unrealized_pnl(final_marks[s]),
                          p.fees) for s, p in sorted(positions.items())]
    closed = [t for t in trades if not t.open]
    return Analytics(
        initial_cash=initial_cash, equity=equity,
        total_return=float(equity / initial_cash - 1),
        max_drawdown=_deepest_drawdown(initial_cash, curve),
        max_drawdown_pct=-stats.max_drawdown_pct / 100 + 0.0, sharpe=stats.sharpe,
        trades=len(closed),
        win_rate=sum(t.pnl > 0 for t in closed) / len(closed) if closed else None,
        statistics=stats, round_trips=trades, assets=assets)


def _deepest_drawdown(initial_cash: Decimal, curve: list[Decimal]) -> Decimal:
    """The largest fall from a peak (the initial cash included), exact."""
    peak, worst = initial_cash, ZERO
    for value in curve:
        peak = max(peak, value)
        worst = max(worst, peak - value)
    return worst
