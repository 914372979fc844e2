"""``python -m lts.engine selftest``: is this installation ready to trade?

An operator's check before (or beside) a start, one line per check, ``ok`` or ``FAIL``:

- ``database``: the configured database answers and its schema is at head (nothing is created
  or migrated: a missing SQLite file fails);
- ``plugin registry``: every installed plugin imported, no duplicate name was refused;
- ``plugin KIND:NAME``: every plugin the configuration names (the demo portfolio, the ``aaa``
  plugin, the ``api`` core plugin) and every plugin of every portfolio and asset in the database
  loads and accepts its params;
- ``bus``: an event published on the in-process bus reaches its subscriber's mailbox, and only
  that one;
- ``replay``: a short built-in series (a sine wave) through the real engine code on a temporary
  SQLite file — strategy, portfolio plugin, risk, order manager, paper broker, ledger, journal —
  made orders and fills, and the same ones twice;
- ``api`` (when ``api.enabled``): a real engine with the real app, served by uvicorn on a free
  loopback port of this process over a temporary database, answers ``/healthz`` and ``/readyz``.

Exit status 0 when every check passes, 1 when one fails; bad input (a setting) stays status 2
through :mod:`lts.cli.main`.
"""

import argparse
import math
import secrets
import tempfile
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
import msgspec
from pydantic import SecretStr
from sqlalchemy import select
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from lts.backtest.replay import ReplayOptions, ReplaySummary, run_replay
from lts.bus import InProcessBus, Mailbox, Overflow
from lts.domain.market import Bar
from lts.engine.bootstrap import demo_spec
from lts.engine.engine import Engine
from lts.errors import LtsError
from lts.persistence.db import check_url, make_engine
from lts.persistence.migrations import schema_state
from lts.persistence.tables import assets, portfolios
from lts.plugins.registry import KINDS, Registry
from lts.settings import Settings

SettingsOf = Callable[[argparse.Namespace], Settings]

REPLAY_BARS = 400
_BAR_NS = 60 * 1_000_000_000


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str

    def line(self) -> str:
        return f"{'ok' if self.ok else 'FAIL':<4}  {self.name}: {self.detail}"


def _reason(exc: BaseException) -> str:
    """An error as one line: LTS's own messages as they are, others with their type."""
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return text if isinstance(exc, LtsError) else f"{type(exc).__name__}: {text}".rstrip(": ")


# -- database ---------------------------------------------------------------------------------

def database_url(settings: Settings) -> str:
    """The configured URL; the default SQLite file without creating its directory."""
    db = settings.database
    return db.url or f"sqlite+aiosqlite:///{db.data_dir.expanduser().resolve() / 'lts.db'}"


async def check_database(url: str) -> tuple[Check, AsyncEngine | None]:
    """The database check; on success the engine to read the configured plugins with."""
    parsed = make_url(url)
    shown = parsed.render_as_string(hide_password=True)
    if parsed.get_backend_name() == "sqlite" and not await anyio.Path(
            parsed.database or "").is_file():
        return Check("database", False, f"{shown}: no such file (start the engine once, or run "
                                        "'python -m lts.engine db upgrade')"), None
    engine = make_engine(url)
    try:
        state = await schema_state(engine)
    except Exception as exc:
        await engine.dispose()
        return Check("database", False, f"{shown}: cannot read the schema: {_reason(exc)}"), None
    if not state.at_head:
        await engine.dispose()
        return Check("database", False, f"{shown}: {state.summary()}"), None
    return Check("database", True, f"{shown}: {state.summary()}"), engine


# -- plugins ----------------------------------------------------------------------------------

Use = tuple[str, str, dict[str, Any], str]  # kind, name, params, where it is named


def configured_uses(settings: Settings) -> list[Use]:
    uses: list[Use] = [("aaa", settings.auth.plugin, {}, "setting auth.plugin")]
    if settings.api.enabled:
        uses.append(("core", "api", {}, "setting api.enabled"))
    if settings.demo.enabled:
        spec = demo_spec(settings.demo)
        where = "the demo portfolio (settings)"
        uses.append(("portfolio", spec.portfolio_plugin, spec.portfolio_params, where))
        for a in spec.assets:
            uses += [("strategy", a.strategy_plugin, a.strategy_params, where),
                     ("broker", a.broker_plugin, a.broker_params, where),
                     ("pipeline", a.pipeline_plugin, a.pipeline_params, where)]
    return uses


