"""``python -m lts.engine venue``: the local exchange (:mod:`lts.venue`) on 127.0.0.1.

Wired into :mod:`lts.cli.main`, which maps a :class:`~lts.errors.ConfigError` to one
``lts: error:`` line and status 2. Prints on one line, once it listens: the REST URL, the
account's key and secret (a local venue's, not a secret), the admin URL, the feed, the state
file and the faults set; Ctrl-C or SIGTERM stops it (status 0).

``--feed synthetic`` (the default: :mod:`lts.plugins.pipeline.synthetic`, ``--seed``,
``--start-price``) or ``--feed replay FILE`` (a CSV or Parquet file of OHLCV bars, read by
:mod:`lts.plugins.pipeline.replay`, one bar every ``--interval`` seconds, the same series for
every symbol); ``--fault NAME=VALUE`` (repeatable: a setting of :mod:`lts.venue.faults`; actions
are for the admin endpoint); ``--state FILE`` (:mod:`lts.venue.state`: restored at start if it
exists, kept up to date while the venue runs).
"""

import argparse
import contextlib
import signal
import sys
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import anyio

from lts.errors import ConfigError
from lts.venue.faults import ACTIONS, FaultError, parse_assignment
from lts.venue.server import VenueOptions, market_of, serve

_DEFAULTS = VenueOptions()


def add_parser(subparsers: "argparse._SubParsersAction[Any]") -> None:
    d = _DEFAULTS
    p = subparsers.add_parser(
        "venue", help="run a local exchange that speaks Binance's spot API, on 127.0.0.1",
        description="A local exchange on 127.0.0.1 that speaks Binance spot's REST API "
        "(/api/v3) and WebSocket streams (/ws, /ws-api/v3), so that ccxt's Binance class "
        "(and LTS's ccxt broker: examples/binance-local.toml) trades on it with only its URLs "
        "changed. Faults at run time: POST /admin/faults. Ctrl-C stops it.")
    p.add_argument("--port", type=int, default=d.port,
                   help=f"TCP port on 127.0.0.1 (default {d.port}; 0: any free port)")
    p.add_argument("--symbols", default=",".join(d.symbols),
                   help="markets, comma-separated BASE/QUOTE (default %(default)s)")
    p.add_argument("--api-key", default=d.api_key, metavar="KEY",
                   help=f"the account's API key (default {d.api_key}; printed at start)")
    p.add_argument("--api-secret", default=d.api_secret, metavar="SECRET",
                   help="its secret, for the HMAC signatures (default: a published one, "
                        "printed at start)")
    p.add_argument("--balance", action="append", default=[], metavar="ASSET=AMOUNT",
                   help="a starting balance of the account (repeatable; default USDT=100000)")
    p.add_argument("--interval", type=float, default=d.interval,
                   help="seconds between bars per symbol (the synthetic feed's)")
    p.add_argument("--seed", type=int, default=d.seed, help="the synthetic feed's seed")
    p.add_argument("--start-price", type=float, default=d.start_price,
                   help=f"the synthetic feed's first price (default {d.start_price:g})")
    p.add_argument("--feed", nargs="+", default=["synthetic"],
                   metavar=("synthetic|replay", "FILE"),
                   help="the bars the venue trades on: its synthetic feed (default), or a "
                   "CSV/Parquet OHLCV file replayed one bar every --interval seconds")
    p.add_argument("--fault", action="append", default=[], metavar="NAME=VALUE",
                   help="a fault set at start (repeatable): order_delay, weight_limit, "
                   "ban_seconds, drop_order_answers, duplicate_reports, http_5xx; see "
                   "lts.venue.faults (actions: POST /admin/faults while it runs)")
    p.add_argument("--state", metavar="FILE", default=None,
                   help="keep the venue's orders, trades and balances in FILE (JSON), and "
                   "start from it if it exists")


def options_of(args: argparse.Namespace) -> VenueOptions:
    if not 0 <= args.port <= 65535:
        raise ConfigError(f"--port: {args.port} is not a TCP port")
    if not args.interval > 0:
        raise ConfigError("--interval: more than 0 seconds")
    if not args.start_price > 0:
        raise ConfigError("--start-price: more than 0")
    balances: dict[str, Decimal] = {}
    for item in args.balance:
        asset, sep, amount = item.partition("=")
        try:
            value = Decimal(amount)
        except InvalidOperation:
            value = Decimal("NaN")
        if not sep or not asset.isalnum() or not value.is_finite() or value < 0:
            raise ConfigError(f"--balance: {item!r} is not ASSET=AMOUNT (e.g. USDT=100000)")
        balances[asset.upper()] = value
    symbols = tuple(s.strip() for s in args.symbols.split(",") if s.strip())
    if not symbols:
        raise ConfigError("--symbols: at least one BASE/QUOTE")
    for symbol in symbols:
        market_of(symbol)  # refuses one that is not BASE/QUOTE
    return VenueOptions(port=args.port, symbols=symbols, api_key=args.api_key,
                        api_secret=args.api_secret,
                        balances=balances or dict(_DEFAULTS.balances),
                        interval=args.interval, seed=args.seed, start_price=args.start_price,
                        replay=_replay_of(args.feed), faults=_faults_of(args.fault),
                        state=Path(args.state) if args.state else None)


def _replay_of(feed: list[str]) -> Path | None:
    if feed == ["synthetic"]:
        return None
    if len(feed) == 2 and feed[0] == "replay":
        return Path(feed[1])
    raise ConfigError(f"--feed: {' '.join(feed)!r} is not 'synthetic' or 'replay FILE'")


def _faults_of(items: list[str]) -> dict[str, Any]:
    faults: dict[str, Any] = {}
    for item in items:
        try:
            name, value = parse_assignment(item)
        except FaultError as exc:
            raise ConfigError(f"--fault: {exc}") from None
        if name in ACTIONS:
            raise ConfigError(f"--fault: {name} is an action, not a setting: POST it to "
                              "/admin/faults while the venue runs")
        faults[name] = value
    return faults


def _started(options: VenueOptions, port: int) -> str:
    """The line the venue prints once it listens."""
    base = f"http://127.0.0.1:{port}"
    feed = f"replay {options.replay}" if options.replay else "synthetic"
    faults = ", ".join(f"{n}={v}" for n, v in options.faults.items()) or "none"
    return (f"venue: Binance spot API on {base}/api/v3, markets {', '.join(options.symbols)}; "
            f"api key {options.api_key}, secret {options.api_secret}; admin {base}/admin/faults"
            f"; feed {feed}; state {options.state or 'not kept'}; faults {faults}")


def run(args: argparse.Namespace) -> int:
    options = options_of(args)

    def ready(port: int) -> None:
        print(_started(options, port), flush=True)

    async def main() -> None:
        async with anyio.create_task_group() as tg:
            async def stop_on_signal() -> None:
                with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
                    async for _ in signals:
                        tg.cancel_scope.cancel()
                        return

            tg.start_soon(stop_on_signal)
            await serve(options, ready=ready)

    with contextlib.suppress(KeyboardInterrupt):  # a Ctrl-C before the handler is in place
        anyio.run(main)
    print("venue: stopped", file=sys.stderr)
    return 0
