"""The real engine for the deploy tests: in-process with its API (uvicorn on a free loopback
port, as in tests/api) or as ``python -m lts.engine`` subprocesses started with a compose
service's command, environment and secret files. Traffic only to 127.0.0.1."""

import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest

from lts.engine.engine import Engine
from lts.settings import load_settings, merge

#: Bound of every wait (a wait that runs out fails with a message; never asserted on).
WAIT = 60.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def http(url: str, body: bytes | None = None,
         headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    """One request; ``(status, body)``, or ``(0, b"")`` when nothing answers."""
    assert url.startswith("http://127.0.0.1:"), url
    req = urllib.request.Request(url, data=body, headers=headers or {},
                                 method="POST" if body is not None else "GET")
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()
    except OSError:
        return 0, b""


@asynccontextmanager
async def running_engine(tmp_path: Path, **sections: Any) -> AsyncIterator[str]:
    """The engine and its API on a free port, on a temporary SQLite file; yields the API's
    base URL. ``sections`` override settings (deep merge)."""
    port = free_port()
    settings = load_settings(overrides=merge({
        "admin_password": "Adm1n-pass-word",
        "database": {"url": f"sqlite+aiosqlite:///{tmp_path / 'lts.db'}"},
        "api": {"port": port},
        "auth": {"bcrypt_rounds": 4},
    }, sections))
    engine = Engine(settings)
    async with anyio.create_task_group() as tg:
        tg.start_soon(engine.run)
        with anyio.fail_after(30):
            await engine.started.wait()
        yield f"http://127.0.0.1:{port}"
        engine.stop()


def _clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items()
            if not k.startswith("LTS_") and k != "PYTHONWARNINGS"}


class Processes:
    """``python -m lts.engine`` subprocesses; output to files; leftovers killed at the end."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.procs: list[tuple[subprocess.Popen[bytes], Path]] = []

    def start(self, args: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        base = _clean_env()
        log = self.workdir / f"process-{len(self.procs) + 1}.log"
        with log.open("wb") as out:
            proc = subprocess.Popen([sys.executable, "-m", "lts.engine", *args],
                                    cwd=self.workdir, env={**base, **env},
                                    stdin=subprocess.DEVNULL, stdout=out,
                                    stderr=subprocess.STDOUT)
        self.procs.append((proc, log))
        return proc

    def output(self, proc: subprocess.Popen[bytes]) -> str:
        log = next(path for p, path in self.procs if p is proc)
        return log.read_text(errors="replace")

    def wait(self, proc: subprocess.Popen[bytes], what: str) -> int:
        try:
            return proc.wait(WAIT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
            pytest.fail(f"timed out waiting for {what}; output:\n{self.output(proc)[-3000:]}")

    def cleanup(self) -> None:
        for proc, _ in self.procs:
            if proc.poll() is None:
                proc.kill()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(10)


@contextlib.contextmanager
def processes(workdir: Path) -> Iterator[Processes]:
    procs = Processes(workdir)
    try:
        yield procs
    finally:
        procs.cleanup()


def wait_until(predicate: Callable[[], bool], what: str,
               proc: subprocess.Popen[bytes] | None = None) -> None:
    """Poll until ``predicate()``; fail clearly at the deadline or when ``proc`` exits."""
    deadline = time.monotonic() + WAIT
    while not predicate():
        if proc is not None and proc.poll() is not None:
            pytest.fail(f"the process exited ({proc.returncode}) while waiting for {what}")
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.2)
