"""Token checks over real HTTP (a forged or stale token of a real, open session still gets 401),
the prod profile's refusal of a placeholder JWT secret, login throttling on a fake clock, and
the audit row of an unauthenticated mutation."""

import base64
import json
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jwt
import pytest

from lts.errors import ConfigError
from lts.plugins.aaa.throttle import LoginGuard, LoginThrottle
from lts.settings import load_settings

from ._auth import audit_rows, call, login, register, running_api
from .conftest import Api

pytestmark = pytest.mark.anyio

SECRET = "a-test-secret-long-enough-for-hs512-" + "x" * 30  # 64 bytes or more


@pytest.fixture
async def api(tmp_path: Path, migrated_url: str) -> AsyncIterator[Api]:
    async with running_api(tmp_path, auth={"jwt_secret": SECRET},
                           database={"url": migrated_url}) as api:
        yield api


def _b64(part: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(part).encode()).rstrip(b"=").decode()


def _claims(sub: str, sid: str | None, **changes: Any) -> dict[str, Any]:
    now = datetime.now(UTC)
    claims: dict[str, Any] = {"sub": sub, "sid": sid, "jti": "j1", "iat": now,
                              "exp": now + timedelta(minutes=5)}
    claims.update(changes)
    return {k: v for k, v in claims.items() if v is not None}


def _no_alg(sub: str, sid: str) -> str:
    payload = _claims(sub, sid)
    payload = {k: int(v.timestamp()) if isinstance(v, datetime) else v
               for k, v in payload.items()}
    return f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(payload)}."


FORGERIES: dict[str, Callable[[str, str], str]] = {
    "alg none": _no_alg,
    "wrong key": lambda s, i: jwt.encode(_claims(s, i), "another-secret-of-at-least-32-chars!",
                                         algorithm="HS256"),
    "HS512": lambda s, i: jwt.encode(_claims(s, i), SECRET, algorithm="HS512"),
    "no exp": lambda s, i: jwt.encode(_claims(s, i, exp=None), SECRET, algorithm="HS256"),
    "expired": lambda s, i: jwt.encode(
        _claims(s, i, exp=datetime.now(UTC) - timedelta(seconds=5)), SECRET, algorithm="HS256"),
    "no sid": lambda s, i: jwt.encode(_claims(s, None), SECRET, algorithm="HS256"),
    "no jti": lambda s, i: jwt.encode(_claims(s, i, jti=None), SECRET, algorithm="HS256"),
    "other user": lambda s, i: jwt.encode(_claims("1", i), SECRET, algorithm="HS256"),
    "unknown session": lambda s, i: jwt.encode(_claims(s, "f" * 32), SECRET, algorithm="HS256"),
    "garbage": lambda s, i: "not.a.token",
}


@pytest.mark.parametrize("forgery", sorted(FORGERIES))
async def test_forged_or_stale_tokens_get_401(api: Api, forgery: str) -> None:
    user = await register(api, "oscar")
    sid = (await login(api, "oscar"))["refresh_token"].split(".")[0]
    good = jwt.encode(_claims(str(user["id"]), sid), SECRET, algorithm="HS256")
    assert (await call(api, "GET", "/api/v1/auth/me", token=good)).status == 200
    token = FORGERIES[forgery](str(user["id"]), sid)
    reply = await call(api, "GET", "/api/v1/auth/me", token=token)
    assert (reply.status, reply.json()["code"]) == (401, "unauthenticated")
    assert reply.headers["www-authenticate"] == "Bearer"


async def test_no_token_or_another_scheme_gets_401(api: Api) -> None:
    assert (await call(api, "GET", "/api/v1/auth/me")).status == 401
    reply = await api.request("GET", "/api/v1/auth/me", headers={"authorization": "Basic eDp5"})
    assert reply.status == 401


async def test_an_unauthenticated_mutation_is_audited(api: Api) -> None:
    reply = await call(api, "DELETE", "/api/v1/users/1")
    assert reply.status == 401
    [row] = await audit_rows(api, "auth.check")
    assert (row["actor"], row["target"], row["outcome"]) == (
        "anonymous", "/api/v1/users/1", "denied")


def test_prod_refuses_the_placeholder_or_a_short_jwt_secret() -> None:
    with pytest.raises(ConfigError, match=r"auth\.jwt_secret"):
        load_settings(overrides={"profile": "prod"})
    with pytest.raises(ConfigError, match=r"auth\.jwt_secret"):
        load_settings(overrides={"profile": "prod", "auth": {"jwt_secret": "short"}})
    ok = load_settings(overrides={"profile": "prod", "auth": {"jwt_secret": "k" * 32},
                                  "master_key": "v1:a2tra2tra2tra2tra2tra2tra2tra2tra2tra2tra2s="})
    assert ok.auth.jwt_secret.get_secret_value() == "k" * 32
    assert load_settings().auth.access_token_minutes == 15
    assert len(SECRET) >= 64


