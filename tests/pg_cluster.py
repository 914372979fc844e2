"""A throw-away PostgreSQL server for tests that stop and start the database (outages).

The shared server on 5432 serves every test worker at once, so a test that needs the database
to go away gets a private cluster instead: :class:`PgCluster` runs ``initdb`` with the Debian
binaries (``/usr/lib/postgresql/<version>/bin``, the newest found; ``LTS_TEST_PG_BIN`` names
another directory) in a temporary directory, and starts a server listening only on 127.0.0.1,
on a free port, with trust authentication, its socket in that directory and ``fsync`` off (the
data is thrown away). ``initdb`` refuses to run as root: as root, every server command runs as
the ``postgres`` user (``runuser``) and the directory is given to that user.

:meth:`~PgCluster.stop` (fast shutdown: sessions are terminated, as in a crash of the network or
a restart) and :meth:`~PgCluster.start` may be called any number of times; the port stays the
same, so a client's URL stays valid. :meth:`~PgCluster.close` stops the server (immediate mode)
and removes the directory; it is idempotent, runs at interpreter exit if nobody called it, and
the fixture calls it whatever the test did.

The ``pg_cluster`` fixture (registered in ``tests/conftest.py``) yields a started cluster; it
skips the test when the binaries are not installed.
"""

from __future__ import annotations

import atexit
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

__all__ = ["PgCluster", "find_bin_dir", "pg_cluster"]

_OWNER = "postgres"
_TIMEOUT_S = 60  # pg_ctl's wait and every command's own limit


def find_bin_dir() -> Path | None:
    """The directory of the newest installed PostgreSQL server binaries, or None."""
    override = os.environ.get("LTS_TEST_PG_BIN")
    if override:
        return Path(override)
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"),
                   key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit()
                   else 0)
    return found[-1].parent if found else None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PgCluster:
    """One private PostgreSQL server (see the module docstring)."""

    def __init__(self, bin_dir: Path | None = None) -> None:
        found = bin_dir or find_bin_dir()
        if found is None or not (found / "initdb").is_file():
            raise FileNotFoundError("no PostgreSQL server binaries (initdb, pg_ctl) found")
        self._bin = found
        self._as_owner = os.geteuid() == 0
        self._dir = Path(tempfile.mkdtemp(prefix="lts-pg-"))
        self._data = self._dir / "data"
        self._log = self._dir / "server.log"
        self._port = 0
        self._running = False
        self._closed = False
        atexit.register(self.close)
        try:
            if self._as_owner:
                owner = pwd.getpwnam(_OWNER)
                os.chown(self._dir, owner.pw_uid, owner.pw_gid)
            self._initdb()
            self._start_on_a_free_port()
        except BaseException:
            self.close()
            raise

    # -- what a test uses ------------------------------------------------------------------

    @property
    def port(self) -> int:
        return self._port

    @property
    def running(self) -> bool:
        return self._running

    @property
    def url(self) -> str:
        """The SQLAlchemy URL of the ``postgres`` database (asyncpg)."""
        return self.url_of("postgres")

    def url_of(self, database: str) -> str:
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self._port}/{database}"

    def create_database(self, name: str) -> str:
        """Create the database ``name`` (a plain identifier); its SQLAlchemy URL."""
        if not name.isidentifier():
            raise ValueError(f"not a plain identifier: {name!r}")
        self._run([str(self._bin / "psql"), "-X", "-q", "-h", "127.0.0.1", "-p", str(self._port),
                   "-U", "postgres", "-d", "postgres", "-c", f'CREATE DATABASE "{name}"'])
        return self.url_of(name)

    def start(self) -> None:
        """Start the server (waits until it accepts connections)."""
        if self._closed:
            raise RuntimeError("the cluster is closed")
        if not self._running:
            self._pg_ctl("start", "-l", str(self._log))
            self._running = True

    def stop(self, mode: str = "fast") -> None:
        """Stop the server (``fast``: sessions are terminated; ``immediate``: no shutdown
        checkpoint, as a crash); waits until it is down."""
        if self._running:
            self._pg_ctl("stop", "-m", mode)
            self._running = False

    def close(self) -> None:
        """Stop the server if it runs and remove everything; idempotent."""
        if self._closed:
            return
        self._closed = True
        atexit.unregister(self.close)
        try:
            if (self._data / "postmaster.pid").exists():
                try:
                    self._pg_ctl("stop", "-m", "immediate")
                except (subprocess.SubprocessError, OSError):
                    self._kill_postmaster()
        finally:
            self._running = False
            shutil.rmtree(self._dir, ignore_errors=True)

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self._log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    # -- the server commands -----------------------------------------------------------------

    def _initdb(self) -> None:
        self._run([str(self._bin / "initdb"), "-D", str(self._data), "-A", "trust",
                   "-U", "postgres", "-E", "UTF8", "--no-sync"])

    def _configure(self, port: int) -> None:
        settings = {
            "listen_addresses": "'127.0.0.1'", "port": str(port),
            "unix_socket_directories": f"'{self._dir}'", "fsync": "off",
            "synchronous_commit": "off", "full_page_writes": "off", "shared_buffers": "16MB",
            "max_connections": "30", "logging_collector": "off",
        }
        conf = self._data / "postgresql.auto.conf"
        text = "".join(f"{key} = {value}\n" for key, value in settings.items())
        self._write_as_owner(conf, text)

    def _start_on_a_free_port(self) -> None:
        """Start on a free port; another process may take the port between the probe and the
        bind, so a few ports are tried."""
        for attempt in range(3):
            self._port = _free_port()
            self._configure(self._port)
            try:
                self.start()
                return
            except subprocess.CalledProcessError:
                if attempt == 2:
                    raise

    def _pg_ctl(self, *args: str) -> None:
        self._run([str(self._bin / "pg_ctl"), "-D", str(self._data), "-w",
                   "-t", str(_TIMEOUT_S), *args])

    def _run(self, command: Sequence[str]) -> None:
        argv = ["runuser", "-u", _OWNER, "--", *command] if self._as_owner else list(command)
        done = subprocess.run(argv, capture_output=True, text=True, timeout=_TIMEOUT_S + 10,
                              check=False, cwd=self._dir)
        if done.returncode != 0:
            raise subprocess.CalledProcessError(
                done.returncode, argv,
                output=done.stdout, stderr=f"{done.stderr}\n-- server log --\n{self.log_tail()}")

    def _write_as_owner(self, path: Path, text: str) -> None:
        path.write_text(text)
        if self._as_owner:
            owner = pwd.getpwnam(_OWNER)
            os.chown(path, owner.pw_uid, owner.pw_gid)

    def _kill_postmaster(self) -> None:
        """The last resort of :meth:`close`: SIGKILL the postmaster named in its pid file."""
        try:
            pid = int((self._data / "postmaster.pid").read_text().split()[0])
            os.kill(pid, signal.SIGKILL)
        except (OSError, ValueError, IndexError):
            pass


@pytest.fixture
def pg_cluster() -> Iterator[PgCluster]:
    """A started private PostgreSQL server, closed after the test (see :class:`PgCluster`)."""
    if find_bin_dir() is None:
        pytest.skip("PostgreSQL server binaries are not installed")
    if os.geteuid() == 0 and shutil.which("runuser") is None:
        pytest.skip("running as root without runuser: initdb refuses root")
    cluster = PgCluster()
    try:
        yield cluster
    finally:
        cluster.close()
