"""The operator's access, as an operator has it (subprocesses): ``users reset-password`` from
standard input, an environment variable and a terminal (a pseudo-terminal here), the new
password then logging in through the real API; one ``lts: error:`` line and exit 2 for an
unknown user, a weak password or two that differ; every attempt in the audit trail. At start:
``LTS_ADMIN_PASSWORD`` under the API's strength rule, and the dev profile's tokens signed with a
secret made for its data directory, never the placeholder in the source."""

import json
import os
import select
import socket
import stat
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import jwt
import pytest
from sqlalchemy.engine import make_url

from lts.plugins.aaa.passwords import verify_password
from lts.settings import DEV_JWT_SECRET
from lts.settings_jwt import JWT_SECRET_FILE
from tests.conftest import PG_URL

from ._support import ADMIN_PASSWORD, START_TIMEOUT, Db, Launcher, sqlite_url, wait_until

NEW_PASSWORD = "N3w-admin-pass"


def _users(launcher: Launcher, url: str, *args: str, stdin: str = "",
           env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "lts.engine", "users", "reset-password", *args, "--db-url", url]
    return subprocess.run(argv, cwd=launcher.workdir, env={**launcher.env(), **(env or {})},
                          input=stdin, capture_output=True, text=True, timeout=60, check=False)


def _error(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 2, done.stderr
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("lts: error: users reset-password: "), lines[0]
    return lines[0].removeprefix("lts: error: users reset-password: ")


@pytest.fixture
def made(launcher: Launcher, db_path: Path) -> str:
    """A database where an engine ran once (the admin user made with ADMIN_PASSWORD)."""
    url = sqlite_url(db_path)
    first = launcher.run("--db-url", url, "--no-demo", "--run-for", "0.5")
    assert first.returncode == 0, first.tail()
    return url


def _hash(db: Db, username: str) -> str:
    return str(db.scalar("SELECT password_hash FROM users WHERE username = ?", (username,)))


def _audit(db: Db) -> list[tuple[str, str, str]]:
    rows = db.rows("SELECT actor, target, outcome, detail FROM audit_logs "
                   "WHERE action = 'user.reset_password' ORDER BY id")
    for row in rows:
        assert row[0].startswith("cli"), row
        assert json.loads(row[3])["via"] == "cli"
    return [(r[1], r[2], json.loads(r[3]).get("reason", "")) for r in rows]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _login_request(port: int, username: str, password: str) -> urllib.request.Request:
    body = json.dumps({"username": username, "password": password}).encode()
    return urllib.request.Request(f"http://127.0.0.1:{port}/api/v1/auth/login", data=body,
                                  headers={"content-type": "application/json"}, method="POST")


def _token(port: int, username: str, password: str) -> str:
    with urllib.request.urlopen(_login_request(port, username, password), timeout=5) as reply:
        return str(json.loads(reply.read())["access_token"])


def _login(port: int, username: str, password: str) -> int:
    req = _login_request(port, username, password)
    try:
        with urllib.request.urlopen(req, timeout=5) as reply:
            return int(reply.status)
    except urllib.error.HTTPError as err:
        return err.code
    except OSError:
        return 0  # not listening yet


def test_reset_from_stdin_then_the_admin_logs_in_with_it(launcher: Launcher, made: str,
                                                         db: Db) -> None:
    done = _users(launcher, made, "admin", stdin=NEW_PASSWORD + "\n")
    assert done.returncode == 0, done.stderr
    assert done.stdout == ("users reset-password: new password set for 'admin' (id 1); "
                           "0 open session(s) ended\n")
    assert verify_password(NEW_PASSWORD, _hash(db, "admin"))
    assert _audit(db) == [("user:1", "success", "")]

    port = _free_port()
    engine = launcher.start("--db-url", made, "--no-demo", "--set", f"api.port={port}")
    wait_until(lambda: _login(port, "admin", NEW_PASSWORD) == 200, timeout=START_TIMEOUT,
               what="the admin to log in with the new password", run=engine)
    assert _login(port, "admin", ADMIN_PASSWORD) == 401


def test_reset_on_either_store(launcher: Launcher, migrated_url: str) -> None:
    first = launcher.run("--db-url", migrated_url, "--no-demo", "--run-for", "0.5")
    assert first.returncode == 0, first.tail()
    done = _users(launcher, migrated_url, "admin", stdin=NEW_PASSWORD + "\n")
    assert done.returncode == 0, done.stderr
    db = Db(migrated_url)
    assert verify_password(NEW_PASSWORD, _hash(db, "admin"))
    assert _audit(db) == [("user:1", "success", "")]


def test_reset_from_an_environment_variable(launcher: Launcher, made: str, db: Db) -> None:
    done = _users(launcher, made, "admin", "--password-env", "NEW_PW",
                  env={"NEW_PW": NEW_PASSWORD})
    assert done.returncode == 0, done.stderr
    assert verify_password(NEW_PASSWORD, _hash(db, "admin"))
    assert _error(_users(launcher, made, "admin", "--password-env", "UNSET_PW")) == \
        "--password-env UNSET_PW: the variable is not set or empty"


def test_unknown_users_and_weak_passwords_are_one_line_and_exit_2(launcher: Launcher,
                                                                   made: str, db: Db) -> None:
    before = _hash(db, "admin")
    assert _error(_users(launcher, made, "nobody", stdin=NEW_PASSWORD + "\n")) == \
        "no user 'nobody'"
    for weak, why in (("short1A!", "at least 10 characters"),
                      ("alllowercaseletters", "needs three of: lower case, upper case, digits, "
                                              "other characters"),
                      ("Aa1!" * 19, "at most 72 UTF-8 bytes")):
        assert _error(_users(launcher, made, "admin", stdin=weak + "\n")) == \
            f"the new password is too weak: {why}"
    assert _hash(db, "admin") == before
    assert _audit(db) == [("user:nobody", "failure", "unknown user")] + \
        [("user:admin", "failure", "weak password")] * 3
    assert _error(_users(launcher, made, "admin", stdin="")).startswith(
        "no new password on standard input")
    missing = sqlite_url(launcher.workdir / "elsewhere.db")
    assert _error(_users(launcher, missing, "admin", stdin=NEW_PASSWORD + "\n")).startswith(
        "no database at ")


def _on_a_terminal(launcher: Launcher, url: str, typed: list[tuple[str, str]]) -> tuple[int, str]:
    """The command with a pseudo-terminal as its standard input; each ``(prompt, line)`` of
    ``typed`` answers a prompt once it is shown (the prompt flushes what was typed before).
    (exit status, stderr)"""
    main, side = os.openpty()
    seen = b""
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "lts.engine", "users", "reset-password", "admin", "--db-url",
             url], cwd=launcher.workdir, env=launcher.env(), stdin=side,
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
        os.close(side)
        assert proc.stderr is not None
        deadline = time.monotonic() + 60
        for prompt, line in typed:
            while prompt.encode() not in seen:
                ready, _, _ = select.select([proc.stderr], [], [], 1.0)
                assert time.monotonic() < deadline, f"no prompt {prompt!r}: {seen!r}"
                if ready:
                    chunk = os.read(proc.stderr.fileno(), 4096)
                    assert chunk, f"stderr closed before {prompt!r}: {seen!r}"
                    seen += chunk
            seen = seen.replace(prompt.encode(), b"", 1)
            os.write(main, (line + "\n").encode())
        _, rest = proc.communicate(timeout=60)
    finally:
        os.close(main)
    return proc.returncode, (seen + (rest or b"")).decode()