def test_bcrypt_rounds_below_4_are_refused() -> None:
    with pytest.raises(ConfigError, match=r"auth\.bcrypt_rounds"):
        load_settings(overrides={"auth": {"bcrypt_rounds": 3}})


def test_throttle_counts_failures_per_key_over_a_sliding_window() -> None:
    now = [100.0]
    throttle = LoginThrottle(3, 60.0, max_keys=2, clock=lambda: now[0])
    for _ in range(3):
        assert throttle.retry_after("user:a", "addr:x") == 0
        throttle.failed("user:a", "addr:x")
        now[0] += 10
    assert throttle.retry_after("user:a") == 30  # the first failure leaves the window at 160
    assert throttle.retry_after("addr:x", "user:b") == 30
    assert throttle.retry_after("user:b") == 0
    now[0] = 160.0
    assert throttle.retry_after("user:a") == 0
    throttle.failed("user:c")  # a third key: the oldest is forgotten (bounded memory)
    assert throttle.retry_after("user:a") == 0
    throttle.succeeded("user:c")
    assert throttle.retry_after("user:c") == 0


def test_the_guard_throttles_pairs_under_a_global_cap_that_spares_known_pairs() -> None:
    now = [100.0]
    guard = LoginGuard(2, 60.0, 5, clock=lambda: now[0])
    guard.succeeded("Ann", "home")
    for _ in range(2):
        assert guard.retry_after("ann", "x") == 0
        guard.failed("ANN", "x")  # names compare case-folded
    assert guard.retry_after("ann", "x") == 60
    assert guard.retry_after("ann", "y") == 0  # another address is another pair
    assert guard.retry_after("bob", "x") == 0  # another name too
    now[0] += 10
    for address in ("y", "z", "w"):  # five failures in the window: the global cap
        guard.failed("bob", address)
    assert guard.retry_after("carl", "v") == 50  # a new pair waits for the oldest to leave
    assert guard.retry_after("ann", "home") == 0  # a pair that logged in before does not
    now[0] += 50
    assert guard.retry_after("carl", "v") == 0
    assert guard.retry_after("ann", "x") == 0


async def test_openapi_declares_the_bearer_scheme_as_the_password_flow(api: Api) -> None:
    """The docs' Authorize button logs in through /auth/login's OAuth2 password form."""
    reply = await call(api, "GET", "/openapi.json")
    assert reply.status == 200
    spec = reply.json()
    [scheme] = spec["components"]["securitySchemes"].values()
    assert scheme["flows"]["password"]["tokenUrl"] == "/api/v1/auth/login"
    body = spec["paths"]["/api/v1/auth/login"]["post"]["requestBody"]["content"]
    assert set(body) == {"application/json", "application/x-www-form-urlencoded"}


async def test_a_forwarded_for_header_is_not_believed_without_a_trusted_proxy(api: Api) -> None:
    """The audit trail, login throttling and rate limits key on the peer's address; a client
    cannot choose another with X-Forwarded-For unless it is a configured proxy."""
    reply = await api.request("POST", "/api/v1/auth/login",
                              json.dumps({"username": "nobody", "password": "x"}).encode(),
                              {"content-type": "application/json",
                               "x-forwarded-for": "203.0.113.9"})
    assert reply.status == 401
    [row] = await audit_rows(api, "auth.login")
    assert row["client_address"] == "127.0.0.1"


async def test_cors_lets_in_only_the_configured_origins(api: Api, tmp_path: Path) -> None:
    """Restrictive by default: no origin is allowed (a browser refuses the cross-origin call);
    a configured one is, for the API's methods and headers only, without credentials."""
    preflight = {"origin": "https://desk.example", "access-control-request-method": "PUT",
                 "access-control-request-headers": "authorization"}
    default = await api.request("OPTIONS", "/api/v1/portfolios", None, preflight)
    assert "access-control-allow-origin" not in default.headers
    (tmp_path / "cors").mkdir()
    async with running_api(tmp_path / "cors", api={"cors_origins": ["https://desk.example"]}
                           ) as cors:
        allowed = await cors.request("OPTIONS", "/api/v1/portfolios", None, preflight)
        assert allowed.status == 200
        assert allowed.headers["access-control-allow-origin"] == "https://desk.example"
        assert "access-control-allow-credentials" not in allowed.headers
        other = await cors.request("OPTIONS", "/api/v1/portfolios", None,
                                   {**preflight, "origin": "https://evil.example"})
        assert "access-control-allow-origin" not in other.headers


async def test_the_prod_profile_serves_no_interactive_docs(tmp_path: Path) -> None:
    """Unless ``api.docs`` turns them on."""
    prod = {"profile": "prod", "auth": {"jwt_secret": SECRET},
            "master_key": "v1:" + base64.b64encode(b"k" * 32).decode()}
    async with running_api(tmp_path, **prod) as api:
        for path in ("/docs", "/openapi.json"):
            assert (await api.request("GET", path)).status == 404
    (tmp_path / "on").mkdir()
    async with running_api(tmp_path / "on", **prod, api={"docs": True}) as api:
        assert (await api.request("GET", "/openapi.json")).status == 200
