"""The chart's PrometheusRule: rendered by the real Helm engine, checked and unit-tested by promtool.

`prometheus-rules.test.yaml` feeds each alert the series the operator and the serving metrics
export and expects it to fire (with its labels and the words of its annotations) or not.
`e2e_tests/test_observability.py` evaluates the same expressions on a real run.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.metrics import MetricWrapperBase

from deepseek_operator import metrics
from tests.chart.rules import alerting_rules, recording_rules, render_prometheus_rule, rule_file_text

pytest.importorskip("helm_sdkpy", reason="install helm-sdkpy (see pyproject's testing extra notes)")
PROMTOOL = shutil.which("promtool") or shutil.which("promtool", path="/usr/bin:/usr/local/bin")
needs_promtool = pytest.mark.skipif(
    PROMTOOL is None,
    reason="promtool is not installed: apt-get install -y --no-install-recommends prometheus",
)
UNIT_TESTS = Path(__file__).parent / "prometheus-rules.test.yaml"
ALERTS = {
    "DeepSeekNoReadyGroup",
    "DeepSeekDeploymentDegraded",
    "DeepSeekRolloutStuck",
    "DeepSeekTTFTBudgetBurnFast",
    "DeepSeekTTFTBudgetBurnSlow",
    "DeepSeekHighErrorRate",
}


@pytest.fixture(scope="module")
def rule() -> dict[str, Any]:
    return render_prometheus_rule()


def _promtool(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    assert PROMTOOL is not None
    return subprocess.run(
        [PROMTOOL, *args], cwd=cwd, capture_output=True, text=True, timeout=120, check=False
    )


@needs_promtool
def test_promtool_checks_the_rendered_rules(rule: dict[str, Any], tmp_path: Path) -> None:
    (tmp_path / "rules.yaml").write_text(rule_file_text(rule))
    checked = _promtool("check", "rules", "rules.yaml", cwd=tmp_path)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"SUCCESS: {len(alerting_rules(rule)) + len(recording_rules(rule))} rules found" in checked.stdout


@needs_promtool
def test_promtool_unit_tests_pass_on_the_rendered_rules(rule: dict[str, Any], tmp_path: Path) -> None:
    (tmp_path / "rules.yaml").write_text(rule_file_text(rule))
    shutil.copy(UNIT_TESTS, tmp_path / UNIT_TESTS.name)
    tested = _promtool("test", "rules", UNIT_TESTS.name, cwd=tmp_path)
    assert tested.returncode == 0, tested.stdout + tested.stderr


@needs_promtool
def test_promtool_unit_tests_fail_when_a_rule_changes(tmp_path: Path) -> None:
    """The unit tests can fail: a longer `for` than the tests expect is caught."""
    changed = render_prometheus_rule({"metrics": {"prometheusRule": {"degradedFor": "30m"}}})
    (tmp_path / "rules.yaml").write_text(rule_file_text(changed))
    shutil.copy(UNIT_TESTS, tmp_path / UNIT_TESTS.name)
    tested = _promtool("test", "rules", UNIT_TESTS.name, cwd=tmp_path)
    assert tested.returncode != 0
    assert "DeepSeekDeploymentDegraded" in tested.stdout + tested.stderr


def test_every_alert_is_unit_tested_firing(rule: dict[str, Any]) -> None:
    assert set(alerting_rules(rule)) == ALERTS
    tests = yaml.safe_load(UNIT_TESTS.read_text())["tests"]
    firing = {
        case["alertname"]
        for test in tests
        for case in test.get("alert_rule_test", [])
        if case.get("exp_alerts")
    }
    assert firing == ALERTS


def test_values_reach_the_rules() -> None:
    rule = render_prometheus_rule(
        {
            "metrics": {
                "prometheusRule": {
                    "degradedFor": "30m",
                    "noReadyGroupFor": "2m",
                    "rolloutStepDeadlineSeconds": 600,
                    "ttftSlo": {"thresholdSeconds": "1.0", "objective": 0.995},
                    "errorRate": {"threshold": 0.01, "for": "1m"},
                    "labels": {"release": "prometheus"},
                    "alertLabels": {"team": "serving"},
                }
            }
        }
    )
    alerts = alerting_rules(rule)
    assert rule["metadata"]["labels"]["release"] == "prometheus"
    assert alerts["DeepSeekDeploymentDegraded"]["for"] == "30m"
    assert alerts["DeepSeekNoReadyGroup"]["for"] == "2m"
    assert alerts["DeepSeekRolloutStuck"]["expr"].endswith("> 600")
    assert "(1 - 0.995)" in alerts["DeepSeekTTFTBudgetBurnFast"]["expr"]
    assert alerts["DeepSeekHighErrorRate"]["expr"].endswith("> 0.01")
    assert alerts["DeepSeekHighErrorRate"]["for"] == "1m"
    assert all(alert["labels"]["team"] == "serving" for alert in alerts.values())
    assert all('le="1.0"' in r["expr"] for r in recording_rules(rule).values())


def test_rules_name_metrics_that_exist(rule: dict[str, Any]) -> None:
    """Operator metrics from `deepseek_operator.metrics`; serving ones as the serving app names them
    (`ray_deepseek_serving_requests_total` is the request counter the serving app exports)."""
    collectors = [value for value in vars(metrics).values() if isinstance(value, MetricWrapperBase)]
    exported = {family.name for collector in collectors for family in collector.describe()}
    expressions = " ".join(
        r["expr"] for r in [*alerting_rules(rule).values(), *recording_rules(rule).values()]
    )
    operator_names = set(re.findall(r"\b(deepseek_operator_[a-z_]+)\b", expressions))
    assert operator_names
    assert operator_names <= exported, operator_names - exported
    serving_names = set(re.findall(r"\b(ray_[a-z_]+)\b", expressions))
    assert serving_names == {
        "ray_vllm_time_to_first_token_seconds_bucket",
        "ray_deepseek_serving_requests_total",
    }
