"""User administration against a real engine and API: only admins reach it (403, audited),
role changes apply to live sessions, disabling or deleting a user ends their sessions."""

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from ._auth import ADMIN, PASSWORD, audit_rows, call, login, running_api, user_with_role
from .conftest import Api

pytestmark = pytest.mark.anyio


@pytest.fixture
async def api(tmp_path: Path, migrated_url: str) -> AsyncIterator[Api]:
    async with running_api(tmp_path, database={"url": migrated_url}) as api:
        yield api


@pytest.fixture
async def admin(api: Api) -> str:
    return str((await login(api, *ADMIN))["access_token"])


@pytest.mark.parametrize("role", ["viewer", "trader"])
async def test_only_admins_reach_the_users_routes(api: Api, role: str) -> None:
    uid, token = await user_with_role(api, "pat", role)
    for method, path, body in (("GET", "/api/v1/users", None),
                               ("GET", f"/api/v1/users/{uid}", None),
                               ("PATCH", f"/api/v1/users/{uid}", {"role": "admin"}),
                               ("DELETE", "/api/v1/users/1", None)):
        reply = await call(api, method, path, body, token)
        assert (reply.status, reply.json()["code"]) == (403, "forbidden"), (method, path)
    rows = await audit_rows(api, "auth.check")
    assert [(r["actor"], r["outcome"], r["detail"]["method"]) for r in rows] == [
        ("pat", "denied", m) for m in ("GET", "GET", "PATCH", "DELETE")]
    me = await call(api, "GET", "/api/v1/auth/me", token=token)
    assert me.json()["role"] == role  # nothing changed


async def test_admin_lists_users_without_secrets(api: Api, admin: str) -> None:
    await user_with_role(api, "quinn", "viewer")
    reply = await call(api, "GET", "/api/v1/users", token=admin)
    assert reply.status == 200
    assert [(u["username"], u["role"]) for u in reply.json()] == [
        ("admin", "admin"), ("quinn", "viewer")]
    reply = await call(api, "GET", "/api/v1/users?limit=1&offset=1", token=admin)
    assert [u["username"] for u in reply.json()] == ["quinn"]


async def test_a_role_change_applies_to_the_live_session(api: Api, admin: str) -> None:
    uid, token = await user_with_role(api, "rita", "viewer")
    reply = await call(api, "PATCH", f"/api/v1/users/{uid}", {"role": "trader"}, admin)
    assert (reply.status, reply.json()["role"]) == (200, "trader")
    assert (await call(api, "GET", "/api/v1/auth/me", token=token)).json()["role"] == "trader"
    [row] = [r for r in await audit_rows(api, "user.update") if r["target"] == f"user:{uid}"
             and r["detail"] == {"role": "trader"}]
    assert (row["actor"], row["outcome"]) == ("admin", "success")


async def test_patch_refuses_unknown_fields_and_bad_roles(api: Api, admin: str) -> None:
    uid, _ = await user_with_role(api, "sam", "viewer")
    for body, field in (({"is_admin": True}, "is_admin"), ({"role": "root"}, "role")):
        reply = await call(api, "PATCH", f"/api/v1/users/{uid}", body, admin)
        assert (reply.status, reply.json()["detail"][0]["field"]) == (422, field)


async def test_disabling_a_user_ends_their_sessions_and_logins(api: Api, admin: str) -> None:
    uid, token = await user_with_role(api, "tess", "trader")
    reply = await call(api, "PATCH", f"/api/v1/users/{uid}", {"is_active": False}, admin)
    assert (reply.status, reply.json()["is_active"]) == (200, False)
    assert (await call(api, "GET", "/api/v1/auth/me", token=token)).status == 401
    reply = await call(api, "POST", "/api/v1/auth/login", {"username": "tess",
                                                           "password": PASSWORD})
    assert reply.status == 401
    await call(api, "PATCH", f"/api/v1/users/{uid}", {"is_active": True}, admin)
    await login(api, "tess")


async def test_deleting_a_user_ends_their_sessions(api: Api, admin: str) -> None:
    uid, token = await user_with_role(api, "uma", "viewer")
    assert (await call(api, "DELETE", f"/api/v1/users/{uid}", token=admin)).status == 204
    assert (await call(api, "GET", "/api/v1/auth/me", token=token)).status == 401
    reply = await call(api, "DELETE", f"/api/v1/users/{uid}", token=admin)
    assert (reply.status, reply.json()["code"]) == (404, "not_found")
    assert [r["outcome"] for r in await audit_rows(api, "user.delete")] == [
        "success", "failure"]


async def test_an_admin_cannot_demote_disable_or_delete_themselves(api: Api, admin: str) -> None:
    me = (await call(api, "GET", "/api/v1/auth/me", token=admin)).json()["id"]
    for method, body in (("PATCH", {"role": "viewer"}), ("PATCH", {"is_active": False}),
                         ("DELETE", None)):
        reply = await call(api, method, f"/api/v1/users/{me}", body, admin)
        assert (reply.status, reply.json()["code"]) == (409, "conflict")
    assert (await call(api, "GET", "/api/v1/auth/me", token=admin)).json()["role"] == "admin"
