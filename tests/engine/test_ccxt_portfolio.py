"""A portfolio trading through broker ``ccxt`` (the real ccxt and ccxt.pro clients) on the local
exchange while it misbehaves, in the real engine (issue 10, behaviour under faults). SYS-006
(orders and positions), SYS-011 (recovery), SYS-013 (integrity).

The venue (tests/plugins/_venue.py: the exchange, its Binance REST and WebSocket fronts on a
free loopback port) drops an order's answer, sends a report twice, drops its streams, fills an
order LTS never sent, bans the address; the engine's books must follow the venue's through all
of it: no order placed twice, the position equal to the venue's balance.
"""

import logging
import urllib.error
import urllib.request
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from decimal import Decimal

import anyio
import pytest
from plugins._venue import ACCOUNT, KEY, MARKET, SECRET, Venue, serve_venue, wall_ms
from sqlalchemy.ext.asyncio import AsyncEngine

from lts.domain.commands import Accepted, Denied, ModifyOrder, Reason
from lts.domain.orders import OrderType, Side
from lts.persistence import repositories as repo
from lts.persistence.credentials import BrokerCredentials, CredentialStore
from lts.persistence.keyring import Keyring, new_key_entry
from lts.persistence.tables import orders, positions
from lts.venue.exchange import OrderType as VenueType
from lts.venue.exchange import Side as VenueSide

from .desk import EngineDesk, running_desk

pytestmark = pytest.mark.anyio

MASTER = new_key_entry("v1")
SYMBOL = "BTC/USDT"
START_BTC = Decimal(1)  # the venue's account holds 1 BTC to start with


@asynccontextmanager
async def trading(url: str, db: AsyncEngine) -> AsyncIterator[tuple[EngineDesk, Venue]]:
    """The engine running one portfolio of BTC/USDT on ``ccxt`` against the venue."""
    owner = await repo.create_user(db, "bob", "x" * 60, "trader")
    await CredentialStore(db, Keyring.parse(MASTER)).put(owner, "binance",
                                                          BrokerCredentials(KEY, SECRET))
    async with serve_venue() as venue, running_desk(
            url, symbols=(SYMBOL,), owner_id=owner, price=30_000.0,
            settings={"master_key": MASTER}, engine={"ack_timeout": 1.0},
            broker=("ccxt", {"exchange": "binance", "urls": venue.urls})) as desk:
        yield desk, venue


async def held(desk: EngineDesk) -> Decimal:
    rows = await desk.rows(positions, portfolio_id=desk.portfolio_id)
    return sum((Decimal(r["quantity"]) for r in rows), Decimal(0))


def venue_btc(venue: Venue) -> Decimal:
    balance = venue.exchange.balances(ACCOUNT)["BTC"]
    return balance.free + balance.locked - START_BTC


async def books_agree(desk: EngineDesk, venue: Venue) -> None:
    """The position LTS journaled is what the venue's balance moved by."""
    await desk.until_async(lambda: _agree(desk, venue), "LTS's position to be the venue's")


async def _agree(desk: EngineDesk, venue: Venue) -> bool:
    return await held(desk) == venue_btc(venue) and desk.state().open_orders == 0


async def test_an_answer_that_never_comes_is_settled_by_a_query_never_sent_twice(
        migrated_url: str, migrated_engine: AsyncEngine) -> None:
    async with trading(migrated_url, migrated_engine) as (desk, venue):
        venue.faults.drop_order_answers = 1
        reply = await desk.submit(Side.BUY, "0.01")
        assert isinstance(reply, Accepted), reply
        assert reply.order is not None
        coid = reply.order.client_order_id
        await books_agree(desk, venue)
        [row] = await desk.rows(orders, client_order_id=coid)
        assert row["status"] == "filled"
        assert [e.status for e in desk.committed() if e.client_order_id == coid][-1] == "filled"
        at_venue = [o for o in venue.exchange.orders.values() if o.client_order_id == coid]
        assert len(at_venue) == 1  # placed once, found by its client order id
        assert await held(desk) == Decimal("0.01") - Decimal("0.00001")  # less the commission