FIRST, AGAIN = "New password for 'admin': ", "Again: "


@pytest.mark.skipif(sys.platform == "win32", reason="a POSIX pseudo-terminal")
def test_a_terminal_is_asked_twice(launcher: Launcher, made: str, db: Db) -> None:
    code, err = _on_a_terminal(launcher, made, [(FIRST, NEW_PASSWORD),
                                                (AGAIN, NEW_PASSWORD + "x")])
    assert code == 2, err
    assert err.splitlines()[-1] == \
        "lts: error: users reset-password: the two passwords differ; nothing changed"
    assert verify_password(ADMIN_PASSWORD, _hash(db, "admin"))
    code, err = _on_a_terminal(launcher, made, [(FIRST, NEW_PASSWORD), (AGAIN, NEW_PASSWORD)])
    assert code == 0, err
    assert verify_password(NEW_PASSWORD, _hash(db, "admin"))


# -- the start's secrets ------------------------------------------------------------------------

def _engine(launcher: Launcher, *args: str,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "lts.engine", *args], cwd=launcher.workdir,
                          env={**launcher.env(), **(env or {})}, capture_output=True, text=True,
                          timeout=60, check=False)


@pytest.mark.parametrize(("weak", "why"), [
    ("admin", "at least 10 characters"),
    ("password-password", "needs three of: lower case, upper case, digits, other characters")])
