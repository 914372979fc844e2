"""Request and response models of the auth and users routes. Inputs refuse unknown fields (no
``role`` by mass assignment); outputs are separate models that carry no hash or secret.

Password rule (:mod:`lts.plugins.aaa.passwords`, the one the CLI and start-up use too): at most
72 UTF-8 bytes (bcrypt's limit: refused, never truncated), at least 10 characters, and at least
three of lower case, upper case, digits and other characters.
"""

from datetime import UTC, datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictBool, field_validator

from lts.api.portfolio_schemas import PRINTABLE
from lts.plugins.aaa.passwords import fits_bcrypt as _fits_bcrypt
from lts.plugins.aaa.passwords import strong_password

Role = Literal["admin", "trader", "viewer"]


class _Input(BaseModel):
    model_config = ConfigDict(extra="forbid")


class UserCreate(_Input):
    username: str = Field(min_length=3, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")
    email: str | None = Field(None, max_length=254,
                              pattern=r"^[^@\s\x00-\x1f]+@[^@\s\x00-\x1f]+\.[^@\s\x00-\x1f]+$")
    password: str

    _password = field_validator("password")(strong_password)


class LoginRequest(_Input):
    username: str = Field(min_length=1, max_length=64, pattern=PRINTABLE)
    password: str = Field(min_length=1)

    _password = field_validator("password")(_fits_bcrypt)


class RefreshRequest(_Input):
    refresh_token: str = Field(min_length=1, max_length=256)


class PasswordChange(_Input):
    old_password: str = Field(min_length=1)
    new_password: str

    _old = field_validator("old_password")(_fits_bcrypt)
    _new = field_validator("new_password")(strong_password)


class UserUpdate(_Input):
    role: Role | None = None
    is_active: StrictBool | None = None


class TokenPair(BaseModel):
    access_token: str
    refresh_token: str
    token_type: Literal["bearer"] = "bearer"  # noqa: S105 - the scheme, not a secret
    expires_in: int = Field(description="seconds the access token is valid")


class WsTicket(BaseModel):
    ticket: str
    expires_in: int = Field(description="seconds the ticket can be redeemed, once")


def _utc(ts: datetime) -> datetime:
    return ts if ts.tzinfo is not None else ts.replace(tzinfo=UTC)


#: A stored time, shown with its offset (SQLite keeps none: a time without one is UTC).
UtcTime = Annotated[datetime, AfterValidator(_utc)]


class UserPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    username: str
    email: str | None
    role: Role
    is_active: bool
    created_at: UtcTime
