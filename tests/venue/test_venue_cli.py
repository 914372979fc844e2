"""``python -m lts.engine venue``: the local exchange as a user starts it, in a subprocess."""

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import anyio
import pytest

from lts.venue.server import DEFAULT_KEY, DEFAULT_SECRET

from .test_binance_rest import Client

ARGS = ["--port", "0", "--symbols", "BTC/USDT", "--interval", "0.05", "--start-price", "30000",
        "--balance", "USDT=1000", "--balance", "BTC=1"]


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("LTS_")}


@pytest.fixture
def venue_process() -> Iterator[tuple[subprocess.Popen[str], int]]:
    with subprocess.Popen([sys.executable, "-m", "lts.engine", "venue", *ARGS],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          env=_env()) as proc:  # closes its pipes
        try:
            assert proc.stdout is not None
            line = proc.stdout.readline()  # the venue prints it once it listens
            assert line.startswith("venue: Binance spot API on http://127.0.0.1:"), line
            port = int(line.split("127.0.0.1:")[1].split("/")[0])
            assert f"api key {DEFAULT_KEY}, secret {DEFAULT_SECRET}" in line
            yield proc, port
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.wait(timeout=10)


@pytest.mark.anyio
@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM])
async def test_the_venue_trades_on_its_own_tape_and_stops_on_a_signal(
        venue_process: tuple[subprocess.Popen[str], int], stop: signal.Signals) -> None:
    proc, port = venue_process
    client = Client(f"http://127.0.0.1:{port}", key=DEFAULT_KEY, secret=DEFAULT_SECRET)
    with anyio.fail_after(30):
        while True:  # the first bars come within a few intervals
            _, price, _ = await client.call("GET", "ticker/price", {"symbol": "BTCUSDT"})
            if Decimal(price["price"]) > 0:
                break
            await anyio.sleep(0.05)
    status, placed, _ = await client.call("POST", "order", {
        "symbol": "BTCUSDT", "side": "BUY", "type": "MARKET", "quantity": "0.001",
        "newClientOrderId": "cli-1"}, signed=True)
    assert (status, placed["status"]) == (200, "FILLED"), placed
    _, account, _ = await client.call("GET", "account", signed=True)
    btc = next(b for b in account["balances"] if b["asset"] == "BTC")
    assert Decimal(btc["free"]) == Decimal(1) + Decimal("0.001") * Decimal("0.999")
    proc.send_signal(stop)
    deadline = time.monotonic() + 20
    while proc.poll() is None and time.monotonic() < deadline:  # noqa: ASYNC110
        await anyio.sleep(0.05)
    assert proc.returncode == 0
    assert proc.stderr is not None
    assert "venue: stopped" in proc.stderr.read()


@pytest.mark.parametrize(("args", "message"), [
    (["--balance", "USDT"], "lts: error: --balance: 'USDT' is not ASSET=AMOUNT"),
    (["--symbols", "BTCUSDT"], "lts: error: --symbols: 'BTCUSDT' is not BASE/QUOTE"),
    (["--port", "70000"], "lts: error: --port: 70000 is not a TCP port"),
    (["--fault", "nope=1"], "lts: error: --fault: unknown fault 'nope' (known: order_delay, "),
    (["--fault", "order_delay=soon"], "lts: error: --fault: fault order_delay: 'soon' is not a "
                                      "number of seconds, 0 or more"),
    (["--fault", "down=5"], "lts: error: --fault: down is an action, not a setting: POST it "
                            "to /admin/faults while the venue runs"),
    (["--feed", "replay"], "lts: error: --feed: 'replay' is not 'synthetic' or 'replay FILE'"),
    (["--feed", "replay", "/nonexistent/bars.csv"],
     "lts: error: /nonexistent/bars.csv: no such file"),
])
def test_bad_arguments_get_one_line_and_status_2(args: list[str], message: str) -> None:
    proc = subprocess.run([sys.executable, "-m", "lts.engine", "venue", *args],
                          capture_output=True, text=True, timeout=60, env=_env(), check=False)
    assert proc.returncode == 2
    assert proc.stderr.startswith(message)
    assert len(proc.stderr.strip().splitlines()) == 1


def test_a_state_file_that_is_not_one_gets_one_line_and_status_2(tmp_path: Path) -> None:
    state = tmp_path / "venue.json"
    state.write_text("[1, 2")
    proc = subprocess.run([sys.executable, "-m", "lts.engine", "venue", "--port", "0",
                           "--state", str(state)],
                          capture_output=True, text=True, timeout=60, env=_env(), check=False)
    assert proc.returncode == 2
    assert proc.stderr.startswith(f"lts: error: --state {state}: not JSON")
    assert len(proc.stderr.strip().splitlines()) == 1


@pytest.fixture
def faulty_venue() -> Iterator[tuple[int, str]]:
    """The venue started with faults set: its port, and the line it printed."""
    with subprocess.Popen([sys.executable, "-m", "lts.engine", "venue", *ARGS, "--fault",
                           "http_5xx=1", "--fault", "weight_limit=100"],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          env=_env()) as proc:
        try:
            assert proc.stdout is not None
            line = proc.stdout.readline()
            yield int(line.split("127.0.0.1:")[1].split("/")[0]), line
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=20)


@pytest.mark.anyio
async def test_faults_set_at_start_are_in_force_and_shown_at_start(
        faulty_venue: tuple[int, str]) -> None:
    port, line = faulty_venue
    base = f"http://127.0.0.1:{port}"
    assert f"admin {base}/admin/faults;" in line
    assert line.rstrip().endswith("faults http_5xx=1, weight_limit=100")
    client = Client(base, key=DEFAULT_KEY, secret=DEFAULT_SECRET)
    status, body, _ = await client.call("GET", "ping")
    assert (status, body) == (503, {"msg": "Service Unavailable."})
    status, _, headers = await client.call("GET", "ping")
    assert (status, headers["x-mbx-used-weight-1m"]) == (200, "1")
    status, info, _ = await client.call("GET", "exchangeInfo")
    assert info["rateLimits"][0]["limit"] == 100
