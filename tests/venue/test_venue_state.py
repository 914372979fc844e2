"""The venue's state survives a restart (lts.venue.state): in the exchange, on disk, and as a
user restarts ``python -m lts.engine venue --state FILE``, seen through ccxt."""

import json
import signal
import subprocess
import sys
from collections.abc import Iterator
from decimal import Decimal as D
from pathlib import Path
from typing import Any

import anyio
import pytest

from lts.errors import ConfigError
from lts.venue import state
from lts.venue.exchange import Exchange, Market, OrderType, Side, Status, TimeInForce
from lts.venue.server import DEFAULT_KEY, DEFAULT_SECRET

from .test_binance_rest import ccxt_client
from .test_venue_cli import _env

DEADLINE = 30


#: One venue time for every exchange here: two exchanges given the same bars must make the same
#: orders and trades, to the millisecond (the wall clock could tick between the two).
NOW_MS = 1_767_225_600_000


def _clock() -> int:
    return NOW_MS


def _exchange() -> Exchange:
    exchange = Exchange([Market("BTCUSDT", "BTC", "USDT"), Market("ETHUSDT", "ETH", "USDT")],
                        clock=_clock)
    exchange.add_account("acct", {"USDT": D(100_000), "BTC": D(1)})
    exchange.on_bar("BTCUSDT", high=D(30_100), low=D(29_900), close=D(30_000), volume=D(10))
    return exchange


def _busy() -> Exchange:
    """An exchange with a bit of everything: a fill, resting orders (one partly filled, one a
    stop not yet triggered), a canceled one."""
    exchange = _exchange()
    exchange.place("acct", "BTCUSDT", Side.BUY, OrderType.MARKET, D("0.1"),
                   client_order_id="m-1")
    exchange.place("acct", "BTCUSDT", Side.BUY, OrderType.LIMIT, D("0.5"), price=D("29500"),
                   time_in_force=TimeInForce.GTC, client_order_id="l-1")
    exchange.place("acct", "BTCUSDT", Side.BUY, OrderType.LIMIT, D("2"), price=D("29400"),
                   time_in_force=TimeInForce.GTC, client_order_id="l-2")
    exchange.on_bar("BTCUSDT", high=D(29_600), low=D(29_400), close=D(29_550), volume=D(15))
    exchange.place("acct", "BTCUSDT", Side.SELL, OrderType.STOP_LOSS_LIMIT, D("0.2"),
                   price=D("28000"), stop_price=D("28100"), time_in_force=TimeInForce.GTC,
                   client_order_id="s-1")
    exchange.place("acct", "BTCUSDT", Side.SELL, OrderType.LIMIT, D("0.3"), price=D("31000"),
                   time_in_force=TimeInForce.GTC, client_order_id="c-1")
    exchange.cancel("acct", "BTCUSDT", client_order_id="c-1")
    return exchange


def _restarted(exchange: Exchange, path: Path) -> Exchange:
    state.save(path, state.snapshot(exchange))
    data = state.load(path)
    assert data is not None
    again = Exchange(exchange.markets.values(), clock=_clock)
    state.restore(again, data, str(path))
    return again


def _view(exchange: Exchange) -> Any:
    return (exchange.orders, exchange.trades, exchange.accounts, exchange.last,
            exchange.next_ids)


def test_a_restored_exchange_is_the_same_and_goes_on_the_same(tmp_path: Path) -> None:
    before = _busy()
    assert before.orders[3].status is Status.PARTIALLY_FILLED  # 1.5 of 15 x 0.1 left after l-1
    after = _restarted(before, tmp_path / "venue.json")
    assert _view(after) == _view(before)
    assert [p.name for p in tmp_path.iterdir()] == ["venue.json"]  # no temporary left behind
    for exchange in (before, after):  # the book, its time priority, the stop: as they were
        exchange.on_bar("BTCUSDT", high=D(29_500), low=D(28_000), close=D(28_050),
                        volume=D(20))
    assert _view(after) == _view(before)
    assert after.orders[3].status is Status.FILLED
    assert after.orders[4].status is not Status.NEW  # the stop triggered and sold
    renewed = after.place("acct", "BTCUSDT", Side.BUY, OrderType.LIMIT, D("0.1"),
                          price=D("27000"), time_in_force=TimeInForce.GTC,
                          client_order_id="l-1")  # a closed order's client id: free again
    assert renewed.order_id == before.next_ids[0]


