"""Admission control over real HTTP against the real engine: the rate limit per client address
(429), the bound on requests in flight (503), the monitoring paths that always answer, the
WebSocket that is not a request in flight, and the refusals counted in ``/metrics``.

The rate-limit tests refill a token every 100 s (``rate_limit_per_second=0.01``), so no bucket
refills while a test runs, however slow the machine: the counts are exact. The concurrency test
holds one request open without any sleep: it sends the headers of a ``POST`` and half its body;
the route waits for the rest of the body, so that request stays in flight until the test sends
the rest. ``lts_http_requests_in_flight`` (scraped from ``/metrics``, which admission lets
through) tells the test when the server has taken it.
"""

import http.client
import json
import socket
from pathlib import Path

import anyio
import pytest
from prometheus_client.parser import text_string_to_metric_families
from websockets.asyncio.client import connect

from lts.api.admission import TokenBuckets
from lts.errors import ConfigError
from lts.settings import load_settings

from ._auth import running_api
from .conftest import Api, Reply

pytestmark = pytest.mark.anyio

SLOW_REFILL = {"rate_limit_per_second": 0.01, "rate_limit_burst": 5}


async def metric(api: Api, name: str, **labels: str) -> float:
    """One sample of the app's ``/metrics``, parsed with prometheus_client's parser."""
    reply = await api.request("GET", "/metrics")
    assert reply.status == 200
    for family in text_string_to_metric_families(reply.body.decode()):
        for sample in family.samples:
            if sample.name == name and sample.labels == labels:
                return sample.value
    raise AssertionError(f"no sample {name} {labels}")


def _get_from(source: str, port: int, path: str) -> Reply:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10, source_address=(source, 0))
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return Reply(resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read())
    finally:
        conn.close()


async def get_from(api: Api, source: str, path: str) -> Reply:
    """A GET whose client socket is bound to ``source`` (another loopback address)."""
    port = int(api.base.rsplit(":", 1)[1])
    return await anyio.to_thread.run_sync(_get_from, source, port, path)


def assert_refused(reply: Reply, status: int, code: str) -> None:
    assert reply.status == status, reply.body
    body = reply.json()
    assert body["code"] == code
    assert body["correlation_id"] == reply.headers["x-correlation-id"]
    assert reply.headers["x-content-type-options"] == "nosniff"  # the edge's headers
    assert int(reply.headers["retry-after"]) >= 1


async def test_a_client_over_its_burst_gets_429_others_and_monitoring_do_not(
        tmp_path: Path) -> None:
    async with running_api(tmp_path, api=SLOW_REFILL) as api:
        for _ in range(5):
            assert (await api.request("GET", "/api/v1/auth/me")).status == 401
        limited = await api.request("GET", "/api/v1/auth/me")
        assert_refused(limited, 429, "rate_limited")
        assert int(limited.headers["retry-after"]) <= 100  # one token back, at 0.01 a second
        assert (await api.request("POST", "/api/v1/auth/login", b"{}",
                                  {"content-type": "application/json"})).status == 429

        assert (await get_from(api, "127.0.0.2", "/api/v1/auth/me")).status == 401
        for path in ("/healthz", "/readyz", "/metrics"):
            assert (await api.request("GET", path)).status == 200, path

        assert await metric(api, "lts_http_refused_total", reason="rate_limited") == 2
        assert await metric(api, "lts_http_refused_total", reason="overloaded") == 0
        assert await metric(api, "lts_http_requests_total", method="GET",
                            route="unmatched", status="429") == 1


def _open_slow_post(port: int) -> socket.socket:
    """A POST whose body is only half sent: the route waits for the rest."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    body = json.dumps({"name": "held"}).encode()
    sock.sendall(b"POST /api/v1/portfolios HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                 b"Content-Type: application/json\r\nContent-Length: "
                 + str(len(body)).encode() + b"\r\n\r\n" + body[:5])
    return sock


def _finish_slow_post(sock: socket.socket) -> int:
    """Send the rest of the body; the status line of the answer."""
    body = json.dumps({"name": "held"}).encode()
    with sock:
        sock.sendall(body[5:])
        return int(sock.makefile("rb").readline().split()[1])


async def wait_for_in_flight(api: Api, count: int) -> None:
    with anyio.fail_after(20):
        while await metric(api, "lts_http_requests_in_flight") != count:  # noqa: ASYNC110
            await anyio.sleep(0.01)  # a poll: the server's state is only seen over HTTP


async def test_over_the_concurrency_bound_the_answer_is_503_at_once(tmp_path: Path) -> None:
    async with running_api(tmp_path, api={"max_concurrent_requests": 1}) as api:
        port = int(api.base.rsplit(":", 1)[1])
        held = await anyio.to_thread.run_sync(_open_slow_post, port)
        await wait_for_in_flight(api, 1)

        busy = await api.request("GET", "/api/v1/auth/me")
        assert_refused(busy, 503, "overloaded")
        assert busy.headers["retry-after"] == "1"
        assert (await api.request("GET", "/healthz")).status == 200

        assert await anyio.to_thread.run_sync(_finish_slow_post, held) == 401  # no token
        await wait_for_in_flight(api, 0)
        assert (await api.request("GET", "/api/v1/auth/me")).status == 401  # admitted again
        assert await metric(api, "lts_http_refused_total", reason="overloaded") == 1
        assert await metric(api, "lts_http_refused_total", reason="rate_limited") == 0


async def test_an_open_websocket_is_not_a_request_in_flight(tmp_path: Path) -> None:
    async with running_api(tmp_path, api={"max_concurrent_requests": 1}) as api:
        async with connect(api.base.replace("http://", "ws://") + "/ws/orders"):
            assert (await api.request("GET", "/api/v1/auth/me")).status == 401
            assert await metric(api, "lts_http_requests_in_flight") == 0
        assert await metric(api, "lts_http_refused_total", reason="overloaded") == 0


def test_buckets_refill_at_the_rate_and_forget_the_least_recent_client() -> None:
    now = [0.0]
    buckets = TokenBuckets(rate=2.0, burst=3, max_keys=2, clock=lambda: now[0])
    assert [buckets.take("a") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert buckets.take("a") == pytest.approx(0.5)  # one token back in half a second
    now[0] = 0.5
    assert buckets.take("a") == 0.0
    assert buckets.take("b") == 0.0
    assert buckets.take("c") == 0.0  # a third client: "a" (least recently seen) is forgotten
    assert len(buckets) == 2
    assert [buckets.take("a") for _ in range(3)] == [0.0, 0.0, 0.0]  # back with a full bucket


def test_admission_settings_are_bounded() -> None:
    with pytest.raises(ConfigError, match="rate_limit_burst"):
        load_settings(overrides={"api": {"rate_limit_burst": 0}})
    with pytest.raises(ConfigError, match="max_concurrent_requests"):
        load_settings(overrides={"api": {"max_concurrent_requests": -1}})