async def stored_uses(engine: AsyncEngine) -> list[Use]:
    """The plugins of every portfolio and asset in the database (active or not)."""
    async with engine.connect() as conn:
        names = {r.id: r.name for r in await conn.execute(select(portfolios.c.id,
                                                                 portfolios.c.name))}
        uses: list[Use] = [
            ("portfolio", r.portfolio_plugin, r.portfolio_params or {}, f"portfolio {r.name!r}")
            for r in await conn.execute(select(portfolios))]
        for a in await conn.execute(select(assets).order_by(assets.c.id)):
            where = f"portfolio {names.get(a.portfolio_id)!r} asset {a.symbol!r}"
            uses += [("strategy", a.strategy_plugin, a.strategy_params or {}, where),
                     ("broker", a.broker_plugin, a.broker_params or {}, where),
                     ("pipeline", a.pipeline_plugin, a.pipeline_params or {}, where)]
    return uses


def check_registry(registry: Registry) -> Check:
    broken = [f"{i.kind} {i.name!r}: {i.error}" for i in registry.plugins.values() if i.error]
    problems = registry.problems + broken
    if problems:
        return Check("plugin registry", False, "; ".join(problems))
    return Check("plugin registry", True, f"{len(registry.plugins)} plugins loaded")


def check_plugins(registry: Registry, uses: list[Use]) -> list[Check]:
    """One check per distinct plugin named; each distinct set of its params validated once."""
    grouped: dict[tuple[str, str], list[tuple[dict[str, Any], str]]] = {}
    for kind, name, params, where in uses:
        grouped.setdefault((kind, name), []).append((params, where))
    checks = []
    for kind, name in sorted(grouped, key=lambda k: (KINDS.index(k[0]), k[1])):
        places = grouped[(kind, name)]
        failures: list[str] = []
        seen: dict[bytes, str | None] = {}
        for params, where in places:
            key = msgspec.json.encode(params, order="sorted")
            if key not in seen:
                try:
                    registry.validate(kind, name, params)
                    seen[key] = None
                except LtsError as exc:
                    seen[key] = str(exc)
            if seen[key] is not None:
                failures.append(f"{where}: {seen[key]}")
        label = f"plugin {kind}:{name}"
        if failures:
            more = f" (and {len(failures) - 1} more)" if len(failures) > 1 else ""
            checks.append(Check(label, False, failures[0] + more))
        else:
            checks.append(Check(label, True, f"loads; params valid for {len(places)} use(s)"))
    return checks


# -- bus --------------------------------------------------------------------------------------

async def check_bus() -> Check:
    bus = InProcessBus()
    mine: Mailbox[Bar] = Mailbox(4, Overflow.BLOCK, name="selftest")
    other: Mailbox[Bar] = Mailbox(4, Overflow.BLOCK, name="selftest-other")
    bus.subscribe(Bar, mine, key="SELFTEST")
    bus.subscribe(Bar, other, key="OTHER")
    bar = Bar("SELFTEST", 1, 1.0, 1.0, 1.0, 1.0, 1.0)
    delivered = await bus.publish(bar, key="SELFTEST")
    with anyio.fail_after(5):
        received = await mine.get_batch()
    if delivered != 1 or received != [bar] or len(other):
        return Check("bus", False, f"published to {delivered} subscriber(s), received "
                                   f"{received!r}, {len(other)} misrouted")
    return Check("bus", True, "in-process: one event published, received by its subscriber only")


# -- replay -----------------------------------------------------------------------------------

def builtin_series(n: int = REPLAY_BARS) -> list[Bar]:
    """A sine wave around 100 (period 50 bars) with a slow drift: a crossover every half cycle."""
    bars = []
    for i in range(n):
        close = 100 + 5 * math.sin(2 * math.pi * i / 50) + i * 0.01
        before = 100 + 5 * math.sin(2 * math.pi * (i - 1) / 50) + (i - 1) * 0.01
        bars.append(Bar("SELFTEST", 1_700_000_000_000_000_000 + i * _BAR_NS, round(before, 4),
                        round(max(before, close) + 0.1, 4), round(min(before, close) - 0.1, 4),
                        round(close, 4), 1000.0))
    return bars


_RESULTS = ("orders", "denied", "fills", "round_trips", "final_equity", "realized_pnl", "fees",
            "final_positions")


