"""The seed's plugin contract on the built-ins: typed params, ``plugin_params`` defaults,
``set_params``, ``get_debug_info`` and ``add_debug_info`` (SYS-005, SYS-008)."""

from decimal import Decimal
from typing import Any

import pytest

from lts.domain.instruments import Instrument
from lts.domain.orders import Fill, OrderType, Side
from lts.domain.signals import Target
from lts.errors import InvalidParams
from lts.plugins.base import PluginBase
from lts.plugins.broker import ExecutionReport
from lts.plugins.broker.paper import PaperBroker
from lts.plugins.pipeline.replay import ReplayFeed
from lts.plugins.pipeline.synthetic import SyntheticFeed
from lts.plugins.portfolio.fixed_fraction import FixedFraction
from lts.plugins.registry import Registry
from lts.plugins.strategy.buy_and_hold import BuyAndHold
from lts.plugins.strategy.sma_crossover import SmaCrossover

from ._support import SettableClock, make_bar, make_order


class ReportList(list[ExecutionReport]):
    """A report sink for the paper broker: every report, in order."""

    def __call__(self, report: ExecutionReport) -> None:
        self.append(report)

    def threadsafe(self, report: ExecutionReport) -> None:
        self.append(report)


async def started_paper(**params: Any) -> tuple[PaperBroker, ReportList]:
    broker = PaperBroker(**params)
    reports = ReportList()
    await broker.run(reports, SettableClock())
    broker.use_instruments({"AAA": Instrument("AAA", Decimal("0.01"), Decimal(1))})
    return broker, reports

DEFAULTS: dict[type[PluginBase], dict[str, Any]] = {
    SmaCrossover: {"fast": 10, "slow": 30, "quantity": None, "long_only": True},
    BuyAndHold: {"quantity": None},
    FixedFraction: {"fraction": Decimal("0.1")},
    # the price grid and the lot come from the instrument (issue 9), not from params
    PaperBroker: {"fees_bps": None, "taker_bps": None, "maker_bps": None,
                  "fee_per_order": Decimal(0), "min_fee_per_order": Decimal(0),
                  "slippage_bps": Decimal(0), "fill_at": "next_open", "volume_cap": 0.0},
    SyntheticFeed: {"seed": 7, "interval": 1.0, "start_price": 100.0, "drift": 0.0,
                    "volatility": 0.01, "volume": 1000.0, "max_bars": 0, "aligned": False},
    ReplayFeed: {"path": "", "batch": 4096},
}


@pytest.mark.parametrize("cls", list(DEFAULTS), ids=lambda c: c.plugin_name)
def test_plugin_params_are_the_defaults_of_params(cls: type[PluginBase]) -> None:
    """SYS-005: ``plugin_params`` (the seed's defaults) derive from the typed Params."""
    assert cls.plugin_params == DEFAULTS[cls]
    assert cls().params.model_dump() == DEFAULTS[cls]


# -- validation -----------------------------------------------------------------------------------

def test_an_unknown_param_is_refused_naming_it() -> None:
    with pytest.raises(InvalidParams) as err:
        SmaCrossover(fast=2, slow=5, sloww=6)
    assert (err.value.plugin, err.value.field) == ("sma_crossover", "sloww")
    assert str(err.value) == "sma_crossover: param 'sloww': unknown param"


@pytest.mark.parametrize(("cls", "params", "field"), [
    (SmaCrossover, {"fast": "many"}, "fast"),
    (SmaCrossover, {"long_only": "perhaps"}, "long_only"),
    (FixedFraction, {"fraction": "a lot"}, "fraction"),
    (FixedFraction, {"fraction": Decimal("1.5")}, "fraction"),
    (PaperBroker, {"fill_at": "midpoint"}, "fill_at"),
    (PaperBroker, {"fees_bps": -1}, "fees_bps"),
    (PaperBroker, {"volume_cap": 1.5}, "volume_cap"),
    (PaperBroker, {"price_increment": "0.01"}, "price_increment"),  # the instrument's now
    (SyntheticFeed, {"interval": 0}, "interval"),
])
def test_a_bad_value_is_refused_naming_the_field(cls: type[PluginBase], params: dict[str, Any],
                                                 field: str) -> None:
    with pytest.raises(InvalidParams) as err:
        cls(**params)
    assert err.value.field == field
    assert str(err.value).startswith(f"{cls.plugin_name}: param {field!r}: ")
    assert "\n" not in str(err.value)


