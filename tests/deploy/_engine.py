"""The real engine for the deploy tests as ``python -m lts.engine`` subprocesses started with a
compose service's command, environment and secret files (in-process, the tests use
``tests/api``'s ``running_api``). Traffic only to 127.0.0.1."""

import contextlib
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from prometheus_client.parser import text_string_to_metric_families

#: Bound of every wait (a wait that runs out fails with a message; never asserted on).
WAIT = 60.0


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


async def scrape_while_trading(base: str) -> list[Any]:
    """/metrics once the demo has filled an order and the HTTP counter has counted a scrape."""
    with anyio.fail_after(WAIT):
        while True:
            status, body = await anyio.to_thread.run_sync(http, base + "/metrics")
            assert status == 200
            families = list(text_string_to_metric_families(body.decode()))
            by_name = {f.name: f for f in families}
            filled = any(s.value > 0 for s in by_name["lts_fills"].samples)
            if filled and by_name["lts_http_requests"].samples:
                return families
            await anyio.sleep(0.2)
