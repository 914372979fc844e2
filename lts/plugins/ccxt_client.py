"""A configured ccxt exchange, shared by the ``ccxt`` broker and the ``ccxt`` feed: the one place
LTS touches ccxt's untyped objects.

Where it sits: under :mod:`lts.plugins.broker.ccxt_broker` and
:mod:`lts.plugins.pipeline.ccxt_feed`. :func:`open_client` builds a ccxt.pro instance from the
params both plugins share (:class:`CcxtParams`: exchange id, sandbox, URL overrides, ccxt options,
timeout, pacing); :class:`CcxtClient` makes every REST and streaming call through LTS's weight
budget (:mod:`lts.plugins.ccxt_pacing`), reads the venue's weight header, classifies ccxt's
exceptions (:class:`ErrorKind`) and scrubs its messages of secrets (:meth:`CcxtClient.redact`:
ccxt's messages can carry the request URL with its signature).

ccxt is imported on first use (it takes most of a second), so the engine's plugin discovery does
not pay for it.

URL overrides (``urls``) are merged into ccxt's ``exchange.urls["api"]`` after the sandbox switch,
nested dicts key by key: for the local venue on port 9100,
``{"public": "http://127.0.0.1:9100/api/v3", "private": "http://127.0.0.1:9100/api/v3",
"ws": {"spot": "ws://127.0.0.1:9100/ws", "ws-api": {"spot": "ws://127.0.0.1:9100/ws-api/v3"}}}``.
"""

from __future__ import annotations

import enum
import logging
import re
from collections.abc import Mapping
from typing import Any, Literal

import anyio
from pydantic import Field, field_validator

from lts.persistence.credentials import BrokerCredentials
from lts.plugins.base import PluginParams
from lts.plugins.ccxt_pacing import WeightBudget

__all__ = ["CcxtClient", "CcxtParams", "ErrorKind", "classify", "exchange_has", "open_client",
           "unwrap"]

#: Binance spot's request weights per ccxt method (the venue's own count corrects the estimate).
_BINANCE_WEIGHTS = {
    "load_markets": 20, "fetch_balance": 20, "create_order": 1, "cancel_order": 1,
    "edit_order": 1, "fetch_order": 4, "fetch_open_orders": 6, "fetch_closed_orders": 20,
    "fetch_orders": 20, "fetch_my_trades": 20, "fetch_ohlcv": 2, "fetch_time": 1,
}
#: The budget when the params give none: 80 % of the venue's published limit.
_DEFAULT_BUDGET = {"binance": 4_800, "binanceus": 4_800}
#: ccxt options LTS sets unless the params do: spot markets only, no calls beyond them.
_SPOT_OPTIONS: dict[str, dict[str, Any]] = {
    "binance": {"fetchMarkets": {"types": ["spot"]}, "fetchCurrencies": False,
                "fetchMargins": False, "defaultType": "spot"},
    "bybit": {"fetchMarkets": {"types": ["spot"]}, "fetchCurrencies": False,
              "defaultType": "spot"},
    "okx": {"fetchMarkets": {"types": ["spot"]}, "fetchCurrencies": False,
            "defaultType": "spot"},
}

_SECRET_PATTERNS = [
    re.compile(r"(signature|sign|apiKey|api_key|X-MBX-APIKEY|listenKey|passphrase)"
               r"([=:]\s*\"?)[^&\s\"',}]+", re.IGNORECASE),
]


class _Redacting(logging.Filter):
    """Scrubs ccxt's own log records (at DEBUG it logs each request, the API key header
    included) of every live client's secrets and of signatures."""

    def __init__(self) -> None:
        super().__init__()
        self.secrets: dict[str, int] = {}  # secret -> clients using it

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        clean = _redact(text, tuple(self.secrets))
        if clean != text:
            record.msg, record.args = clean, None
        return True


_REDACTING = _Redacting()
for _name in ("ccxt", "ccxt.base.exchange", "ccxt.async_support.base.exchange"):
    logging.getLogger(_name).addFilter(_REDACTING)


