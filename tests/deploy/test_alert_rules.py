"""The Prometheus alert rules of deploy/ (issue 12): valid for Prometheus, each one tested with
``promtool test rules`` (deploy/prometheus/alerts_test.yml says when each must fire and when
not), loaded by the stack's Prometheus configuration and mounted into its container."""

import shutil
import subprocess
from pathlib import Path

import pytest
from api.conftest import running_api

from ._engine import scrape_while_trading
from ._stack import PROMETHEUS, ROOT, exported_series, load_yaml, metric_names, service

RULES = ROOT / "deploy" / "prometheus" / "alerts.yml"
RULE_TESTS = ROOT / "deploy" / "prometheus" / "alerts_test.yml"
#: what the issue asks to alert on (and notifications lost), by alert name
EXPECTED = {"LtsPortfolioInError", "LtsKillSwitchEngaged", "LtsJournalBacklog",
            "LtsJournalUnavailable", "LtsEventLoopLag", "LtsFeedStale", "LtsVenueRateLimited",
            "LtsNotificationsLost"}


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    tool = shutil.which("promtool")
    assert tool, "promtool not found: scripts/test installs Debian's prometheus package"
    return subprocess.run([tool, *args], cwd=RULES.parent, capture_output=True, text=True,
                          timeout=120, check=False)


def alert_names() -> set[str]:
    return {rule["alert"] for group in load_yaml(RULES)["groups"] for rule in group["rules"]}


def test_the_rules_are_valid_and_cover_what_pages_an_operator() -> None:
    checked = promtool("check", "rules", RULES.name)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert alert_names() == EXPECTED


def test_every_alert_fires_when_it_must_and_not_before() -> None:
    tested = promtool("test", "rules", RULE_TESTS.name)
    assert tested.returncode == 0, tested.stdout + tested.stderr
    cases = load_yaml(RULE_TESTS)["tests"]
    covered = {t["alertname"] for case in cases for t in case["alert_rule_test"]}
    assert covered == alert_names()  # each alert has a case


def test_the_stack_loads_the_rules() -> None:
    assert load_yaml(PROMETHEUS)["rule_files"] == [RULES.name]
    mounts = service("prometheus")["volumes"]
    assert f"./deploy/prometheus/{RULES.name}:/etc/prometheus/{RULES.name}:ro" in mounts


@pytest.mark.anyio
async def test_every_alert_reads_series_a_trading_engine_exports(tmp_path: Path) -> None:
    """Each ``lts_*`` series an alert's expression reads is in a trading engine's /metrics
    (an alert on a series nobody exports would never fire)."""
    async with running_api(tmp_path, demo={"interval": 0.05}) as api:
        series = exported_series(await scrape_while_trading(api.base))
    for group in load_yaml(RULES)["groups"]:
        for rule in group["rules"]:
            names = metric_names(rule["expr"])
            assert names, rule["alert"]
            assert names <= series.keys(), (rule["alert"], sorted(names - series.keys()))