def test_sma_fast_must_be_below_slow() -> None:
    with pytest.raises(InvalidParams) as err:
        Registry.discover().create("strategy", "sma_crossover", {"fast": 30, "slow": 10})
    assert err.value.plugin == "sma_crossover"
    assert "fast must be smaller than slow" in str(err.value)
    with pytest.raises(InvalidParams):
        SmaCrossover(fast=5, slow=5)


def test_registry_validate_checks_without_building() -> None:
    reg = Registry.discover()
    reg.validate("broker", "paper", {"fees_bps": "2.5"})
    with pytest.raises(InvalidParams) as err:
        reg.validate("broker", "paper", {"fees": 2})
    assert err.value.field == "fees"


# -- set_params -----------------------------------------------------------------------------------

def test_set_params_changes_only_what_it_names() -> None:
    strategy = SmaCrossover(fast=3, slow=8, quantity=Decimal(5))
    strategy.set_params(fast=4)
    assert strategy.params.model_dump() == {"fast": 4, "slow": 8, "quantity": Decimal(5),
                                            "long_only": True}


@pytest.mark.parametrize("change", [{"fast": 9}, {"slow": "eight"}, {"speed": 1}])
def test_set_params_validates_the_merged_set_and_changes_nothing_on_error(
        change: dict[str, Any]) -> None:
    strategy = SmaCrossover(fast=3, slow=8)
    before = strategy.params
    with pytest.raises(InvalidParams):
        strategy.set_params(**change)
    assert strategy.params is before
    assert strategy.params.model_dump() == {"fast": 3, "slow": 8, "quantity": None,
                                            "long_only": True}


def test_set_params_takes_effect_on_a_strategy() -> None:
    strategy = SmaCrossover(fast=1, slow=2)
    strategy.set_params(long_only=False, quantity=Decimal(3))
    signals = [strategy.on_bar(make_bar(close=c, ts=i)) for i, c in enumerate([1.0, 3.0, 1.0])]
    down = signals[2]
    assert down is not None
    assert (down.target, down.quantity) == (Target.SHORT, Decimal(3))


@pytest.mark.anyio
async def test_set_params_takes_effect_on_the_paper_broker() -> None:
    broker, reports = await started_paper()
    broker.set_params(fees_bps=Decimal(10), slippage_bps=Decimal(20))
    broker.place(make_order(10))
    broker.on_bar(make_bar(open=100.0))
    [fill] = reports
    assert isinstance(fill, Fill)
    assert (fill.price, fill.fee) == (Decimal("100.20"), Decimal("1.00200000"))


# -- debug info (SYS-008) -------------------------------------------------------------------------

def test_debug_info_reports_params_debug_vars_and_added_entries() -> None:
    """SYS-008: ``get_debug_info`` has the plugin, its params, every ``plugin_debug_vars``
    entry and what ``add_debug_info`` merged in."""
    strategy = SmaCrossover(fast=1, slow=2)
    for i, close in enumerate([1.0, 3.0, 1.0, 2.0]):
        strategy.on_bar(make_bar(close=close, ts=i))
    strategy.add_debug_info({"asset": "AAA"})
    strategy.add_debug_info({"note": "checked", "asset": "BBB"})
    assert strategy.get_debug_info() == {
        "plugin": "sma_crossover",
        "params": {"fast": 1, "slow": 2, "quantity": None, "long_only": True},
        "bars_seen": 4, "signals": 2, "last_diff": 0.5,
        "asset": "BBB", "note": "checked",
    }


@pytest.mark.anyio
async def test_paper_broker_debug_info_counts_orders_fills_and_working_orders() -> None:
    """SYS-008."""
    broker, _ = await started_paper()
    broker.place(make_order(1, coid="1-1"))
    broker.place(make_order(1, Side.SELL, coid="1-2", limit="500",
                            order_type=OrderType.LIMIT))
    broker.on_bar(make_bar(open=100.0))
    info = broker.get_debug_info()
    assert {k: info[k] for k in ("orders_received", "fills_made", "working_orders")} == {
        "orders_received": 2, "fills_made": 1, "working_orders": 1}
    assert info["plugin"] == "paper"

