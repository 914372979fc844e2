"""``python -m lts.engine keys new|rotate`` as an operator runs them (a subprocess, the master key
in its environment or in a secret file), on SQLite and PostgreSQL; and the ``prod`` profile
refusing to start without a master key."""

import base64
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import insert, select

from lts.persistence.credentials import BrokerCredentials, CredentialStore
from lts.persistence.db import make_engine
from lts.persistence.keyring import Keyring, new_key_entry
from lts.persistence.tables import broker_credentials, users

from ._support import Launcher, sqlite_url

V1, V2 = new_key_entry("v1"), new_key_entry("v2")
USERS = 3
BROKERS = ("binance", "kraken")
RunInThread = Callable[[Callable[[], Any]], Any]


def secret_of(user_id: int, broker: str) -> BrokerCredentials:
    return BrokerCredentials(f"key-{user_id}-{broker}", f"secret-{user_id}-{broker}")


def cli(launcher: Launcher, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """One ``python -m lts.engine ...`` run to its end (bounded), stdout and stderr as text."""
    return subprocess.run([sys.executable, "-m", "lts.engine", *args], cwd=launcher.workdir,
                          env={**launcher.env(), **env}, stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=60, check=False)


def assert_no_key(proc: subprocess.CompletedProcess[str], *entries: str) -> None:
    for entry in entries:
        encoded = entry.split(":", 1)[1]
        for text in (proc.stdout, proc.stderr):
            assert encoded not in text
            assert "Traceback" not in text


def one_error_line(proc: subprocess.CompletedProcess[str], *, warnings: int = 0) -> str:
    """Status 2 and one ``lts: error:`` line, besides ``warnings`` WARNING log lines (written
    by the log's own thread, so in any order with the error line)."""
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    errors = [line for line in lines if line.startswith("lts: error: ")]
    assert len(errors) == 1, proc.stderr
    logged = [line for line in lines if line not in errors]
    assert len(logged) == warnings, proc.stderr
    assert all(" WARNING " in line for line in logged), proc.stderr
    return errors[0]


def seed(url: str, run_in_thread: RunInThread) -> list[int]:
    """USERS users with a credential per broker, sealed under v1."""
    async def work() -> list[int]:
        db = make_engine(url)
        try:
            async with db.begin() as conn:
                ids = [int((await conn.execute(insert(users).values(
                    username=f"user{n}", password_hash="x").returning(users.c.id))).scalar_one())
                    for n in range(USERS)]
            store = CredentialStore(db, Keyring.parse(V1))
            for uid in ids:
                for broker in BROKERS:
                    await store.put(uid, broker, secret_of(uid, broker))
            return ids
        finally:
            await db.dispose()

    ids: list[int] = run_in_thread(work)
    return ids


def stored(url: str, keyring: str, run_in_thread: RunInThread,
           ids: list[int]) -> tuple[set[str], dict[tuple[int, str], BrokerCredentials | None]]:
    """The key versions of the rows, and every credential opened with ``keyring`` only."""
    async def work() -> tuple[set[str], dict[tuple[int, str], BrokerCredentials | None]]:
        db = make_engine(url)
        try:
            async with db.connect() as conn:
                versions = set((await conn.execute(
                    select(broker_credentials.c.key_version))).scalars())
            store = CredentialStore(db, Keyring.parse(keyring))
            return versions, {(uid, b): await store.get(uid, b) for uid in ids for b in BROKERS}
        finally:
            await db.dispose()

    result: tuple[set[str], dict[tuple[int, str], BrokerCredentials | None]] = \
        run_in_thread(work)
    return result


def test_keys_rotate_reseals_every_row_under_the_new_key(
        migrated_url: str, launcher: Launcher, run_in_thread: RunInThread) -> None:
    ids = seed(migrated_url, run_in_thread)
    rows = USERS * len(BROKERS)
    env = {"LTS_MASTER_KEY": f"{V2},{V1}"}
    proc = cli(launcher, env, "keys", "rotate", "--db-url", migrated_url, "--batch-size", "4")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == (f"keys rotate: {rows} re-encrypted under v2, 0 already under "
                                   "it, 0 unreadable")
    assert_no_key(proc, V1, V2)

    versions, opened = stored(migrated_url, V2, run_in_thread, ids)  # v2 alone opens them
    assert versions == {"v2"}
    assert opened == {(uid, b): secret_of(uid, b) for uid in ids for b in BROKERS}
    for secret in opened.values():
        assert secret is not None
        assert secret.api_secret not in proc.stdout + proc.stderr

    again = cli(launcher, {"LTS_MASTER_KEY": V2}, "keys", "rotate", "--db-url", migrated_url)
    assert again.returncode == 0, again.stderr
    assert again.stdout.strip() == (f"keys rotate: 0 re-encrypted under v2, {rows} already "
                                    "under it, 0 unreadable")


def test_rows_under_a_key_no_longer_configured_are_reported(
        migrated_url: str, launcher: Launcher, run_in_thread: RunInThread) -> None:
    ids = seed(migrated_url, run_in_thread)
    proc = cli(launcher, {"LTS_MASTER_KEY": V2}, "keys", "rotate", "--db-url", migrated_url)
    line = one_error_line(proc, warnings=USERS * len(BROKERS))  # a warning per row
    assert f"(user {ids[0]}, broker 'binance') left under key v1" in proc.stderr
    assert f"{USERS * len(BROKERS)} credential row(s) do not decrypt" in line
    assert "add their key version to 'master_key'" in line
    assert proc.stdout.strip().endswith(f"{USERS * len(BROKERS)} unreadable")
    versions, opened = stored(migrated_url, V1, run_in_thread, ids)
    assert versions == {"v1"}  # nothing was touched
    assert all(secret is not None for secret in opened.values())


@pytest.mark.parametrize(("master_key", "message"), [
    (None, "setting 'master_key' is not set"),
    (f"v2:{'x' * 44},{V1}", "setting 'master_key', entry 1 (v2): the key must be 32"),
    (V1.split(":", 1)[1], "setting 'master_key', entry 1: expected VERSION:BASE64KEY"),
], ids=["missing", "short-key", "no-version"])  # ids: no key material in the test names
def test_a_missing_or_bad_master_key_is_one_line(launcher: Launcher, tmp_path: Path,
                                                 master_key: str | None, message: str) -> None:
    env = {} if master_key is None else {"LTS_MASTER_KEY": master_key}
    proc = cli(launcher, env, "keys", "rotate", "--db-url", sqlite_url(tmp_path / "lts.db"))
    assert message in one_error_line(proc)
    assert_no_key(proc, V1)
    assert "x" * 44 not in proc.stderr


def test_rotate_refuses_a_schema_older_than_the_code(db_url: str, launcher: Launcher) -> None:
    proc = cli(launcher, {"LTS_MASTER_KEY": V1}, "keys", "rotate", "--db-url", db_url)
    assert "`python -m lts.engine db upgrade`" in one_error_line(proc)


def test_keys_new_prints_the_next_entry_and_nothing_else(launcher: Launcher,
                                                        tmp_path: Path) -> None:
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "LTS_MASTER_KEY").write_text(f"{V2},{V1}\n")
    proc = cli(launcher, {"LTS_SECRETS_DIR": str(secrets)}, "keys", "new")
    assert proc.returncode == 0, proc.stderr
    entry = proc.stdout.strip()
    assert entry.startswith("v3:")
    assert len(base64.b64decode(entry[3:])) == 32
    assert Keyring.parse(f"{entry},{V2},{V1}").current_version == "v3"
    assert "keys rotate" in proc.stderr
    assert_no_key(proc, V1, V2)

    # a prod deployment without a key yet gets its first one
    first = cli(launcher, {"LTS_PROFILE": "prod"}, "keys", "new")
    assert first.returncode == 0, first.stderr
    assert first.stdout.startswith("v1:")


