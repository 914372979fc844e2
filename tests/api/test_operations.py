"""Operational endpoints of the control API against a real engine and a real uvicorn server
(SYS-014 observability, SYS-019 error sanitization)."""

from pathlib import Path

import anyio
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import func, select

from lts.persistence.tables import fills

from .conftest import Api, running_api

pytestmark = pytest.mark.anyio


async def test_healthz_answers_with_security_headers_and_a_correlation_id(api: Api) -> None:
    reply = await api.request("GET", "/healthz")
    assert (reply.status, reply.json()) == (200, {"status": "ok"})
    assert reply.headers["x-content-type-options"] == "nosniff"
    assert reply.headers["x-frame-options"] == "DENY"
    assert "default-src 'none'" in reply.headers["content-security-policy"]
    assert len(reply.headers["x-correlation-id"]) == 32
    assert "server" not in reply.headers
    ids = {(await api.request("GET", "/healthz")).headers["x-correlation-id"] for _ in range(20)}
    assert len(ids) == 20
    assert reply.headers["x-correlation-id"] not in ids


async def test_a_sane_correlation_id_from_the_client_is_kept(api: Api) -> None:
    reply = await api.request("GET", "/healthz", headers={"x-correlation-id": "abc123DEF456"})
    assert reply.headers["x-correlation-id"] == "abc123DEF456"
    reply = await api.request("GET", "/healthz", headers={"x-correlation-id": "no spaces!"})
    assert reply.headers["x-correlation-id"] != "no spaces!"


async def test_readyz_reports_database_engine_and_portfolios(api: Api) -> None:
    reply = await api.request("GET", "/readyz")
    assert reply.status == 200
    body = reply.json()
    assert body["ready"] is body["database"] is body["engine_running"] is True
    assert body["portfolios_in_error"] == []


async def test_an_unknown_route_is_a_404_with_a_stable_code(api: Api) -> None:
    reply = await api.request("GET", "/api/v1/nothing-here")
    assert reply.status == 404
    body = reply.json()
    assert body["code"] == "not_found"
    assert body["correlation_id"] == reply.headers["x-correlation-id"]


async def test_a_body_over_the_limit_gets_413(api: Api) -> None:
    """SYS-018: a client sending too much gets the 413, not a reset connection: the server reads
    the body it refuses before answering. It used to close while the client was still sending
    (ECONNRESET at the client: with 2 MB now and then on a loaded machine, with 8 MB, more than
    the loopback socket buffers hold, every time)."""
    for _ in range(3):
        reply = await api.request("POST", "/healthz", body=b"x" * 8_000_000,
                                  headers={"content-type": "application/json"})
        assert reply.status == 413
        assert reply.json()["code"] == "body_too_large"


async def test_metrics_parse_and_show_the_engine_trading(api: Api) -> None:
    """SYS-014: /metrics is Prometheus text from the app's own registry, with the engine's
    figures (the demo portfolio trades within seconds)."""
    with anyio.fail_after(20):
        while True:
            families = {f.name: f for f in text_string_to_metric_families(
                (await api.request("GET", "/metrics")).body.decode())}
            fills = sum(s.value for s in families["lts_fills"].samples
                        if s.name == "lts_fills_total")
            if fills > 0:
                break
            await anyio.sleep(0.2)
    assert {s.labels["type"] for s in families["lts_events_published"].samples} >= {"Bar"}
    equity = [s for s in families["lts_portfolio_equity"].samples]
    assert [s.labels for s in equity] == [{"portfolio": "1"}]
    assert families["lts_build_info"].samples[0].labels["version"]
    assert families["lts_journal_commit_seconds"].type == "histogram"
    assert families["lts_event_loop_lag_seconds"].type == "histogram"
    ticks = families["lts_tick_to_order_seconds"]
    assert ticks.type == "histogram"
    assert next(s.value for s in ticks.samples if s.name.endswith("_count")) > 0
    for family in families.values():  # naming rules of the issue
        assert family.name.startswith("lts_")
        for sample in family.samples:
            assert "order_id" not in sample.labels
            assert "user" not in sample.labels
    http = families["lts_http_requests"]
    assert any(s.labels.get("route") == "/metrics" for s in http.samples)


async def test_the_interactive_docs_come_from_the_engine_itself(api: Api) -> None:
    """/docs works offline and under its same-origin CSP: the page loads Swagger UI's script
    and styles from /docs/, never from a CDN (it used to, and the CSP left the page blank)."""
    page = await api.request("GET", "/docs")
    html = page.body.decode()
    assert page.status == 200
    assert "cdn." not in html
    assert '"/docs/swagger-ui-bundle.js"' in html
    assert "default-src 'self'" in page.headers["content-security-policy"]
    for asset, kind in (("swagger-ui-bundle.js", "text/javascript"),
                        ("swagger-ui.css", "text/css")):
        reply = await api.request("GET", f"/docs/{asset}")
        assert reply.status == 200
        assert reply.headers["content-type"].startswith(kind)
        assert len(reply.body) > 100_000
    assert (await api.request("GET", "/docs/oauth2-redirect")).status == 200


async def _fills_in_journal(api: Api) -> int:
    await api.engine.journal.flush()
    async with api.engine.db.connect() as conn:
        return int((await conn.execute(select(func.count()).select_from(fills))).scalar_one())


async def _counted(api: Api, family: str) -> float:
    families = {f.name: f for f in text_string_to_metric_families(
        (await api.request("GET", "/metrics")).body.decode())}
    return sum(s.value for s in families[family].samples if s.name == f"{family}_total")


async def test_fills_are_counted_since_the_engine_started_as_orders_are(tmp_path: Path) -> None:
    """lts_fills_total, like lts_orders_total, counts what this process did: after a restart on
    the same database it starts again from nothing, not from the journal's fills."""
    async with running_api(tmp_path, demo={"interval": 0.02}) as first:
        with anyio.fail_after(30):
            while await _counted(first, "lts_fills") < 2:  # noqa: ASYNC110 - polls the API
                await anyio.sleep(0.1)
        before = await _fills_in_journal(first)
    async with running_api(tmp_path, demo={"interval": 0.02}) as second:
        fills_counted = await _counted(second, "lts_fills")
        made_here = await _fills_in_journal(second) - before
    assert before >= 2
    assert fills_counted <= made_here  # counted from the journal's start: >= before + that
