"""``/api/v1/webhooks``: each user's own webhooks (notifications by signed HTTP POST) and
their delivery log.

Any signed-in user (viewer included) manages their own webhooks; another user's answer 404, as
if they did not exist. A webhook names the event types it wants (``order.filled``,
``order.rejected``, ``order.denied``, ``portfolio.error``, ``portfolio.restarted``,
``trading_state.changed``, ``daily.summary``) and may be limited to one portfolio, which its
owner must be able to see (an admin: any; others: their own; else 404). Whatever it asks, it
only ever gets events of portfolios its owner may see (the notifier checks at delivery,
:mod:`lts.notify.audience`).

The signing secret is shown once: in the answer that creates the webhook and in the answer of
``POST /{id}/secret``, which replaces it.

A URL whose host is a private address (loopback, private, link-local, shared, reserved,
multicast or unspecified: an address literal, IPv4's short forms such as ``127.1`` included) or
a local name (``localhost``, ``*.localhost``, ``*.local``, ``*.internal``) is refused at creation
and update, 422 on ``url``, unless ``notify.webhooks.allow_private_networks`` is set: without a
guard any user (a viewer too) could have LTS post to, and report on, what its host reaches. No
name is resolved here (the request would wait on DNS, and a name may change): the notifier
checks the addresses a name resolves to at each delivery (:mod:`lts.notify.destinations`).

``GET /{id}/deliveries`` lists the delivery attempts, newest first. The notifier picks changes
up within ``notify.webhooks.refresh_seconds``. Every change is audited; no audit row, log line
or later answer carries the secret.
"""

from datetime import UTC, datetime
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from fastapi import APIRouter, HTTPException, Query, Request, Response, status
from fastapi.exceptions import RequestValidationError
from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from lts.addresses import private_host
from lts.api.audit import audit
from lts.api.context import ApiContext
from lts.api.deps import CurrentUser
from lts.api.portfolio_schemas import ROW_ID_MAX, PathId
from lts.api.routes.portfolios import audited, owned
from lts.errors import Conflict
from lts.persistence import webhooks_repo as repo

router = APIRouter(prefix="/api/v1/webhooks", tags=["webhooks"])

WebhookId = PathId  # a row id (PostgreSQL keys are 32-bit)
EventType = Literal["order.filled", "order.rejected", "order.denied", "portfolio.error",
                    "portfolio.restarted", "trading_state.changed", "daily.summary"]
assert set(EventType.__args__) == set(repo.NOTIFICATION_TYPES)  # type: ignore[attr-defined]
_NOT_FOUND = "webhook not found"


def _url(value: str) -> str:
    """An absolute http(s) URL with a host, no credentials, no fragment, no blanks."""
    if any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in value):
        raise ValueError("must not contain blanks or control characters")
    _text(value)
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError:
        raise ValueError("is not a valid URL") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("must be an http:// or https:// URL with a host")
    if parts.username is not None or parts.password is not None:
        raise ValueError("must not carry credentials (the signature authenticates LTS)")
    if parts.fragment:
        raise ValueError("must not have a fragment")
    return value


def _check_destination(ctx: ApiContext, url: str) -> None:
    """Refuse (422 on ``url``) a URL to a private address or a local name, unless
    ``notify.webhooks.allow_private_networks`` is set."""
    if ctx.engine.settings.notify.webhooks.allow_private_networks:
        return
    if private_host(urlsplit(url).hostname or ""):
        raise RequestValidationError([{
            "type": "value_error", "loc": ("body", "url"), "input": url,
            "msg": "must lead to a public address: loopback, private and link-local "
                   "addresses and local names are not allowed"}])


def _utc(ts: datetime) -> datetime:
    """A time the database gave without its zone (SQLite) is UTC."""
    return ts if ts.tzinfo is not None else ts.replace(tzinfo=UTC)


def _text(value: str) -> str:
    try:
        value.encode()
    except UnicodeEncodeError:
        raise ValueError("must be valid Unicode text (no lone surrogates)") from None
    return value


def _unique(types: list[str]) -> list[str]:
    return sorted(set(types))


Url = Annotated[str, Field(min_length=1, max_length=2048, examples=["https://example.com/lts"]),
                AfterValidator(_url)]
EventTypes = Annotated[list[EventType], Field(min_length=1, max_length=12),
                       AfterValidator(_unique)]
Description = Annotated[str, Field(max_length=200, pattern=r"^[^\x00-\x1f\x7f]*$"),
                        AfterValidator(_text)]
Time = Annotated[datetime, AfterValidator(_utc)]
PortfolioRef = Annotated[int | None, Field(ge=1, le=ROW_ID_MAX,
                                           description="only this portfolio's events")]


class WebhookCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    url: Url
    event_types: EventTypes
    portfolio_id: PortfolioRef = None
    description: Description = ""
    active: bool = True


class WebhookUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    url: Url | None = None
    event_types: EventTypes | None = None
    portfolio_id: PortfolioRef = Field(None, description="null: every portfolio its owner sees")
    description: Description | None = None
    active: bool | None = None


class WebhookPublic(BaseModel):
    id: int
    url: str
    event_types: list[str]
    portfolio_id: int | None
    description: str
    active: bool
    created_at: Time
    updated_at: Time


class WebhookWithSecret(WebhookPublic):
    secret: str = Field(description="the HMAC-SHA256 signing secret; shown only in this answer")


class DeliveryPublic(BaseModel):
    id: int
    event_id: str
    event_type: str
    portfolio_id: int | None
    attempt: int
    outcome: Literal["delivered", "retrying", "failed"]
    http_status: int | None
    error: str | None
    duration_ms: int
    ts: Time


