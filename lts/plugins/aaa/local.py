"""The default aaa plugin ``local``: users live in the engine's own database (``users``), their
passwords are bcrypt hashes made and checked in a worker thread, and failed logins are throttled
per user name and client address, under a slower global cap (:mod:`.throttle`). The API's
auth and users routes call it; sessions and tokens are :mod:`lts.api.security`'s business.

A login for an unknown user name checks the password against a dummy hash of the same cost, so
it takes as long as one for a known name.
"""

import secrets
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Any

import anyio
from sqlalchemy import delete, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from lts.persistence.tables import users
from lts.plugins.aaa.passwords import hash_password, verify_password
from lts.plugins.aaa.throttle import LoginGuard
from lts.plugins.base import PluginBase, PluginParams
from lts.settings import AuthSettings, Settings, check_jwt_secret

ROLES = ("admin", "trader", "viewer")


@dataclass(frozen=True)
class UserRecord:
    """A user as the API may show it: never the password hash."""

    id: int
    username: str
    email: str | None
    role: str
    is_active: bool
    created_at: datetime


@dataclass(frozen=True)
class LoginResult:
    """``user`` on success; otherwise ``reason`` (``throttled``, ``unknown_user``,
    ``bad_password``, ``inactive``) and, when throttled, ``retry_after`` seconds."""

    user: UserRecord | None
    reason: str = ""
    retry_after: int = 0


_PUBLIC = (users.c.id, users.c.username, users.c.email, users.c.role, users.c.is_active,
           users.c.created_at)


def _record(row: Any) -> UserRecord:
    return UserRecord(id=row.id, username=row.username, email=row.email, role=row.role,
                      is_active=bool(row.is_active), created_at=row.created_at)


def _guard(auth: AuthSettings) -> LoginGuard:
    return LoginGuard(auth.login_max_failures, auth.login_window_seconds,
                      auth.login_global_max_failures)


class LocalAuth(PluginBase):
    Params = PluginParams
    plugin_name = "local"
    plugin_debug_vars = ["rounds"]

    def __init__(self, **params: object) -> None:
        super().__init__(**params)
        self.settings = AuthSettings()
        self.rounds = self.settings.bcrypt_rounds
        self.throttle = _guard(self.settings)
        self._dummy_hash: str | None = None

    def configure(self, settings: Settings) -> None:
        """Take the ``auth`` settings; refuses a placeholder JWT secret in ``prod``."""
        check_jwt_secret(settings)
        self.settings = settings.auth
        self.rounds = settings.auth.bcrypt_rounds
        self.throttle = _guard(settings.auth)

    # -- passwords (the PasswordHasher protocol, plus awaitable forms run in a thread) ---------

    def hash(self, password: str) -> str:
        return hash_password(password, self.rounds)

    def verify(self, password: str, hashed: str) -> bool:
        return verify_password(password, hashed)

    async def hash_async(self, password: str) -> str:
        return await anyio.to_thread.run_sync(self.hash, password)

    async def verify_async(self, password: str, hashed: str) -> bool:
        return await anyio.to_thread.run_sync(partial(self.verify, password, hashed))

    async def _dummy(self) -> str:
        if self._dummy_hash is None:
            self._dummy_hash = await self.hash_async(secrets.token_urlsafe(24))
        return self._dummy_hash

    # -- login ---------------------------------------------------------------------------------

    async def authenticate(self, db: AsyncEngine, username: str, password: str,
                           client: str) -> LoginResult:
        wait = self.throttle.retry_after(username, client)
        if wait:
            return LoginResult(None, "throttled", wait)
        async with db.connect() as conn:
            row = (await conn.execute(select(*_PUBLIC, users.c.password_hash)
                                      .where(users.c.username == username))).first()
        hashed = row.password_hash if row is not None else await self._dummy()
        ok = await self.verify_async(password, hashed)
        if row is None or not ok or not row.is_active:
            self.throttle.failed(username, client)
            reason = "unknown_user" if row is None else "bad_password" if not ok else "inactive"
            return LoginResult(None, reason)
        self.throttle.succeeded(username, client)
        return LoginResult(_record(row))

    # -- the user store ------------------------------------------------------------------------

    async def create_user(self, db: AsyncEngine, username: str, email: str | None,
                          password: str, role: str = "viewer") -> UserRecord | None:
        """The new user, or None when the name is taken."""
        hashed = await self.hash_async(password)
        try:
            async with db.begin() as conn:
                row = (await conn.execute(insert(users).values(
                    username=username, email=email, password_hash=hashed, role=role)
                    .returning(*_PUBLIC))).one()
        except IntegrityError:
            return None
        return _record(row)

    async def get_user(self, db: AsyncEngine, user_id: int) -> UserRecord | None:
        async with db.connect() as conn:
            row = (await conn.execute(select(*_PUBLIC).where(users.c.id == user_id))).first()
        return None if row is None else _record(row)

    async def find_user(self, db: AsyncEngine, username: str) -> UserRecord | None:
        async with db.connect() as conn:
            row = (await conn.execute(select(*_PUBLIC).where(users.c.username == username))
                   ).first()
        return None if row is None else _record(row)

    async def list_users(self, db: AsyncEngine, offset: int = 0,
                         limit: int = 100) -> list[UserRecord]:
        async with db.connect() as conn:
            rows = (await conn.execute(select(*_PUBLIC).order_by(users.c.id)
                                       .offset(offset).limit(limit))).all()
        return [_record(r) for r in rows]

    async def update_user(self, db: AsyncEngine, user_id: int, *, role: str | None = None,
                          is_active: bool | None = None) -> UserRecord | None:
        values: dict[str, object] = {}
        if role is not None:
            values["role"] = role
        if is_active is not None:
            values["is_active"] = is_active
        if values:
            async with db.begin() as conn:
                await conn.execute(update(users).where(users.c.id == user_id).values(**values))
        return await self.get_user(db, user_id)

    async def delete_user(self, db: AsyncEngine, user_id: int) -> bool:
        async with db.begin() as conn:
            result = await conn.execute(delete(users).where(users.c.id == user_id))
        return bool(result.rowcount)

    async def change_password(self, db: AsyncEngine, user_id: int, old: str, new: str) -> bool:
        """False when ``old`` is not the current password."""
        async with db.connect() as conn:
            hashed = (await conn.execute(select(users.c.password_hash)
                                         .where(users.c.id == user_id))).scalar_one_or_none()
        if hashed is None or not await self.verify_async(old, hashed):
            return False
        await self._store_password(db, user_id, new)
        return True

    async def reset_password(self, db: AsyncEngine, username: str,
                             new: str) -> UserRecord | None:
        """Set ``username``'s password without the old one (the operator's ``users
        reset-password``, for a lost password); None when there is no such user. The caller
        checks the strength rule and ends the user's sessions."""
        user = await self.find_user(db, username)
        if user is not None:
            await self._store_password(db, user.id, new)
        return user

    async def _store_password(self, db: AsyncEngine, user_id: int, new: str) -> None:
        new_hash = await self.hash_async(new)
        async with db.begin() as conn:
            await conn.execute(update(users).where(users.c.id == user_id)
                               .values(password_hash=new_hash))
