"""Helpers for the auth, users and security tests: a real engine and API with cheap bcrypt
(cost 4) and no demo portfolio, JSON calls that check no response leaks a hash, and shortcuts to
register, log in and read the audit trail."""

import json
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

from sqlalchemy import select

from lts.persistence.tables import audit_logs
from lts.settings import merge

from .conftest import Api, Reply
from .conftest import running_api as _running_api

ADMIN = ("admin", "Adm1n-pass-word")
PASSWORD = "Tr4der-pass-word"
LEAKS = (b"password_hash", b"refresh_hash", b"$2b$")


def running_api(tmp_path: Path, **sections: Any) -> AbstractAsyncContextManager[Api]:
    """The engine and its API without the demo portfolio."""
    return _running_api(tmp_path, **merge({"demo": {"enabled": False}}, sections))


async def call(api: Api, method: str, path: str, body: Any = None,
               token: str | None = None) -> Reply:
    """One JSON request; fails the test if the answer carries a hash."""
    headers = {"content-type": "application/json"} if body is not None else {}
    if token is not None:
        headers["authorization"] = f"Bearer {token}"
    reply = await api.request(method, path, None if body is None else json.dumps(body).encode(),
                              headers)
    for leak in LEAKS:
        assert leak not in reply.body, f"{method} {path} leaked {leak!r}"
    return reply


async def login(api: Api, username: str, password: str = PASSWORD) -> dict[str, Any]:
    reply = await call(api, "POST", "/api/v1/auth/login",
                       {"username": username, "password": password})
    assert reply.status == 200, reply.body
    tokens: dict[str, Any] = reply.json()
    return tokens


async def register(api: Api, username: str, password: str = PASSWORD) -> dict[str, Any]:
    reply = await call(api, "POST", "/api/v1/auth/register",
                       {"username": username, "email": f"{username}@example.com",
                        "password": password})
    assert reply.status == 201, reply.body
    user: dict[str, Any] = reply.json()
    return user


async def user_with_role(api: Api, username: str, role: str) -> tuple[int, str]:
    """Register ``username``, give it ``role`` (as the admin) and log in: (id, access token)."""
    user = await register(api, username)
    if role != "viewer":
        admin = (await login(api, *ADMIN))["access_token"]
        reply = await call(api, "PATCH", f"/api/v1/users/{user['id']}", {"role": role}, admin)
        assert reply.status == 200, reply.body
    return int(user["id"]), str((await login(api, username))["access_token"])


async def audit_rows(api: Api, action: str) -> list[dict[str, Any]]:
    await api.engine.journal.flush()
    async with api.engine.db.connect() as conn:
        rows = (await conn.execute(select(audit_logs).where(audit_logs.c.action == action)
                                   .order_by(audit_logs.c.id))).mappings().all()
    return [dict(r) for r in rows]
