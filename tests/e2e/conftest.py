"""Fixtures of the end-to-end tests: a working directory, an engine launcher that never leaves
a process behind, and an installable test plugin package made on the fly."""

from collections.abc import Iterator
from pathlib import Path

import pytest

from ._support import Db, Launcher

EXPLODING_MODULE = '''\
"""Test plugins installed on the fly by the end-to-end tests (not part of LTS)."""

from decimal import Decimal

from pydantic import Field

from lts.domain.market import Bar
from lts.domain.signals import Signal, Target
from lts.plugins.base import PluginBase, PluginParams


class ExplodingParams(PluginParams):
    after: int = Field(3, ge=1, description="bars taken before the strategy raises")


class Exploding(PluginBase):
    """A strategy that raises RuntimeError("boom") on the bar after ``after`` bars."""

    Params = ExplodingParams
    plugin_name = "exploding"
    plugin_debug_vars = ["bars"]

    def __init__(self, **params: object) -> None:
        super().__init__(**params)
        self.bars = 0

    def on_bar(self, bar: Bar) -> Signal | None:
        self.bars += 1
        if self.bars > self.params.after:
            raise RuntimeError("boom")
        return None


class ChurnParams(PluginParams):
    quantity: Decimal = Field(Decimal(1), gt=0)


class Churn(PluginBase):
    """A strategy that signals LONG on odd bars and FLAT on even bars (an order every bar)."""

    Params = ChurnParams
    plugin_name = "churn"

    def __init__(self, **params: object) -> None:
        super().__init__(**params)
        self.bars = 0

    def on_bar(self, bar: Bar) -> Signal | None:
        self.bars += 1
        target = Target.LONG if self.bars % 2 else Target.FLAT
        return Signal(bar.symbol, target, bar.ts_event, self.params.quantity, "churn")
'''

METADATA = "Metadata-Version: 2.1\nName: lts-testplugins\nVersion: 0.1\n"
ENTRY_POINTS = ("[lts.plugins.strategy]\nexploding = lts_testplugins:Exploding\n"
                "churn = lts_testplugins:Churn\n")


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    """The engine's working directory (its ./data lands here)."""
    path = tmp_path / "work"
    path.mkdir()
    return path


@pytest.fixture
def launcher(workdir: Path) -> Iterator[Launcher]:
    launch = Launcher(workdir)
    try:
        yield launch
    finally:
        launch.cleanup()


@pytest.fixture
def db_path(workdir: Path) -> Path:
    return workdir / "lts.db"


@pytest.fixture
def db(db_path: Path) -> Db:
    return Db(db_path)


@pytest.fixture
def plugin_dir(tmp_path: Path) -> Path:
    """A directory that, on PYTHONPATH, installs the ``exploding`` and ``churn`` strategies the
    way a user's plugin distribution is installed: a module plus a ``*.dist-info`` with entry
    points."""
    path = tmp_path / "plugins"
    path.mkdir()
    (path / "lts_testplugins.py").write_text(EXPLODING_MODULE)
    info = path / "lts_testplugins-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(METADATA)
    (info / "entry_points.txt").write_text(ENTRY_POINTS)
    return path
