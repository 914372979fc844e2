"""How the ``alpaca`` broker's calls reach Alpaca, and what their failures mean to LTS.

Where it sits: under :mod:`lts.plugins.broker.alpaca` (the plugin), which runs each call in a
worker thread (``anyio.to_thread.run_sync``) with a client of that thread's own. The client is
the SDK's synchronous ``TradingClient``, raw JSON in and out, each request with a timeout (the
SDK sets none) and retried by the SDK only on 429 (nothing was done).

Alpaca's error status becomes :class:`~lts.errors.VenueRejected` with Alpaca's message; a
request that may have reached Alpaca without an answer (timeout, connection lost, 5xx) becomes
:class:`~lts.errors.VenueAnswerLost`; one refused before it was sent becomes
:class:`~lts.errors.VenueUnavailable`. The secret is never put in an error message.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable
from typing import Any

import requests

from lts.errors import BrokerError, VenueAnswerLost, VenueRejected, VenueUnavailable
from lts.persistence.credentials import BrokerCredentials

with warnings.catch_warnings():  # alpaca.trading imports its stream: websockets' legacy client
    warnings.filterwarnings("ignore", "websockets.legacy is deprecated", DeprecationWarning)
    from alpaca.common.exceptions import APIError
    from alpaca.trading.client import TradingClient

__all__ = ["TradingClient", "request", "trading_client"]


class _TimedSession(requests.Session):
    """requests' session with a timeout on every request (alpaca-py sets none)."""

    def __init__(self, timeout: float) -> None:
        super().__init__()
        self.timeout = timeout

    def request(self, method: str, url: str,  # type: ignore[override]
                *args: Any, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", self.timeout)
        return super().request(method, url, *args, **kwargs)


def trading_client(keys: BrokerCredentials, *, paper: bool, url: str | None,
                   timeout: float) -> TradingClient:
    """A client for one thread: raw JSON, ``timeout`` on each request, retried only on 429."""
    client = TradingClient(keys.api_key, keys.api_secret, paper=paper, raw_data=True,
                           url_override=url)
    client._session = _TimedSession(timeout)
    client._retry_codes = [429]  # a 504 may have placed the order: never sent twice
    return client


def request(client: Callable[[], TradingClient], method: str, path: str,
            data: dict[str, Any] | None) -> Any:
    """One request (blocks: call it from a worker thread): Alpaca's JSON answer (None for 204),
    errors translated."""
    try:
        return getattr(client(), method)(path, data)
    except APIError as exc:
        raise _venue_error(exc) from None
    except requests.exceptions.ConnectTimeout:
        raise VenueUnavailable("alpaca: not reachable (connect timed out)") from None
    except requests.exceptions.ConnectionError as exc:
        if _never_sent(exc):
            raise VenueUnavailable("alpaca: not reachable (connection refused)") from None
        raise VenueAnswerLost("alpaca: connection lost before the answer") from None
    except requests.exceptions.RequestException as exc:
        raise VenueAnswerLost(f"alpaca: no answer ({type(exc).__name__})") from None


def _venue_error(exc: APIError) -> BrokerError:
    """Alpaca's HTTP error as LTS's: its message, never the request's headers."""
    status = exc.status_code
    try:
        message = str(json.loads(str(exc))["message"])
    except (ValueError, KeyError, TypeError):
        message = f"HTTP {status}"
    if status == 429:
        return VenueUnavailable(f"alpaca: rate limited: {message}")
    if status is None or status >= 500:
        return VenueAnswerLost(f"alpaca: HTTP {status}: {message}")
    return VenueRejected(message)


def _never_sent(exc: requests.exceptions.ConnectionError) -> bool:
    """Whether the connection failed before the request went out (refused, unresolvable)."""
    from urllib3.exceptions import NewConnectionError

    reason = getattr(exc.args[0] if exc.args else None, "reason", None)
    return isinstance(reason, NewConnectionError)
