"""The suite's network guard (tests/netguard): nothing a test runs may leave the machine.

Each case tries to reach a documentation-only address (192.0.2.1, RFC 5737: never routed) or to
look up a public name, in this process and in subprocesses (plain asyncio and uvloop), and checks
that the attempt was refused and recorded; it then takes its own records out of the log so that
the suite's check after every test (``_nothing_leaves_the_machine``) passes. Loopback works.
"""

import asyncio
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import lts_netguard
import pytest

OUTSIDE = "192.0.2.1"  # TEST-NET-1: documentation only


@pytest.fixture
def guard_log() -> Iterator[Path]:
    """The guard's log of this process; what the test adds is checked, then taken out."""
    log = Path(os.environ[lts_netguard.LOG_ENV])
    start = log.stat().st_size if log.exists() else 0
    yield log
    if log.exists():
        with log.open("r+", encoding="utf-8") as f:
            f.truncate(start)


def added(log: Path, start: int) -> str:
    if not log.exists():
        return ""
    with log.open(encoding="utf-8") as f:
        f.seek(start)
        return f.read()


def _size(log: Path) -> int:
    return log.stat().st_size if log.exists() else 0


def test_a_socket_to_the_outside_is_refused_and_recorded(guard_log: Path) -> None:
    start = _size(guard_log)
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock, \
            pytest.raises(ConnectionRefusedError, match="network guard"):
        sock.connect((OUTSIDE, 80))
    with pytest.raises(ConnectionRefusedError, match="network guard"):
        socket.create_connection((OUTSIDE, 80), timeout=2)  # refused at its address look-up
    assert added(guard_log, start).splitlines() == [
        f"pid {os.getpid()}: socket.connect to {OUTSIDE} port 80",
        f"pid {os.getpid()}: lookup of '{OUTSIDE}'"]


def test_a_lookup_of_a_public_name_is_refused(guard_log: Path) -> None:
    start = _size(guard_log)
    with pytest.raises(ConnectionRefusedError, match="network guard"):
        socket.getaddrinfo("api.binance.com", 443)
    assert "lookup of 'api.binance.com'" in added(guard_log, start)


def test_asyncio_clients_are_guarded(guard_log: Path) -> None:
    start = _size(guard_log)

    async def reach_out() -> None:
        await asyncio.open_connection(OUTSIDE, 443)

    with pytest.raises(ConnectionRefusedError, match="network guard"):
        asyncio.run(reach_out())
    assert OUTSIDE in added(guard_log, start)


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_a_subprocess_is_guarded_too(guard_log: Path, loop: str) -> None:
    """The engine under test runs in subprocesses, on uvloop (libuv connects without Python's
    socket module): they inherit the guard through ``sitecustomize``."""
    start = _size(guard_log)
    code = ("import asyncio, uvloop\n"
            f"main = asyncio.open_connection({OUTSIDE!r}, 443)\n"
            + ("uvloop.run(main)\n" if loop == "uvloop" else "asyncio.run(main)\n"))
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60, check=False)
    assert proc.returncode != 0
    assert "NetworkGuardError: network guard" in proc.stderr, proc.stderr
    assert OUTSIDE in added(guard_log, start)


def test_loopback_passes() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        with socket.create_connection(server.getsockname(), timeout=5):
            conn, _ = server.accept()
            conn.close()
    assert socket.getaddrinfo("localhost", 80)
