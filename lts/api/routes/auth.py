"""Auth routes (``/api/v1/auth``) over the aaa plugin and the session cache: register (a new
user is a viewer), login (throttled, every outcome audited; JSON, or the OAuth2 password form
that the interactive docs send), refresh with rotation, logout, me, password change, and
single-use WebSocket tickets. Failures answer a plain 401 that says nothing about which part
failed, but for an expired session, which says so (the client logs in again).
"""

from typing import Any

from fastapi import APIRouter, HTTPException, Request, Response
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError

from lts.api import security
from lts.api.audit import audit
from lts.api.deps import ContextDep, CurrentUser, Principal, client_address
from lts.api.schemas import (
    LoginRequest,
    PasswordChange,
    RefreshRequest,
    TokenPair,
    UserCreate,
    UserPublic,
    WsTicket,
)

router = APIRouter(prefix="/api/v1/auth", tags=["auth"])


def _pair(tokens: security.IssuedTokens) -> TokenPair:
    return TokenPair(access_token=tokens.access_token, refresh_token=tokens.refresh_token,
                     expires_in=tokens.expires_in)


@router.post("/register", status_code=201, response_model=UserPublic)
async def register(body: UserCreate, request: Request, ctx: ContextDep) -> UserPublic:
    target = f"user:{body.username}"
    if not ctx.engine.settings.auth.allow_registration:
        audit(ctx, request, None, "auth.register", target, "denied")
        raise HTTPException(403, "registration is closed")
    user = await ctx.auth.create_user(ctx.engine.db, body.username, body.email, body.password)
    if user is None:
        audit(ctx, request, None, "auth.register", target, "failure", {"reason": "taken"})
        raise HTTPException(409, "user name taken")
    audit(ctx, request, None, "auth.register", f"user:{user.id}", "success",
          {"username": user.username})
    return UserPublic.model_validate(user)


_FORM = "application/x-www-form-urlencoded"
_LOGIN_FORM_SCHEMA = {"type": "object", "required": ["username", "password"], "properties": {
    "grant_type": {"type": "string", "enum": ["password"]},
    "username": {"type": "string"}, "password": {"type": "string", "format": "password"}}}
_LOGIN_BODY: dict[str, Any] = {"requestBody": {"required": True, "content": {
    "application/json": {"schema": LoginRequest.model_json_schema()},
    _FORM: {"schema": _LOGIN_FORM_SCHEMA}}}}


async def _login_request(request: Request) -> LoginRequest:
    """The login body: JSON (unknown fields refused), or the OAuth2 password form (its other
    fields, such as ``grant_type`` and ``scope``, are ignored)."""
    kind = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    try:
        if kind == _FORM:
            form = await request.form()
            return LoginRequest.model_validate({"username": form.get("username"),
                                                "password": form.get("password")})
        if kind == "application/json":
            return LoginRequest.model_validate_json(await request.body())
    except ValidationError as exc:
        raise RequestValidationError([{**e, "loc": ("body", *e["loc"])}
                                      for e in exc.errors(include_url=False)]) from None
    raise HTTPException(415, "send JSON or an OAuth2 password form")


@router.post("/login", response_model=TokenPair, openapi_extra=_LOGIN_BODY)
async def login(request: Request, ctx: ContextDep) -> TokenPair:
    body = await _login_request(request)
    client = client_address(request)
    result = await ctx.auth.authenticate(ctx.engine.db, body.username, body.password, client)
    if result.user is None:
        ctx.metrics.login_failures.inc()
        audit(ctx, request, None, "auth.login", f"user:{body.username}", "failure",
              {"reason": result.reason})
        if result.retry_after:
            raise HTTPException(429, "too many failed logins",
                                headers={"Retry-After": str(result.retry_after)})
        raise HTTPException(401, "invalid user name or password",
                            headers={"WWW-Authenticate": "Bearer"})
    user = result.user
    tokens = await ctx.sessions.open(user.id, client)
    audit(ctx, request, Principal(user.id, user.username, user.role, tokens.session_id),
          "auth.login", f"user:{user.id}", "success")
    return _pair(tokens)


@router.post("/refresh", response_model=TokenPair)
async def refresh(body: RefreshRequest, request: Request, ctx: ContextDep) -> TokenPair:
    try:
        tokens = await ctx.sessions.rotate(body.refresh_token, client_address(request))
    except security.InvalidToken as exc:
        expired = isinstance(exc, security.SessionExpired)
        audit(ctx, request, None, "auth.refresh", "session", "failure",
              {"reason": "expired"} if expired else None)
        raise HTTPException(401, exc.detail if expired else "invalid refresh token",
                            headers={"WWW-Authenticate": "Bearer"}) from None
    audit(ctx, request, None, "auth.refresh", f"user:{tokens.user_id}", "success")
    return _pair(tokens)


@router.post("/logout", status_code=204, response_class=Response)
async def logout(request: Request, caller: CurrentUser) -> Response:
    ctx, who = caller
    await ctx.sessions.revoke_session(who.session_id)
    audit(ctx, request, who, "auth.logout", f"user:{who.user_id}", "success")
    return Response(status_code=204)


@router.get("/me", response_model=UserPublic)
async def me(caller: CurrentUser) -> UserPublic:
    ctx, who = caller
    user = await ctx.auth.get_user(ctx.engine.db, who.user_id)
    if user is None:
        raise HTTPException(401, "not authenticated")
    return UserPublic.model_validate(user)


@router.post("/password", status_code=204, response_class=Response)
async def change_password(body: PasswordChange, request: Request, caller: CurrentUser) -> Response:
    ctx, who = caller
    target = f"user:{who.user_id}"
    if not await ctx.auth.change_password(ctx.engine.db, who.user_id, body.old_password,
                                      body.new_password):
        audit(ctx, request, who, "auth.password", target, "failure",
              {"reason": "old password does not match"})
        raise HTTPException(403, "the old password does not match")
    # every other login of this user ends; this one goes on
    await ctx.sessions.revoke_user(who.user_id, keep=who.session_id)
    audit(ctx, request, who, "auth.password", target, "success")
    return Response(status_code=204)


@router.post("/ws-ticket", response_model=WsTicket)
async def ws_ticket(request: Request, caller: CurrentUser) -> WsTicket:
    """A single-use ticket for ``/ws/orders?ticket=...``, valid for a few seconds, for clients
    that cannot send a first message before they are let in; never a long-lived token in a
    URL."""
    ctx, who = caller
    ticket, expires_in = ctx.sessions.issue_ticket(who.user_id, who.session_id)
    audit(ctx, request, who, "auth.ws_ticket", f"user:{who.user_id}", "success")
    return WsTicket(ticket=ticket, expires_in=expires_in)
