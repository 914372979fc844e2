"""Memory over a long run: the whole engine trading, its RSS flat after the warm-up (issue 9).

Runs ``bench/soak.py`` (the engine in its own process: supervisors, runners, paper venue, the
group-commit journal on a SQLite file, the API served on a free loopback port) for
``LTS_SOAK_SECONDS`` (default 1800: the issue's 30 minutes; ``.ci/run`` bounds it) and reads its
verdict. Marked ``soak``: run it with ``-m soak`` (or ``LTS_SOAK=1``).

Two checks. RSS growth after the warm-up under 5 % (the bench's own verdict, its exit status)
on a run of ten minutes or more; a shorter run (``.ci/run``: 150 s) cannot tell a leak from the
SQLite writer's page cache filling as the database grows (bounded:
:data:`~lts.persistence.sqlite_writer.PAGE_CACHE_KIB`), so there the growth may be that much
more. And the Python heap's growth per fill after the warm-up: the landed code kept every trade
id of every portfolio (up to 100,000 each, about 300 bytes and two to three heap blocks per
fill); a bounded memory keeps well under half a block per fill, which a short run tells apart.
"""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from lts.persistence.sqlite_writer import PAGE_CACHE_KIB

from .test_crash_harness import _soak_selected

SOAK_SECONDS = float(os.environ.get("LTS_SOAK_SECONDS", "1800"))
BENCH = Path(__file__).resolve().parents[2] / "bench" / "soak.py"
PORTFOLIOS = 200
MAX_BLOCKS_PER_FILL = 0.5
LONG_RUN_SECONDS = 600  # from here on, RSS alone is the verdict


@pytest.mark.soak
@pytest.mark.timeout(SOAK_SECONDS + 300)
def test_memory_stays_flat_while_trading(request: pytest.FixtureRequest) -> None:
    """SYS-009 (proper resource management), STC-006: 200 portfolios x 4 assets trade for
    ``LTS_SOAK_SECONDS``; after the warm-up (40 % of the run, at least 60 s: the strategies'
    windows and the per-portfolio window of closed orders filled) RSS grows under 5 % and the
    heap under half a block per fill."""
    if not _soak_selected(request.config):
        pytest.skip("a soak test: run it with -m soak (or LTS_SOAK=1)")
    warmup = max(60.0, 0.4 * SOAK_SECONDS)
    proc = subprocess.run(
        [sys.executable, str(BENCH), "--portfolios", str(PORTFOLIOS),
         "--minutes", f"{SOAK_SECONDS / 60:.3f}", "--warmup", f"{warmup:.0f}", "--sample", "2"],
        capture_output=True, text=True, timeout=SOAK_SECONDS + 240, check=False)
    out = proc.stdout + proc.stderr
    if SOAK_SECONDS >= LONG_RUN_SECONDS:
        assert proc.returncode == 0, f"bench/soak.py exited {proc.returncode}:\n{out[-4000:]}"
        assert "target RSS growth under 5% after the warm-up: met" in out, out[-4000:]
    else:  # 3: the 5 % target not met; the page cache's bound is allowed on top
        assert proc.returncode in (0, 3), f"bench/soak.py exited {proc.returncode}:\n{out[-4000:]}"
        warm = re.search(r"([\d.]+) MB at the end of the warm-up", out)
        growth = re.search(r"growth after the warm-up: ([+-][\d.]+) MB", out)
        assert warm is not None, out[-4000:]
        assert growth is not None, out[-4000:]
        allowed = 0.05 * float(warm.group(1)) + PAGE_CACHE_KIB / 1024
        assert float(growth.group(1)) < allowed, out[-4000:]
    per_fill = re.search(r"per fill: [+-][\d,]+ bytes of RSS, ([+-][\d.]+) heap blocks", out)
    assert per_fill is not None, out[-4000:]
    assert float(per_fill.group(1)) < MAX_BLOCKS_PER_FILL, out[-4000:]
    fills = re.search(r"fills after the warm-up: ([\d,]+)", out)
    assert fills is not None, out[-4000:]
    assert int(fills.group(1).replace(",", "")) > 1_000, out[-4000:]