def _redact(text: str, secrets: tuple[str, ...]) -> str:
    for secret in secrets:
        text = text.replace(secret, "***")
    for pattern in _SECRET_PATTERNS:
        text = pattern.sub(lambda m: f"{m.group(1)}{m.group(2)}***", text)
    return text


class CcxtParams(PluginParams):
    """What the ``ccxt`` broker and feed share: which exchange and how to reach it."""

    exchange: str = Field(description="ccxt exchange id (binance, bybit, okx, ...)")
    sandbox: bool = Field(False, description="the exchange's test network (ccxt sandbox mode)")
    urls: dict[str, str | dict[str, Any]] = Field(
        default_factory=dict, description="merged into ccxt's urls['api'] (public, private, "
        "ws, ...): e.g. a local venue")
    market_type: Literal["spot"] = Field("spot", description="markets traded (spot only)")
    options: dict[str, Any] = Field(default_factory=dict, description="ccxt options")
    timeout_ms: int = Field(10_000, gt=0, description="REST request timeout")
    rate_limit_ms: int | None = Field(None, gt=0, description="ccxt's spacing of requests "
                                      "(its rateLimit); None: ccxt's default")
    weight_per_minute: int | None = Field(None, ge=0, description="LTS's request-weight budget "
                                          "per minute; None: 80% of the venue's limit where "
                                          "known (binance 4800), 0: none")

    @field_validator("exchange")
    @classmethod
    def _known_exchange(cls, value: str) -> str:
        import ccxt  # type: ignore[import-untyped]

        if value not in ccxt.exchanges:
            raise ValueError(f"{value!r} is not a ccxt exchange id")
        return value

    def budget(self) -> int:
        if self.weight_per_minute is not None:
            return self.weight_per_minute
        return _DEFAULT_BUDGET.get(self.exchange, 0)


class ErrorKind(enum.Enum):
    """What a ccxt exception says happened, for the caller to decide (sent or not)."""

    REJECTED = "rejected"  # the venue refused the request (bad order, funds, filters)
    NOT_FOUND = "not_found"  # no such order
    AUTH = "auth"  # the key, secret or signature was refused
    RATE_LIMITED = "rate_limited"  # 429: slow down
    BANNED = "banned"  # 418 (or the exchange's equivalent): refused for a while
    TIMEOUT = "timeout"  # no answer in time: the request may have been carried out
    UNREACHABLE = "unreachable"  # no connection was made: nothing was sent
    AMBIGUOUS = "ambiguous"  # the connection broke or the venue failed (5xx): unknown
    UNSUPPORTED = "unsupported"  # ccxt has no such call for this exchange
    OTHER = "other"


def _status_code(message: str) -> int | None:
    """The HTTP status ccxt put in its message (``binance 418 ...``, ``... GET url 503 ...``)."""
    found = re.search(r"(?:^|\s)(4\d\d|5\d\d)(?:\s|$)", message)
    return int(found.group(1)) if found else None


def unwrap(exc: BaseException) -> BaseException:
    """The ccxt error behind ``exc`` when ccxt tripped over its own cleanup while raising it
    (4.5.90: a refused Binance user-data subscription surfaces as ``KeyError('spot')`` with the
    AuthenticationError as its context); ``exc`` itself otherwise."""
    from ccxt.base import errors as e  # type: ignore[import-untyped]

    if not isinstance(exc, e.BaseError):
        for inner in (exc.__cause__, exc.__context__):
            if isinstance(inner, e.BaseError):
                found: BaseException = inner
                return found
    return exc


