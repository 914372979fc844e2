"""Plugin discovery through entry points: the built-ins, a broken plugin, a duplicate name.

A user's plugin distribution is faked the way pip installs one: a module plus a
``<name>-0.1.dist-info`` holding ``METADATA`` and ``entry_points.txt``, in a directory put on
``sys.path`` for the one test (``monkeypatch.syspath_prepend``).
"""

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from lts.errors import PluginError, PluginLoadError, PluginNotFound
from lts.plugins.broker.paper import PaperBroker
from lts.plugins.pipeline.replay import ReplayFeed
from lts.plugins.pipeline.synthetic import SyntheticFeed
from lts.plugins.portfolio.fixed_fraction import FixedFraction
from lts.plugins.registry import Registry
from lts.plugins.strategy.buy_and_hold import BuyAndHold
from lts.plugins.strategy.sma_crossover import SmaCrossover

BUILT_INS = {
    ("pipeline", "synthetic"): SyntheticFeed,
    ("pipeline", "replay"): ReplayFeed,
    ("strategy", "sma_crossover"): SmaCrossover,
    ("strategy", "buy_and_hold"): BuyAndHold,
    ("portfolio", "fixed_fraction"): FixedFraction,
    ("broker", "paper"): PaperBroker,
}

#: the strategies issue 11 ships (each tested in tests/plugins/strategies)
SHIPPED_STRATEGIES = {"bollinger_breakout", "ema_crossover", "grid", "momentum_rotation",
                      "pairs_zscore", "rsi_reversion"}

PLUGIN_SOURCE = '''\
from lts.plugins.base import PluginBase


class {cls}(PluginBase):
    plugin_name = "{name}"


class NotAPlugin:
    pass
'''

FAKE_MODULES = ("lts_fake_broken", "lts_fake_good", "lts_fake_twin_a", "lts_fake_twin_b",
                "lts_fake_shadow")


@pytest.fixture(autouse=True)
def _forget_fake_modules() -> Iterator[None]:
    """The fake distributions' modules must not outlive their test."""
    yield
    for name in FAKE_MODULES:
        sys.modules.pop(name, None)


def install_fake_distribution(root: Path, module: str, source: str, entry_points: str) -> None:
    root.mkdir(parents=True, exist_ok=True)
    (root / f"{module}.py").write_text(source)
    info = root / f"{module}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {module}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(entry_points)


def test_discovers_and_loads_every_built_in() -> None:
    """SYS-001: every built-in plugin kind is found through its entry-point group."""
    reg = Registry.discover()
    for (kind, name), cls in BUILT_INS.items():
        info = reg.plugins[(kind, name)]
        assert info.loaded, info.error
        assert info.error is None
        assert info.cls is cls
        assert reg.get(kind, name) is cls
    assert reg.problems == []
    shipped = {n for k, n in BUILT_INS if k == "strategy"} | SHIPPED_STRATEGIES
    assert [i.name for i in reg.of_kind("strategy")] == sorted(shipped)


def test_unknown_plugin_names_the_known_ones() -> None:
    reg = Registry.discover()
    with pytest.raises(PluginNotFound) as err:
        reg.get("strategy", "moon_phase")
    known = ", ".join(sorted({n for k, n in BUILT_INS if k == "strategy"} | SHIPPED_STRATEGIES))
    assert str(err.value) == f"unknown strategy plugin 'moon_phase' (known: {known})"
    with pytest.raises(PluginNotFound, match=r"\(known: local\)"):
        reg.get("aaa", "ldap")


def test_create_builds_an_instance_with_validated_params() -> None:
    reg = Registry.discover()
    strategy = reg.create("strategy", "sma_crossover", {"fast": 2, "slow": 5})
    assert isinstance(strategy, SmaCrossover)
    assert (strategy.params.fast, strategy.params.slow) == (2, 5)


def test_a_plugin_that_fails_to_import_is_recorded_and_discovery_goes_on(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """SYS-011: a broken plugin is reported; the others (built-in or not) still load."""
    install_fake_distribution(tmp_path, "lts_fake_broken",
                              'raise RuntimeError("boom at import")\n',
                              "[lts.plugins.strategy]\nbroken = lts_fake_broken:Broken\n")
    install_fake_distribution(
        tmp_path, "lts_fake_good", PLUGIN_SOURCE.format(cls="Good", name="good"),
        "[lts.plugins.strategy]\ngood = lts_fake_good:Good\n"
        "not_a_plugin = lts_fake_good:NotAPlugin\n")
    monkeypatch.syspath_prepend(str(tmp_path))

    reg = Registry.discover()

    broken = reg.plugins[("strategy", "broken")]
    assert not broken.loaded
    assert broken.error == "RuntimeError: boom at import"
    with pytest.raises(PluginLoadError) as err:
        reg.get("strategy", "broken")
    assert str(err.value) == (
        "strategy plugin 'broken' failed to load: RuntimeError: boom at import")

    wrong = reg.plugins[("strategy", "not_a_plugin")]
    assert wrong.error == "TypeError: lts_fake_good:NotAPlugin is not a PluginBase subclass"

    good = reg.get("strategy", "good")
    assert good.__name__ == "Good"
    for (kind, name), cls in BUILT_INS.items():
        assert reg.get(kind, name) is cls


def test_a_duplicate_name_is_refused_and_the_first_kept(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    install_fake_distribution(first, "lts_fake_twin_a",
                              PLUGIN_SOURCE.format(cls="Twin", name="twin"),
                              "[lts.plugins.strategy]\ntwin = lts_fake_twin_a:Twin\n")
    install_fake_distribution(second, "lts_fake_twin_b",
                              PLUGIN_SOURCE.format(cls="Twin", name="twin"),
                              "[lts.plugins.strategy]\ntwin = lts_fake_twin_b:Twin\n")
    monkeypatch.syspath_prepend(str(second))
    monkeypatch.syspath_prepend(str(first))  # sys.path: first, second, ...

    reg = Registry.discover()

    assert reg.plugins[("strategy", "twin")].target == "lts_fake_twin_a:Twin"
    assert reg.get("strategy", "twin").__module__ == "lts_fake_twin_a"
    assert reg.problems == ["duplicate strategy plugin 'twin': lts_fake_twin_b:Twin refused, "
                            "lts_fake_twin_a:Twin kept"]
    assert "lts_fake_twin_b" not in sys.modules  # the refused one is never imported


def test_register_refuses_a_duplicate_name() -> None:
    reg = Registry.discover()
    with pytest.raises(PluginError, match="duplicate strategy plugin 'sma_crossover'"):
        reg.register("strategy", "sma_crossover", BuyAndHold)
    assert reg.get("strategy", "sma_crossover") is SmaCrossover


def test_a_third_party_plugin_cannot_shadow_a_built_in(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    install_fake_distribution(tmp_path, "lts_fake_shadow",
                              PLUGIN_SOURCE.format(cls="Shadow", name="paper"),
                              "[lts.plugins.broker]\npaper = lts_fake_shadow:Shadow\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    reg = Registry.discover()
    assert reg.get("broker", "paper") is PaperBroker
