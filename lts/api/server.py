"""Core plugin ``api``: uvicorn serving the FastAPI app inside the engine's own event loop.

Where it sits: the engine starts its core plugins in its trading task group and hands each the
:class:`~lts.engine.facade.EngineFacade` (the API's only door into the engine; registered under
the entry point ``lts.plugins.core: api``, so the engine never imports the API).
One process, one loop: the server runs as a task of the engine's task group. uvicorn's own
signal handling is switched off (the engine owns SIGINT and SIGTERM); on shutdown the server is
told to exit and given a few seconds to finish the requests in flight. httptools is used when
installed; connections are read through a :class:`~lts.api.turn_gate.TurnGate`
(``api.requests_per_loop_turn``). A port already in use stops the start with one clear line.
uvicorn logs every WebSocket handshake with its query string: the single-use ticket of
``/ws/orders?ticket=...`` is redacted from its log lines (:class:`RedactTickets`), as is the
token of a report link (``/reports/<token>/...``, :mod:`lts.api.routes.reports`), there and in
the API's own lines that name a path.

Each connection's kernel send buffer is fixed at :data:`SEND_BUFFER` (set on the listening
socket, inherited by every accepted one): autotuned, it grows to megabytes for a client that
stops reading (a WebSocket subscriber), which the server holds and the WebSocket route cannot
see; bounded, such a client's sends wait within seconds, and the route closes it (1013).
Every connection also has ``TCP_NODELAY`` (asyncio sets it only on sockets made with
``IPPROTO_TCP``; ``socket.create_server`` makes them with protocol 0): without it a small
answer's body waited for the client's delayed ACK of its headers, 40 ms per request on a
kept-alive connection.
"""

import asyncio
import contextlib
import logging
import socket
import time
from collections.abc import Generator

import anyio
import uvicorn
from anyio.abc import TaskStatus

from lts.api.app import create_app
from lts.api.metrics import ApiMetrics
from lts.api.security import redact_url_credentials
from lts.api.turn_gate import TurnGate, gated
from lts.engine.facade import EngineFacade
from lts.errors import ConfigError
from lts.plugins.base import PluginBase, PluginParams

__all__ = ["ApiServer"]

log = logging.getLogger("lts.api")

#: Bytes of a connection's kernel send buffer (Linux doubles it for its bookkeeping): enough for
#: the largest answers at loopback and LAN speeds, a bound on what a stalled client holds.
SEND_BUFFER = 256 * 1024


class RedactTickets(logging.Filter):
    """Hides the value of a ``ticket`` query parameter in uvicorn's log lines (its WebSocket
    handshake line, ``"WebSocket /ws/orders?ticket=..." [accepted]``, and the access log's),
    and the token of a report link's path (``/reports/<token>/NAME/FILE``)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(redact_url_credentials(a) if isinstance(a, str) else a
                                for a in record.args)
        return True


def _redact_tickets() -> None:
    for name in ("uvicorn.error", "uvicorn.access", "lts.api"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactTickets) for f in logger.filters):
            logger.addFilter(RedactTickets())


class _InLoopServer(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield  # the engine handles signals


def _http_protocol(per_turn: int, metrics: ApiMetrics) -> type[asyncio.Protocol]:
    """uvicorn's HTTP protocol (httptools when installed), read through a :class:`TurnGate`
    unless ``per_turn`` is 0."""
    base: type[asyncio.Protocol]
    try:
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol as base
    except ImportError:
        from uvicorn.protocols.http.h11_impl import H11Protocol as base
    if not per_turn:
        return base
    gate = TurnGate(per_turn)
    metrics.http_connections_waiting.set_function(lambda: gate.held)
    return gated(base, gate)


class ApiServer(PluginBase):
    Params = PluginParams
    plugin_name = "api"
    plugin_debug_vars = ["port"]

    def __init__(self, **params: object) -> None:
        super().__init__(**params)
        self.port: int | None = None

    async def serve(self, engine: EngineFacade, *, task_status: TaskStatus[None]) -> None:
        settings = engine.settings.api
        metrics = ApiMetrics(engine)
        engine.observe(journal_commit=metrics.observe_commit,
                       tick_to_order=metrics.tick_to_order.observe)
        app = create_app(engine, metrics)
        _redact_tickets()
        try:
            sock = socket.create_server((settings.host, settings.port), reuse_port=False)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError as exc:
            raise ConfigError(f"api: cannot listen on {settings.host}:{settings.port}: "
                              f"{exc.strerror or exc}") from None
        self.port = sock.getsockname()[1]
        await engine.listening(self.port)
        # X-Forwarded-For is believed only from the configured proxies (uvicorn's default
        # believes any local peer, which would let a local client pick its own address for
        # the audit trail, login throttling and rate limits)
        trusted = list(settings.trusted_proxies)
        # WebSocket frames are not compressed: an order event is a few hundred bytes, and
        # per-message deflate costs a zlib pass per client for every event
        config = uvicorn.Config(app, lifespan="off", log_config=None, access_log=False,
                                http=_http_protocol(settings.requests_per_loop_turn, metrics),
                                ws="websockets-sansio",
                                ws_per_message_deflate=False,
                                proxy_headers=bool(trusted), forwarded_allow_ips=trusted or None,
                                server_header=False, timeout_graceful_shutdown=5)
        server = _InLoopServer(config)
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._run, server, sock)
            tg.start_soon(self._probe_loop_lag, metrics)
            while not server.started:  # noqa: ASYNC110 - uvicorn offers a flag, not an event
                await anyio.sleep(0.01)
            log.info("API listening on http://%s:%d (docs: %s)", settings.host, self.port,
                     "/docs" if app.openapi_url else "off")
            task_status.started()
            try:
                await anyio.sleep_forever()
            finally:
                server.should_exit = True
                tg.cancel_scope.cancel()
                app.state.ctx.reader.dispose()

    @staticmethod
    async def _run(server: uvicorn.Server, sock: socket.socket) -> None:
        # shielded: a cancelled engine tells the server to exit and lets it close cleanly
        with anyio.CancelScope(shield=True):
            try:
                await server.serve(sockets=[sock])
            except SystemExit:  # uvicorn exits the process when its start-up fails
                raise RuntimeError("the API server failed to start (see the log)") from None

    @staticmethod
    async def _probe_loop_lag(metrics: ApiMetrics, period: float = 0.1) -> None:
        while True:
            started = time.perf_counter()
            await anyio.sleep(period)
            metrics.loop_lag.observe(max(0.0, time.perf_counter() - started - period))
