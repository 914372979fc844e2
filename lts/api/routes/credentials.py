"""``/api/v1/credentials``: the caller's own broker credentials (API keys), sealed at rest.

``PUT /{broker}`` (trader or admin) stores or replaces the caller's credential for ``broker`` and
answers its metadata; ``GET`` lists the caller's credentials (metadata only); ``DELETE
/{broker}`` (trader or admin) removes one. No answer, audit row or log line ever carries a
secret: the plain text lives only in the request and, sealed, in the store
(:mod:`lts.persistence.credentials`). Without a master key ``PUT`` answers 409: there is no
plain-text mode.
"""

from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Request, Response
from pydantic import BaseModel, ConfigDict, Field, SecretStr

from lts.api.audit import audit
from lts.api.context import ApiContext
from lts.api.deps import CurrentUser, TraderUser
from lts.api.errors import answers
from lts.api.routes.portfolios import audited
from lts.api.schemas import UtcTime
from lts.errors import Conflict
from lts.persistence.credentials import (
    BROKER_PATTERN,
    BrokerCredentials,
    CredentialInfo,
    CredentialStore,
)
from lts.persistence.keyring import Keyring

router = APIRouter(prefix="/api/v1/credentials", tags=["credentials"])

Broker = Annotated[str, Path(pattern=f"^{BROKER_PATTERN.pattern}$",
                             description="broker plugin name, e.g. 'binance'")]
NOT_CONFIGURED = ("the secret store is not configured: the engine has no master key "
                  "(setting 'master_key', LTS_MASTER_KEY)")


class CredentialPut(BaseModel):
    model_config = ConfigDict(extra="forbid")

    api_key: SecretStr = Field(min_length=1, max_length=256)
    api_secret: SecretStr = Field(min_length=1, max_length=1024)
    passphrase: SecretStr | None = Field(None, min_length=1, max_length=256)


class CredentialPublic(BaseModel):
    broker: str
    key_version: str = Field(description="version of the master key that sealed it")
    created_at: UtcTime
    updated_at: UtcTime


def _public(info: CredentialInfo) -> CredentialPublic:
    return CredentialPublic(broker=info.broker, key_version=info.key_version,
                            created_at=info.created_at, updated_at=info.updated_at)


def _store(ctx: ApiContext) -> CredentialStore:
    engine = ctx.engine
    return CredentialStore(engine.db, Keyring.from_setting(engine.settings.master_key))


@router.put("/{broker}", response_model=CredentialPublic, responses=answers(409))
async def put_credential(broker: Broker, body: CredentialPut, request: Request,
                         caller: TraderUser) -> CredentialPublic:
    ctx, who = caller
    async with audited(ctx, request, who, "credential.put", f"credential:{broker}") as detail:
        detail["fields"] = sorted(body.model_dump(exclude_none=True))
        store = _store(ctx)
        if store.keyring is None:
            raise Conflict(NOT_CONFIGURED)
        secret = BrokerCredentials(
            body.api_key.get_secret_value(), body.api_secret.get_secret_value(),
            None if body.passphrase is None else body.passphrase.get_secret_value())
        info = await store.put(who.user_id, broker, secret)
        detail["key_version"] = info.key_version
    return _public(info)


@router.get("", response_model=list[CredentialPublic])
async def list_credentials(caller: CurrentUser) -> list[CredentialPublic]:
    ctx, who = caller
    return [_public(i) for i in await _store(ctx).list(who.user_id)]


@router.delete("/{broker}", status_code=204, response_class=Response)
async def delete_credential(broker: Broker, request: Request, caller: TraderUser) -> Response:
    ctx, who = caller
    target = f"credential:{broker}"
    if not await _store(ctx).delete(who.user_id, broker):
        audit(ctx, request, who, "credential.delete", target, "failure",
              {"reason": "not found"})
        raise HTTPException(404, "no credential for this broker")
    audit(ctx, request, who, "credential.delete", target, "success")
    return Response(status_code=204)