def test_decimals_are_kept_exactly_as_strings(tmp_path: Path) -> None:
    path = tmp_path / "venue.json"
    exchange = _exchange()
    exchange.place("acct", "BTCUSDT", Side.BUY, OrderType.MARKET, D("0.1"))
    state.save(path, state.snapshot(exchange))
    saved = json.loads(path.read_text())
    assert saved["format"] == "lts-venue-state"
    assert saved["accounts"]["acct"]["BTC"]["free"] == "1.0999"  # 0.1 bought, 0.1% fee
    assert saved["orders"][0]["orig_qty"] == "0.1"


@pytest.mark.parametrize(("content", "message"), [
    ("{", "--state {path}: not JSON (Expecting property name enclosed in double quotes, line 1)"),
    ('{"format": "other"}', "--state {path}: not a venue state file (ValueError: not a "
                            "lts-venue-state file of version 1)"),
])
def test_a_file_that_is_not_a_state_is_one_clear_line(tmp_path: Path, content: str,
                                                      message: str) -> None:
    path = tmp_path / "venue.json"
    path.write_text(content)
    def load() -> None:
        data = state.load(path)
        assert data is not None
        state.restore(_exchange(), data, f"--state {path}")

    with pytest.raises(ConfigError) as raised:
        load()
    assert str(raised.value) == message.format(path=path)


@pytest.mark.anyio
async def test_the_saver_writes_shortly_after_each_change(tmp_path: Path) -> None:
    exchange = _exchange()
    path = tmp_path / "venue.json"
    saver = state.StateSaver(exchange, path)

    def saved_orders() -> int:
        data = state.load(path)
        return -1 if data is None else len(data["orders"])

    async with anyio.create_task_group() as tg:
        tg.start_soon(saver.run)
        exchange.place("acct", "BTCUSDT", Side.BUY, OrderType.MARKET, D("0.1"))
        with anyio.fail_after(DEADLINE):
            while saved_orders() != 1:  # noqa: ASYNC110 - polled condition
                await anyio.sleep(0.02)
        exchange.place("acct", "BTCUSDT", Side.SELL, OrderType.MARKET, D("0.1"))
        with anyio.fail_after(DEADLINE):
            while saved_orders() != 2:  # noqa: ASYNC110 - polled condition
                await anyio.sleep(0.02)
        tg.cancel_scope.cancel()


# -- the venue process, restarted ---------------------------------------------------------------
def _bars_file(path: Path, lows: list[int]) -> Path:
    """A replay file: one bar a minute, closing at 100, each with its low."""
    rows = ["timestamp,open,high,low,close,volume"]
    rows += [f"{1_700_000_000 + 60 * i},100,101,{low},100,1000" for i, low in enumerate(lows)]
    path.write_text("\n".join(rows) + "\n")
    return path


@pytest.fixture
def start_venue(tmp_path: Path) -> Iterator[Any]:
    procs: list[subprocess.Popen[str]] = []

    def start(feed: Path, state_file: Path) -> tuple[subprocess.Popen[str], int]:
        proc = subprocess.Popen(
            [sys.executable, "-m", "lts.engine", "venue", "--port", "0", "--symbols",
             "BTC/USDT", "--interval", "0.1", "--balance", "USDT=10000", "--feed", "replay",
             str(feed), "--state", str(state_file)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env())
        procs.append(proc)
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("venue: Binance spot API on http://127.0.0.1:"), \
            line + (proc.stderr.read() if proc.stderr else "")
        assert f"; state {state_file};" in line
        assert f"feed replay {feed};" in line
        return proc, int(line.split("127.0.0.1:")[1].split("/")[0])

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)
        for pipe in (proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()


def _stop(proc: subprocess.Popen[str]) -> None:
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=20) == 0