def test_a_weak_admin_password_is_refused_before_anything_is_made(
        launcher: Launcher, weak: str, why: str) -> None:
    done = _engine(launcher, "--no-demo", "--run-for", "1", env={"LTS_ADMIN_PASSWORD": weak})
    assert done.returncode == 2, done.stderr
    assert done.stderr == f"lts: error: setting 'admin_password' (LTS_ADMIN_PASSWORD): {why}\n"
    assert list(launcher.workdir.iterdir()) == []


def test_the_dev_profile_signs_tokens_with_a_secret_of_its_own(launcher: Launcher,
                                                               db_path: Path) -> None:
    """No token is signed with the placeholder in the source code: a secret is made beside
    the database (0600) at the first start and kept for the next ones."""
    url = sqlite_url(db_path)
    first = launcher.run("--db-url", url, "--no-demo", "--run-for", "0.5")
    assert first.returncode == 0, first.tail()
    kept = db_path.parent / JWT_SECRET_FILE
    secret = kept.read_text().strip()
    assert len(secret) >= 32
    assert secret != DEV_JWT_SECRET
    if sys.platform != "win32":
        assert stat.S_IMODE(kept.stat().st_mode) == 0o600

    port = _free_port()
    engine = launcher.start("--db-url", url, "--no-demo", "--set", f"api.port={port}")
    wait_until(lambda: _login(port, "admin", ADMIN_PASSWORD) == 200, timeout=START_TIMEOUT,
               what="the API to let the admin in", run=engine)
    token = _token(port, "admin", ADMIN_PASSWORD)
    assert jwt.decode(token, secret, algorithms=["HS256"])["sid"]
    with pytest.raises(jwt.InvalidSignatureError):
        jwt.decode(token, DEV_JWT_SECRET, algorithms=["HS256"])
    assert kept.read_text().strip() == secret  # reused, not made again


def test_a_configured_jwt_secret_makes_no_file(launcher: Launcher, db_path: Path) -> None:
    done = _engine(launcher, "--db-url", sqlite_url(db_path), "--no-demo", "--run-for", "0.5",
                   "--set", "auth.jwt_secret=" + "k" * 40)
    assert done.returncode == 0, done.stderr
    assert not (db_path.parent / JWT_SECRET_FILE).exists()


# -- a database the engine cannot start on ------------------------------------------------------

def test_an_unreachable_postgresql_is_one_line_and_exit_2(launcher: Launcher) -> None:
    port = _free_port()  # nothing listens there
    url = f"postgresql+asyncpg://bob:s3cret-pw@127.0.0.1:{port}/test"
    done = _engine(launcher, "--db-url", url, "--no-demo", "--run-for", "1")
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith(f"lts: error: database postgresql+asyncpg://bob:***@127.0.0.1:"
                                  f"{port}/test: cannot connect: ")
    assert "Connection refused" in done.stderr
    assert len(done.stderr.splitlines()) == 1, done.stderr
    assert "s3cret-pw" not in done.stderr


@pytest.mark.postgres
@pytest.mark.parametrize(("change", "cause"), [
    ({"username": "no_such_role"}, 'role "no_such_role" does not exist'),
    ({"database": "no_such_database"}, 'database "no_such_database" does not exist')])
def test_a_postgresql_that_refuses_is_one_line_and_exit_2(
        launcher: Launcher, change: dict[str, str], cause: str) -> None:
    url = make_url(PG_URL).set(**change, password="pw-not-shown")  # type: ignore[arg-type]
    done = _engine(launcher, "--db-url", url.render_as_string(hide_password=False), "--no-demo",
                   "--run-for", "1")
    assert done.returncode == 2, done.stderr
    assert done.stderr == (f"lts: error: database {url.render_as_string(hide_password=True)}: "
                           f"refused: {cause}\n")


@pytest.mark.parametrize("kind", ["a directory", "not a database"])
def test_a_sqlite_path_that_is_no_database_is_one_line_and_exit_2(launcher: Launcher,
                                                                   kind: str) -> None:
    path = launcher.workdir / "lts.db"
    if kind == "a directory":
        path.mkdir()
    else:
        path.write_text("a note, not a database\n")
    done = _engine(launcher, "--db-url", sqlite_url(path), "--no-demo", "--run-for", "1")
    assert done.returncode == 2, done.stderr
    cause = "unable to open database file" if kind == "a directory" else "file is not a database"
    assert done.stderr == f"lts: error: database {sqlite_url(path)}: cannot open: {cause}\n"
