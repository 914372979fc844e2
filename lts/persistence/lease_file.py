"""The SQLite engine lock: an exclusive ``flock`` on ``<database>.lock``, naming its holder.

Where it sits: :meth:`lts.persistence.leases.LeaseManager.start` takes it on a SQLite file
database, before any portfolio runs, so that one engine at a time uses the file; a second engine
gets :class:`~lts.errors.LeaseHeld` with one line naming the holder (pid, host, API port, since)
that the lock file holds as JSON. The kernel drops the lock when its process dies. The rules
(never delete the file while an engine runs, local file systems only) are in
:mod:`lts.persistence.leases`'s docstring.
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from lts.errors import ConfigError, LeaseHeld

__all__ = ["LockFile", "database_file"]


def database_file(engine: AsyncEngine) -> Path | None:
    """The file of a SQLite file database; None in memory and for other databases."""
    url = engine.url
    if url.get_backend_name() != "sqlite" or _in_memory(url.database, url.query):
        return None
    assert url.database is not None
    return Path(url.database)


def _in_memory(database: str | None, query: Mapping[str, Any]) -> bool:
    return database in (None, "", ":memory:") or query.get("mode") == "memory"


def _one_line(message: str) -> str:
    return " ".join(message.split())


class LockFile:
    """An exclusive ``flock`` on ``<database>.lock``, holding who took it as JSON.

    Every method does blocking file I/O: call it in a worker thread.
    """

    def __init__(self, database: Path) -> None:
        self.database = database
        self.path = database.with_name(database.name + ".lock")
        self._fd: int | None = None

    def take(self, info: Mapping[str, object]) -> None:
        """Lock and write ``info``; :class:`LeaseHeld` naming the holder when it is taken."""
        # one lock file per database, whatever path (relative, through a symlink) names it
        self.database = self.database.expanduser().resolve()
        self.path = self.database.with_name(self.database.name + ".lock")
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as err:
            raise ConfigError(f"database {self.database}: cannot open the lock file "
                              f"{self.path}: {err.strerror}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_holder(fd)
            os.close(fd)
            raise LeaseHeld(self._refusal(holder)) from None
        except OSError as err:
            os.close(fd)
            raise ConfigError(f"database {self.database}: cannot lock {self.path}: "
                              f"{err.strerror}") from None
        self._fd = fd
        self.write(info)

    def write(self, info: Mapping[str, object]) -> None:
        if self._fd is not None:
            os.ftruncate(self._fd, 0)
            os.pwrite(self._fd, json.dumps(info).encode(), 0)

    def drop(self) -> None:
        """Unlock (closing the descriptor releases the flock); the file stays."""
        fd, self._fd = self._fd, None
        if fd is not None:
            try:
                os.ftruncate(fd, 0)
            finally:
                os.close(fd)

    def _refusal(self, holder: Mapping[str, Any] | None) -> str:
        if holder is None:
            return _one_line(f"database {self.database} is in use by another engine "
                             f"(lock file {self.path})")
        details = [f"pid {holder.get('pid', '?')} on host {holder.get('host', '?')}"]
        if holder.get("api_port") is not None:
            details.append(f"API port {holder['api_port']}")
        if holder.get("since"):
            details.append(f"since {holder['since']}")
        return _one_line(f"database {self.database} is in use by another engine "
                         f"({', '.join(details)})")


def _read_holder(fd: int, attempts: int = 20) -> Mapping[str, Any] | None:
    """The holder's JSON; retried briefly, as the holder may be between truncate and write."""
    for _ in range(attempts):
        try:
            holder = json.loads(os.pread(fd, 4096, 0))
        except ValueError:
            time.sleep(0.025)  # a worker thread, never the event loop
            continue
        return holder if isinstance(holder, dict) else None
    return None
