"""Secrets at rest (issue 4): the master keys, the sealed credential store and key rotation, on
SQLite and PostgreSQL. The plain secret and the key never reach the database, a log line or an
error message; a sealed row cannot be altered or moved to another user or broker."""

import base64
import logging
from pathlib import Path

import pytest
from pydantic import SecretStr
from sqlalchemy import delete, insert, select, update
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from lts.errors import ConfigError, CredentialError
from lts.persistence.credentials import BrokerCredentials, CredentialStore
from lts.persistence.db import make_engine
from lts.persistence.keyring import Keyring, new_key_entry, next_version
from lts.persistence.tables import broker_credentials, users
from lts.settings import load_settings

pytestmark = pytest.mark.anyio

V1 = new_key_entry("v1")
V2 = new_key_entry("v2")
V3 = new_key_entry("v3")
SECRET = BrokerCredentials("AKIA-plain-api-key-4711", "plain-api-secret-0815", "plain-pass-42")
PLAIN = (SECRET.api_key, SECRET.api_secret, str(SECRET.passphrase))


def relabelled(entry: str, version: str) -> str:
    """The same key under another version name."""
    return f"{version}:{entry.split(':', 1)[1]}"


def key_texts(*entries: str) -> list[str]:
    """Every form of the key material a leak could take: the entry, its base64, its bytes."""
    out = []
    for entry in entries:
        encoded = entry.split(":", 1)[1]
        out += [entry, encoded, repr(base64.b64decode(encoded))]
    return out


async def make_user(db: AsyncEngine, name: str) -> int:
    async with db.begin() as conn:
        return int((await conn.execute(insert(users).values(
            username=name, password_hash="x").returning(users.c.id))).scalar_one())


async def raw_rows(db: AsyncEngine) -> list[dict[str, object]]:
    async with db.connect() as conn:
        rows = (await conn.execute(select(broker_credentials)
                                   .order_by(broker_credentials.c.id))).mappings().all()
    return [dict(r) for r in rows]


# -- the keyring --------------------------------------------------------------------------------

def test_the_first_entry_seals_and_every_entry_opens_its_version() -> None:
    old = Keyring.parse(V1)
    both = Keyring.parse(f"{V2}, {V1}")
    assert (both.current_version, both.versions) == ("v2", ("v2", "v1"))
    sealed_v1 = old.seal(b"payload", "1:binance")
    assert sealed_v1.key_version == "v1"
    assert both.open(sealed_v1, "1:binance") == b"payload"
    assert both.seal(b"payload", "1:binance").key_version == "v2"
    again = old.seal(b"payload", "1:binance")
    assert again.nonce != sealed_v1.nonce
    assert again.ciphertext != sealed_v1.ciphertext
    assert len(sealed_v1.nonce) == 12
    assert repr(both) == "Keyring(versions=['v2', 'v1'])"
    assert b"payload" not in repr(sealed_v1).encode()


@pytest.mark.parametrize(("text", "message"), [
    ("", "entry 1: expected VERSION:BASE64KEY"),
    ("no-colon-here", "entry 1: expected VERSION:BASE64KEY"),
    (f"{V1},", "entry 2: expected VERSION:BASE64KEY"),
    ("v1:!!not-base64!!", r"entry 1 \(v1\): the key must be 32 random bytes"),
    ("v1:" + base64.b64encode(b"k" * 16).decode(), r"entry 1 \(v1\): the key must be 32"),
    (f"{V1},{relabelled(V2, 'v1')}", "key version 'v1' appears twice"),
    ("bad version:" + V1.split(":")[1], "entry 1: expected VERSION"),
], ids=["empty", "no-colon", "trailing-comma", "not-base64", "short-key", "twice",
        "bad-version"])  # the keys are random: ids keep the collection the same everywhere