async def test_a_report_sent_twice_moves_the_position_once(
        migrated_url: str, migrated_engine: AsyncEngine) -> None:
    async with trading(migrated_url, migrated_engine) as (desk, venue):
        venue.faults.duplicate_reports = 10
        assert isinstance(await desk.submit(Side.BUY, "0.02"), Accepted)
        await books_agree(desk, venue)
        await desk.until(lambda: venue.faults.duplicate_reports == 0 or desk.state().fills,
                         "the reports to come")
        assert desk.state().fills == 1
        assert await held(desk) == Decimal("0.02") - Decimal("0.00002")


async def test_a_dropped_stream_holds_new_orders_until_resynced_and_loses_no_fill(
        migrated_url: str, migrated_engine: AsyncEngine) -> None:
    async with trading(migrated_url, migrated_engine) as (desk, venue):
        resting = await desk.submit(Side.BUY, "0.05", order_type=OrderType.LIMIT,
                                    limit="29000")
        assert isinstance(resting, Accepted), resting
        await desk.until(lambda: venue.exchange.open_orders(ACCOUNT), "the order to rest")
        venue.faults.drop_websockets()
        await desk.until(lambda: desk.state().venues, "LTS to see the stream lost")
        venue.bar("28950", low="28900")  # fills the resting order, the stream down or not
        denied = await desk.submit(Side.BUY, "0.01")
        if isinstance(denied, Denied):  # still stale: nothing may go out
            assert denied.reason is Reason.VENUE_STALE
        await desk.until(lambda: desk.state().venues is None, "the resync to finish")
        await books_agree(desk, venue)
        assert isinstance(await desk.submit(Side.SELL, "0.01"), Accepted)  # trading on
        await books_agree(desk, venue)


async def test_a_fill_of_an_order_placed_outside_lts_is_adopted(
        migrated_url: str, migrated_engine: AsyncEngine) -> None:
    async with trading(migrated_url, migrated_engine) as (desk, venue):
        venue.exchange.place(ACCOUNT, MARKET, VenueSide.BUY, VenueType.MARKET, Decimal("0.03"),
                             client_order_id="web_5f2c")  # the venue's own web page
        await books_agree(desk, venue)
        rows = await desk.rows(orders, portfolio_id=desk.portfolio_id)
        assert [(r["anomaly"], r["status"]) for r in rows] == [("external", "filled")]
        assert rows[0]["client_order_id"].startswith(f"ext-{desk.portfolio_id}-")


async def test_a_ban_halts_the_portfolio_with_the_venues_reason(
        migrated_url: str, migrated_engine: AsyncEngine) -> None:
    async with trading(migrated_url, migrated_engine) as (desk, venue):
        venue.faults.set("weight_limit", 3)

        def hammer() -> None:  # another program on this address ignores the 429s: banned
            for _ in range(8):
                try:
                    urllib.request.urlopen(
                        f"http://127.0.0.1:{venue.port}/api/v3/ping", timeout=5).close()
                except urllib.error.HTTPError as err:
                    err.close()

        await anyio.to_thread.run_sync(hammer)  # the venue answers on this test's loop
        reply = await desk.submit(Side.BUY, "0.01")  # LTS's next call hears the 418
        assert not (isinstance(reply, Denied) and reply.reason is not Reason.TRADING_HALTED)
        await desk.until(lambda: desk.state().trading_state == "HALTED", "the portfolio to halt")
        assert "banned" in (desk.state().venues or "").lower()
        halted = await desk.submit(Side.BUY, "0.01")
        assert isinstance(halted, Denied)
        assert halted.reason is Reason.TRADING_HALTED


