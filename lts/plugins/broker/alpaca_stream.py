"""The ``alpaca`` broker's reports path: alpaca-py's ``TradingStream`` (``trade_updates``) in a
thread of its own, running its own event loop.

Where it sits: started and stopped by :mod:`lts.plugins.broker.alpaca` (the plugin), whose
handler turns each event into execution reports (:mod:`lts.plugins.broker.alpaca_mapping`)
handed over with :meth:`~lts.plugins.broker.ReportSink.threadsafe`. The stream reconnects by
itself but tells no one; this one calls back when it connects, drops and is refused, so that
the plugin reports :class:`~lts.plugins.broker.VenueDisconnected` when it drops and
:class:`~lts.plugins.broker.VenueReconnected` once it is back (the runner then resyncs).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import threading
import warnings
from collections.abc import Callable

from lts.persistence.credentials import BrokerCredentials

with warnings.catch_warnings():  # alpaca-py's stream imports websockets' legacy client
    warnings.filterwarnings("ignore", "websockets.legacy is deprecated", DeprecationWarning)
    from alpaca.trading.stream import TradingStream

__all__ = ["TradeStream", "stream_url"]

_STOP_SECONDS = 10.0  # the stream's thread is given this long to end


def stream_url(api_url: str | None, override: str | None) -> str | None:
    """The ``trade_updates`` WebSocket URL: ``override``, else on the API's own host (Alpaca
    serves it there), else the SDK's default (None)."""
    if override:
        return override
    if api_url:
        return re.sub(r"^http", "ws", api_url.rstrip("/")) + "/stream"
    return None


class TradeStream(TradingStream):
    """alpaca-py's ``TradingStream`` that says when it connects, drops and is refused (the
    SDK reconnects on its own but tells no one), runs in a thread of its own, and that can be
    stopped from any thread."""

    def __init__(self, keys: BrokerCredentials, *, paper: bool, url: str | None,
                 on_connected: Callable[[], None], on_lost: Callable[[str], None],
                 on_refused: Callable[[], None]) -> None:
        super().__init__(keys.api_key, keys.api_secret, paper=paper, raw_data=True,
                         url_override=url)  # type: ignore[arg-type]  # the SDK's hint lacks None
        self._on_connected, self._on_lost, self._on_refused = on_connected, on_lost, on_refused
        self._stopping = False
        self._lts_thread = threading.Thread(target=self.run, name="alpaca-trade-updates",
                                            daemon=True)

    def start(self) -> None:
        """Run the stream in its thread (subscribe first)."""
        self._lts_thread.start()

    async def _auth(self) -> None:
        try:
            await super()._auth()  # type: ignore[no-untyped-call]
        except ValueError:
            self._on_refused()
            raise

    async def _start_ws(self) -> None:
        await super()._start_ws()  # type: ignore[no-untyped-call]
        self._on_connected()

    async def _consume(self) -> None:
        try:
            await super()._consume()  # type: ignore[no-untyped-call]
        except Exception as exc:
            if not self._stopping:
                self._on_lost(f"trade updates stream lost: {type(exc).__name__}")
            raise

    def stop_and_wait(self, timeout: float = _STOP_SECONDS) -> None:
        """End the stream and its thread (blocks: call it from a worker thread)."""
        thread = self._lts_thread
        self._stopping = True
        waited = 0.0
        while self._loop is None and thread.is_alive() and waited < timeout:
            thread.join(0.01)
            waited += 0.01
        loop: asyncio.AbstractEventLoop | None = self._loop
        if loop is not None and thread.is_alive():
            with contextlib.suppress(RuntimeError, TimeoutError):  # its loop ended already
                asyncio.run_coroutine_threadsafe(self._shut(), loop).result(timeout)
        thread.join(timeout)

    async def _shut(self) -> None:
        await self.stop_ws()
        await self.close()
