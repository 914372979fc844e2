"""The engine's facade: the one narrow door between the engine and its core services (the API).

Where it sits: the engine makes it and hands it to every core service it starts; the API reads
portfolio states and committed events and sends commands through it, and never reaches into a
supervisor, a runner, a ledger or a risk object. What it offers:

- **portfolio states**: a :class:`PortfolioState` snapshot per portfolio (status, trading state,
  equity, open orders, counters), built when asked;
- **commands**: :meth:`EngineFacade.command` posts a command to the portfolio's runner and waits
  for its answer (``engine.command_timeout``); activate, deactivate and restart go to the
  portfolio's supervisor;
- **committed events**: :meth:`EngineFacade.subscribe_events` routes order events to a mailbox
  once the journal has committed them;
- **health**: readiness with its reasons (the journal cannot write, the database is away);
- configuration and the plain database handle for the API's own reads and writes (users,
  portfolio rows, the audit trail), the plugin registry for validation, metrics observers.
"""

import asyncio
import logging
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import anyio
from sqlalchemy.ext.asyncio import AsyncEngine

from lts.bus import Mailbox, MailboxClosed, Subscription
from lts.domain.commands import Command, Reply, UpdateRiskLimits
from lts.domain.events import OrderEvent
from lts.domain.market import Bar
from lts.domain.values import to_decimal
from lts.engine.inbox import Envelope, InboxFull
from lts.engine.supervisor import PortfolioStatus
from lts.errors import AnswerTimeout, Conflict, JournalUnavailable, PortfolioBusy
from lts.plugins.registry import Registry
from lts.settings import Settings

if TYPE_CHECKING:
    from lts.engine.engine import Engine

log = logging.getLogger("lts.engine")

__all__ = ["PORTFOLIO_STATUSES", "EngineCounters", "EngineFacade", "PortfolioFigures",
           "PortfolioState", "Readiness"]

#: every status a portfolio's runner may be in (PortfolioFigures.status is one of them)
PORTFOLIO_STATUSES = tuple(s.value for s in PortfolioStatus)


@dataclass(frozen=True)
class PortfolioState:
    portfolio_id: int
    status: str
    last_error: str | None
    restarts: int
    holder: str | None  # while standing by: the engine holding its lease
    trading_state: str | None
    equity: Decimal | None
    realized_pnl: Decimal | None
    open_orders: int
    bars: int
    last_tick_ns: int | None
    mailbox_depth: int
    orders_created: int
    orders_denied: int
    fills: int  # committed
    anomalies: int  # fills the orders' states did not allow, adopted orders
    venues: str | None = None  # what is wrong with its venues' connections (stale, banned)
    stale_feeds: tuple[str, ...] = ()  # assets whose market data stopped (lts.engine.feed_watch)


@dataclass(frozen=True)
class PortfolioFigures:
    """What metrics read of a portfolio, cheap to take for thousands (floats, counters)."""

    portfolio_id: int
    status: str
    restarts: int
    running: bool
    equity: float
    realized_pnl: float
    open_orders: int
    mailbox_depth: int
    orders_created: int
    orders_denied: int
    fills: int
    anomalies: int
    trading_state: str | None = None
    symbols: tuple[str, ...] = ()
    stale_feeds: frozenset[str] = frozenset()
    banned_venues: tuple[str, ...] = ()  # brokers whose venue refuses it (rate limit)


@dataclass(frozen=True)
class Readiness:
    ready: bool
    engine_running: bool
    journal_available: bool
    reasons: tuple[str, ...]
    portfolios_running: int
    portfolios_in_error: tuple[int, ...]


@dataclass(frozen=True)
class EngineCounters:
    published: dict[str, int]
    dropped: dict[str, int]
    journal_commits: int
    journal_records: int
    journal_backlog: int
    journal_available: bool
    #: a core service's counters by its name: (counter name -> (help, value))
    services: dict[str, dict[str, tuple[str, int]]]


#: How a core service's counters are read: counter name -> value, at each metrics scrape.
CounterReader = Callable[[], Mapping[str, int]]


#: Audited actions that are logged as well (INFO when done, WARNING when refused).
_LOGGED_ACTIONS = frozenset({"portfolio.trading_state"})


def _log_action(row: dict[str, Any]) -> None:
    detail = row.get("detail") or {}
    portfolio = str(row.get("target", "")).removeprefix("portfolio:")
    who = f"{row.get('actor')} from {row.get('client_address')}"
    if row.get("outcome") == "success":
        log.info("kill switch: portfolio %s set to %s by %s", portfolio, detail.get("state"),
                 who)
    else:
        log.warning("kill switch: portfolio %s: %s by %s refused (%s)", portfolio,
                    detail.get("state") or "a change", who,
                    detail.get("error") or row.get("outcome"))


