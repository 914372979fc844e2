"""Auth routes against a real engine and a real uvicorn server: register, login, me, refresh
rotation and reuse detection, logout, password rules and change, throttling, audit."""

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import jwt
import pytest
from sqlalchemy import update

from lts.persistence.tables import sessions

from ._auth import ADMIN, PASSWORD, audit_rows, call, login, register, running_api
from .conftest import Api

pytestmark = pytest.mark.anyio


@pytest.fixture
async def api(tmp_path: Path, migrated_url: str) -> AsyncIterator[Api]:
    async with running_api(tmp_path, database={"url": migrated_url}) as api:
        yield api


async def test_register_login_me(api: Api) -> None:
    user = await register(api, "alice")
    assert user["role"] == "viewer"
    assert user["is_active"] is True
    assert set(user) == {"id", "username", "email", "role", "is_active", "created_at"}
    tokens = await login(api, "alice")
    assert tokens["token_type"] == "bearer"
    assert tokens["expires_in"] == 15 * 60
    me = await call(api, "GET", "/api/v1/auth/me", token=tokens["access_token"])
    assert (me.status, me.json()["username"], me.json()["role"]) == (200, "alice", "viewer")
    [row] = await audit_rows(api, "auth.register")
    assert (row["actor"], row["outcome"], row["client_address"]) == (
        "anonymous", "success", "127.0.0.1")


async def test_the_first_admin_logs_in_with_the_configured_password(api: Api) -> None:
    tokens = await login(api, *ADMIN)
    me = await call(api, "GET", "/api/v1/auth/me", token=tokens["access_token"])
    assert me.json()["role"] == "admin"


async def test_register_refuses_a_role_by_mass_assignment(api: Api) -> None:
    reply = await call(api, "POST", "/api/v1/auth/register",
                       {"username": "mallory", "password": PASSWORD, "role": "admin"})
    assert reply.status == 422
    assert [e["field"] for e in reply.json()["detail"]] == ["role"]
    assert (await call(api, "POST", "/api/v1/auth/login",
                       {"username": "mallory", "password": PASSWORD})).status == 401


@pytest.mark.parametrize(("password", "why"), [
    ("Aa1" + "x" * 70, "72"),
    ("Ää1-" * 19, "72"),  # 76 characters, but more bytes than that
    ("Sh0rt-pw", "10"),
    ("alllowercaseletters", "three"),
])
async def test_password_rules_answer_422_naming_the_field(api: Api, password: str,
                                                           why: str) -> None:
    reply = await call(api, "POST", "/api/v1/auth/register",
                       {"username": "bob", "password": password})
    assert reply.status == 422
    [error] = reply.json()["detail"]
    assert error["field"] == "password"
    assert why in error["message"]


async def test_a_taken_user_name_is_a_conflict(api: Api) -> None:
    await register(api, "carol")
    reply = await call(api, "POST", "/api/v1/auth/register",
                       {"username": "carol", "password": PASSWORD})
    assert (reply.status, reply.json()["code"]) == (409, "conflict")


async def test_refresh_rotates_and_a_reused_token_revokes_the_family(api: Api) -> None:
    await register(api, "dave")
    first = await login(api, "dave")
    second = (await call(api, "POST", "/api/v1/auth/refresh",
                         {"refresh_token": first["refresh_token"]})).json()
    assert second["refresh_token"] != first["refresh_token"]
    assert (await call(api, "GET", "/api/v1/auth/me", token=second["access_token"])).status == 200
    # the old refresh token is spent: replaying it is taken as theft and ends the family
    reuse = await call(api, "POST", "/api/v1/auth/refresh",
                       {"refresh_token": first["refresh_token"]})
    assert (reuse.status, reuse.json()["code"]) == (401, "unauthenticated")
    assert (await call(api, "GET", "/api/v1/auth/me", token=second["access_token"])).status == 401
    assert (await call(api, "POST", "/api/v1/auth/refresh",
                       {"refresh_token": second["refresh_token"]})).status == 401
    outcomes = [r["outcome"] for r in await audit_rows(api, "auth.refresh")]
    assert outcomes == ["success", "failure", "failure"]