def classify(exc: BaseException) -> ErrorKind:
    """The kind of a ccxt exception (anything else: OTHER)."""
    import aiohttp
    from ccxt.base import errors as e

    exc = unwrap(exc)
    if not isinstance(exc, e.BaseError):
        if isinstance(exc, TimeoutError):
            return ErrorKind.TIMEOUT
        if isinstance(exc, aiohttp.ClientConnectorError | ConnectionRefusedError):
            return ErrorKind.UNREACHABLE
        if isinstance(exc, OSError | aiohttp.ClientError):
            return ErrorKind.AMBIGUOUS
        return ErrorKind.OTHER
    status = _status_code(str(exc))
    if isinstance(exc, e.ExchangeClosedByUser):
        return ErrorKind.UNREACHABLE  # closed on this side: nothing sent
    if isinstance(exc, e.OrderNotFound):
        return ErrorKind.NOT_FOUND
    if isinstance(exc, e.AuthenticationError):  # PermissionDenied, AccountSuspended too
        return ErrorKind.AUTH
    if isinstance(exc, e.NotSupported):
        return ErrorKind.UNSUPPORTED
    if isinstance(exc, e.InvalidOrder | e.InsufficientFunds | e.BadRequest | e.OperationRejected
                  | e.ArgumentsRequired):
        return ErrorKind.REJECTED
    if isinstance(exc, e.DDoSProtection | e.RateLimitExceeded):
        return ErrorKind.BANNED if status == 418 else ErrorKind.RATE_LIMITED
    if isinstance(exc, e.RequestTimeout):
        return ErrorKind.TIMEOUT
    if isinstance(exc, e.OnMaintenance):
        return ErrorKind.UNREACHABLE
    if isinstance(exc, e.ExchangeNotAvailable):
        cause = exc.__cause__
        if isinstance(cause, aiohttp.ClientConnectorError):
            return ErrorKind.UNREACHABLE  # the connection was never made
        if status is not None and status < 500:
            return ErrorKind.REJECTED  # ccxt's catch-all for 4xx it has no code for
        return ErrorKind.AMBIGUOUS
    if isinstance(exc, e.NetworkError):
        return ErrorKind.AMBIGUOUS
    if isinstance(exc, e.ExchangeError):
        return ErrorKind.REJECTED
    return ErrorKind.OTHER


class CcxtClient:
    """One ccxt.pro exchange instance and LTS's pacing of it."""

    def __init__(self, exchange: Any, params: CcxtParams, secrets: tuple[str, ...] = ()) -> None:
        self.ex = exchange
        self.id: str = params.exchange
        per_minute = params.budget()
        self.budget = WeightBudget(per_minute) if per_minute else None
        self._weights = _BINANCE_WEIGHTS if self.id.startswith("binance") else {}
        self._secrets = tuple(s for s in secrets if s)
        for secret in self._secrets:
            _REDACTING.secrets[secret] = _REDACTING.secrets.get(secret, 0) + 1

    # -- calls ------------------------------------------------------------------------------------
    async def call(self, method: str, *args: Any, weight: int | None = None,
                   **kwargs: Any) -> Any:
        """``exchange.<method>(*args, **kwargs)`` within the weight budget."""
        budget = self.budget
        if budget is not None:
            await budget.acquire(weight if weight is not None else self._weights.get(method, 1))
        try:
            return await getattr(self.ex, method)(*args, **kwargs)
        finally:
            if budget is not None:
                budget.observe(self.used_weight())

    async def watch(self, method: str, *args: Any, **kwargs: Any) -> Any:
        """A streaming call (``watch_orders``, ...): no REST weight."""
        return await getattr(self.ex, method)(*args, **kwargs)

    def note_rate_limited(self, default_seconds: float = 60.0) -> float:
        """A 429 came: stop calling for its ``Retry-After`` (or ``default_seconds``)."""
        seconds = self.retry_after() or default_seconds
        if self.budget is None:
            self.budget = WeightBudget(10**9)  # no budget, but the back-off still applies
        self.budget.back_off(seconds)
        return seconds

    async def wait_connected(self, seconds: float) -> None:
        """Until one of the exchange's WebSocket connections is open (ccxt offers no event)."""
        with anyio.fail_after(seconds):
            while not any(c.connected.done() and not c.closed()  # noqa: ASYNC110
                          for c in getattr(self.ex, "clients", {}).values()):
                await anyio.sleep(0.05)

    async def close(self) -> None:
        try:
            await self.ex.close()
        finally:
            for secret in self._secrets:
                left = _REDACTING.secrets.pop(secret, 1) - 1
                if left > 0:
                    _REDACTING.secrets[secret] = left
            self._secrets = ()

    # -- what the exchange says -------------------------------------------------------------------
    def _header(self, name: str) -> str | None:
        headers = self.ex.last_response_headers or {}
        for key, value in headers.items():
            if str(key).lower() == name:
                return str(value)
        return None

    def used_weight(self) -> int | None:
        text = self._header("x-mbx-used-weight-1m")
        return int(text) if text is not None and text.isdigit() else None

    def retry_after(self) -> float | None:
        text = self._header("retry-after")
        try:
            return float(text) if text is not None else None
        except ValueError:
            return None

    def has(self, feature: str) -> bool:
        return bool(self.ex.has.get(feature))

    @property
    def markets(self) -> Mapping[str, dict[str, Any]]:
        return self.ex.markets or {}

    @property
    def precision_mode(self) -> int:
        return int(self.ex.precisionMode)

    def price_to_precision(self, symbol: str, price: str) -> str:
        return str(self.ex.price_to_precision(symbol, price))

    def amount_to_precision(self, symbol: str, amount: str) -> str:
        return str(self.ex.amount_to_precision(symbol, amount))

    def timeframe_ms(self, timeframe: str) -> int:
        return int(self.ex.parse_timeframe(timeframe)) * 1000

    def milliseconds(self) -> int:
        return int(self.ex.milliseconds())

    def redact(self, text: str, limit: int = 300) -> str:
        """``text`` without secrets: the key, secret and passphrase themselves, and any
        signature, key or listen-key value a URL or header carried."""
        return _redact(text, self._secrets)[:limit]

    def reason(self, exc: BaseException, limit: int = 200) -> str:
        """A redacted one-line reason for ``exc`` (the ccxt error behind it: :func:`unwrap`),
        without the exchange's name prefix."""
        exc = unwrap(exc)
        text = (str(exc).splitlines() or [""])[0].strip() or type(exc).__name__
        text = text.removeprefix(f"{self.id} ").strip()
        return self.redact(text, limit)