def test_keys_new_takes_a_version_name(launcher: Launcher) -> None:
    named = cli(launcher, {}, "keys", "new", "--version", "2027-01")
    assert named.stdout.startswith("2027-01:")
    broken = {"LTS_MASTER_KEY": "v1:short"}  # the next version cannot be known: name it
    assert "keys new --version NAME" in one_error_line(cli(launcher, broken, "keys", "new"))
    assert cli(launcher, broken, "keys", "new", "--version", "v2").stdout.startswith("v2:")
    assert "key version 'a:b'" in one_error_line(cli(launcher, {}, "keys", "new", "--version",
                                                      "a:b"))
    assert "invalid choice" in one_error_line(cli(launcher, {}, "keys", "show"))


def test_prod_refuses_to_start_without_a_master_key(launcher: Launcher, tmp_path: Path) -> None:
    prod = {"LTS_PROFILE": "prod", "LTS_AUTH__JWT_SECRET": "j" * 40}
    url = sqlite_url(tmp_path / "lts.db")
    proc = cli(launcher, prod, "--no-demo", "--run-for", "1", "--db-url", url)
    assert "setting 'master_key': the prod profile needs it" in one_error_line(proc)
    assert not (tmp_path / "lts.db").exists()  # refused before anything was touched
    started = cli(launcher, {**prod, "LTS_MASTER_KEY": V1}, "--no-demo", "--run-for", "1",
                   "--db-url", url)
    assert started.returncode == 0, started.stderr
    # the prod profile logs JSON lines, for a log shipper
    lines = [json.loads(line) for line in started.stderr.splitlines() if line.strip()]
    assert lines
    assert all({"ts", "level", "logger", "message"} <= set(line) for line in lines)
    assert any(line["message"] == "engine stopped" for line in lines)
