"""The per-request session check of the control API, answered from memory.

Where it sits: every authenticated HTTP request and WebSocket goes through
:meth:`SessionCache.user_for_token` (from ``lts.api.deps.SignedIn``). Checking a bearer token
the plain way costs a JWT verification (about 30-80 µs here) and a read of the ``sessions`` row,
which through the async driver is two thread hops that wait for the GIL behind the trading loop
(milliseconds under load). So the cache keeps:

- verified tokens: token text -> (user id, session id, expiry). The signature and the claims are
  checked once per token; the expiry is checked again on every use;
- open sessions, with their user's name and role. A session is read again from the database
  when its entry is older than ``api.cache_seconds`` (so a revocation made by another
  process is seen within that time; 0 reads the row on every request), when the idle mark is due
  (``last_seen_at`` is written at most once a minute, which also enforces the idle timeout), or
  when the session passes its absolute expiry. Concurrent misses of one session share one read
  (a hundred WebSocket watchers of one login do not read it a hundred times).

Every revocation made through this process goes through the cache too (:meth:`revoke_session`,
:meth:`revoke_family`, :meth:`revoke_user`, :meth:`rotate`), as do role changes, disables and
deletes (:meth:`forget_user`): the entry is dropped before the call returns, so logout and
revocation take effect at once. Both maps are bounded (oldest entries are forgotten first).
"""

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import anyio
from sqlalchemy.ext.asyncio import AsyncEngine

from lts.api import security
from lts.api.security import InvalidToken, IssuedTokens, SessionUser, TokenExpired
from lts.settings import AuthSettings

_T = TypeVar("_T")

TICKET_SECONDS = 30


@dataclass(frozen=True)
class _Token:
    user_id: int
    session_id: str
    expires_at: float  # epoch seconds


@dataclass(frozen=True)
class _Session:
    user: SessionUser
    fresh_until: float  # monotonic: read the row again after this
    valid_until: float  # epoch: the earlier of the idle mark being due and the absolute expiry


class SessionCache:
    def __init__(self, db: AsyncEngine, settings: AuthSettings, ttl: float, *,
                 max_entries: int = 10_000,
                 clock: Callable[[], float] = time.monotonic,
                 wall_clock: Callable[[], float] = time.time) -> None:
        self.db = db
        self.settings = settings
        self.ttl = ttl
        self.max_entries = max_entries
        self._clock = clock
        self._wall = wall_clock
        self._tokens: dict[str, _Token] = {}
        self._sessions: dict[str, _Session] = {}
        self._tickets: dict[str, _Token] = {}
        self._reading: dict[str, anyio.Event] = {}  # sessions being read from the database

    # -- checks --------------------------------------------------------------------------------

    def decode(self, token: str) -> tuple[int, str]:
        """``(user id, session id)`` of a valid, unexpired access token; TokenExpired past its
        expiry, InvalidToken for anything else."""
        known = self._tokens.get(token)
        if known is None:
            user_id, sid, expires_at = security.decode_access_token(self.settings, token)
            known = _Token(user_id, sid, expires_at)
            _put(self._tokens, token, known, self.max_entries)
        if known.expires_at <= self._wall():
            self._tokens.pop(token, None)
            raise TokenExpired
        return known.user_id, known.session_id

    async def user(self, user_id: int, session_id: str) -> SessionUser:
        """The open session ``session_id`` of ``user_id``; InvalidToken when it has ended."""
        entry = self._sessions.get(session_id)
        if entry is None and session_id in self._reading:
            await self._reading[session_id].wait()  # one read for a crowd (WebSocket watchers)
            entry = self._sessions.get(session_id)
        if (entry is not None and entry.user.user_id == user_id
                and self._clock() < entry.fresh_until and self._wall() < entry.valid_until):
            return entry.user
        self._sessions.pop(session_id, None)
        done = self._reading.setdefault(session_id, anyio.Event())
        try:
            found = await security.session_user(self.db, self.settings, user_id, session_id)
            idle_mark = found.seen_at + security.TOUCH_EVERY.total_seconds()
            _put(self._sessions, session_id,
                 _Session(found, self._clock() + self.ttl,
                          min(idle_mark, found.expires_at)), self.max_entries)
        finally:
            if self._reading.get(session_id) is done:
                del self._reading[session_id]
            done.set()
        return found

    async def user_for_token(self, token: str) -> SessionUser:
        user_id, sid = self.decode(token)
        return await self.user(user_id, sid)

    # -- WebSocket tickets --------------------------------------------------------------------

    def issue_ticket(self, user_id: int, session_id: str) -> tuple[str, int]:
        """A single-use ticket standing for this session for ``TICKET_SECONDS``: (ticket,
        seconds). Kept in this process only: redeem it on the engine that issued it."""
        ticket = secrets.token_urlsafe(24)
        _put(self._tickets, ticket,
             _Token(user_id, session_id, self._wall() + TICKET_SECONDS), self.max_entries)
        return ticket, TICKET_SECONDS

    async def redeem_ticket(self, ticket: str) -> SessionUser:
        """The session behind ``ticket``, which is spent; InvalidToken when it is unknown,
        spent, expired, or its session has ended."""
        known = self._tickets.pop(ticket, None)
        if known is None or known.expires_at <= self._wall():
            raise InvalidToken
        return await self.user(known.user_id, known.session_id)

    # -- changes (each forgets what it ends before it returns) ---------------------------------

    async def open(self, user_id: int, client: str) -> IssuedTokens:
        return await security.open_session(self.db, self.settings, user_id, client)

    async def rotate(self, refresh_token: str, client: str) -> IssuedTokens:
        self._sessions.pop(refresh_token.partition(".")[0], None)
        try:
            return await security.rotate(self.db, self.settings, refresh_token, client)
        except security.FamilyRevoked as reused:
            family = reused.family_id
            self._forget(lambda s: s.family_id == family)
            raise

    async def revoke_session(self, session_id: str) -> int:
        self._sessions.pop(session_id, None)
        return await security.revoke_session(self.db, session_id)

    async def revoke_family(self, family_id: str) -> int:
        self._forget(lambda s: s.family_id == family_id)
        return await security.revoke_family(self.db, family_id)

    async def revoke_user(self, user_id: int, keep: str | None = None) -> int:
        """Revoke every open session of ``user_id`` but ``keep``."""
        self._forget(lambda s: s.user_id == user_id and s.session_id != keep)
        return await security.revoke_user_sessions(self.db, user_id, keep=keep)

    def forget_user(self, user_id: int) -> None:
        """The user's role or state changed: read their sessions again on the next request."""
        self._forget(lambda s: s.user_id == user_id)

    def _forget(self, match: Callable[[SessionUser], bool]) -> None:
        for sid in [sid for sid, e in self._sessions.items() if match(e.user)]:
            del self._sessions[sid]


def _put(table: dict[str, _T], key: str, value: _T, limit: int) -> None:
    table.pop(key, None)
    table[key] = value
    while len(table) > limit:
        del table[next(iter(table))]
