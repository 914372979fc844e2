"""Memory over a long run: the whole engine trading, its RSS flat after the warm-up (issue 9).

Runs ``bench/soak.py`` (the engine in its own process: supervisors, runners, paper venue, the
group-commit journal on a SQLite file, the API served on a free loopback port) for
``LTS_SOAK_SECONDS`` (default 1800: the issue's 30 minutes; ``.ci/run`` bounds it) and reads its
verdict. Marked ``soak``: run it with ``-m soak`` (or ``LTS_SOAK=1``).

Two checks: the bench's own target (RSS growth under 5 % after the warm-up, its exit status),
and the Python heap's growth per fill after the warm-up: the landed code kept every trade id of
every portfolio (up to 100,000 each, about 300 bytes and two to three heap blocks per fill); a
bounded memory keeps well under half a block per fill, which a short run already tells apart.
"""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from .test_crash_harness import _soak_selected

SOAK_SECONDS = float(os.environ.get("LTS_SOAK_SECONDS", "1800"))
BENCH = Path(__file__).resolve().parents[2] / "bench" / "soak.py"
PORTFOLIOS = 200
MAX_BLOCKS_PER_FILL = 0.5


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
    assert proc.returncode == 0, f"bench/soak.py exited {proc.returncode}:\n{out[-4000:]}"
    assert "target RSS growth under 5% after the warm-up: met" in out, out[-4000:]
    per_fill = re.search(r"per fill: [+-][\d,]+ bytes of RSS, ([+-][\d.]+) heap blocks", out)
    assert per_fill is not None, out[-4000:]
    assert float(per_fill.group(1)) < MAX_BLOCKS_PER_FILL, out[-4000:]
    fills = re.search(r"fills after the warm-up: ([\d,]+)", out)
    assert fills is not None, out[-4000:]
    assert int(fills.group(1).replace(",", "")) > 1_000, out[-4000:]