async def test_login_takes_the_oauth2_password_form(api: Api) -> None:
    """What the interactive docs send; its extra fields (grant_type, scope) are ignored, a
    missing field is a 422 naming it, another content type a 415."""
    await register(api, "olga")
    form = "application/x-www-form-urlencoded"
    reply = await api.request("POST", "/api/v1/auth/login",
                              f"grant_type=password&username=olga&password={PASSWORD}&scope="
                              .encode(), {"content-type": form})
    assert reply.status == 200, reply.body
    access = reply.json()["access_token"]
    assert (await call(api, "GET", "/api/v1/auth/me", token=access)).json()["username"] == "olga"
    missing = await api.request("POST", "/api/v1/auth/login", b"username=olga",
                                {"content-type": form})
    assert missing.status == 422
    assert [e["field"] for e in missing.json()["detail"]] == ["password"]
    other = await api.request("POST", "/api/v1/auth/login", b"olga", {"content-type": "text/plain"})
    assert other.status == 415
    unknown = await call(api, "POST", "/api/v1/auth/login",
                         {"username": "olga", "password": PASSWORD, "role": "admin"})
    assert unknown.status == 422


async def test_a_reused_refresh_token_ends_a_successor_already_in_use(api: Api) -> None:
    """The successor session answered requests (so it is held in memory) before the old token
    came back: it still ends at once."""
    await register(api, "hank")
    first = await login(api, "hank")
    second = (await call(api, "POST", "/api/v1/auth/refresh",
                         {"refresh_token": first["refresh_token"]})).json()
    for _ in range(3):
        assert (await call(api, "GET", "/api/v1/auth/me",
                           token=second["access_token"])).status == 200
    assert (await call(api, "POST", "/api/v1/auth/refresh",
                       {"refresh_token": first["refresh_token"]})).status == 401
    assert (await call(api, "GET", "/api/v1/auth/me", token=second["access_token"])).status == 401


async def test_a_forged_refresh_token_is_refused(api: Api) -> None:
    await register(api, "erin")
    tokens = await login(api, "erin")
    sid = tokens["refresh_token"].split(".")[0]
    for forged in (f"{sid}.not-the-secret", "garbage", "."):
        reply = await call(api, "POST", "/api/v1/auth/refresh", {"refresh_token": forged})
        assert reply.status == 401
    # a forged token proves nothing, so the real one still works
    assert (await call(api, "POST", "/api/v1/auth/refresh",
                       {"refresh_token": tokens["refresh_token"]})).status == 200


async def test_logout_ends_the_session_at_once(api: Api) -> None:
    await register(api, "frank")
    tokens = await login(api, "frank")
    reply = await call(api, "POST", "/api/v1/auth/logout", token=tokens["access_token"])
    assert reply.status == 204
    assert (await call(api, "GET", "/api/v1/auth/me", token=tokens["access_token"])).status == 401
    assert (await call(api, "POST", "/api/v1/auth/refresh",
                       {"refresh_token": tokens["refresh_token"]})).status == 401
    [row] = await audit_rows(api, "auth.logout")
    assert (row["actor"], row["outcome"]) == ("frank", "success")


@pytest.mark.parametrize("column", ["last_seen_at", "expires_at"])
async def test_idle_and_expired_sessions_get_401(api: Api, column: str) -> None:
    await register(api, "gina")
    for_access, for_refresh = await login(api, "gina"), await login(api, "gina")
    long_ago = datetime.now(UTC) - timedelta(hours=2)
    async with api.engine.db.begin() as conn:
        for tokens in (for_access, for_refresh):
            sid = tokens["refresh_token"].split(".")[0]
            await conn.execute(update(sessions).where(sessions.c.id == sid)
                               .values({column: long_ago}))
    assert (await call(api, "GET", "/api/v1/auth/me",
                       token=for_access["access_token"])).status == 401
    reply = await call(api, "POST", "/api/v1/auth/refresh",
                       {"refresh_token": for_refresh["refresh_token"]})
    assert (reply.status, reply.json()["detail"]) == (401, "the session expired: log in again")


async def test_a_wrong_password_is_401_and_audited(api: Api) -> None:
    await register(api, "hank")
    for username in ("hank", "nobody"):
        reply = await call(api, "POST", "/api/v1/auth/login",
                           {"username": username, "password": "Wr0ng-password"})
        assert (reply.status, reply.json()["detail"]) == (401, "invalid user name or password")
    await login(api, "hank")
    rows = await audit_rows(api, "auth.login")
    assert [(r["target"], r["outcome"], r["detail"].get("reason")) for r in rows] == [
        ("user:hank", "failure", "bad_password"), ("user:nobody", "failure", "unknown_user"),
        (rows[2]["target"], "success", None)]
    assert rows[2]["actor"] == "hank"


async def test_repeated_failures_are_throttled_with_retry_after(api: Api) -> None:
    await register(api, "ivan")
    for _ in range(5):
        reply = await call(api, "POST", "/api/v1/auth/login",
                           {"username": "ivan", "password": "Wr0ng-password"})
        assert reply.status == 401
    # even the right password waits now, from this address
    reply = await call(api, "POST", "/api/v1/auth/login",
                       {"username": "ivan", "password": PASSWORD})
    assert (reply.status, reply.json()["code"]) == (429, "too_many_requests")
    assert 0 < int(reply.headers["retry-after"]) <= 300
    rows = await audit_rows(api, "auth.login")
    assert len(rows) == 6
    assert all(r["outcome"] == "failure" for r in rows)
    assert rows[-1]["detail"]["reason"] == "throttled"