def test_a_bad_master_key_is_one_line_naming_the_setting(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as err:
        Keyring.parse(text)
    assert str(err.value).startswith("setting 'master_key'")
    assert "\n" not in str(err.value)
    for part in [*key_texts(V1, V2), "not-base64", "no-colon-here"]:
        assert part not in str(err.value)


def test_openssl_and_url_safe_base64_keys_are_accepted() -> None:
    raw = b"\xfb\xff" * 16  # "+/" in standard base64, "-_" in the URL-safe alphabet
    standard, urlsafe = base64.b64encode(raw).decode(), base64.urlsafe_b64encode(raw).decode()
    assert "+" in standard
    assert "_" in urlsafe
    a, b = Keyring.parse(f"v1:{standard}"), Keyring.parse(f"v1:{urlsafe}")
    assert b.open(a.seal(b"x", "c"), "c") == b"x"


def test_new_entries_and_the_next_version() -> None:
    entry = new_key_entry("v7")
    assert entry.startswith("v7:")
    assert len(base64.b64decode(entry[3:])) == 32
    assert entry != new_key_entry("v7")
    assert next_version(None) == "v1"
    assert next_version(Keyring.parse(f"{V2},{V1}")) == "v3"
    with pytest.raises(ConfigError, match="key version"):
        new_key_entry("has:colon")


def test_prod_refuses_to_start_without_a_master_key() -> None:
    prod = {"profile": "prod", "auth": {"jwt_secret": "k" * 40}}
    with pytest.raises(ConfigError, match=r"setting 'master_key'.*LTS_MASTER_KEY"):
        load_settings(overrides=prod)
    settings = load_settings(overrides={**prod, "master_key": V1})
    keyring = Keyring.from_setting(settings.master_key)
    assert keyring is not None
    assert keyring.current_version == "v1"
    assert load_settings().master_key is None  # dev: allowed, the store is just unusable
    with pytest.raises(ConfigError, match="setting 'master_key', entry 1") as err:
        load_settings(overrides={"master_key": "v1:short"})
    assert "short" not in str(err.value)


def test_the_master_key_comes_from_a_secret_file(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "LTS_MASTER_KEY").write_text(f"{V2},{V1}\n")
    monkeypatch.setenv("LTS_SECRETS_DIR", str(tmp_path))
    keyring = Keyring.from_setting(load_settings().master_key)
    assert keyring is not None
    assert keyring.versions == ("v2", "v1")


# -- the store ----------------------------------------------------------------------------------

async def test_put_get_list_delete(migrated_engine: AsyncEngine) -> None:
    store = CredentialStore(migrated_engine, Keyring.parse(V1))
    alice, bob = await make_user(migrated_engine, "alice"), await make_user(migrated_engine, "bob")
    info = await store.put(alice, "binance", SECRET)
    assert (info.broker, info.key_version) == ("binance", "v1")
    assert info.created_at is not None
    assert info.updated_at is not None
    await store.put(alice, "kraken", BrokerCredentials("k2", "s2"))
    assert await store.get(alice, "binance") == SECRET
    assert await store.get(alice, "kraken") == BrokerCredentials("k2", "s2", None)
    assert await store.get(bob, "binance") is None
    assert [i.broker for i in await store.list(alice)] == ["binance", "kraken"]
    assert await store.list(bob) == []

    replaced = BrokerCredentials("new-key", "new-secret")
    again = await store.put(alice, "binance", replaced)
    assert again.created_at == info.created_at
    assert await store.get(alice, "binance") == replaced
    assert len(await raw_rows(migrated_engine)) == 2  # an upsert, not a second row

    assert await store.delete(alice, "kraken") is True
    assert await store.delete(alice, "kraken") is False
    assert [i.broker for i in await store.list(alice)] == ["binance"]
    assert "new-secret" not in repr(replaced)


async def test_deleting_a_user_deletes_their_credentials(migrated_engine: AsyncEngine) -> None:
    store = CredentialStore(migrated_engine, Keyring.parse(V1))
    alice = await make_user(migrated_engine, "alice")
    await store.put(alice, "binance", SECRET)
    async with migrated_engine.begin() as conn:
        await conn.execute(delete(users).where(users.c.id == alice))
    assert await raw_rows(migrated_engine) == []


async def test_no_master_key_no_store(migrated_engine: AsyncEngine) -> None:
    """There is no plain-text fallback: without keys nothing is written or read."""
    store = CredentialStore(migrated_engine, None)
    alice = await make_user(migrated_engine, "alice")
    with pytest.raises(ConfigError, match="secret store is not configured"):
        await store.put(alice, "binance", SECRET)
    with pytest.raises(ConfigError, match="secret store is not configured"):
        await store.get(alice, "binance")
    assert await raw_rows(migrated_engine) == []
    assert await store.list(alice) == []
    assert await store.delete(alice, "binance") is False


async def test_a_broker_name_is_checked(migrated_engine: AsyncEngine) -> None:
    store = CredentialStore(migrated_engine, Keyring.parse(V1))
    alice = await make_user(migrated_engine, "alice")
    with pytest.raises(ValueError, match="broker name"):
        await store.put(alice, "bin:ance", SECRET)


async def test_the_database_holds_no_plain_text(migrated_engine: AsyncEngine, backend: str,
                                                migrated_url: str) -> None:
    store = CredentialStore(migrated_engine, Keyring.parse(V1))
    alice = await make_user(migrated_engine, "alice")
    await store.put(alice, "binance", SECRET)
    [row] = await raw_rows(migrated_engine)
    stored = b"".join(bytes(v) if isinstance(v, bytes | memoryview) else str(v).encode()
                      for v in row.values())
    assert row["key_version"] == "v1"
    for text in [*PLAIN, *key_texts(V1)]:
        assert text.encode() not in stored
    assert SECRET.api_key.encode() not in bytes(row["ciphertext"])  # type: ignore[arg-type]
    if backend == "sqlite":  # and not in any byte of the database files
        await migrated_engine.dispose()
        path = Path(str(make_url(migrated_url).database))
        files = b"".join(p.read_bytes() for p in path.parent.glob(path.name + "*"))
        assert b"binance" in files  # the files were read: the broker name is plain metadata
        for text in PLAIN:
            assert text.encode() not in files


async def test_an_altered_or_moved_row_does_not_open(migrated_engine: AsyncEngine) -> None:
    store = CredentialStore(migrated_engine, Keyring.parse(V1))
    alice, mallory = (await make_user(migrated_engine, "alice"),
                      await make_user(migrated_engine, "mallory"))
    await store.put(alice, "binance", SECRET)
    [row] = await raw_rows(migrated_engine)
    table = broker_credentials

    async def change(**values: object) -> None:
        async with migrated_engine.begin() as conn:
            await conn.execute(update(table).where(table.c.id == row["id"]).values(**values))

    flipped = bytearray(row["ciphertext"])  # type: ignore[arg-type]
    flipped[0] ^= 1
    await change(ciphertext=bytes(flipped))
    with pytest.raises(CredentialError, match="altered, or it belongs to another") as err:
        await store.get(alice, "binance")
    assert "user" in str(err.value)
    assert "binance" in str(err.value)

    await change(ciphertext=row["ciphertext"], user_id=mallory)  # moved to another user
    with pytest.raises(CredentialError, match="altered, or it belongs to another"):
        await store.get(mallory, "binance")

    await change(user_id=alice, broker="kraken")  # moved to another broker
    with pytest.raises(CredentialError, match="altered, or it belongs to another"):
        await store.get(alice, "kraken")

    await change(broker="binance", key_version="v2")  # relabelled: v2 is not configured
    with pytest.raises(CredentialError, match="key version 'v2' is not in setting"):
        await store.get(alice, "binance")
    two = CredentialStore(migrated_engine, Keyring.parse(f"{relabelled(V1, 'v2')},{V1}"))
    with pytest.raises(CredentialError, match="altered"):  # same key, other version label
        await two.get(alice, "binance")

    await change(key_version="v1")
    assert await store.get(alice, "binance") == SECRET  # the original row opens again


async def test_rotation_reseals_every_row_under_the_current_key(
        migrated_engine: AsyncEngine) -> None:
    old = CredentialStore(migrated_engine, Keyring.parse(V1))
    ids = [await make_user(migrated_engine, f"user{n}") for n in range(3)]
    secrets = {uid: BrokerCredentials(f"key-{uid}", f"secret-{uid}") for uid in ids}
    for uid, secret in secrets.items():
        await old.put(uid, "binance", secret)
        await old.put(uid, "kraken", secret)
    before = await raw_rows(migrated_engine)

    report = await CredentialStore(migrated_engine, Keyring.parse(f"{V2},{V1}")).rotate_all(
        batch_size=4)  # 6 rows: two batches
    assert (report.key_version, report.rotated, report.current, report.unreadable) == (
        "v2", 6, 0, ())
    after = await raw_rows(migrated_engine)
    assert {r["key_version"] for r in after} == {"v2"}
    assert all(a["nonce"] != b["nonce"] for a, b in zip(after, before, strict=True))
    assert [(r["created_at"], r["updated_at"]) for r in after] == [
        (r["created_at"], r["updated_at"]) for r in before]  # the secrets did not change

    only_v2 = CredentialStore(migrated_engine, Keyring.parse(V2))
    for uid, secret in secrets.items():
        assert await only_v2.get(uid, "binance") == secret
        assert await only_v2.get(uid, "kraken") == secret
    with pytest.raises(CredentialError, match="key version 'v2' is not in setting"):
        await old.get(ids[0], "binance")

    again = await only_v2.rotate_all()
    assert (again.rotated, again.current, again.unreadable) == (0, 6, ())


async def test_rotation_reports_rows_it_cannot_open(migrated_engine: AsyncEngine) -> None:
    old = CredentialStore(migrated_engine, Keyring.parse(V1))
    alice = await make_user(migrated_engine, "alice")
    await old.put(alice, "binance", SECRET)
    await old.put(alice, "kraken", SECRET)
    [first, second] = await raw_rows(migrated_engine)
    async with migrated_engine.begin() as conn:
        await conn.execute(update(broker_credentials).where(
            broker_credentials.c.id == second["id"]).values(ciphertext=b"\x00" * 40))

    report = await CredentialStore(migrated_engine, Keyring.parse(f"{V2},{V1}")).rotate_all(
        batch_size=1)
    assert (report.rotated, report.unreadable) == (1, (second["id"],))
    rows = {r["id"]: r for r in await raw_rows(migrated_engine)}
    assert rows[first["id"]]["key_version"] == "v2"
    assert rows[second["id"]]["key_version"] == "v1"  # left as it was
    assert rows[second["id"]]["ciphertext"] == b"\x00" * 40

    missing = await CredentialStore(migrated_engine, Keyring.parse(V2)).rotate_all()
    assert missing.unreadable == (second["id"],)  # v1 no longer configured


async def test_no_log_line_or_error_carries_a_secret_or_a_key(
        migrated_url: str, caplog: pytest.LogCaptureFixture) -> None:
    """Every logger at DEBUG, SQLAlchemy's statement log with its parameters included (the
    engine is made after the level is set: SQLAlchemy reads it when it connects; at DEBUG its
    log has the result rows too)."""
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="sqlalchemy.engine")  # "sqlalchemy" is at WARNING
    db = make_engine(migrated_url)
    try:
        store = CredentialStore(db, Keyring.parse(V1))
        alice, mallory = await make_user(db, "alice"), await make_user(db, "mallory")
        await store.put(alice, "binance", SECRET)
        assert await store.get(alice, "binance") == SECRET
        rotated = CredentialStore(db, Keyring.parse(f"{V2},{V1}"))
        assert (await rotated.rotate_all()).rotated == 1
        assert await rotated.get(alice, "binance") == SECRET
        async with db.begin() as conn:
            await conn.execute(update(broker_credentials).values(user_id=mallory))
        errors: list[str] = []
        for probe in (rotated.get(mallory, "binance"), store.get(mallory, "binance")):
            with pytest.raises(CredentialError) as err:
                await probe
            errors.append(str(err.value))
        report = await CredentialStore(db, Keyring.parse(f"{V3},{V2}")).rotate_all()
        assert len(report.unreadable) == 1  # the moved row: logged by id
    finally:
        await db.dispose()

    logged = caplog.text + "".join(repr(r.args) for r in caplog.records)
    assert any(r.name.startswith("sqlalchemy.engine") for r in caplog.records), \
        "the statement log was not captured: this test would prove nothing"
    assert "left under key" in caplog.text
    for text in [*PLAIN, *key_texts(V1, V2, V3)]:
        assert text not in logged
        assert all(text not in e for e in errors)


def test_a_settings_master_key_stays_redacted() -> None:
    settings = load_settings(overrides={"master_key": V1})
    assert isinstance(settings.master_key, SecretStr)
    for text in key_texts(V1):
        assert text not in repr(settings)
        assert text not in str(settings.model_dump())