def _public(row: dict[str, Any]) -> WebhookPublic:
    return WebhookPublic.model_validate({k: row[k] for k in WebhookPublic.model_fields})


def _with_secret(row: dict[str, Any]) -> WebhookWithSecret:
    return WebhookWithSecret.model_validate({k: row[k] for k in WebhookWithSecret.model_fields})


_404: dict[int | str, dict[str, Any]] = {
    404: {"description": "No such webhook of yours (or portfolio you may see)"}}
_CREATE: dict[int | str, dict[str, Any]] = {
    **_404, 409: {"description": "You have as many webhooks as allowed"}}


@router.post("", status_code=status.HTTP_201_CREATED, response_model=WebhookWithSecret,
             responses=_CREATE)
async def create_webhook(body: WebhookCreate, request: Request,
                         caller: CurrentUser) -> WebhookWithSecret:
    """A new webhook; the answer is the only one that shows its signing secret. A URL to a
    private address or a local name is a 422 (unless private networks are allowed)."""
    ctx, who = caller
    _check_destination(ctx, body.url)
    async with audited(ctx, request, who, "webhook.create", "webhook") as detail:
        detail.update(event_types=body.event_types, portfolio_id=body.portfolio_id)
        if body.portfolio_id is not None:
            await owned(ctx, who, body.portfolio_id)
        limit = ctx.engine.settings.notify.webhooks.max_per_user
        if await repo.count_webhooks(ctx.engine.db, who.user_id) >= limit:
            raise Conflict(f"you have {limit} webhooks already: delete one first")
        row = await repo.create_webhook(ctx.engine.db, {
            **body.model_dump(), "user_id": who.user_id, "secret": repo.new_secret()})
        detail["webhook_id"] = row["id"]
    return _with_secret(row)


@router.get("", response_model=list[WebhookPublic])
async def list_webhooks(caller: CurrentUser) -> list[WebhookPublic]:
    ctx, who = caller
    return [_public(r) for r in await repo.list_webhooks(ctx.reader, who.user_id)]


@router.get("/{webhook_id}", response_model=WebhookPublic, responses=_404)
async def get_webhook(webhook_id: WebhookId, caller: CurrentUser) -> WebhookPublic:
    ctx, who = caller
    row = await repo.get_webhook(ctx.reader, who.user_id, webhook_id)
    if row is None:
        raise HTTPException(404, _NOT_FOUND)
    return _public(row)


@router.patch("/{webhook_id}", response_model=WebhookPublic, responses=_404)
async def update_webhook(webhook_id: WebhookId, body: WebhookUpdate, request: Request,
                         caller: CurrentUser) -> WebhookPublic:
    """Change what is given (``portfolio_id: null`` lifts the limit to one portfolio). A URL to
    a private address or a local name is a 422 (unless private networks are allowed)."""
    ctx, who = caller
    values = {k: v for k, v in body.model_dump(exclude_unset=True).items()
              if v is not None or k == "portfolio_id"}
    if "url" in values:
        _check_destination(ctx, values["url"])
    async with audited(ctx, request, who, "webhook.update", f"webhook:{webhook_id}") as detail:
        detail["fields"] = sorted(values)
        if values.get("portfolio_id") is not None:
            await owned(ctx, who, values["portfolio_id"])
        if values:
            row = await repo.update_webhook(ctx.engine.db, who.user_id, webhook_id, values)
        else:
            row = await repo.get_webhook(ctx.reader, who.user_id, webhook_id)
        if row is None:
            raise HTTPException(404, _NOT_FOUND)
    return _public(row)


@router.post("/{webhook_id}/secret", response_model=WebhookWithSecret, responses=_404)
async def rotate_secret(webhook_id: WebhookId, request: Request,
                        caller: CurrentUser) -> WebhookWithSecret:
    """A new signing secret replaces the old one at once; the answer is the only one that shows
    it."""
    ctx, who = caller
    async with audited(ctx, request, who, "webhook.secret", f"webhook:{webhook_id}"):
        row = await repo.update_webhook(ctx.engine.db, who.user_id, webhook_id,
                                        {"secret": repo.new_secret()})
        if row is None:
            raise HTTPException(404, _NOT_FOUND)
    return _with_secret(row)


@router.delete("/{webhook_id}", status_code=204, response_class=Response, responses=_404)
async def delete_webhook(webhook_id: WebhookId, request: Request,
                         caller: CurrentUser) -> Response:
    ctx, who = caller
    target = f"webhook:{webhook_id}"
    if not await repo.delete_webhook(ctx.engine.db, who.user_id, webhook_id):
        audit(ctx, request, who, "webhook.delete", target, "failure", {"reason": "not found"})
        raise HTTPException(404, _NOT_FOUND)
    audit(ctx, request, who, "webhook.delete", target, "success")
    return Response(status_code=204)


@router.get("/{webhook_id}/deliveries", response_model=list[DeliveryPublic], responses=_404)
async def list_deliveries(
        webhook_id: WebhookId, caller: CurrentUser,
        limit: Annotated[int, Query(ge=1, le=500)] = 100,
        before_id: Annotated[int | None, Query(ge=1, le=ROW_ID_MAX,
                                               description="the page after this id")] = None,
) -> list[DeliveryPublic]:
    """Delivery attempts, newest first: one row per try (``retrying``, then ``delivered`` or
    ``failed``), with the receiver's HTTP status or the error."""
    ctx, who = caller
    if await repo.get_webhook(ctx.reader, who.user_id, webhook_id) is None:
        raise HTTPException(404, _NOT_FOUND)
    rows = await repo.list_deliveries(ctx.reader, webhook_id, limit=limit, before_id=before_id)
    return [DeliveryPublic.model_validate(r) for r in rows]

