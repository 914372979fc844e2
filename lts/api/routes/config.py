"""``/api/v1/config`` (admin): the effective settings and runtime overrides.

``GET`` returns the settings as JSON with secrets redacted (every ``SecretStr``, every key
containing "secret" or "password", the password of a database URL) and, per dotted key, its
source. The engine keeps no record of where a value came from, so the source is inferred:

- ``runtime``: the key has an override in the ``configuration`` table (``PATCH /config``);
- ``env``: an ``LTS_...`` variable of this process names the key or its section
  (``LTS_API__PORT`` -> ``api.port``); a ``--set`` given as well would win, unseen here;
- ``file_or_cli``: the value differs from the code default: the TOML file and the command line
  cannot be told apart after loading;
- ``default``: otherwise (a file or flag that repeats the default also shows as ``default``).

``PATCH`` takes ``{"values": {"dotted.key": value}}``. Only :data:`RUNTIME_KEYS` change while
running: the risk limits (validated as :class:`RiskLimits`, then applied to every running
portfolio, under each portfolio's own ``risk_params``) and ``engine.ack_timeout``. Another known
key answers 409 (it needs a restart), an unknown key 422 naming the field. Accepted values are
upserted into ``configuration`` and the engine's settings replaced by a validated copy; every
attempt is audited as ``config.update``. Nothing is applied unless every key is accepted.
"""

import os
from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, ValidationError
from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from lts.api.admin_schemas import REDACTED, ConfigPatch, ConfigPublic, Source, is_secret_key
from lts.api.context import ApiContext
from lts.api.deps import AdminUser
from lts.api.errors import answers
from lts.api.routes.portfolios import audited
from lts.errors import Conflict, InvalidParams
from lts.persistence.tables import configuration
from lts.settings import RUNTIME_KEYS, EngineSettings, RiskLimits, Settings

router = APIRouter(prefix="/api/v1/config", tags=["config"])

_SECTIONS: dict[str, type[BaseModel]] = {"risk": RiskLimits, "engine": EngineSettings}


def flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"api": {"port": 1}}`` -> ``{"api.port": 1}`` (lists stay values)."""
    out: dict[str, Any] = {}
    for key, value in tree.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            out.update(flatten(value, dotted + "."))
        else:
            out[dotted] = value
    return out


def _redact(key: str, value: Any) -> Any:
    if value is None:
        return None
    if is_secret_key(key.rsplit(".", 1)[-1]) or value == REDACTED:
        return REDACTED
    if key == "database.url" and isinstance(value, str):
        try:
            return make_url(value).render_as_string(hide_password=True)
        except ArgumentError:
            return REDACTED  # not a URL we can take apart: show nothing of it
    return value


def _redacted_tree(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    return {k: _redacted_tree(v, f"{prefix}{k}.") if isinstance(v, dict)
            else _redact(f"{prefix}{k}", v) for k, v in tree.items()}


def _env_keys() -> set[str]:
    return {name[4:].lower().replace("__", ".") for name in os.environ
            if name.upper().startswith("LTS_") and len(name) > 4}


def _source(key: str, value: Any, default: Any, runtime: set[str], env: set[str]) -> Source:
    if key in runtime:
        return "runtime"
    if any(key == e or key.startswith(e + ".") for e in env):
        return "env"
    return "default" if value == default else "file_or_cli"


async def _runtime_keys(ctx: ApiContext) -> set[str]:
    async with ctx.engine.db.connect() as conn:
        return set((await conn.execute(select(configuration.c.key))).scalars())


async def _view(ctx: ApiContext) -> ConfigPublic:
    tree = ctx.engine.settings.model_dump(mode="json")
    defaults = flatten(Settings.model_construct().model_dump(mode="json"))
    runtime, env = await _runtime_keys(ctx), _env_keys()
    sources = {k: _source(k, v, defaults.get(k), runtime, env)
               for k, v in flatten(tree).items()}
    return ConfigPublic(settings=_redacted_tree(tree), sources=sources,
                        runtime_keys=sorted(RUNTIME_KEYS))


@router.get("", response_model=ConfigPublic)
async def get_config(caller: AdminUser) -> ConfigPublic:
    ctx = caller.ctx
    return await _view(ctx)


def _validated(ctx: ApiContext, values: dict[str, Any]) -> dict[str, BaseModel]:
    """The new section models, or InvalidParams (422) / Conflict (409) naming the key."""
    known = set(flatten(Settings.model_construct().model_dump(mode="json")))
    for key in sorted(values):
        if key not in known:
            raise InvalidParams("config", f"values.{key}", "unknown setting")
    for key in sorted(values):
        if key not in RUNTIME_KEYS:
            raise Conflict(f"setting {key!r} cannot change at runtime: it needs a restart")
    current = ctx.engine.settings
    sections: dict[str, BaseModel] = {}
    for section, model in _SECTIONS.items():
        changes = {k.split(".", 1)[1]: v for k, v in values.items()
                   if k.startswith(section + ".")}
        if not changes:
            continue
        try:
            sections[section] = model.model_validate(
                {**getattr(current, section).model_dump(), **changes})
        except ValidationError as exc:
            err = exc.errors()[0]
            field = f"values.{section}." + ".".join(str(p) for p in err["loc"])
            raise InvalidParams("config", field, err["msg"]) from None
    return sections


async def _store(ctx: ApiContext, rows: list[dict[str, Any]]) -> None:
    db = ctx.engine.db
    insert = sqlite_insert if db.dialect.name == "sqlite" else pg_insert
    stmt = insert(configuration)
    stmt = stmt.on_conflict_do_update(index_elements=[configuration.c.key], set_={
        "value": stmt.excluded.value, "updated_by": stmt.excluded.updated_by,
        "updated_at": func.current_timestamp()})
    async with db.begin() as conn:
        await conn.execute(stmt, rows)


async def _apply(ctx: ApiContext, sections: dict[str, BaseModel]) -> None:
    """Replace the engine's settings: each running portfolio gets its new risk limits as a
    command; the acknowledgement timeout acts at every portfolio's next look."""
    await ctx.engine.apply_settings(ctx.engine.settings.model_copy(update=sections))


@router.patch("", response_model=ConfigPublic, responses=answers(409))
async def patch_config(body: ConfigPatch, request: Request, caller: AdminUser) -> ConfigPublic:
    ctx, who = caller
    async with audited(ctx, request, who, "config.update", "config") as detail:
        detail["keys"] = sorted(body.values)[:50]
        sections = _validated(ctx, body.values)
        dumped = {name: model.model_dump(mode="json") for name, model in sections.items()}
        rows = [{"key": key, "value": dumped[key.split(".", 1)[0]][key.split(".", 1)[1]],
                 "updated_by": who.username} for key in sorted(body.values)]
        await _store(ctx, rows)
        await _apply(ctx, sections)
        detail["values"] = {r["key"]: r["value"] for r in rows}
    return await _view(ctx)
