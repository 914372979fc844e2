"""The Telegram bot's commands: what a chat may ask, answered as plain text.

Where it sits: :mod:`lts.notify.telegram` hands each command from an allowed chat here with
the LTS user the chat is mapped to (:class:`~lts.notify.audience.Member`). That user's role and
portfolios decide, as on the API: an admin sees every portfolio, anyone else their own; a
viewer reads and may not ``/halt`` or ``/resume``. ``/halt`` and ``/resume`` set the kill
switch like ``PUT /api/v1/portfolios/{id}/trading-state``: a command to the running portfolio
answered once durable, or the stored state of a stopped one; ``/halt`` without a name halts
every portfolio the user may change, ``/resume`` needs a name unless there is only one. Every
command leaves an audit row (actor: the user; client address: ``telegram:<chat id>``) with its
outcome: ``telegram.<command>``, except each portfolio's kill-switch change, which is the API's
``portfolio.trading_state`` (``detail.via``: the command), so the engine logs it alike.
"""

from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal
from typing import Any

from lts.domain.commands import Denied, SetTradingState, TradingState
from lts.engine.facade import EngineFacade
from lts.errors import LtsError
from lts.notify.audience import Member
from lts.persistence import chat_reads, portfolio_store

__all__ = ["COMMANDS", "ChatCommands"]

HELP = ("/status - portfolios, status and trading state\n"
        "/positions - open positions\n"
        "/profit - profit and loss\n"
        "/balance - equity and starting cash\n"
        "/orders - open orders\n"
        "/halt [portfolio] - kill switch HALTED (all yours without a name)\n"
        "/resume <portfolio> - trading ACTIVE again")
COMMANDS = ("status", "positions", "profit", "balance", "orders", "halt", "resume", "help",
            "start")
_CHANGES = {"halt": TradingState.HALTED, "resume": TradingState.ACTIVE}
_MAX_ORDERS = 30
_KILL_SWITCH = "portfolio.trading_state"  # the API's action for the same change
Audit = Callable[[str, str, str, dict[str, Any]], None]  # action, target, outcome, detail


def _fmt(value: Decimal | None) -> str:
    return "-" if value is None else f"{value.normalize():f}"