async def check_replay(registry: Registry) -> Check:
    bars = builtin_series()
    opts = ReplayOptions(symbol="SELFTEST", strategy="sma_crossover",
                         params={"fast": 5, "slow": 20}, quantity=Decimal(1),
                         fees_bps=Decimal(1), slippage_bps=Decimal(1))
    runs: list[ReplaySummary] = [(await run_replay(bars, opts, registry)).summary
                                 for _ in range(2)]
    first, second = ({k: getattr(r, k) for k in _RESULTS} for r in runs)
    if first != second:
        return Check("replay", False, f"two runs of the same bars differ: {first} != {second}")
    if not first["orders"] or not first["fills"]:
        return Check("replay", False, f"{len(bars)} bars made {first['orders']} orders and "
                                      f"{first['fills']} fills (expected some of each)")
    return Check("replay", True, f"{len(bars)} bars through sma_crossover and the paper broker: "
                                 f"{first['orders']} orders, {first['fills']} fills, equity "
                                 f"{first['final_equity']}; the same on a second run")


# -- api --------------------------------------------------------------------------------------

def _get(url: str) -> int:
    with urllib.request.urlopen(url, timeout=10) as reply:  # noqa: S310 # nosec B310 - loopback
        return int(reply.status)


async def check_api(settings: Settings, registry: Registry) -> Check:
    with tempfile.TemporaryDirectory(prefix="lts-selftest-") as tmp:
        s = settings.model_copy(update={
            "database": settings.database.model_copy(update={
                "url": f"sqlite+aiosqlite:///{Path(tmp) / 'api.db'}", "auto_migrate": True}),
            "demo": settings.demo.model_copy(update={"enabled": False}),
            "api": settings.api.model_copy(update={"host": "127.0.0.1", "port": 0}),
            "engine": settings.engine.model_copy(update={"run_for": None}),
            "auth": settings.auth.model_copy(update={"bcrypt_rounds": 4}),
            "admin_password": SecretStr(secrets.token_urlsafe(16))})
        engine = Engine(s, registry=registry)
        statuses: list[int] = []
        async with anyio.create_task_group() as tg:
            tg.start_soon(engine.run)
            try:
                with anyio.fail_after(30):
                    await engine.started.wait()
                base = f"http://127.0.0.1:{engine.api_port}"
                for path in ("/healthz", "/readyz"):
                    statuses.append(await anyio.to_thread.run_sync(_get, base + path))
            finally:
                engine.stop()
    detail = f"GET /healthz {statuses[0]}, /readyz {statuses[1]} (uvicorn on 127.0.0.1, " \
             "a temporary database)"
    return Check("api", statuses == [200, 200], detail)


# -- the command ------------------------------------------------------------------------------

async def run_checks(settings: Settings, report: Callable[[Check], None],
                     registry: Registry | None = None) -> list[Check]:
    """Every check, each reported as it completes."""
    checks: list[Check] = []

    def done(check: Check) -> None:
        checks.append(check)
        report(check)

    url = database_url(settings)
    check_url(url)
    database, engine = await check_database(url)
    done(database)
    registry = registry or Registry.discover()
    done(check_registry(registry))
    uses = configured_uses(settings)
    if engine is not None:
        try:
            uses += await stored_uses(engine)
        except Exception as exc:
            done(Check("plugins in the database", False, f"not read: {_reason(exc)}"))
        finally:
            await engine.dispose()
    else:
        done(Check("plugins in the database", False, "not read: the database check failed"))
    for check in check_plugins(registry, uses):
        done(check)
    for name, step in (("bus", check_bus), ("replay", lambda: check_replay(registry)),
                       ("api", lambda: check_api(settings, registry))):
        if name == "api" and not settings.api.enabled:
            continue
        try:
            done(await step())
        except Exception as exc:
            done(Check(name, False, _reason(exc)))
    return checks


def add_parser(subparsers: "argparse._SubParsersAction[Any]",
               common: Callable[[argparse.ArgumentParser], None]) -> None:
    test = subparsers.add_parser("selftest", help="check the database, plugins, bus, a replay "
                                                  "and the API; one line per check")
    common(test)


def run(args: argparse.Namespace, settings_of: SettingsOf) -> int:
    settings = settings_of(args)

    def report(check: Check) -> None:
        print(check.line(), flush=True)

    checks = anyio.run(run_checks, settings, report)
    failed = [c for c in checks if not c.ok]
    print(f"selftest: {len(checks) - len(failed)} ok, {len(failed)} failed")
    return 1 if failed else 0
