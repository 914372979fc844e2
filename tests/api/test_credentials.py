"""``/api/v1/credentials`` over real HTTP against the real engine (issue 4, secrets at rest): a
trader stores broker API keys, sees only metadata, and no response, audit row, database byte
or log line carries the secret or the master key. Without a master key ``PUT`` is refused."""

import base64
import json
import logging
from pathlib import Path

import pytest
from sqlalchemy import select

from lts.persistence.credentials import BrokerCredentials, CredentialStore
from lts.persistence.keyring import Keyring, new_key_entry
from lts.persistence.tables import broker_credentials

from ._auth import ADMIN, audit_rows, call, login, running_api, user_with_role

pytestmark = pytest.mark.anyio

KEY = new_key_entry("v1")
BODY = {"api_key": "AKIA-api-key-plain-1234", "api_secret": "api-secret-plain-5678",
        "passphrase": "pass-plain-9012"}
NEW = {"api_key": "AKIA-api-key-plain-new", "api_secret": "api-secret-plain-new"}
PLAIN = [*BODY.values(), *NEW.values()]
PUBLIC_FIELDS = {"broker", "key_version", "created_at", "updated_at"}


def key_texts() -> list[str]:
    encoded = KEY.split(":", 1)[1]
    return [KEY, encoded, repr(base64.b64decode(encoded))]


def assert_no_secret(data: bytes | str, where: str) -> None:
    text = data.decode(errors="replace") if isinstance(data, bytes) else data
    for secret in [*PLAIN, *key_texts()]:
        assert secret not in text, f"{where} carries a secret"


async def test_a_trader_stores_credentials_and_sees_only_metadata(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="sqlalchemy.engine")
    async with running_api(tmp_path, master_key=KEY) as api:
        tina_id, tina = await user_with_role(api, "tina", "trader")
        _, tom = await user_with_role(api, "tom", "trader")
        _, vic = await user_with_role(api, "vic", "viewer")
        replies = []

        reply = await call(api, "PUT", "/api/v1/credentials/binance", BODY, tina)
        assert reply.status == 200, reply.body
        first = reply.json()
        assert set(first) == PUBLIC_FIELDS
        assert (first["broker"], first["key_version"]) == ("binance", "v1")
        replies.append(reply)

        replies.append(reply := await call(api, "PUT", "/api/v1/credentials/binance", NEW, tina))
        assert reply.status == 200, reply.body
        assert reply.json()["created_at"] == first["created_at"]
        replies.append(reply := await call(api, "PUT", "/api/v1/credentials/kraken", BODY, tina))
        assert reply.status == 200, reply.body

        replies.append(reply := await call(api, "GET", "/api/v1/credentials", token=tina))
        assert reply.status == 200
        assert [c["broker"] for c in reply.json()] == ["binance", "kraken"]
        assert all(set(c) == PUBLIC_FIELDS for c in reply.json())

        # the engine's broker plugins read the plain secret; the database holds only ciphertext
        store = CredentialStore(api.engine.db, Keyring.from_setting(api.engine.settings.master_key))
        assert await store.get(tina_id, "binance") == BrokerCredentials(**NEW)
        assert await store.get(tina_id, "kraken") == BrokerCredentials(**BODY)
        async with api.engine.db.connect() as conn:
            rows = (await conn.execute(select(broker_credentials))).mappings().all()
        assert len(rows) == 2
        for row in rows:
            assert_no_secret(b"".join(bytes(v) if isinstance(v, bytes) else str(v).encode()
                                      for v in row.values()), "a database row")

        # other users see nothing of it and cannot remove it
        replies.append(reply := await call(api, "GET", "/api/v1/credentials", token=tom))
        assert reply.json() == []
        assert (await call(api, "DELETE", "/api/v1/credentials/binance", token=tom)).status == 404
        replies.append(reply := await call(api, "PUT", "/api/v1/credentials/binance", BODY, vic))
        assert reply.status == 403
        assert (await call(api, "GET", "/api/v1/credentials", token=vic)).json() == []

        # refused bodies and names; the answer never echoes what was sent
        for body in ({**BODY, "role": "admin"}, {"api_key": BODY["api_key"]},
                     {**BODY, "api_secret": BODY["api_secret"] * 100}, {**BODY, "api_key": ""}):
            replies.append(reply := await call(api, "PUT", "/api/v1/credentials/binance", body,
                                               tina))
            assert reply.status == 422, reply.body
        for name in ("Binance", "bin:ance", "x" * 65):
            replies.append(reply := await call(api, "PUT", f"/api/v1/credentials/{name}", BODY,
                                               tina))
            assert reply.status == 422, (name, reply.body)
        assert await store.get(tina_id, "binance") == BrokerCredentials(**NEW)

        admin = (await login(api, *ADMIN))["access_token"]
        replies.append(reply := await call(api, "GET", "/api/v1/config", token=admin))
        assert reply.status == 200
        assert reply.json()["settings"]["master_key"] == "**********"
        replies.append(await call(api, "GET", "/openapi.json"))

        assert (await call(api, "DELETE", "/api/v1/credentials/kraken", token=tina)).status == 204
        assert (await call(api, "DELETE", "/api/v1/credentials/kraken", token=tina)).status == 404
        assert [c["broker"] for c in (await call(api, "GET", "/api/v1/credentials",
                                                 token=tina)).json()] == ["binance"]

        puts = await audit_rows(api, "credential.put")
        assert [(r["actor"], r["outcome"]) for r in puts] == [("tina", "success")] * 3
        assert puts[0]["detail"] == {"fields": ["api_key", "api_secret", "passphrase"],
                                     "key_version": "v1"}
        deletes = await audit_rows(api, "credential.delete")
        assert [(r["actor"], r["outcome"]) for r in deletes] == [
            ("tom", "failure"), ("tina", "success"), ("tina", "failure")]
        invalid = await audit_rows(api, "request.invalid")
        audit_text = json.dumps([str(r) for r in [*puts, *deletes, *invalid]])

    for n, reply in enumerate(replies):
        assert_no_secret(reply.body, f"response {n}")
    assert_no_secret(audit_text, "the audit trail")
    assert any(r.name.startswith("sqlalchemy.engine") for r in caplog.records)
    assert_no_secret(caplog.text + "".join(repr(r.args) for r in caplog.records), "the log")


async def test_without_a_master_key_put_is_refused(tmp_path: Path) -> None:
    async with running_api(tmp_path) as api:
        _, tina = await user_with_role(api, "tina", "trader")
        reply = await call(api, "PUT", "/api/v1/credentials/binance", BODY, tina)
        assert reply.status == 409, reply.body
        assert reply.json()["code"] == "conflict"
        assert "secret store is not configured" in reply.json()["detail"]
        assert_no_secret(reply.body, "the 409")
        assert (await call(api, "GET", "/api/v1/credentials", token=tina)).json() == []
        async with api.engine.db.connect() as conn:
            assert (await conn.execute(select(broker_credentials))).all() == []
        [row] = await audit_rows(api, "credential.put")
        assert (row["actor"], row["outcome"], row["detail"]["error"]) == (
            "tina", "failure", "Conflict")
