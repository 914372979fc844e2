"""Nothing leaves the machine: a guard that refuses every connection a test makes to anything but
the loopback interface, and records it so that the test fails even if it swallowed the error.

Where it sits: installed by ``tests/conftest.py`` in the pytest process and its xdist workers,
and (through ``sitecustomize`` in this directory, put first on ``PYTHONPATH`` for the whole run)
in every Python subprocess a test starts: the engine under test, the crash harness's engines,
benches run by soak tests.

What it watches: CPython's audit events for ``socket.connect``, ``socket.sendto`` (UDP: a DNS
query) and ``socket.getaddrinfo`` (a name to look up), which cover the standard library, asyncio
and every client built on them (aiohttp, httpx, asyncpg, psycopg's Python side, ccxt,
alpaca-py's requests); and uvloop's ``create_connection`` and ``getaddrinfo``, which libuv runs
without Python's socket module. Loopback addresses (127.0.0.0/8, ::1), ``localhost`` and Unix
sockets pass; anything else raises ``ConnectionRefusedError`` naming the address, and is appended
to the file named by ``NETGUARD_LOG``, which the test suite checks after every test.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import sys
from typing import Any

LOG_ENV = "NETGUARD_LOG"
_INET = (socket.AF_INET, socket.AF_INET6)
_installed = False


class NetworkGuardError(ConnectionRefusedError):
    """A test tried to reach something other than this machine's loopback interface."""


def loopback(host: object) -> bool:
    """``host`` is this machine's loopback interface (an address, ``localhost``, or none)."""
    if host is None:
        return True
    if isinstance(host, bytes):
        host = host.decode("ascii", "replace")
    if not isinstance(host, str):
        return False
    if host in ("", "localhost", "localhost.", "ip6-localhost"):
        return True
    try:
        return ipaddress.ip_address(host.split("%", 1)[0]).is_loopback
    except ValueError:
        return False


def refuse(what: str) -> None:
    """Record ``what`` for the suite and refuse it."""
    line = f"pid {os.getpid()}: {what}"
    path = os.environ.get(LOG_ENV)
    if path:
        with open(path, "a", encoding="utf-8") as log:
            log.write(line + "\n")
    raise NetworkGuardError(f"network guard: {what} (tests reach 127.0.0.1 only)")


def _audit(event: str, args: tuple[Any, ...]) -> None:
    if event == "socket.connect" or event == "socket.sendto":
        sock, address = args[0], args[1]
        if getattr(sock, "family", None) in _INET and isinstance(address, tuple) \
                and not loopback(address[0]):
            refuse(f"{event} to {address[0]} port {address[1]}")
    elif event == "socket.getaddrinfo" and not loopback(args[0]):
        refuse(f"lookup of {args[0]!r}")


def _guard_uvloop() -> None:
    try:
        import uvloop
    except ImportError:
        return
    loop_class: Any = uvloop.Loop
    connect, lookup = loop_class.create_connection, loop_class.getaddrinfo

    async def create_connection(self: Any, protocol_factory: Any, host: Any = None,
                                port: Any = None, **kwargs: Any) -> Any:
        if not loopback(host):
            refuse(f"uvloop create_connection to {host} port {port}")
        return await connect(self, protocol_factory, host, port, **kwargs)

    async def getaddrinfo(self: Any, host: Any, *args: Any, **kwargs: Any) -> Any:
        if not loopback(host):
            refuse(f"uvloop lookup of {host!r}")
        return await lookup(self, host, *args, **kwargs)

    loop_class.create_connection = create_connection
    loop_class.getaddrinfo = getaddrinfo


def install() -> None:
    """Guard this process (once; an audit hook cannot be removed)."""
    global _installed
    if _installed:
        return
    _installed = True
    sys.addaudithook(_audit)
    _guard_uvloop()