class ChatCommands:
    def __init__(self, engine: EngineFacade) -> None:
        self.engine = engine

    async def answer(self, member: Member, command: str, args: Sequence[str],
                     audit: Audit) -> str:
        """The reply to ``/command args`` from ``member``; audits it."""
        if command in ("help", "start"):
            audit(f"telegram.{command}", "", "success", {})
            return HELP
        if command not in COMMANDS:
            audit("telegram.unknown", "", "failure", {"command": command[:32]})
            return f"unknown command /{command[:32]}\n{HELP}"
        try:
            if command in _CHANGES:
                return await self._change(member, _CHANGES[command], args, command, audit)
            read = {"status": self._status, "positions": self._positions,
                    "profit": self._profit, "balance": self._balance, "orders": self._orders}
            text = await read[command](await self._visible(member))
        except LtsError as exc:
            audit(f"telegram.{command}", "", "failure", {"error": type(exc).__name__})
            return f"/{command} failed: {exc}"
        audit(f"telegram.{command}", "", "success", {})
        return text

    async def _visible(self, member: Member) -> list[dict[str, Any]]:
        owner = None if member.role == "admin" else member.user_id
        return await chat_reads.portfolios_of(self.engine.db, owner)

    async def _status(self, rows: list[dict[str, Any]]) -> str:
        if not rows:
            return "no portfolios"
        lines = []
        for row in rows:
            state = self.engine.state(row["id"])
            status = state.status if state is not None else row["status"]
            trading = (state.trading_state if state is not None else None) or \
                row["trading_state"]
            line = f"{row['name']} (#{row['id']}): {status}, {trading}"
            if state is not None and state.equity is not None:
                line += f", equity {_fmt(state.equity)}, open orders {state.open_orders}"
            error = state.last_error if state is not None else row["last_error"]
            if error:
                line += f"\n  last error: {error}"
            lines.append(line)
        return "\n".join(lines)

    async def _positions(self, rows: list[dict[str, Any]]) -> str:
        names = {r["id"]: r["name"] for r in rows}
        held = await chat_reads.positions_of(self.engine.db, sorted(names))
        if not held:
            return "no open positions"
        return "\n".join(f"{names[p['portfolio_id']]}: {p['symbol']} {_fmt(p['quantity'])} @ "
                         f"{_fmt(p['avg_price'])}, realized {_fmt(p['realized_pnl'])}"
                         for p in held)

    async def _profit(self, rows: list[dict[str, Any]]) -> str:
        if not rows:
            return "no portfolios"
        lines = []
        for row in rows:
            state = self.engine.state(row["id"])
            if state is None or state.equity is None:
                lines.append(f"{row['name']}: not running")
                continue
            start = Decimal(row["initial_cash"])
            pnl = state.equity - start
            pct = f" ({pnl / start * 100:.2f}%)" if start else ""
            lines.append(f"{row['name']}: P&L {_fmt(pnl)}{pct}, realized "
                         f"{_fmt(state.realized_pnl)}")
        return "\n".join(lines)

    async def _balance(self, rows: list[dict[str, Any]]) -> str:
        if not rows:
            return "no portfolios"
        lines = []
        for row in rows:
            state = self.engine.state(row["id"])
            equity = state.equity if state is not None else None
            lines.append(f"{row['name']}: equity {_fmt(equity)}, starting cash "
                         f"{_fmt(Decimal(row['initial_cash']))}")
        return "\n".join(lines)

    async def _orders(self, rows: list[dict[str, Any]]) -> str:
        names = {r["id"]: r["name"] for r in rows}
        found = await chat_reads.open_orders(self.engine.db, sorted(names), _MAX_ORDERS + 1)
        if not found:
            return "no open orders"
        lines = [f"{names[o['portfolio_id']]}: {o['side']} {_fmt(o['quantity'])} {o['symbol']} "
                 f"{o['order_type']}"
                 + (f" @ {_fmt(o['limit_price'])}" if o["limit_price"] is not None else "")
                 + f" ({o['status']}, filled {_fmt(o['filled_quantity'])})"
                 for o in found[:_MAX_ORDERS]]
        if len(found) > _MAX_ORDERS:
            lines.append(f"(first {_MAX_ORDERS} shown)")
        return "\n".join(lines)

    async def _change(self, member: Member, state: TradingState, args: Sequence[str],
                      command: str, audit: Audit) -> str:
        action = f"telegram.{command}"
        if member.role not in ("admin", "trader"):
            audit(action, " ".join(args)[:128], "denied", {"role": member.role})
            return f"/{command} is not allowed for role {member.role}"
        rows = await self._visible(member)
        if not args and state is not TradingState.HALTED and len(rows) > 1:
            audit(action, "", "failure", {"reason": "no portfolio named"})
            return f"name the portfolio: /{command} <name or id> (only /halt acts on all)"
        if args:
            wanted = " ".join(args)
            rows = [r for r in rows if r["name"] == wanted or str(r["id"]) == wanted]
            if not rows:
                audit(action, wanted[:128], "failure", {"reason": "not found"})
                return f"no portfolio {wanted!r}"
        lines = []
        for row in rows:
            target = f"portfolio:{row['id']}"
            detail = {"state": state.value, "via": f"/{command}"}
            try:
                await self._set_state(row, state)
            except LtsError as exc:
                audit(_KILL_SWITCH, target, "failure", {**detail, "error": type(exc).__name__})
                lines.append(f"{row['name']}: not changed ({exc})")
                continue
            audit(_KILL_SWITCH, target, "success", detail)
            lines.append(f"{row['name']}: {state.value}")
        return "\n".join(lines) or "no portfolios"

    async def _set_state(self, row: Mapping[str, Any], state: TradingState) -> None:
        live = self.engine.state(row["id"])
        if live is not None and live.status == "running":
            reply = await self.engine.command(row["id"], SetTradingState(state))
            if isinstance(reply, Denied):
                raise LtsError(reply.detail or "the trading state was not recorded")
        else:
            await portfolio_store.update_portfolio(self.engine.db, row["id"],
                                                   {"trading_state": state.value})
