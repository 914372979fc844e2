"""The statistics as text: backtesting.py's console block, for ``replay`` to print.

Flow: :func:`lts.domain.performance.compute_statistics` --Statistics--> :func:`to_console`
--> the terminal (and :func:`rows`, the same labels and values, --> the HTML report's table).
One ``Name  value`` line per statistic, names left-aligned, values right-aligned; times are
ISO 8601 with their zone (UTC), durations ``<days> days hh:mm:ss``, numbers to five decimals
(trailing zeros dropped) and ``--`` where a statistic is undefined.
"""

from datetime import datetime, timedelta

from lts.domain.performance import Statistics

__all__ = ["format_value", "rows", "to_console"]

#: (label, Statistics field) in backtesting.py's order; ``$`` is replaced by the currency.
_LABELS = (
    ("Start", "start"),
    ("End", "end"),
    ("Duration", "duration"),
    ("Exposure Time [%]", "exposure_time_pct"),
    ("Equity Final [$]", "equity_final"),
    ("Equity Peak [$]", "equity_peak"),
    ("Commissions [$]", "commissions"),
    ("Return [%]", "return_pct"),
    ("Buy & Hold Return [%]", "buy_hold_return_pct"),
    ("Return (Ann.) [%]", "return_ann_pct"),
    ("Volatility (Ann.) [%]", "volatility_ann_pct"),
    ("CAGR [%]", "cagr_pct"),
    ("Sharpe Ratio", "sharpe"),
    ("Sortino Ratio", "sortino"),
    ("Calmar Ratio", "calmar"),
    ("Max. Drawdown [%]", "max_drawdown_pct"),
    ("Max. Drawdown [$]", "max_drawdown"),
    ("Avg. Drawdown [%]", "avg_drawdown_pct"),
    ("Max. Drawdown Duration", "max_drawdown_duration"),
    ("Avg. Drawdown Duration", "avg_drawdown_duration"),
    ("# Trades", "trades"),
    ("# Open Trades", "open_trades"),
    ("Win Rate [%]", "win_rate_pct"),
    ("Best Trade [%]", "best_trade_pct"),
    ("Worst Trade [%]", "worst_trade_pct"),
    ("Avg. Trade [%]", "avg_trade_pct"),
    ("Max. Trade Duration", "max_trade_duration"),
    ("Avg. Trade Duration", "avg_trade_duration"),
    ("Profit Factor", "profit_factor"),
    ("Expectancy [%]", "expectancy_pct"),
    ("SQN", "sqn"),
)


def format_value(value: object) -> str:
    """One statistic as the console shows it."""
    if value is None:
        return "--"
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, timedelta):
        hours, rest = divmod(value.seconds, 3600)
        minutes, seconds = divmod(rest, 60)
        fraction = f".{value.microseconds:06d}".rstrip("0") if value.microseconds else ""
        return f"{value.days} days {hours:02d}:{minutes:02d}:{seconds:02d}{fraction}"
    if isinstance(value, float):
        text = f"{value:.5f}".rstrip("0").rstrip(".")
        return "0" if text == "-0" else text
    return str(value)


def rows(stats: Statistics, currency: str = "$") -> list[tuple[str, str]]:
    """(label, formatted value) of every statistic, in the console's order."""
    return [(label.replace("[$]", f"[{currency}]"), format_value(getattr(stats, name)))
            for label, name in _LABELS]


def to_console(stats: Statistics, currency: str = "$") -> str:
    """backtesting.py's statistics block: aligned ``Name    value`` lines."""
    lines = rows(stats, currency)
    name_width = max(len(label) for label, _ in lines)
    value_width = max(len(value) for _, value in lines)
    return "\n".join(f"{label:<{name_width}}  {value:>{value_width}}" for label, value in lines)
