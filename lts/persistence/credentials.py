"""The broker credential store: each user's API keys per broker, sealed at rest.

Sits between the control API (``PUT/GET/DELETE /api/v1/credentials``), the engine's broker
plugins (the only readers of the plain secret, through :meth:`CredentialStore.get`) and
``python -m lts.engine keys rotate``. Rows of ``broker_credentials`` hold what
:mod:`lts.persistence.keyring` seals: the secret as JSON, encrypted with AES-256-GCM, bound to
``"{user_id}:{broker}"`` and the key version. There is no plain-text mode: without a master key
nothing is written or read (:class:`~lts.errors.ConfigError`), and listing returns metadata only.
"""

import json
import logging
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncEngine

from lts.errors import ConfigError, CredentialError
from lts.persistence.keyring import SETTING, Keyring, Sealed
from lts.persistence.tables import broker_credentials as creds

log = logging.getLogger("lts.credentials")

BROKER_PATTERN = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
ROTATION_BATCH = 200


@dataclass(frozen=True)
class BrokerCredentials:
    """The secret a broker plugin logs in with; its repr shows no value."""

    api_key: str = field(repr=False)
    api_secret: str = field(repr=False)
    passphrase: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class CredentialInfo:
    """What may be shown of a stored credential: never the secret."""

    broker: str
    key_version: str
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class RotationReport:
    key_version: str  # the current version, every readable row is now under it
    rotated: int  # rows re-sealed under key_version
    current: int  # rows that were under key_version already
    unreadable: tuple[int, ...]  # ids of rows that did not open (left unchanged)


def _context(user_id: int, broker: str) -> str:
    return f"{user_id}:{broker}"


def check_broker(broker: str) -> str:
    if not BROKER_PATTERN.fullmatch(broker):
        raise ValueError("a broker name is 1-64 lower-case letters, digits, '_' or '-'")
    return broker


def _encode(secret: BrokerCredentials) -> bytes:
    payload = {"api_key": secret.api_key, "api_secret": secret.api_secret}
    if secret.passphrase is not None:
        payload["passphrase"] = secret.passphrase
    return json.dumps(payload, separators=(",", ":")).encode()


def _decode(plaintext: bytes) -> BrokerCredentials:
    try:
        payload = json.loads(plaintext)
        return BrokerCredentials(str(payload["api_key"]), str(payload["api_secret"]),
                                 None if payload.get("passphrase") is None
                                 else str(payload["passphrase"]))
    except (ValueError, KeyError, TypeError):
        raise CredentialError("a decrypted credential is not a credential payload") from None


def _info(row: Any) -> CredentialInfo:
    return CredentialInfo(row.broker, row.key_version, row.created_at, row.updated_at)


_INFO_COLUMNS = (creds.c.broker, creds.c.key_version, creds.c.created_at, creds.c.updated_at)


