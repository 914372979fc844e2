"""Tokens and sessions of the control API (architecture §10): what turns a login into access.

An access token is a short-lived JWT (HS256 only, ``exp``/``iat``/``sub``/``jti``/``sid``
required) naming a row of ``sessions``; :func:`session_user` reads that row (one primary-key
query joined to its user). The API asks through :class:`lts.api.sessions.SessionCache`, which
answers repeated requests from memory and forgets a session the moment it is revoked, so logout,
revocation, a disabled user or a changed role take effect at once. A refresh token is
``<session id>.<random>``; only the SHA-256 of the random part is stored. Refreshing revokes the
session and opens a new one in the same family (same absolute expiry); presenting a refresh
token whose session is already revoked revokes the whole family.
"""

import hashlib
import hmac
import re
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from lts.persistence.tables import sessions, users
from lts.settings import AuthSettings

ALGORITHM = "HS256"
_REQUIRED = ["exp", "iat", "sub", "jti", "sid"]
TOUCH_EVERY = timedelta(minutes=1)  # last_seen_at is written at most this often


class InvalidToken(Exception):
    """A token or session that grants nothing; the client gets a 401 with ``detail``, which
    says no more than that (a forged token and an unknown session read the same)."""

    detail = "not authenticated"


class TokenExpired(InvalidToken):
    """An access token past its ``exp``: the client refreshes it (or logs in again)."""

    detail = "the access token expired: refresh it or log in again"


class SessionExpired(InvalidToken):
    """A session past its absolute expiry or idle too long: the client logs in again."""

    detail = "the session expired: log in again"


class FamilyRevoked(InvalidToken):
    """A refresh token was presented again: its whole family of sessions is now revoked."""

    def __init__(self, family_id: str) -> None:
        super().__init__(family_id)
        self.family_id = family_id


@dataclass(frozen=True)
class SessionUser:
    """An open session and its user, as the per-request check reads them; ``expires_at`` and
    ``seen_at`` (the ``last_seen_at`` now stored) are epoch seconds."""

    session_id: str
    user_id: int
    username: str
    role: str
    family_id: str
    expires_at: float
    seen_at: float


@dataclass(frozen=True)
class IssuedTokens:
    user_id: int
    access_token: str
    refresh_token: str
    session_id: str
    expires_in: int


def _now() -> datetime:
    return datetime.now(UTC)


def _aware(ts: datetime) -> datetime:
    """SQLite hands back naive datetimes: they are UTC."""
    return ts if ts.tzinfo is not None else ts.replace(tzinfo=UTC)


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def issue_access_token(auth: AuthSettings, user_id: int, session_id: str,
                       now: datetime | None = None) -> str:
    now = now or _now()
    claims = {"sub": str(user_id), "sid": session_id, "jti": uuid.uuid4().hex,
              "iat": now, "exp": now + timedelta(minutes=auth.access_token_minutes)}
    return jwt.encode(claims, auth.jwt_secret.get_secret_value(), algorithm=ALGORITHM)


def decode_access_token(auth: AuthSettings, token: str) -> tuple[int, str, float]:
    """``(user id, session id, expiry in epoch seconds)`` of a valid token; raises InvalidToken
    otherwise."""
    try:
        claims: dict[str, Any] = jwt.decode(token, auth.jwt_secret.get_secret_value(),
                                            algorithms=[ALGORITHM],
                                            options={"require": _REQUIRED})
        return int(claims["sub"]), str(claims["sid"]), float(claims["exp"])
    except jwt.ExpiredSignatureError:
        raise TokenExpired from None
    except (jwt.InvalidTokenError, ValueError, TypeError):
        raise InvalidToken from None


async def open_session(db: AsyncEngine, auth: AuthSettings, user_id: int, client: str,
                       *, family_id: str | None = None,
                       expires_at: datetime | None = None) -> IssuedTokens:
    """A new session (a new family unless given) with its access and refresh tokens."""
    now = _now()
    sid = uuid.uuid4().hex
    secret = secrets.token_urlsafe(32)
    async with db.begin() as conn:
        await conn.execute(insert(sessions).values(
            id=sid, user_id=user_id, family_id=family_id or sid, refresh_hash=_digest(secret),
            created_at=now, last_seen_at=now, client_address=client[:64],
            expires_at=expires_at or now + timedelta(hours=auth.session_absolute_hours)))
    return IssuedTokens(user_id, issue_access_token(auth, user_id, sid, now),
                        f"{sid}.{secret}", sid, auth.access_token_minutes * 60)