async def test_a_resting_order_modified_fills_at_its_new_price_under_its_id(
        migrated_url: str, migrated_engine: AsyncEngine) -> None:
    """A ModifyOrder through the facade: Binance's cancel-replace at the venue, the new order
    under LTS's client order id; a bar through the new price fills it, and LTS's books follow
    the venue's (the replaced order's cancel does not end the LTS order)."""
    async with trading(migrated_url, migrated_engine) as (desk, venue):
        resting = await desk.submit(Side.BUY, "0.05", order_type=OrderType.LIMIT,
                                    limit="29000")
        assert isinstance(resting, Accepted), resting
        assert resting.order is not None
        coid = resting.order.client_order_id
        await desk.until(lambda: venue.exchange.open_orders(ACCOUNT), "the order to rest")
        await desk.until(lambda: [e for e in desk.committed() if e.client_order_id == coid
                                  and e.status == "accepted"], "LTS to see it accepted")
        reply = await desk.command(ModifyOrder(coid, quantity=Decimal("0.04"),
                                               limit_price=Decimal("28500")))
        assert isinstance(reply, Accepted), reply
        await desk.until(lambda: [o for o in venue.exchange.open_orders(ACCOUNT)
                                  if o.price == Decimal(28500)], "the venue to replace it")
        old, new = [o for o in venue.exchange.orders.values() if o.client_order_id == coid]
        assert (old.status.value, new.status.value, new.orig_qty) == \
            ("CANCELED", "NEW", Decimal("0.04"))
        await desk.until(lambda: [e for e in desk.committed() if e.client_order_id == coid
                                  and e.limit_price == Decimal(28500)
                                  and e.quantity == Decimal("0.04")], "LTS to apply it")
        venue.bar("28800", low="28700")  # not down to 28,500: it rests on
        venue.bar("28450", low="28400")  # through 28,500: it fills there
        await books_agree(desk, venue)
        assert await held(desk) == Decimal("0.04") - Decimal("0.00004")  # less the commission
        [row] = await desk.rows(orders, client_order_id=coid)
        assert (row["status"], Decimal(row["filled_quantity"])) == ("filled", Decimal("0.04"))
        assert row["broker_order_id"] == str(new.order_id)  # the venue's id of the new order
        assert [e.status for e in desk.committed() if e.client_order_id == coid][-1] == "filled"
        assert "canceled" not in [e.status for e in desk.committed()
                                  if e.client_order_id == coid]