def _merge(into: dict[str, Any], overrides: Mapping[str, Any]) -> None:
    for key, value in overrides.items():
        if isinstance(value, Mapping) and isinstance(into.get(key), dict):
            _merge(into[key], value)
        elif isinstance(value, Mapping):
            into[key] = dict(value)
        else:
            into[key] = value


def open_client(params: CcxtParams, credentials: BrokerCredentials | None = None) -> CcxtClient:
    """A ccxt.pro instance (ccxt's async REST class where pro has none) for ``params``."""
    import ccxt.async_support  # type: ignore[import-untyped]
    import ccxt.pro  # type: ignore[import-untyped]

    cls = getattr(ccxt.pro, params.exchange, None) or getattr(ccxt.async_support,
                                                             params.exchange)
    options: dict[str, Any] = {}
    _merge(options, _SPOT_OPTIONS.get(params.exchange, {}))
    _merge(options, params.options)
    config: dict[str, Any] = {"options": options, "timeout": params.timeout_ms,
                              "enableRateLimit": True}
    if params.rate_limit_ms is not None:
        config["rateLimit"] = params.rate_limit_ms
    secrets: tuple[str, ...] = ()
    if credentials is not None:
        config["apiKey"], config["secret"] = credentials.api_key, credentials.api_secret
        if credentials.passphrase is not None:
            config["password"] = credentials.passphrase
        secrets = (credentials.api_key, credentials.api_secret, credentials.passphrase or "")
    exchange = cls(config)
    if params.sandbox:
        exchange.set_sandbox_mode(True)
    _merge(exchange.urls["api"], params.urls)
    return CcxtClient(exchange, params, secrets)


def exchange_has(exchange: str, feature: str) -> bool:
    """Whether ccxt's class of ``exchange`` has ``feature`` (``editOrder``, ...), read without
    connecting."""
    import ccxt

    cls = getattr(ccxt, exchange, None)  # the synchronous class: no session to close
    return bool(cls is not None and cls().has.get(feature))