class CredentialStore:
    """Credentials of every user, sealed with ``keyring`` (``None``: not configured, so only
    :meth:`list` and :meth:`delete` work)."""

    def __init__(self, db: AsyncEngine, keyring: Keyring | None) -> None:
        self.db = db
        self.keyring = keyring

    def _keys(self) -> Keyring:
        if self.keyring is None:
            raise ConfigError(f"setting {SETTING!r} is not set: the secret store is not "
                              "configured (LTS_MASTER_KEY or its secret file)")
        return self.keyring

    async def put(self, user_id: int, broker: str, secret: BrokerCredentials) -> CredentialInfo:
        """Store (or replace) the user's credential for ``broker``, sealed under the current
        key."""
        sealed = self._keys().seal(_encode(secret), _context(user_id, check_broker(broker)))
        values = {"user_id": user_id, "broker": broker, "key_version": sealed.key_version,
                  "nonce": sealed.nonce, "ciphertext": sealed.ciphertext}
        insert = sqlite_insert if self.db.dialect.name == "sqlite" else pg_insert
        stmt = insert(creds).values(values)
        upsert = stmt.on_conflict_do_update(
            index_elements=[creds.c.user_id, creds.c.broker],
            set_={"key_version": stmt.excluded.key_version, "nonce": stmt.excluded.nonce,
                  "ciphertext": stmt.excluded.ciphertext,
                  "updated_at": func.current_timestamp()},
        ).returning(*_INFO_COLUMNS)
        async with self.db.begin() as conn:
            row = (await conn.execute(upsert)).one()
        log.info("credential of user %d for broker %r stored under key %s", user_id, broker,
                 sealed.key_version)
        return _info(row)

    async def get(self, user_id: int, broker: str) -> BrokerCredentials | None:
        """The plain credential, for the engine's broker plugins only (never for the API);
        ``None`` when there is none; :class:`~lts.errors.CredentialError` when it does not
        open."""
        keyring = self._keys()
        async with self.db.connect() as conn:
            row = (await conn.execute(
                select(creds.c.key_version, creds.c.nonce, creds.c.ciphertext)
                .where(creds.c.user_id == user_id, creds.c.broker == broker))).one_or_none()
        if row is None:
            return None
        sealed = Sealed(row.key_version, bytes(row.nonce), bytes(row.ciphertext))
        try:
            return _decode(keyring.open(sealed, _context(user_id, broker)))
        except CredentialError as exc:
            raise CredentialError(f"credential of user {user_id} for broker {broker!r}: "
                                  f"{exc}") from None

    async def list(self, user_id: int) -> list[CredentialInfo]:
        """Metadata of the user's credentials, by broker name."""
        async with self.db.connect() as conn:
            rows = (await conn.execute(select(*_INFO_COLUMNS).where(creds.c.user_id == user_id)
                                       .order_by(creds.c.broker))).all()
        return [_info(r) for r in rows]

    async def delete(self, user_id: int, broker: str) -> bool:
        """Remove the user's credential for ``broker``; False when there was none."""
        async with self.db.begin() as conn:
            result = await conn.execute(delete(creds).where(creds.c.user_id == user_id,
                                                            creds.c.broker == broker))
        return bool(result.rowcount)

    async def rotate_all(self, batch_size: int = ROTATION_BATCH) -> RotationReport:
        """Re-seal every row not under the current key, ``batch_size`` rows per transaction.
        A row that does not open is left as it is and reported by id. A row changed while its
        batch ran (a new secret was put) is left to that change."""
        keyring = self._keys()
        current = keyring.current_version
        async with self.db.connect() as conn:
            already = int((await conn.execute(select(func.count()).select_from(creds).where(
                creds.c.key_version == current))).scalar_one())
        rotated, unreadable, after = 0, [], 0
        while True:
            async with self.db.begin() as conn:
                rows = (await conn.execute(
                    select(creds.c.id, creds.c.user_id, creds.c.broker, creds.c.key_version,
                           creds.c.nonce, creds.c.ciphertext)
                    .where(creds.c.key_version != current, creds.c.id > after)
                    .order_by(creds.c.id).limit(batch_size))).all()
                for row in rows:
                    context = _context(row.user_id, row.broker)
                    old = Sealed(row.key_version, bytes(row.nonce), bytes(row.ciphertext))
                    try:
                        sealed = keyring.seal(keyring.open(old, context), context)
                    except CredentialError as exc:
                        log.warning("credential row %d (user %d, broker %r) left under key %s: "
                                    "%s", row.id, row.user_id, row.broker, row.key_version, exc)
                        unreadable.append(row.id)
                        continue
                    result = await conn.execute(
                        update(creds).where(creds.c.id == row.id,
                                            creds.c.key_version == old.key_version,
                                            creds.c.nonce == old.nonce)
                        .values(key_version=sealed.key_version, nonce=sealed.nonce,
                                ciphertext=sealed.ciphertext))
                    rotated += result.rowcount
            if len(rows) < batch_size:
                break
            after = rows[-1].id
        log.info("keys rotate: %d credential(s) re-sealed under key %s, %d already under it, "
                 "%d unreadable", rotated, current, already, len(unreadable))
        return RotationReport(current, rotated, already, tuple(unreadable))