async def test_history_warms_the_strategy_up_and_nothing_trades_on_it(
        migrated_url: str, migrated_engine: AsyncEngine,
        caplog: pytest.LogCaptureFixture) -> None:
    """Pipeline ``ccxt`` starts with the venue's klines history: sma_crossover takes it in
    (its crosses there are the past: no order), the symbol has a price at once, and the first
    live candle that crosses trades (a cold strategy would still be counting bars)."""
    caplog.set_level(logging.INFO, logger="lts.runner")
    owner = await repo.create_user(migrated_engine, "carol", "x" * 60, "trader")
    await CredentialStore(migrated_engine, Keyring.parse(MASTER)).put(
        owner, "binance", BrokerCredentials(KEY, SECRET))
    async with serve_venue() as venue:
        start = (wall_ms() // 1000 - 40) * 1000
        # one bar a second: down, a cross up at 110 (a LONG signal, in the past), down again
        history = [100, 98, 96, 94, 110, 120, 120, 110, 100, 95, 90, 85]
        for i, close in enumerate(history):
            venue.bar(str(close), at=start + i * 1000)
        venue.bar("85", at=start + len(history) * 1000)  # closes the last history candle
        venue.clock.fixed = None  # the venue's time is the wall clock again
        urls = venue.urls
        async with running_desk(
                migrated_url, symbols=(SYMBOL,), owner_id=owner, wait_running=False,
                settings={"master_key": MASTER},
                broker=("ccxt", {"exchange": "binance", "urls": urls}),
                pipeline=("ccxt", {"exchange": "binance", "urls": urls, "timeframe": "1s",
                                   "backfill": 30}),
                strategy=("sma_crossover", {"fast": 2, "slow": 4,
                                            "quantity": "0.01"})) as desk:
            await desk.running()
            await desk.until(lambda: desk.facade.last_prices(desk.portfolio_id).get(SYMBOL)
                             == Decimal(85), "the history to mark the symbol")
            # every candle the venue has: their seconds are over (the last one's too)
            assert f"{SYMBOL} warmed up on {len(history) + 1} bar(s) of history" in caplog.text
            assert await desk.rows(orders, portfolio_id=desk.portfolio_id) == []
            second = wall_ms() // 1000
            venue.bar("130")  # the live candle that crosses up...
            await desk.until(lambda: wall_ms() // 1000 > second, "the next second")
            venue.bar("131")  # ...closed by the next one
            await desk.until_async(
                lambda: desk.rows(orders, portfolio_id=desk.portfolio_id),
                "the first live cross to trade")
            rows = await desk.rows(orders, portfolio_id=desk.portfolio_id)
            assert [(r["side"], Decimal(r["quantity"])) for r in rows] == [
                ("buy", Decimal("0.01"))]


async def test_a_venue_rejection_is_rejected_with_its_reason_and_blocks_nothing_after(
        migrated_url: str, migrated_engine: AsyncEngine) -> None:
    """The account holds less at the venue than LTS's books say (money moved out): the venue
    refuses the order; LTS records it REJECTED with the venue's words, and the next order goes
    through once the money is back."""
    async with trading(migrated_url, migrated_engine) as (desk, venue):
        usdt = venue.exchange.accounts[ACCOUNT]["USDT"]
        kept, usdt.free = usdt.free, Decimal(10)  # withdrawn outside LTS
        refused = await desk.submit(Side.BUY, "0.01")  # about 300 USDT
        assert isinstance(refused, Accepted), refused  # LTS's checks pass: it is sent
        assert refused.order is not None
        coid = refused.order.client_order_id
        await desk.until(lambda: desk.state().open_orders == 0, "the venue's answer")
        [row] = await desk.rows(orders, client_order_id=coid)
        assert row["status"] == "rejected"
        assert "insufficient balance" in row["reason"].lower()
        usdt.free = kept
        again = await desk.submit(Side.BUY, "0.01")
        assert isinstance(again, Accepted), again
        await books_agree(desk, venue)
        assert await held(desk) == Decimal("0.01") - Decimal("0.00001")


async def test_a_graceful_stop_takes_in_the_fill_its_stream_did_not_bring(
        migrated_url: str, migrated_engine: AsyncEngine) -> None:
    """The venue fills a resting order while its stream is down and the portfolio stops at
    once, before the stream is back: the stop's last look at the venue (where its open orders
    stand, the fills since) journals that fill, so the stopped engine's books are the venue's
    (before, such a fill was learnt only at the next start: seen as a trade the stopped engine
    did not have in the SIGKILL e2e test, under load)."""
    async with trading(migrated_url, migrated_engine) as (desk, venue):
        resting = await desk.submit(Side.BUY, "0.05", order_type=OrderType.LIMIT,
                                    limit="29000")
        assert isinstance(resting, Accepted), resting
        assert resting.order is not None
        await desk.until(lambda: venue.exchange.open_orders(ACCOUNT), "the order to rest")
        venue.faults.drop_websockets()
        venue.bar("28950", low="28900")  # fills it; no stream to say so
        await desk.facade.deactivate(desk.portfolio_id)  # stops within the reconnect's backoff
        [row] = await desk.rows(orders, client_order_id=resting.order.client_order_id)
        assert row["status"] == "filled"
        assert await held(desk) == venue_btc(venue) == Decimal("0.05") - Decimal("0.00005")