class EngineFacade:
    def __init__(self, engine: "Engine") -> None:
        self._engine = engine
        self._services: dict[str, tuple[CounterReader, Mapping[str, str]]] = {}

    # -- configuration and plain access ---------------------------------------------------------
    @property
    def settings(self) -> Settings:
        return self._engine.settings

    @property
    def registry(self) -> Registry:
        return self._engine.registry

    @property
    def db(self) -> AsyncEngine:
        return self._engine.db

    @property
    def running(self) -> bool:
        return self._engine.running

    async def listening(self, port: int) -> None:
        """The API says where it listens (named to a second engine that is refused)."""
        self._engine.api_port = port
        leases = self._engine.leases
        if leases is not None:
            await leases.set_api_port(port)

    def audit(self, row: dict[str, Any]) -> "asyncio.Future[None]":
        """Queue an audit row (the journal commits it with the next batch). A kill switch
        change is also a line of the engine's log: the operator reading it sees who halted
        what, without querying the audit trail."""
        if row.get("action") in _LOGGED_ACTIONS:
            _log_action(row)
        return self._engine.journal.insert_audit(row)

    async def flush(self, within: float = 2.0) -> None:
        """Until everything queued before is committed; :class:`~lts.errors.JournalUnavailable`
        if that takes longer than ``within`` seconds (the database is away: the journal holds
        what is queued and writes it when it is back)."""
        journal = self._engine.journal
        with anyio.move_on_after(within):
            await journal.flush()
            return
        raise JournalUnavailable("the journal cannot write now: "
                                 f"{journal.unavailable_reason or 'writes are slow'}")

    def observe(self, *, tick_to_order: Callable[[float], None] | None = None,
                journal_commit: Callable[[float, int], None] | None = None) -> None:
        observers = self._engine.observers
        if tick_to_order is not None:
            observers.tick_to_order = tick_to_order
        if journal_commit is not None:
            observers.journal_commit = journal_commit

    # -- portfolios -------------------------------------------------------------------------------
    def state(self, portfolio_id: int) -> PortfolioState | None:
        """A snapshot; None when this engine has never run the portfolio."""
        sup = self._engine.supervisors.get(portfolio_id)
        if sup is None:
            return None
        runner = sup.runner
        om = runner.orders if runner is not None else None
        live = runner is not None and om is not None
        return PortfolioState(
            portfolio_id=portfolio_id, status=sup.status.value, last_error=sup.last_error,
            restarts=sup.restarts, holder=sup.holder,
            trading_state=runner.trading_state.value if runner is not None else None,
            equity=runner.ledger.equity() if live and runner is not None else None,
            realized_pnl=runner.ledger.realized_pnl() if live and runner is not None else None,
            open_orders=len(runner.open_orders) if runner is not None else 0,
            bars=runner.bars if runner is not None else 0,
            last_tick_ns=runner.last_tick_ns if runner is not None else None,
            mailbox_depth=runner.mailbox_depth if runner is not None else 0,
            orders_created=om.orders_created if om is not None else 0,
            orders_denied=om.orders_denied if om is not None else 0,
            fills=om.fills_committed if om is not None else 0,
            anomalies=om.anomalies if om is not None else 0,
            venues=runner.venues.describe() if runner is not None else None,
            stale_feeds=tuple(sorted(runner.feed_watch.stale)) if runner is not None else ())

    def states(self) -> list[PortfolioState]:
        return [s for pid in sorted(self._engine.supervisors)
                if (s := self.state(pid)) is not None]

    def figures(self) -> list[PortfolioFigures]:
        """Every portfolio's figures for metrics (equity from the ledger's float mirror: no
        decimal arithmetic per portfolio per scrape)."""
        out = []
        for pid, sup in sorted(self._engine.supervisors.items()):
            runner = sup.runner
            om = runner.orders if runner is not None else None
            if runner is None or om is None:
                out.append(PortfolioFigures(pid, sup.status.value, sup.restarts, False, 0.0,
                                            0.0, 0, 0, 0, 0, 0, 0))
                continue
            ledger = runner.ledger
            out.append(PortfolioFigures(
                pid, sup.status.value, sup.restarts, True, ledger.cash_f + ledger.value_f,
                float(ledger.realized_pnl()), len(runner.open_orders), runner.mailbox_depth,
                om.orders_created, om.orders_denied, om.fills_committed, om.anomalies,
                runner.trading_state.value, tuple(a.symbol for a in runner.spec.assets),
                frozenset(runner.feed_watch.stale), tuple(sorted(runner.venues.banned))))
        return out

    def recent_bars(self, portfolio_id: int) -> dict[str, list[Bar]]:
        """The running portfolio's latest bars per asset (its live feeds', for charts)."""
        sup = self._engine.supervisors.get(portfolio_id)
        runner = sup.runner if sup is not None else None
        return runner.recent_bars() if runner is not None else {}

    def last_prices(self, portfolio_id: int) -> dict[str, Decimal]:
        """The running portfolio's last prices (marks), empty when it is not running."""
        runner = self._engine.runner_of(portfolio_id)
        if runner is None:
            return {}
        return {s: to_decimal(p) for s, p in runner.ledger.last.items()}

    def debug_info(self, portfolio_id: int) -> dict[str, Any] | None:
        runner = self._engine.runner_of(portfolio_id)
        return None if runner is None else dict(runner.debug_info())

    def activate(self, portfolio_id: int) -> None:
        self._engine.activate(portfolio_id)

    async def deactivate(self, portfolio_id: int) -> None:
        await self._engine.deactivate(portfolio_id)

    async def restart(self, portfolio_id: int) -> None:
        await self._engine.restart(portfolio_id)

    async def command(self, portfolio_id: int, command: Command,
                      within: float | None = None) -> Reply:
        """Post ``command`` to the portfolio's runner and wait for its answer.

        Raises :class:`~lts.errors.Conflict` when the portfolio is not running here,
        :class:`~lts.errors.PortfolioBusy` when its inbox is full and
        :class:`~lts.errors.AnswerTimeout` when it did not answer in time."""
        sup = self._engine.supervisors.get(portfolio_id)
        runner = sup.runner if sup is not None else None
        if sup is None or runner is None or sup.status is not PortfolioStatus.RUNNING:
            raise Conflict("the portfolio is not running: activate it first")
        reply: asyncio.Future[Reply] = asyncio.get_running_loop().create_future()
        try:
            runner.post(Envelope(command, reply))
        except InboxFull:
            raise PortfolioBusy("the portfolio has too many commands waiting") from None
        except MailboxClosed:
            raise Conflict("the portfolio is not running: activate it first") from None
        limit = within if within is not None else self.settings.engine.command_timeout
        try:
            return await asyncio.wait_for(reply, limit)
        except TimeoutError:
            raise AnswerTimeout("the portfolio did not answer in time") from None

    async def apply_settings(self, settings: Settings) -> None:
        """New settings at run time: the risk limits go to every running portfolio (each under
        its own overrides) as a command; the acknowledgement timeout acts at the next look."""
        engine = self._engine
        engine.settings = settings
        defaults = settings.risk.model_dump()
        for pid, sup in list(engine.supervisors.items()):
            runner = sup.runner
            if runner is None or sup.status is not PortfolioStatus.RUNNING:
                continue
            limits = {**defaults, **runner.spec.risk_params}
            await self.command(pid, UpdateRiskLimits(limits))

    # -- events -----------------------------------------------------------------------------------
    def subscribe(self, event_type: type, mailbox: Mailbox[Any],
                  key: Hashable | None = None) -> Subscription:
        """Committed events of ``event_type`` (OrderEvent, PortfolioStatusChanged,
        TradingStateChanged) of portfolio ``key``, or of every portfolio (None)."""
        return self._engine.bus.subscribe(event_type, mailbox, key)

    def subscribe_events(self, mailbox: Mailbox[Any], portfolio_id: Hashable) -> Subscription:
        """Order events of ``portfolio_id``, each once the journal has committed it."""
        return self._engine.bus.subscribe(OrderEvent, mailbox, portfolio_id)

    # -- health and metrics -----------------------------------------------------------------------
    def readiness(self) -> Readiness:
        engine = self._engine
        journal = engine.journal_or_none
        reasons: list[str] = []
        if not engine.running:
            reasons.append("engine not running")
        available = journal is not None and journal.available
        if journal is not None and not journal.available:
            reasons.append(f"journal cannot write: {journal.unavailable_reason or 'unknown'}")
        statuses = {pid: sup.status for pid, sup in engine.supervisors.items()}
        in_error = tuple(sorted(p for p, s in statuses.items() if s is PortfolioStatus.ERROR))
        return Readiness(
            ready=not reasons, engine_running=engine.running, journal_available=available,
            reasons=tuple(reasons),
            portfolios_running=sum(1 for s in statuses.values() if s is PortfolioStatus.RUNNING),
            portfolios_in_error=in_error)

    def add_counters(self, service: str, read: CounterReader, described: Mapping[str, str]
                     ) -> None:
        """A core service's counters (``described``: each counter's name and help), read by
        ``read`` whenever metrics are scraped (``lts_<service>_<name>_total``), until
        :meth:`remove_counters`."""
        self._services[service] = (read, dict(described))

    def remove_counters(self, service: str) -> None:
        self._services.pop(service, None)

    def counters(self) -> EngineCounters:
        engine = self._engine
        journal = engine.journal_or_none
        services = {}
        for service, (read, described) in self._services.items():
            values = read()
            services[service] = {name: (text, values.get(name, 0))
                                 for name, text in described.items()}
        return EngineCounters(
            published=dict(engine.bus.published), dropped=engine.bus.dropped(),
            journal_commits=journal.commits if journal else 0,
            journal_records=journal.records_written if journal else 0,
            journal_backlog=journal.backlog if journal else 0,
            journal_available=bool(journal and journal.available), services=services)
