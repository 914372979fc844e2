"""The local exchange (``python -m lts.engine venue``) as a subprocess of a bench: started on a free
port of 127.0.0.1 (``--port 0``; the port read from the line it prints once it listens), its
admin endpoint called, its CPU time read, and always stopped (``stop`` in a ``finally``; an
``atexit`` hook as a last resort). Used by bench/venue.py.
"""

from __future__ import annotations

import atexit
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import anyio

from lts.venue.server import DEFAULT_KEY, DEFAULT_SECRET

__all__ = ["DEFAULT_KEY", "DEFAULT_SECRET", "VenueProcess"]

_LISTENING = re.compile(r"http://127\.0\.0\.1:(\d+)/api/v3")
_LIVE: set[VenueProcess] = set()


@atexit.register
def _stop_all() -> None:
    for venue in list(_LIVE):
        venue.stop()


class VenueProcess:
    """One venue process; ``args`` after ``venue --port 0``."""

    def __init__(self, name: str, args: list[str], workdir: Path) -> None:
        self.name = name
        self.args = args
        self.workdir = workdir
        self.proc: subprocess.Popen[bytes] | None = None
        self.port = 0

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def api(self) -> str:
        return f"{self.base}/api/v3"

    def urls(self, *, private: bool = True) -> dict[str, Any]:
        """ccxt's ``urls['api']`` overrides for this venue (the ``ccxt`` plugins' ``urls``)."""
        ws: dict[str, Any] = {"spot": f"ws://127.0.0.1:{self.port}/ws"}
        if not private:
            return {"public": self.api, "ws": ws}
        ws["ws-api"] = {"spot": f"ws://127.0.0.1:{self.port}/ws-api/v3"}
        return {"public": self.api, "private": self.api, "ws": ws}

    def _spawn(self) -> Path:
        out = self.workdir / f"venue-{self.name}.log"
        with out.open("wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "lts.engine", "venue", "--port", "0", *self.args],
                cwd=self.workdir, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        _LIVE.add(self)
        return out

    async def start(self, session: aiohttp.ClientSession, within: float = 60.0) -> None:
        out = self._spawn()
        assert self.proc is not None
        with anyio.fail_after(within):
            while not self.port:  # the line it prints once it listens
                if self.proc.poll() is not None:
                    raise RuntimeError(f"venue {self.name} exited: {self.log()}")
                found = _LISTENING.search(out.read_text(errors="replace"))
                if found:
                    self.port = int(found.group(1))
                else:
                    await anyio.sleep(0.05)
            while True:  # the tape has a price
                try:
                    async with session.get(f"{self.api}/ticker/price") as reply:
                        prices = await reply.json()
                    if prices and all(float(p["price"]) > 0 for p in prices):
                        return
                except (aiohttp.ClientError, ValueError, KeyError, TypeError):
                    pass
                await anyio.sleep(0.1)

    async def admin(self, session: aiohttp.ClientSession, faults: dict[str, Any]) -> Any:
        async with session.post(f"{self.base}/admin/faults", data=json.dumps(faults),
                                headers={"X-MBX-APIKEY": DEFAULT_KEY,
                                         "Content-Type": "application/json"}) as reply:
            body = await reply.json()
            if reply.status != 200:
                raise RuntimeError(f"venue {self.name}: admin {faults}: {reply.status} {body}")
            return body

    async def ping_ms(self, count: int = 20) -> list[float]:
        """``GET /api/v3/ping`` ``count`` times over one keep-alive connection: ms each."""
        lat = []
        connector = aiohttp.TCPConnector(limit=1)
        async with aiohttp.ClientSession(connector=connector) as session:
            for _ in range(count + 1):
                t = time.perf_counter()
                async with session.get(f"{self.api}/ping") as reply:
                    await reply.read()
                lat.append((time.perf_counter() - t) * 1e3)
        return lat[1:]  # the first one makes the connection

    def cpu_seconds(self) -> float:
        """User + system CPU time of the venue process so far."""
        assert self.proc is not None
        with open(f"/proc/{self.proc.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def log(self) -> str:
        path = self.workdir / f"venue-{self.name}.log"
        return path.read_text(errors="replace")[-2000:] if path.exists() else ""

    def stop(self) -> None:
        proc = self.proc
        _LIVE.discard(self)
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def wall_minute_left() -> float:
    """Seconds until the next calendar minute (the venue's and LTS's weight count roll then)."""
    return 60.0 - time.time() % 60.0
