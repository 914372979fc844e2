"""The engine trading through ``ccxt`` on the local exchange, both as users run them (issue 10:
"from paper to live without changing the strategy"; behaviour under faults). SYS-006 (orders
and positions), SYS-011 (recovery), SYS-013 (integrity), STC-005 (plugins).

``python -m lts.engine venue`` runs with its defaults on a free port; the engine runs
``examples/binance-local.toml`` as shipped (only its port changed): the demo strategy on the
venue's 1-second klines, orders through its REST API, reports from its user data stream. What
the test checks is what an operator would check at a real exchange: every order LTS sent is
there once under its client order id, LTS's positions equal the venue's balances, its fills
are the venue's trades, no order was rejected.
"""

from __future__ import annotations

import signal
from collections import Counter
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest

from ._support import START_TIMEOUT, Db, EngineRun, Launcher, assert_clean_exit, wait_until
from ._venue import VenueProcess, example_config, free_port

SYMBOLS = {"BTC/USDT": ("BTCUSDT", "BTC"), "ETH/USDT": ("ETHUSDT", "ETH")}
#: A quick crossover, so that a run sees buys and sells within seconds.
QUICK = ("--set", "demo.fast=2", "--set", "demo.slow=4")
TRADING = 60.0  # bound of the waits for trading (1 bar a second per symbol)


@pytest.fixture
def venue(workdir: Path) -> Iterator[VenueProcess]:
    process = VenueProcess(workdir, free_port(), ["--state", "venue-state.json"])
    try:
        process.start()
        yield process
    finally:
        process.stop()


def lts_db(workdir: Path) -> Db:
    return Db(workdir / "data" / "binance-local" / "lts.db")


def fills(db: Db) -> int:
    return db.count("fills") if db.exists() and db.has_table("fills") else 0


def sides_filled(db: Db) -> set[str]:
    if not fills(db):
        return set()
    return {r["side"] for r in db.rows("SELECT DISTINCT side FROM fills")}


def start_engine(launcher: Launcher, workdir: Path, venue: VenueProcess) -> EngineRun:
    return launcher.start("--config", str(example_config(workdir, venue.port)), *QUICK)


def stop_engine(run: EngineRun) -> None:
    run.send(signal.SIGTERM)
    run.wait(what="the engine to stop after SIGTERM")
    assert_clean_exit(run)


def assert_lts_agrees_with_the_venue(db: Db, venue: VenueProcess, *,
                                     venue_went_away: bool = False) -> None:
    """Every order LTS sent exists once at the venue; positions are the venue's balances;
    fills are the venue's trades; nothing rejected. While the venue was away, two outcomes are
    allowed besides: an order that could not be sent at all (rejected, "venue unavailable"),
    and one in flight when the venue was killed, which the venue never saved (no answer; after
    the resync LTS asked, the venue did not know it, and LTS settled it "not found at the
    venue"); neither may be at the venue."""
    sent = db.rows("SELECT client_order_id, status, reason FROM orders WHERE status != 'denied'")
    assert sent, "LTS sent no order"
    never_there: set[str] = set()
    if venue_went_away:
        never_there = {r["client_order_id"] for r in sent if
                       (r["status"] == "rejected" and r["reason"].startswith("venue unavailable"))
                       or (r["status"] == "canceled" and r["reason"] == "not found at the venue")}
    rejected = [(r["client_order_id"], r["reason"]) for r in sent
                if r["status"] == "rejected" and r["client_order_id"] not in never_there]
    assert rejected == []
    at_venue: Counter[str] = Counter()
    trades: set[str] = set()
    for unified, (market, _) in SYMBOLS.items():
        at_venue.update(o["clientOrderId"] for o in venue.orders(market))
        trades.update(f"{unified}:{t['id']}" for t in venue.trades(market))
    assert [c for c, n in at_venue.items() if n > 1] == [], "an order exists twice"
    assert never_there.isdisjoint(at_venue), "LTS holds an order as never sent that the venue has"
    assert {r["client_order_id"] for r in sent} - never_there <= set(at_venue)
    lts_trades = {r["trade_id"] for r in db.rows("SELECT trade_id FROM fills")}
    assert lts_trades == trades
    balances = venue.balances()
    positions = {r["symbol"]: Decimal(r["quantity"])
                 for r in db.rows("SELECT symbol, quantity FROM positions")}
    for unified, (_, base) in SYMBOLS.items():
        assert positions.get(unified, Decimal(0)) == balances.get(base, Decimal(0)), unified
    lts_open = {r["client_order_id"] for r in db.rows(
        "SELECT client_order_id FROM orders WHERE status IN ('submitted', 'accepted', "
        "'partially_filled', 'pending_cancel', 'unknown')")}
    assert lts_open == {o["clientOrderId"] for o in venue.open_orders()}


def test_the_example_trades_the_demo_strategy_on_the_local_venue(
        launcher: Launcher, workdir: Path, venue: VenueProcess) -> None:
    run = start_engine(launcher, workdir, venue)
    db = lts_db(workdir)
    wait_until(lambda: sides_filled(db) == {"buy", "sell"}, timeout=TRADING, run=run,
               what="a buy and a sell filled at the venue")
    stop_engine(run)
    assert "sealed the demo's 'binance' credentials" in run.stderr()
    assert "lts-local-venue-secret" not in run.stderr() + run.stdout()
    assert_lts_agrees_with_the_venue(db, venue)


def test_a_sigkilled_engine_comes_back_without_a_duplicate_and_agrees_with_the_venue(
        launcher: Launcher, workdir: Path, venue: VenueProcess) -> None:
    """SIGKILL mid-trading while the venue keeps running: after the restart no order exists
    twice at the venue, positions equal its balances and trades, open orders agree."""
    db = lts_db(workdir)
    first = start_engine(launcher, workdir, venue)
    wait_until(lambda: fills(db) >= 2, timeout=TRADING, run=first, what="two fills")
    first.kill9()
    before = fills(db)
    second = start_engine(launcher, workdir, venue)
    wait_until(lambda: fills(db) >= before + 2, timeout=TRADING, run=second,
               what="two more fills after the restart")
    stop_engine(second)
    assert_lts_agrees_with_the_venue(db, venue)


def test_the_venue_killed_and_restarted_with_its_state_lts_resyncs_and_trades_on(
        launcher: Launcher, workdir: Path, venue: VenueProcess) -> None:
    db = lts_db(workdir)
    run = start_engine(launcher, workdir, venue)
    wait_until(lambda: fills(db) >= 1, timeout=TRADING, run=run, what="a fill")
    venue.kill9()
    wait_until(lambda: "stream lost" in run.stderr(), timeout=START_TIMEOUT, run=run,
               what="the engine to see the venue's stream lost")
    before = fills(db)
    venue.start()  # the same port, the same state file
    wait_until(lambda: "resynced; trading there again" in run.stderr(), timeout=TRADING,
               run=run, what="the engine to resync with the restarted venue")
    wait_until(lambda: fills(db) >= before + 2, timeout=TRADING, run=run,
               what="two fills after the venue came back")
    stop_engine(run)
    assert_lts_agrees_with_the_venue(db, venue, venue_went_away=True)