async def session_user(db: AsyncEngine, auth: AuthSettings, user_id: int,
                       session_id: str) -> SessionUser:
    """The open session ``session_id`` of an active ``user_id``; raises InvalidToken when it is
    revoked, past its absolute expiry or idle too long. Marks it seen (at most once a minute)."""
    q = (select(sessions.c.user_id, sessions.c.family_id, sessions.c.revoked_at,
                sessions.c.expires_at, sessions.c.last_seen_at, sessions.c.created_at,
                users.c.username, users.c.role, users.c.is_active)
         .join(users, users.c.id == sessions.c.user_id).where(sessions.c.id == session_id))
    async with db.connect() as conn:
        row = (await conn.execute(q)).first()
    now = _now()
    if (row is None or row.user_id != user_id or row.revoked_at is not None
            or not row.is_active):
        raise InvalidToken
    if _aware(row.expires_at) <= now:
        raise SessionExpired
    seen = _aware(row.last_seen_at or row.created_at)
    if now - seen > timedelta(minutes=auth.session_idle_minutes):
        await revoke_session(db, session_id)
        raise SessionExpired
    if now - seen >= TOUCH_EVERY:
        async with db.begin() as conn:
            await conn.execute(update(sessions).where(sessions.c.id == session_id)
                               .values(last_seen_at=now))
        seen = now
    return SessionUser(session_id, user_id, row.username, row.role, row.family_id,
                       _aware(row.expires_at).timestamp(), seen.timestamp())


async def rotate(db: AsyncEngine, auth: AuthSettings, refresh_token: str,
                 client: str) -> IssuedTokens:
    """Spend ``refresh_token``: its session is revoked and a successor opened in the family.
    A token spent before (or of a revoked session) revokes the whole family: InvalidToken."""
    sid, _, secret = refresh_token.partition(".")
    if not sid or not secret:
        raise InvalidToken
    async with db.connect() as conn:
        row = (await conn.execute(
            select(sessions.c.user_id, sessions.c.family_id, sessions.c.refresh_hash,
                   sessions.c.expires_at, sessions.c.last_seen_at, sessions.c.created_at,
                   users.c.is_active)
            .join(users, users.c.id == sessions.c.user_id)
            .where(sessions.c.id == sid))).first()
    if row is None or not hmac.compare_digest(row.refresh_hash or "", _digest(secret)):
        raise InvalidToken
    now = _now()
    async with db.begin() as conn:
        spent = await conn.execute(
            update(sessions).where(sessions.c.id == sid, sessions.c.revoked_at.is_(None))
            .values(revoked_at=now))
    if spent.rowcount != 1:  # reuse: someone else holds the family's live token
        await revoke_family(db, row.family_id)
        raise FamilyRevoked(row.family_id)
    expires_at = _aware(row.expires_at)
    idle = now - _aware(row.last_seen_at or row.created_at)
    if not row.is_active:
        raise InvalidToken
    if expires_at <= now or idle > timedelta(minutes=auth.session_idle_minutes):
        raise SessionExpired
    return await open_session(db, auth, row.user_id, client, family_id=row.family_id,
                              expires_at=expires_at)


async def _revoke(db: AsyncEngine, *where: Any) -> int:
    async with db.begin() as conn:
        result = await conn.execute(update(sessions).where(*where, sessions.c.revoked_at.is_(None))
                                    .values(revoked_at=_now()))
    return int(result.rowcount)


async def revoke_session(db: AsyncEngine, session_id: str) -> int:
    return await _revoke(db, sessions.c.id == session_id)


async def revoke_family(db: AsyncEngine, family_id: str) -> int:
    return await _revoke(db, sessions.c.family_id == family_id)


async def revoke_user_sessions(db: AsyncEngine, user_id: int,
                               keep: str | None = None) -> int:
    """Revoke every open session of ``user_id`` (but ``keep``, when given)."""
    where = [sessions.c.user_id == user_id]
    if keep is not None:
        where.append(sessions.c.id != keep)
    return await _revoke(db, *where)


#: a credential that travels in a URL: a WebSocket ticket (``?ticket=T``) or a report link's
#: token (``/reports/<token>/NAME/FILE``)
_IN_URL = re.compile(r"(?<=[?&]ticket=)[^&\s\"]+|(?<=/reports/)[^/\s\"?]+(?=/)")


def redact_url_credentials(text: str) -> str:
    """``text`` (a URL, a path, a log line) with every credential a URL carries hidden."""
    if "ticket=" not in text and "/reports/" not in text:
        return text
    return _IN_URL.sub("<redacted>", text)
