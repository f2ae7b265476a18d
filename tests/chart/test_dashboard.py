"""The Grafana dashboard's shape: what a platform team needs on it, filtered by its variables.

Whether each query returns data is `e2e_tests/test_observability.py`'s question (a real run); the
metric names are checked against the exporters in `test_chart.py`.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

DASHBOARD = Path(__file__).parents[2] / "charts" / "deepseek-operator" / "files" / "grafana-dashboard.json"
BOARD: dict[str, Any] = json.loads(DASHBOARD.read_text())
TARGETS = [(panel, target) for panel in BOARD["panels"] for target in panel.get("targets") or []]


@pytest.mark.parametrize(
    ("what", "pattern"),
    [
        ("queue depth per group",
         r"by \(deployment, version, group\) \(ray_deepseek_serving_group_queue_depth"),
        ("groups ready", r'deepseek_operator_version_groups\{state="ready"'),
        ("groups desired", r'deepseek_operator_version_groups\{state="desired"'),
        ("TTFT p50", r"histogram_quantile\(0\.5, .*ray_vllm_time_to_first_token_seconds_bucket"),
        ("TTFT p99", r"histogram_quantile\(0\.99, .*ray_vllm_time_to_first_token_seconds_bucket"),
        ("ITL p95", r"histogram_quantile\(0\.95, .*ray_vllm_inter_token_latency_seconds_bucket"),
        ("tokens/s", r"rate\(ray_vllm_generation_tokens_total"),
        ("KV-cache usage", r"ray_vllm_kv_cache_usage_perc"),
        ("expert balance", r"deepseek_operator_eplb_balancedness"),
        ("rollout step", r"deepseek_operator_rollout_step\{"),
        ("time in the rollout step", r"time\(\) - .*deepseek_operator_rollout_step_start_time_seconds"),
        ("weights per version", r"by \(namespace, deployment, version, role\) "
         r"\(deepseek_operator_version_weight_percent"),
        ("conditions", r"deepseek_operator_condition\{status=\"True\""),
        ("HTTP status codes",
         r"by \(deployment, version, revision, code\) \(rate\(ray_deepseek_serving_requests_total"),
    ],
)  # fmt: skip
def test_the_dashboard_shows(what: str, pattern: str) -> None:
    assert any(re.search(pattern, target["expr"]) for _, target in TARGETS), what


def test_every_query_is_filtered_by_the_variables() -> None:
    names = [variable["name"] for variable in BOARD["templating"]["list"]]
    assert names == ["datasource", "namespace", "deployment"]
    operator_own = (
        "deepseek_operator_reconcile",
        "deepseek_operator_queue",
        "deepseek_operator_api_requests",
        "deepseek_operator_decisions",
    )
    for panel, target in TARGETS:
        if any(name in target["expr"] for name in operator_own):
            continue  # the operator's own work: not per deployment
        for selector in re.findall(r"\b(?:deepseek_operator|ray)_\w+\{([^}]*)\}", target["expr"]):
            assert 'namespace=~"$namespace"' in selector, (panel["title"], target["expr"])
            assert 'deployment=~"$deployment"' in selector, (panel["title"], target["expr"])
        assert target["datasource"]["uid"] == "${datasource}"


def test_panels_have_unique_ids_and_do_not_overlap() -> None:
    ids = [panel["id"] for panel in BOARD["panels"]]
    assert len(ids) == len(set(ids))
    cells: set[tuple[int, int]] = set()
    for panel in BOARD["panels"]:
        grid = panel["gridPos"]
        mine = {
            (x, y)
            for x in range(grid["x"], grid["x"] + grid["w"])
            for y in range(grid["y"], grid["y"] + grid["h"])
        }
        assert not cells & mine, panel["title"]
        assert grid["x"] + grid["w"] <= 24
        cells |= mine
