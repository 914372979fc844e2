"""The crash harness (:mod:`.crash_harness`) in the test suite, on SQLite and on PostgreSQL.

A short run in the default suite (four kills, one of each kind that matters: while trading,
during recovery, around start-up, while trading again) and a soak run of at least 50 kills per
store, marked ``soak`` and run only when asked for (``-m soak``, or ``LTS_SOAK=1``):

    PYTHONPATH=. .venv/bin/python -m pytest tests/e2e/test_crash_harness.py -m soak -n 0

Environment: ``LTS_CRASH_SEED`` replays a seed (each failure message names its seed);
``LTS_SOAK_KILLS`` (default 50) sizes the soak run; ``LTS_CRASH_SOAK_SECONDS`` (default 600) caps
its time per store. The run is sized by kills, not by time: the cap is a bound for a run gone
wrong (a kill cycle takes about 2 s on an idle 2-core machine, 5.5 s in CI's soak step beside
the memory soak and the fuzzers), so it sits well above what 50 kills need under that load; it
is not ``LTS_SOAK_SECONDS``, the memory soak's length, which a busy run of 50 kills outlasted.
"""

import os
import random
import re

import pytest

from ._support import Launcher
from .crash_harness import run_harness

# The engine before issue 9 (4cdcaa6) failed these about one run in eight per store: its
# graceful stop could leave an order in pending_submit (see the note in crash_harness.py).
QUICK_PHASES = ("trading", "recovery", "startup", "trading")
QUICK_SEED = 20_261_205
QUICK_FINAL_SECONDS = 3.0
SOAK_KILLS = int(os.environ.get("LTS_SOAK_KILLS", "50"))
SOAK_SECONDS = float(os.environ.get("LTS_CRASH_SOAK_SECONDS", "600"))


def _seed(default: int | None) -> int:
    text = os.environ.get("LTS_CRASH_SEED")
    if text:
        return int(text)
    return default if default is not None else random.SystemRandom().randrange(1, 10**6)


def _soak_selected(config: pytest.Config) -> bool:
    """True when the run asked for soak tests: ``-m`` names ``soak`` (not ``not soak``), or
    ``LTS_SOAK=1``. The default options do not deselect the marker, so the test skips itself."""
    expr = str(config.getoption("markexpr") or "")
    return os.environ.get("LTS_SOAK") == "1" or re.search(r"(?<!not )\bsoak\b", expr) is not None


def test_crash_harness_four_kills(launcher: Launcher, db_url: str) -> None:
    """SYS-011 (recovery after a crash), SYS-013 (integrity), SYS-006 (orders and positions),
    STC-006.

    Three portfolios trade synthetic feeds at 50 bars/s (fees, capped volume so orders stay
    working across kills, limit orders and cancels placed through the API); the real engine is
    SIGKILLed four times (while trading, during recovery, around start-up, while trading) and
    then stopped gracefully. After every kill and at the end: client order ids and
    (broker, trade_id) unique; positions the signed sum of their fills; filled quantities the
    sum of the fills; the order event sequence gap-free; nothing committed disappears; client
    order numbers continue above everything seen; what the engine logged as sent and what the
    API confirmed is in the database; no warning or error logged. At the end: a clean exit,
    nothing stuck in ``pending_submit``/``submitted``/``unknown``, every portfolio stopped, and
    every order open at a kill moved on (or, reported, a limit order still resting).
    """
    result = run_harness(db_url, launcher, kills=len(QUICK_PHASES), seed=_seed(QUICK_SEED),
                         phases=QUICK_PHASES, final_seconds=QUICK_FINAL_SECONDS)
    assert result.ok, result.summary()


@pytest.mark.soak
@pytest.mark.timeout(SOAK_SECONDS + 120)
def test_crash_harness_soak(launcher: Launcher, db_url: str,
                            request: pytest.FixtureRequest) -> None:
    """SYS-011, SYS-013, SYS-006, STC-006: the same checks over at least 50 kills per store at
    moments drawn from a seeded generator (boot, start-up, recovery, trading), within the time
    cap ``LTS_CRASH_SOAK_SECONDS``; the seed is in the output and in any failure message."""
    if not _soak_selected(request.config):
        pytest.skip("a soak test: run it with -m soak (or LTS_SOAK=1)")
    result = run_harness(db_url, launcher, kills=SOAK_KILLS, seed=_seed(None),
                         max_seconds=SOAK_SECONDS)
    assert result.ok, result.summary()
    assert not result.capped, (
        f"the time cap LTS_CRASH_SOAK_SECONDS={SOAK_SECONDS:.0f} ran out after {len(result.kills)} "
        f"of {SOAK_KILLS} kills (all checks passed so far); raise the cap\n{result.summary()}")