async def _login_from(api: Api, address: str, username: str, password: str) -> int:
    """A login as if from ``address`` (the test's proxy, 127.0.0.1, names it)."""
    reply = await api.request("POST", "/api/v1/auth/login",
                              json.dumps({"username": username, "password": password}).encode(),
                              {"content-type": "application/json", "x-forwarded-for": address})
    return reply.status


async def test_a_guesser_cannot_lock_a_user_out(tmp_path: Path) -> None:
    """Failures count per user name and address: the guesser waits, the user logs in from
    their own address, and the guesser's other names are counted apart. Past the global cap,
    new pairs wait while a user's known address is spared."""
    async with running_api(tmp_path, api={"trusted_proxies": ["127.0.0.1"]},
                           auth={"login_global_max_failures": 8}) as api:
        await register(api, "ivan")
        guesser, home = "203.0.113.9", "198.51.100.7"
        assert await _login_from(api, home, "ivan", PASSWORD) == 200
        for _ in range(5):
            assert await _login_from(api, guesser, "ivan", "Wr0ng-password") == 401
        assert await _login_from(api, guesser, "ivan", PASSWORD) == 429
        assert await _login_from(api, home, "ivan", PASSWORD) == 200
        assert await _login_from(api, guesser, "nobody", "Wr0ng-password") == 401
        # 6 failures so far; two more from elsewhere reach the global cap of 8
        for n in range(2):
            assert await _login_from(api, f"192.0.2.{n + 1}", "ivan", "Wr0ng-password") == 401
        assert await _login_from(api, "192.0.2.50", "ivan", PASSWORD) == 429
        assert await _login_from(api, guesser, "nobody", "Wr0ng-password") == 429
        assert await _login_from(api, home, "ivan", PASSWORD) == 200
        rows = await audit_rows(api, "auth.login")
        assert {r["client_address"] for r in rows} == {guesser, home, "192.0.2.1", "192.0.2.2",
                                                        "192.0.2.50"}


async def test_password_change_needs_the_old_one_and_ends_other_sessions(api: Api) -> None:
    await register(api, "judy")
    current, other = await login(api, "judy"), await login(api, "judy")
    reply = await call(api, "POST", "/api/v1/auth/password",
                       {"old_password": "Wr0ng-password", "new_password": "N3w-pass-word"},
                       current["access_token"])
    assert reply.status == 403
    reply = await call(api, "POST", "/api/v1/auth/password",
                       {"old_password": PASSWORD, "new_password": "weak"},
                       current["access_token"])
    assert (reply.status, reply.json()["detail"][0]["field"]) == (422, "new_password")
    reply = await call(api, "POST", "/api/v1/auth/password",
                       {"old_password": PASSWORD, "new_password": "N3w-pass-word"},
                       current["access_token"])
    assert reply.status == 204
    assert (await call(api, "GET", "/api/v1/auth/me", token=current["access_token"])).status == 200
    assert (await call(api, "GET", "/api/v1/auth/me", token=other["access_token"])).status == 401
    await login(api, "judy", "N3w-pass-word")
    assert [r["outcome"] for r in await audit_rows(api, "auth.password")] == [
        "failure", "success"]


async def test_an_expired_access_token_says_so(api: Api) -> None:
    """An access token past its ``exp`` (signed by the engine's own key) answers 401 saying it
    expired, so a client knows to refresh; a forged one still says no more than "not
    authenticated"."""
    tokens = await login(api, *ADMIN)
    claims = jwt.decode(tokens["access_token"], options={"verify_signature": False})
    past = int((datetime.now(UTC) - timedelta(minutes=5)).timestamp())
    expired = jwt.encode({**claims, "iat": past - 60, "exp": past},
                         api.engine.settings.auth.jwt_secret.get_secret_value(),
                         algorithm="HS256")
    reply = await call(api, "GET", "/api/v1/portfolios", None, expired)
    assert (reply.status, reply.json()["detail"]) == (
        401, "the access token expired: refresh it or log in again")
    forged = jwt.encode({**claims}, "not-the-engine-s-key-but-long-enough-32", algorithm="HS256")
    reply = await call(api, "GET", "/api/v1/portfolios", None, forged)
    assert (reply.status, reply.json()["detail"]) == (401, "not authenticated")