async def _account(port: int) -> tuple[Any, Any, Any, Any]:
    ex = ccxt_client(port, DEFAULT_KEY, DEFAULT_SECRET)
    try:
        orders = await ex.fetch_orders("BTC/USDT")
        trades = await ex.fetch_my_trades("BTC/USDT")
        balance = await ex.fetch_balance()
        opened = await ex.fetch_open_orders("BTC/USDT")
    finally:
        await ex.close()
    for item in (*orders, *trades, *opened):
        item.pop("info", None)
        item.pop("lastUpdateTimestamp", None)
    return orders, trades, {a: balance[a] for a in ("USDT", "BTC")}, opened


@pytest.mark.anyio
async def test_orders_trades_and_balances_survive_a_restart_and_a_resting_order_fills(
        tmp_path: Path, start_venue: Any) -> None:
    state_file = tmp_path / "venue.json"
    flat = _bars_file(tmp_path / "flat.csv", [99] * 600)
    proc, port = start_venue(flat, state_file)
    ex = ccxt_client(port, DEFAULT_KEY, DEFAULT_SECRET)
    try:
        with anyio.fail_after(DEADLINE):
            while not (await ex.fetch_ticker("BTC/USDT"))["last"]:  # noqa: ASYNC110 - polled
                await anyio.sleep(0.05)
        bought = await ex.create_order("BTC/USDT", "market", "buy", 1)
        assert bought["status"] == "closed"
        resting = await ex.create_order("BTC/USDT", "limit", "buy", 2, 95,
                                        {"newClientOrderId": "rest-1"})
        assert resting["status"] == "open"
    finally:
        await ex.close()
    before = await _account(port)
    _stop(proc)

    # 50 bars (5 s) as before, then the price falls through the resting order's limit
    falling = _bars_file(tmp_path / "falling.csv", [99] * 50 + [94] * 600)
    proc, port = start_venue(falling, state_file)
    after = await _account(port)
    assert after == before
    assert [o["clientOrderId"] for o in after[3]] == ["rest-1"]
    with anyio.fail_after(DEADLINE):
        while (await _account(port))[3]:  # noqa: ASYNC110 - polled: it fills on a bar
            await anyio.sleep(0.1)
    orders, trades, balances, _ = await _account(port)
    assert [(o["clientOrderId"], o["status"]) for o in orders][-1] == ("rest-1", "closed")
    assert [t["price"] for t in trades] == [100.0, 95.0]
    assert balances["BTC"]["total"] == pytest.approx((1 + 2) * 0.999)
    _stop(proc)


@pytest.mark.anyio
async def test_a_venue_killed_right_after_answering_restarts_with_what_it_answered(
        tmp_path: Path, start_venue: Any) -> None:
    """A client that heard of an order or a trade finds it after the venue is SIGKILLed (an
    exchange does not forget a fill it reported): the state is on disk before the answer."""
    state_file = tmp_path / "venue.json"
    flat = _bars_file(tmp_path / "flat.csv", [99] * 600)
    proc, port = start_venue(flat, state_file)
    ex = ccxt_client(port, DEFAULT_KEY, DEFAULT_SECRET)
    try:
        with anyio.fail_after(DEADLINE):
            while not (await ex.fetch_ticker("BTC/USDT"))["last"]:  # noqa: ASYNC110 - polled
                await anyio.sleep(0.05)
        bought = await ex.create_order("BTC/USDT", "market", "buy", 1,
                                       params={"newClientOrderId": "heard-1"})
        proc.kill()  # at once: no stop, no debounced write
        proc.wait(timeout=20)
    finally:
        await ex.close()
    assert bought["status"] == "closed"
    proc, port = start_venue(flat, state_file)
    orders, trades, balances, _ = await _account(port)
    assert [o["clientOrderId"] for o in orders] == ["heard-1"]
    assert [t["order"] for t in trades] == [bought["id"]]
    assert balances["BTC"]["total"] == pytest.approx(0.999)
    _stop(proc)
