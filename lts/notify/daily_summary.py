"""The daily summary: once a day, one notification per portfolio with how its day went.

Where it sits: the notifier (:mod:`lts.notify.service`) sends it at ``notify.daily_summary_at``
(UTC) to the webhooks and chats that asked for ``daily.summary``, each only for the portfolios
its user may see. It covers the 24 hours that end then: the fills made in them (from the
journal's ``fills``), and the portfolio as it stands (status, trading state, equity and open
orders from the running engine; P&L is equity against the starting cash). Its id is
``<portfolio id>-daily.summary-<end date>``: the same day is never told twice under two ids.
"""

from datetime import UTC, datetime, time, timedelta
from decimal import Decimal

from lts.engine.facade import EngineFacade
from lts.notify.events import Notification
from lts.persistence import chat_reads

__all__ = ["next_summary", "summaries"]


def next_summary(now: datetime, at: time) -> datetime:
    """The first moment after ``now`` (aware) whose UTC time of day is ``at``."""
    now = now.astimezone(UTC)
    moment = datetime.combine(now.date(), at, tzinfo=UTC)
    return moment if moment > now else moment + timedelta(days=1)


def _ns(moment: datetime) -> int:
    return int(moment.timestamp()) * 1_000_000_000 + moment.microsecond * 1000


def _text(value: Decimal | None) -> str | None:
    return None if value is None else f"{value.normalize():f}"


async def summaries(engine: EngineFacade, end: datetime) -> list[Notification]:
    """Every portfolio's summary of the 24 hours before ``end``."""
    start = end - timedelta(days=1)
    rows = await chat_reads.portfolios_of(engine.db, None)
    fills = await chat_reads.fills_between(engine.db, _ns(start), _ns(end))
    out = []
    for row in rows:
        pid = row["id"]
        state = engine.state(pid)
        equity = state.equity if state is not None else None
        initial = Decimal(row["initial_cash"])
        data = {
            "period_start": start.isoformat().replace("+00:00", "Z"),
            "period_end": end.isoformat().replace("+00:00", "Z"),
            "status": state.status if state is not None else row["status"],
            "trading_state": (state.trading_state if state is not None else None)
            or row["trading_state"],
            "equity": _text(equity), "initial_cash": _text(initial),
            "pnl": _text(None if equity is None else equity - initial),
            "realized_pnl": _text(state.realized_pnl if state is not None else None),
            "fills": fills.get(pid, 0),
            "open_orders": state.open_orders if state is not None else 0,
        }
        out.append(Notification.make(f"{pid}-daily.summary-{end.date().isoformat()}",
                                     "daily.summary", pid, row["name"], _ns(end), data))
    return out
