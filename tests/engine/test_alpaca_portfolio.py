"""A portfolio trading US stocks through the ``alpaca`` broker (alpaca-py) on the local Alpaca
trading API, in the real engine (issue 10: "trade through Alpaca"). SYS-004 (credentials),
SYS-006 (orders and positions).

The engine reads the owner's keys from the sealed store, the broker places orders with LTS's
client order ids through alpaca-py's client (in a worker thread) and takes fills from its
``TradingStream`` (in the SDK's own thread): the position LTS books is the venue's.
"""

from decimal import Decimal

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from venue.alpaca_local import KEY, SECRET, local_alpaca

from lts.domain.commands import Accepted, CancelOrder
from lts.domain.orders import OrderType, Side
from lts.persistence import repositories as repo
from lts.persistence.credentials import BrokerCredentials, CredentialStore
from lts.persistence.keyring import Keyring, new_key_entry
from lts.persistence.tables import orders, positions
from lts.venue.alpaca_server import ACCOUNT

from .desk import running_desk

pytestmark = pytest.mark.anyio

MASTER = new_key_entry("v1")


async def test_a_portfolio_trades_stocks_on_alpaca(migrated_url: str,
                                                  migrated_engine: AsyncEngine,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    owner = await repo.create_user(migrated_engine, "alice", "x" * 60, "trader")
    await CredentialStore(migrated_engine, Keyring.parse(MASTER)).put(
        owner, "alpaca", BrokerCredentials(KEY, SECRET))
    async with local_alpaca() as alpaca, running_desk(
            migrated_url, symbols=("AAPL",), owner_id=owner, settings={"master_key": MASTER},
            broker=("alpaca", {"url_override": alpaca.url})) as desk:
        bought = await desk.submit(Side.BUY, 5)
        assert isinstance(bought, Accepted), bought
        assert bought.order is not None
        await desk.until(lambda: desk.state().open_orders == 0, "the market order to fill")
        [position] = await desk.rows(positions, portfolio_id=desk.portfolio_id)
        assert Decimal(position["quantity"]) == 5
        held = alpaca.venue.exchange.balances(ACCOUNT)["AAPL"]
        assert held.free + held.locked == 5  # the venue's position is LTS's

        resting = await desk.submit(Side.BUY, 2, order_type=OrderType.LIMIT, limit="90")
        assert isinstance(resting, Accepted), resting
        assert resting.order is not None
        coid = resting.order.client_order_id
        await desk.until(lambda: alpaca.venue.exchange.open_orders(ACCOUNT),
                         "the limit order to rest at the venue")
        assert isinstance(await desk.command(CancelOrder(coid)), Accepted)
        await desk.until(lambda: not alpaca.venue.exchange.open_orders(ACCOUNT),
                         "the cancel to reach the venue")
        await desk.until(lambda: desk.state().open_orders == 0, "LTS to see it canceled")
        rows = await desk.rows(orders, portfolio_id=desk.portfolio_id)
        assert [(r["client_order_id"], r["status"]) for r in rows] == [
            (bought.order.client_order_id, "filled"), (coid, "canceled")]
    assert SECRET not in caplog.text
