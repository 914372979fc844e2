"""The commands a portfolio's runner carries out: orders, trading state, risk limits, assets, stop.

Where it sits: called by the runner's control lane (:mod:`lts.engine.control_lane`), in the
runner's task, for each command envelope its inbox delivers (the API's, through the engine's
facade). Order commands go to the order manager (:mod:`lts.engine.order_manager`); a trading
state acts at once and is answered once the journal has it (a restart keeps it), and only then
published; a stop begins the graceful stop (:mod:`lts.engine.graceful_stop`). Each command is
answered on its envelope's reply, at once or when its outcome is known.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, cast

from lts.domain.commands import (
    Accepted,
    CancelOrder,
    Denied,
    ModifyOrder,
    Reason,
    Reply,
    SetTradingState,
    Stop,
    SubmitOrder,
    TradingState,
    UpdateAsset,
    UpdateRiskLimits,
)
from lts.domain.instruments import Instrument
from lts.engine.graceful_stop import begin_stop
from lts.engine.inbox import Envelope
from lts.errors import InvalidParams
from lts.plugins.broker import SimulatedVenue
from lts.settings import RiskLimits

if TYPE_CHECKING:
    from lts.engine.runner import PortfolioRunner

__all__ = ["carry_out", "set_trading_state"]

log = logging.getLogger("lts.runner")


def carry_out(runner: PortfolioRunner, envelope: Envelope) -> None:
    """Carry out the envelope's command; answer its reply now if the answer is known."""
    reply = envelope.reply
    answer = _answer(runner, envelope.command, reply)
    if answer is not None and reply is not None and not reply.done():
        reply.set_result(answer)


def _answer(runner: PortfolioRunner, command: Any, reply: Any) -> Reply | None:
    """Carry out a command; its answer, or None when the answer comes later."""
    om = runner.orders
    assert om is not None
    if isinstance(command, SubmitOrder):
        if runner.stopping:
            return Denied(Reason.STOPPING, "the portfolio is stopping")
        om.request(command.request, reply)
        return None
    if isinstance(command, CancelOrder):
        return om.cancel(command.client_order_id)
    if isinstance(command, ModifyOrder):
        return om.modify(command)
    if isinstance(command, SetTradingState):
        return set_trading_state(runner, command.state, reply)
    if isinstance(command, UpdateRiskLimits):
        return _update_risk(runner, command)
    if isinstance(command, UpdateAsset):
        return _update_asset(runner, command)
    if isinstance(command, Stop):
        begin_stop(runner, command.reason, reply)
        return None
    return Denied(Reason.INVALID_PARAMS, f"unknown command {type(command).__name__}")


def set_trading_state(runner: PortfolioRunner, state: TradingState,
                      reply: Any) -> Reply | None:
    """The portfolio's trading state, now; recorded in the journal and, once committed,
    published (``reply`` answered then)."""
    from lts.domain.events import TradingStateChanged  # here: the one place it is made

    om = runner.orders
    assert om is not None
    previous = runner.risk.state
    runner.risk.state = state
    if state is not TradingState.HALTED:
        runner.venues.banned.clear()  # an operator resumed: the ban is over for them
    if state is TradingState.HALTED:
        om.cancel_unsent("trading halted before it was sent")
    log.info("portfolio %s: trading state %s", runner.portfolio_id, state.value)
    ctx = runner.ctx
    if ctx.journal is None:  # a backtest's: nothing stored
        return None if reply is None else Accepted()
    written = ctx.journal.update_portfolio(
        {"id": runner.portfolio_id, "trading_state": state.value}, fence=runner.fence)
    changed = TradingStateChanged(runner.portfolio_id, state.value, previous.value,
                                  ctx.clock.now_ns())
    bus = ctx.bus

    def answered(future: Any) -> None:  # once durable: a restart keeps the state
        durable = not future.cancelled() and future.exception() is None
        if durable:  # committed: it may go out (notifications)
            bus.publish_nowait(changed, changed.portfolio_id)
        if reply is not None and not reply.done():
            reply.set_result(Accepted() if durable
                             else Denied(Reason.JOURNAL_UNAVAILABLE, "not recorded"))

    written.add_done_callback(answered)
    return None


def _update_risk(runner: PortfolioRunner, command: UpdateRiskLimits) -> Reply:
    try:
        limits = RiskLimits.model_validate(command.limits)
    except ValueError as exc:
        return Denied(Reason.INVALID_PARAMS, str(exc).splitlines()[0][:200])
    runner.risk.limits = limits
    return Accepted()


def _update_asset(runner: PortfolioRunner, command: UpdateAsset) -> Reply:
    sym = command.symbol
    instruments = runner.instruments
    if sym not in instruments:
        return Denied(Reason.UNKNOWN_SYMBOL, f"{sym} is not an asset of this portfolio")
    if command.strategy_params is not None:
        try:
            runner.strategies[sym].set_params(**command.strategy_params)  # type: ignore[attr-defined]
        except InvalidParams as exc:
            return Denied(Reason.INVALID_PARAMS, str(exc))
    old = instruments[sym]
    instruments[sym] = Instrument(
        sym, command.tick_size or old.tick_size, command.lot_size or old.lot_size,
        old.min_quantity if command.min_quantity is None else command.min_quantity,
        old.min_notional if command.min_notional is None else command.min_notional)
    broker = runner.brokers[sym]
    if broker.capabilities.simulated:
        cast(SimulatedVenue, broker).use_instruments(
            {s: instruments[s] for s in runner.symbols_of(broker)})
    return Accepted()
