"""The session and portfolio caches of the API (issue 3: an authenticated read at the cost of a
trivial one): what this process changes acts at once, what another process changes is seen
within ``api.cache_seconds``, and 0 reads the database on every request."""

import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import update

from lts.api import security
from lts.api.sessions import SessionCache
from lts.persistence.tables import portfolios, sessions

from ._auth import ADMIN, call, login, register, running_api
from .conftest import Api

pytestmark = pytest.mark.anyio


async def _revoke_behind_the_api(api: Api, refresh_token: str) -> None:
    """What another engine process sharing the database would do."""
    sid = refresh_token.split(".")[0]
    async with api.engine.db.begin() as conn:
        await conn.execute(update(sessions).where(sessions.c.id == sid)
                           .values(revoked_at=datetime.now(UTC)))


@pytest.fixture
async def cached(tmp_path: Path) -> AsyncIterator[Api]:
    async with running_api(tmp_path, api={"cache_seconds": 60}) as api:
        yield api


async def test_a_session_is_answered_from_memory_but_revoked_here_at_once(cached: Api) -> None:
    await register(cached, "nina")
    tokens = await login(cached, "nina")
    access = tokens["access_token"]
    assert (await call(cached, "GET", "/api/v1/auth/me", token=access)).status == 200
    await _revoke_behind_the_api(cached, tokens["refresh_token"])
    # within cache_seconds a change made elsewhere is not seen yet: the row was not read again
    assert (await call(cached, "GET", "/api/v1/auth/me", token=access)).status == 200
    assert (await call(cached, "POST", "/api/v1/auth/logout", token=access)).status == 204
    assert (await call(cached, "GET", "/api/v1/auth/me", token=access)).status == 401


async def test_a_role_change_here_acts_at_once_on_a_cached_session(cached: Api) -> None:
    user = await register(cached, "omar")
    access = (await login(cached, "omar"))["access_token"]
    body = {"name": "omar-1", "initial_cash": "1000"}
    assert (await call(cached, "POST", "/api/v1/portfolios", body, access)).status == 403
    admin = (await login(cached, *ADMIN))["access_token"]
    assert (await call(cached, "PATCH", f"/api/v1/users/{user['id']}", {"role": "trader"},
                       admin)).status == 200
    assert (await call(cached, "POST", "/api/v1/portfolios", body, access)).status == 201


async def test_portfolio_changes_here_show_at_once(cached: Api) -> None:
    admin = (await login(cached, *ADMIN))["access_token"]
    made = (await call(cached, "POST", "/api/v1/portfolios",
                       {"name": "p", "initial_cash": "1000"}, admin)).json()
    path = f"/api/v1/portfolios/{made['id']}"
    assert (await call(cached, "GET", path, token=admin)).json()["name"] == "p"
    assert (await call(cached, "PATCH", path, {"name": "q"}, admin)).status == 200
    assert (await call(cached, "GET", path, token=admin)).json()["name"] == "q"
    # a change behind the API's back waits for cache_seconds
    async with cached.engine.db.begin() as conn:
        await conn.execute(update(portfolios).where(portfolios.c.id == made["id"])
                           .values(name="elsewhere"))
    assert (await call(cached, "GET", path, token=admin)).json()["name"] == "q"
    assert (await call(cached, "DELETE", path, token=admin)).status == 204
    assert (await call(cached, "GET", path, token=admin)).status == 404


async def test_with_cache_seconds_zero_every_request_reads_the_session(tmp_path: Path) -> None:
    async with running_api(tmp_path, api={"cache_seconds": 0}) as api:
        await register(api, "pia")
        tokens = await login(api, "pia")
        access = tokens["access_token"]
        assert (await call(api, "GET", "/api/v1/auth/me", token=access)).status == 200
        await _revoke_behind_the_api(api, tokens["refresh_token"])
        assert (await call(api, "GET", "/api/v1/auth/me", token=access)).status == 401


async def test_an_expired_access_token_says_it_expired(cached: Api) -> None:
    """A token past its ``exp`` is refused as expired (the client refreshes it), whether the
    cache had verified it before or sees it first; a forged one still reads as invalid."""
    await register(cached, "petra")
    tokens = await login(cached, "petra")
    auth = cached.engine.settings.auth
    later = [time.time()]
    cache = SessionCache(cached.engine.db, auth, 60, wall_clock=lambda: later[0])
    user_id, sid = cache.decode(tokens["access_token"])
    later[0] += auth.access_token_minutes * 60 + 1
    with pytest.raises(security.TokenExpired) as known:
        cache.decode(tokens["access_token"])
    assert known.value.detail == "the access token expired: refresh it or log in again"
    stale = security.issue_access_token(auth, user_id, sid,
                                        datetime.now(UTC) - timedelta(hours=1))
    with pytest.raises(security.TokenExpired):
        cache.decode(stale)
    with pytest.raises(security.InvalidToken) as forged:
        cache.decode(stale[:-2] + "xx")
    assert type(forged.value) is security.InvalidToken
    assert forged.value.detail == "not authenticated"
