"""Broker plugins: orders out to a venue, reports back.

The order manager hands an order over only after its row is durable; the broker answers through
:class:`BrokerReports` (status changes and fills, each fill with a trade id unique per broker).
At start-up :meth:`Broker.reconcile` tells where each order the journal holds open stands.
"""

from collections.abc import Sequence
from typing import Protocol

from lts.domain.clock import Clock
from lts.domain.market import Bar
from lts.domain.orders import Fill, Order, OrderStatus, OrderStatusReport


class BrokerReports(Protocol):
    def on_order_status(self, client_order_id: str, status: OrderStatus, ts: int,
                        reason: str = "") -> None: ...

    def on_fill(self, fill: Fill) -> None: ...


class Broker(Protocol):
    name: str

    def bind(self, reports: BrokerReports, clock: Clock) -> None: ...

    def submit(self, order: Order) -> None:
        """Hand the order to the venue; answers arrive through the reports."""
        ...

    def cancel(self, client_order_id: str) -> None: ...

    def on_bar(self, bar: Bar) -> None:
        """Market data, for brokers that simulate fills from it (paper); others ignore it."""
        ...

    async def reconcile(self, orders: Sequence[Order]) -> list[OrderStatusReport]: ...
