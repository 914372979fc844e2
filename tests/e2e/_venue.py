"""The local exchange as a user runs it (``python -m lts.engine venue``), for end-to-end tests
of the engine trading on it: started and killed as a process, read through its own REST API
with the published default keys (what an operator would check at a real exchange).
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest

from lts.venue.server import DEFAULT_KEY, DEFAULT_SECRET

from ._support import START_TIMEOUT

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "binance-local.toml"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def example_config(workdir: Path, port: int) -> Path:
    """``examples/binance-local.toml`` as shipped, pointed at the venue's port."""
    text = EXAMPLE.read_text().replace("127.0.0.1:9100", f"127.0.0.1:{port}")
    path = workdir / "binance-local.toml"
    path.write_text(text)
    return path


@dataclass
class VenueProcess:
    """One venue process on a fixed port (a restart comes back where clients expect it)."""

    workdir: Path
    port: int
    args: list[str]
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def proc(self) -> subprocess.Popen[bytes]:
        return self.procs[-1]

    def start(self) -> None:
        n = len(self.procs) + 1
        out = (self.workdir / f"venue-{n}.log").open("wb")
        argv = [sys.executable, "-m", "lts.engine", "venue", "--port", str(self.port),
                *self.args]
        with out:
            self.procs.append(subprocess.Popen(argv, cwd=self.workdir, stdout=out,
                                               stderr=subprocess.STDOUT,
                                               stdin=subprocess.DEVNULL))
        deadline = time.monotonic() + START_TIMEOUT
        while True:  # listening, and the tape has a price for every market
            if self.proc.poll() is not None:
                pytest.fail(f"the venue exited: {self.log()}")
            with contextlib.suppress(OSError, ValueError):
                prices = self.call("GET", "ticker/price")
                if prices and all(Decimal(p["price"]) > 0 for p in prices):
                    return
            if time.monotonic() > deadline:
                pytest.fail(f"the venue did not come up: {self.log()}")
            time.sleep(0.1)

    def kill9(self) -> None:
        self.proc.kill()
        self.proc.wait(10)

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(10)

    def log(self) -> str:
        return "\n".join((self.workdir / f"venue-{n + 1}.log").read_text(errors="replace")
                         for n in range(len(self.procs)))[-3000:]

    def call(self, method: str, path: str, params: dict[str, Any] | None = None, *,
             signed: bool = False) -> Any:
        query = dict(params or {})
        if signed:
            query["timestamp"] = time.time_ns() // 1_000_000
        text = urlencode(query)
        if signed:
            text += "&signature=" + hmac.new(DEFAULT_SECRET.encode(), text.encode(),
                                             hashlib.sha256).hexdigest()
        url = f"http://127.0.0.1:{self.port}/api/v3/{path}" + (f"?{text}" if text else "")
        request = urllib.request.Request(url, method=method,
                                         headers={"X-MBX-APIKEY": DEFAULT_KEY})
        with urllib.request.urlopen(request, timeout=10) as reply:
            return json.loads(reply.read())

    def admin(self, faults: dict[str, Any]) -> Any:
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}/admin/faults", data=json.dumps(faults).encode(),
            method="POST", headers={"X-MBX-APIKEY": DEFAULT_KEY,
                                    "Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=10) as reply:
            return json.loads(reply.read())

    # -- what the venue holds -------------------------------------------------------------------
    def balances(self) -> dict[str, Decimal]:
        account = self.call("GET", "account", signed=True)
        return {b["asset"]: Decimal(b["free"]) + Decimal(b["locked"])
                for b in account["balances"]}

    def orders(self, symbol: str) -> list[dict[str, Any]]:
        return list(self.call("GET", "allOrders", {"symbol": symbol}, signed=True))

    def open_orders(self) -> list[dict[str, Any]]:
        return list(self.call("GET", "openOrders", signed=True))

    def trades(self, symbol: str) -> list[dict[str, Any]]:
        return list(self.call("GET", "myTrades", {"symbol": symbol}, signed=True))


def venue_answers(venue: VenueProcess) -> bool:
    with contextlib.suppress(OSError, urllib.error.URLError):
        venue.call("GET", "ping")
        return True
    return False
