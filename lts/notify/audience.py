"""Who may be told what: the active webhooks, the portfolios' owners and the chats' users.

Where it sits: between the notifier's stream of notifications and its outlets (webhooks, the
Telegram bot). The rule is the API's: an admin sees every portfolio, anyone else only the ones
they own (``lts.api.routes.portfolios.owned``). A webhook gets a notification when it is
active, asked for its type, is not limited to another portfolio, and its owner may see the
portfolio. The tables are re-read when older than ``refresh_seconds`` and something is to be
routed (nothing is read while nothing happens), and at once (at most once a second) for a
portfolio not seen yet.
"""

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine

from lts.notify.events import Notification
from lts.notify.webhook_wire import WebhookRoute
from lts.persistence import webhooks_repo as repo

__all__ = ["Audience", "Member"]


@dataclass(frozen=True)
class Member:
    """An LTS user as the notifier knows them."""

    user_id: int
    username: str
    role: str


class Audience:
    def __init__(self, db: AsyncEngine, refresh_seconds: float, *,
                 usernames: Iterable[str] = (),
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._db = db
        self._refresh = refresh_seconds
        self._clock = clock
        self._usernames = tuple(usernames)
        self._read_at: float | None = None
        self.routes: list[WebhookRoute] = []
        self._by_type: dict[str, list[WebhookRoute]] = {}
        self.portfolios: dict[int, tuple[int | None, str]] = {}
        self.members: dict[str, Member] = {}

    @property
    def stale(self) -> bool:
        return self._read_at is None or self._clock() - self._read_at >= self._refresh

    async def refresh(self, *, unknown: Iterable[int] = ()) -> bool:
        """Re-read the tables when due (or when a portfolio in ``unknown`` is not known and the
        last read is over a second old). True when they were read. A failed read raises, and
        is tried again only after ``refresh_seconds`` (what was read before stays)."""
        missing = any(p not in self.portfolios for p in unknown)
        if not self.stale and not (missing and self._clock() - (self._read_at or 0) >= 1.0):
            return False
        try:
            routes = [WebhookRoute.of(r) for r in await repo.active_routes(self._db)]
            portfolios = await repo.portfolio_directory(self._db)
            named = await repo.users_named(self._db, self._usernames)
        except Exception:
            self._read_at = self._clock()  # not again before refresh_seconds
            raise
        self.routes, self.portfolios = routes, portfolios
        self.members = {n: Member(uid, n, role) for n, (uid, role) in named.items()}
        by_type: dict[str, list[WebhookRoute]] = {}
        for route in self.routes:
            for kind in route.event_types:
                by_type.setdefault(kind, []).append(route)
        self._by_type = by_type
        self._read_at = self._clock()
        return True

    def name(self, portfolio_id: int) -> str:
        known = self.portfolios.get(portfolio_id)
        return known[1] if known is not None else f"portfolio {portfolio_id}"

    def may_see(self, user_id: int, role: str, portfolio_id: int) -> bool:
        if role == "admin":
            return True
        known = self.portfolios.get(portfolio_id)
        return known is not None and known[0] == user_id

    def webhooks_for(self, n: Notification) -> list[WebhookRoute]:
        pid = n.portfolio_id
        return [r for r in self._by_type.get(n.type, ())
                if (r.portfolio_id is None or r.portfolio_id == pid)
                and self.may_see(r.user_id, r.role, pid)]
