"""Prometheus metrics of one app, in its own registry (never the global one).

Engine figures are read when Prometheus scrapes (a collector), so the trading path pays nothing
for them; HTTP, loop lag and journal commits are observed as they happen. Names: ``lts_`` prefix,
base units, counters end in ``_total``; labels never carry an order or user id.
"""

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from lts import __version__
from lts.domain.commands import TradingState
from lts.engine.facade import PORTFOLIO_STATUSES, EngineFacade

_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)


class EngineCollector(Collector):
    """Reads the engine's counters at scrape time."""

    def __init__(self, engine: EngineFacade) -> None:
        self._engine = engine

    def collect(self) -> Iterator[Metric]:
        engine = self._engine
        counters = engine.counters()
        published = CounterMetricFamily("lts_events_published", "Events published on the bus",
                                        labels=["type"])
        for kind, count in sorted(counters.published.items()):
            published.add_metric([kind], count)
        yield published
        dropped = CounterMetricFamily("lts_events_dropped",
                                      "Market data dropped or conflated by a full mailbox",
                                      labels=["mailbox"])
        for name, count in sorted(counters.dropped.items()):
            dropped.add_metric([name], count)
        yield dropped
        yield from self._portfolios(engine)
        yield CounterMetricFamily("lts_journal_commits", "Journal transactions committed",
                                  value=counters.journal_commits)
        yield CounterMetricFamily("lts_journal_records", "Journal records written",
                                  value=counters.journal_records)
        yield GaugeMetricFamily("lts_journal_backlog", "Journal records not yet committed",
                                value=counters.journal_backlog)
        yield GaugeMetricFamily("lts_journal_available",
                                "1 while the journal can write (0: database away, disk full)",
                                value=1.0 if counters.journal_available else 0.0)
        for service, named in sorted(counters.services.items()):
            for name, (text, value) in named.items():
                yield CounterMetricFamily(f"lts_{service}_{name}", text, value=value)

    @staticmethod
    def _portfolios(engine: EngineFacade) -> Iterator[Metric]:
        labels = ["portfolio"]
        equity = GaugeMetricFamily("lts_portfolio_equity", "Cash plus marked positions",
                                   labels=labels)
        realized = GaugeMetricFamily("lts_portfolio_realized_pnl", "Realized P&L",
                                     labels=labels)
        depth = GaugeMetricFamily("lts_mailbox_depth", "Market data waiting for a portfolio",
                                  labels=labels)
        orders = CounterMetricFamily("lts_orders", "Orders created", labels=labels)
        denied = CounterMetricFamily("lts_orders_denied", "Orders denied by risk checks",
                                     labels=labels)
        fills = CounterMetricFamily("lts_fills", "Fills committed", labels=labels)
        anomalies = CounterMetricFamily(
            "lts_fill_anomalies", "Fills an order's state did not allow (after its close, "
            "beyond its quantity) and orders adopted from the venue: reconcile", labels=labels)
        open_orders = GaugeMetricFamily("lts_open_orders", "Orders not yet final", labels=labels)
        restarts = CounterMetricFamily("lts_portfolio_restarts",
                                       "Portfolio restarts after a plugin error", labels=labels)
        in_error = GaugeMetricFamily("lts_portfolio_in_error", "1 when the portfolio is in error",
                                     labels=labels)
        status = GaugeMetricFamily("lts_portfolio_status", "1 for the status the portfolio's "
                                   "runner is in (running, error, standby...)",
                                   labels=["portfolio", "status"])
        trading = GaugeMetricFamily("lts_portfolio_trading_state", "1 for the portfolio's "
                                    "trading state (the kill switch: ACTIVE, REDUCING, HALTED)",
                                    labels=["portfolio", "state"])
        stale = GaugeMetricFamily("lts_feed_stale", "1 while an asset's market data has "
                                  "stopped (engine.feed_stale_seconds): its strategy waits",
                                  labels=["portfolio", "symbol"])
        banned = GaugeMetricFamily("lts_venue_banned", "1 while a venue refuses the portfolio "
                                   "(rate limit, 418/429)", labels=["portfolio", "broker"])
        for state in engine.figures():
            label = [str(state.portfolio_id)]
            restarts.add_metric(label, state.restarts)
            in_error.add_metric(label, 1.0 if state.status == "error" else 0.0)
            for name in PORTFOLIO_STATUSES:
                status.add_metric([*label, name], 1.0 if state.status == name else 0.0)
            if not state.running:
                continue
            for kill in TradingState:
                trading.add_metric([*label, kill.value],
                                   1.0 if state.trading_state == kill.value else 0.0)
            for symbol in state.symbols:
                stale.add_metric([*label, symbol], 1.0 if symbol in state.stale_feeds else 0.0)
            for broker in state.banned_venues:
                banned.add_metric([*label, broker], 1.0)
            equity.add_metric(label, state.equity)
            realized.add_metric(label, state.realized_pnl)
            depth.add_metric(label, state.mailbox_depth)
            orders.add_metric(label, state.orders_created)
            denied.add_metric(label, state.orders_denied)
            fills.add_metric(label, state.fills)
            anomalies.add_metric(label, state.anomalies)
            open_orders.add_metric(label, state.open_orders)
        yield from (equity, realized, depth, orders, denied, fills, anomalies, open_orders,
                    restarts, in_error, status, trading, stale, banned)


class ApiMetrics:
    """The app's registry and the metrics observed as things happen."""

    def __init__(self, engine: EngineFacade) -> None:
        self.registry = CollectorRegistry()
        reg = self.registry
        self.http_requests = Counter("lts_http_requests", "HTTP requests",
                                     ["method", "route", "status"], registry=reg)
        self.http_refused = Counter("lts_http_refused",
                                    "HTTP requests refused by admission control",
                                    ["reason"], registry=reg)
        self.http_in_flight = Gauge("lts_http_requests_in_flight",
                                    "Admitted HTTP requests being served", registry=reg)
        self.http_connections_waiting = Gauge(
            "lts_http_connections_waiting",
            "HTTP connections with data waiting for a turn of the event loop to be read",
            registry=reg)
        self.loop_lag = Histogram("lts_event_loop_lag_seconds",
                                  "How late the event loop ran a 100 ms timer",
                                  buckets=_LATENCY_BUCKETS, registry=reg)
        self.journal_commit = Histogram("lts_journal_commit_seconds",
                                        "Journal batch: BEGIN to COMMIT",
                                        buckets=_LATENCY_BUCKETS, registry=reg)
        self.journal_batch = Histogram("lts_journal_batch_size", "Records per journal commit",
                                       buckets=(1, 2, 5, 10, 50, 100, 500, 1000, 5000, 10000),
                                       registry=reg)
        self.tick_to_order = Histogram("lts_tick_to_order_seconds",
                                       "From a bar's time to its orders handed to the broker",
                                       buckets=(0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005,
                                                0.01, 0.025, 0.05, 0.1), registry=reg)
        self.ws_clients = Gauge("lts_websocket_clients", "Connected WebSocket clients",
                                registry=reg)
        self.login_failures = Counter("lts_login_failures", "Failed logins", registry=reg)
        build = Gauge("lts_build_info", "LTS version", ["version"], registry=reg)
        build.labels(__version__).set(1)
        reg.register(EngineCollector(engine))

    def observe_commit(self, seconds: float, records: int) -> None:
        self.journal_commit.observe(seconds)
        self.journal_batch.observe(records)
