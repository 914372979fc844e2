"""The local exchange's own capacity, for bench/venue.py (figure 4): market orders matched per
second in process (``Exchange.place``, no I/O) and over HTTP (K signed clients, aiohttp, one
keep-alive connection each, one request at a time each).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal

import aiohttp

from lts.venue.exchange import Exchange, Market, OrderType, Side

__all__ = ["HttpResult", "InProcessResult", "http_capacity", "in_process_capacity"]

SYMBOL = "BTCUSDT"
QUANTITY = "0.001"  # at 10,000 a notional of 10: over the venue's 5 minimum
perf_ns = time.perf_counter_ns


@dataclass
class InProcessResult:
    orders: int
    seconds: float  # wall time of the whole loop
    place_ns: list[int]  # each place() call
    statuses: Counter[str]


def in_process_capacity(orders: int) -> InProcessResult:
    """``orders`` market orders, buys and sells in turn, against one bar of ample liquidity (so
    every order fills: one trade each), one account; the matching alone, no front, no I/O."""
    exchange = Exchange([Market(SYMBOL, "BTC", "USDT")])
    exchange.add_account("bench", {"USDT": Decimal(10**12), "BTC": Decimal(10**6)})
    exchange.on_bar(SYMBOL, high=Decimal(10_010), low=Decimal(9_990), close=Decimal(10_000),
                    volume=Decimal(10**12))
    quantity = Decimal(QUANTITY)
    place = exchange.place
    lat: list[int] = []
    statuses: Counter[str] = Counter()
    started = perf_ns()
    for i in range(orders):
        t = perf_ns()
        order = place("bench", SYMBOL, Side.BUY if i % 2 == 0 else Side.SELL, OrderType.MARKET,
                      quantity)
        lat.append(perf_ns() - t)
        statuses[order.status.value] += 1
    return InProcessResult(orders, (perf_ns() - started) / 1e9, lat, statuses)


@dataclass
class HttpResult:
    clients: int
    seconds: float
    latency_us: list[float] = field(default_factory=list)
    statuses: Counter[str] = field(default_factory=Counter)  # order status, or HTTP status
    answered: int = 0  # HTTP 200


async def _client(n: int, base: str, key: str, secret: bytes, start: float, end: float,
                  result: HttpResult) -> None:
    connector = aiohttp.TCPConnector(limit=1, force_close=False)
    headers = {"X-MBX-APIKEY": key, "Content-Type": "application/x-www-form-urlencoded"}
    url = f"{base}/order"
    i = 0
    async with aiohttp.ClientSession(connector=connector) as session:
        while True:
            now = time.perf_counter()
            if now >= end:
                return
            side = "BUY" if i % 2 == 0 else "SELL"
            query = (f"symbol={SYMBOL}&side={side}&type=MARKET&quantity={QUANTITY}"
                     f"&newClientOrderId=cap-{n}-{i}&timestamp={time.time_ns() // 1_000_000}")
            signature = hmac.new(secret, query.encode(), hashlib.sha256).hexdigest()
            i += 1
            t = perf_ns()
            async with session.post(url, data=f"{query}&signature={signature}",
                                    headers=headers) as reply:
                body = await reply.read()
                status = reply.status
            if now < start:
                continue  # warming up: connections made, first requests answered
            result.latency_us.append((perf_ns() - t) / 1e3)
            if status == 200:
                result.answered += 1
                result.statuses[str(json.loads(body).get("status"))] += 1
            else:
                result.statuses[f"HTTP {status}"] += 1


async def http_capacity(api: str, key: str, secret: str, clients: int, seconds: float,
                        warmup: float = 1.0) -> HttpResult:
    """``clients`` concurrent clients posting signed market orders for ``seconds`` (after
    ``warmup`` seconds not counted)."""
    result = HttpResult(clients, seconds)
    start = time.perf_counter() + warmup
    end = start + seconds
    await asyncio.gather(*(_client(n, api, key, secret.encode(), start, end, result)
                           for n in range(clients)))
    return result
